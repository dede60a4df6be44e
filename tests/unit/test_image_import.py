"""Images as a rootfs (bench/images/image_import.py): docker save and OCI layouts built here, byte by byte,
with their layers, whiteouts and every kind of path escape a layer can try."""

import gzip
import hashlib
import io
import json
import tarfile

import pytest

from bench.errors import UsageError
from bench.images.image_import import import_image, safe_name


def layer(*entries, compress=False) -> bytes:
    """entries: (name, kind, data or link target), kind one of file, dir, sym, link."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, kind, data in entries:
            info = tarfile.TarInfo(name)
            info.mode = 0o755 if kind == "dir" else 0o644
            if kind == "file":
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
                continue
            info.type = {"dir": tarfile.DIRTYPE, "sym": tarfile.SYMTYPE, "link": tarfile.LNKTYPE}[kind]
            info.linkname = data or ""
            tar.addfile(info)
    data = out.getvalue()
    return gzip.compress(data) if compress else data


def archive(path, files: dict[str, bytes]) -> None:
    with tarfile.open(path, "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def docker_save(path, *layers) -> None:
    # as Docker's: the config names its layers' digests, so that the image id is the content's
    diff_ids = [f"sha256:{hashlib.sha256(data).hexdigest()}" for data in layers]
    config = json.dumps({"architecture": "amd64", "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    files = {f"l{i}/layer.tar": data for i, data in enumerate(layers)}
    files["cfg.json"] = config
    files["manifest.json"] = json.dumps([{"Config": "cfg.json", "RepoTags": ["mine:1"],
                                          "Layers": [f"l{i}/layer.tar" for i in range(len(layers))]}]).encode()
    archive(path, files)


def oci_layout(path, *layers) -> None:
    blobs = {hashlib.sha256(data).hexdigest(): data for data in layers}
    manifest = json.dumps({"layers": [{"digest": f"sha256:{digest}"} for digest in blobs]}).encode()
    mdigest = hashlib.sha256(manifest).hexdigest()
    files = {f"blobs/sha256/{d}": data for d, data in {**blobs, mdigest: manifest}.items()}
    files["oci-layout"] = b'{"imageLayoutVersion": "1.0.0"}'
    files["index.json"] = json.dumps({"manifests": [{"digest": f"sha256:{mdigest}", "annotations": {
        "org.opencontainers.image.ref.name": "mine:2"}}]}).encode()
    archive(path, files)


BASE = layer(("bin", "dir", None), ("bin/busybox", "file", b"ELF"), ("bin/sh", "sym", "/bin/busybox"),
             ("etc", "dir", None), ("etc/gone", "file", b"x"), ("etc/kept", "file", b"k"),
             ("var/cache", "dir", None), ("var/cache/old", "file", b"o"))
TOP = layer(("etc/.wh.gone", "file", b""), ("var/cache/.wh..wh..opq", "file", b""),
            ("var/cache/new", "file", b"n"), ("bin/ln", "link", "bin/busybox"), compress=True)


@pytest.mark.parametrize("make", [docker_save, oci_layout])
def test_layers_apply_in_order_with_whiteouts(tmp_path, make):
    make(tmp_path / "image.tar", BASE, TOP)
    got = import_image(tmp_path / "image.tar", tmp_path / "root")
    root = tmp_path / "root"
    assert (root / "bin/busybox").read_bytes() == b"ELF" and (root / "etc/kept").exists()
    assert (root / "bin/sh").is_symlink() and str((root / "bin/sh").readlink()) == "/bin/busybox"  # kept as is
    assert not (root / "etc/gone").exists()  # .wh.gone
    assert sorted(p.name for p in (root / "var/cache").iterdir()) == ["new"]  # opaque: old went
    assert (root / "bin/ln").stat().st_ino == (root / "bin/busybox").stat().st_ino
    assert got.layers == 2 and len(got.digest) == 64 and got.tags in (("mine:1",), ("mine:2",))


@pytest.mark.parametrize("bad, says", [
    (layer(("../outside", "file", b"x")), "path escape: ../outside"),
    (layer(("/etc/passwd", "file", b"x")), "path escape: /etc/passwd"),
    (layer(("etc", "sym", "/etc"), ("etc/passwd", "file", b"x")), "goes through the symlink etc"),
    (layer(("up", "sym", "../../.."), ("up/x", "file", b"x")), "goes through the symlink up"),
    (layer(("x", "link", "../../etc/shadow")), "path escape: ../../etc/shadow"),
])
def test_a_path_escape_is_refused_and_nothing_is_left(tmp_path, bad, says):
    docker_save(tmp_path / "image.tar", BASE, bad)
    with pytest.raises(UsageError, match=says) as raised:
        import_image(tmp_path / "image.tar", tmp_path / "root")
    assert "\n" not in str(raised.value) and str(tmp_path / "image.tar") in str(raised.value)
    assert not (tmp_path / "root").exists()


@pytest.mark.parametrize("content, says", [
    (b"not a tarball at all", "not a readable tarball"),
    (None, "neither a docker save archive"),
    ("truncated", "not a readable tarball|missing or unreadable|not a tarball"),
])
def test_a_broken_archive_is_one_line(tmp_path, content, says):
    path = tmp_path / "image.tar"
    if content is None:
        archive(path, {"hello.txt": b"hi"})
    elif content == "truncated":
        docker_save(path, BASE)
        path.write_bytes(path.read_bytes()[:700])
    else:
        path.write_bytes(content)
    with pytest.raises(UsageError, match=says) as raised:
        import_image(path, tmp_path / "root")
    assert "\n" not in str(raised.value)
    assert not (tmp_path / "root").exists()


def test_names_are_normalised_or_refused():
    assert str(safe_name("./usr/bin/env")) == "usr/bin/env"
    assert str(safe_name("./")) == str(safe_name(".")) == "."  # the rootfs itself, as docker save lists it
    for name in ("../x", "/x", "a/../../x", "./../x"):
        with pytest.raises(ValueError):
            safe_name(name)
