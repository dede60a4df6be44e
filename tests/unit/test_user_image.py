"""--image SRC: what is refused (one line, exit 2, nothing stored), and how our layer finds its way
through an image's symlinks without ever leaving it."""

import io
import os

import pytest

from bench.cli import main
from bench.images.user_image import inside, tree_digest
from tests.unit.test_image_import import docker_save, layer


def refused(tmp_path, capsys, source) -> str:
    """The one line a refused --image gets; nothing stored, nothing of the image left in the cache."""
    from bench.cache import cache_dir

    images = cache_dir() / "images"

    def users() -> set:  # the trees made of users' images (our own image may be built meanwhile)
        return {p for p in images.glob("*-*") if p.name.startswith(("base-", "user-"))}

    before = users()
    assert main(["run", "--suite", "startup", "--image", str(source), "--runners", "process",
                 "--results-dir", str(tmp_path / "results")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert not (tmp_path / "results").exists()
    assert users() == before
    return err


def test_a_missing_image_is_refused(tmp_path, capsys):
    err = refused(tmp_path, capsys, "no-such-image-anywhere:1")
    assert "--image no-such-image-anywhere:1: no such directory" in err


def test_a_broken_tarball_is_refused(tmp_path, capsys):
    good = tmp_path / "good.tar"
    docker_save(good, layer(("bin/", "dir", None), ("bin/x", "file", b"x" * 4096)))
    broken = tmp_path / "broken.tar"
    broken.write_bytes(good.read_bytes()[:3000])
    assert "not a readable tarball" in refused(tmp_path, capsys, broken)


@pytest.mark.parametrize("entries, what", [
    ((("../evil", "file", b"x"),), "path escape: ../evil"),
    ((("/etc/evil", "file", b"x"),), "path escape: /etc/evil"),
    ((("etc", "sym", "/etc"), ("etc/evil", "file", b"x")), "goes through the symlink"),
    ((("up", "sym", "../../.."), ("up/evil", "file", b"x")), "goes through the symlink"),
], ids=["dotdot", "absolute", "absolute-symlink-out", "relative-symlink-out"])
def test_a_path_escape_in_a_layer_is_refused(entries, what, tmp_path, capsys):
    archive = tmp_path / "escape.tar"
    docker_save(archive, layer(*entries))
    err = refused(tmp_path, capsys, archive)
    assert what in err and "layer l0/layer.tar" in err, err
    assert not os.path.exists("/etc/evil")


def test_our_layer_resolves_an_images_symlinks_inside_it(tmp_path):
    root = tmp_path / "root"
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "bin").symlink_to("/usr/bin")  # absolute: on the host it would be the host's /usr/bin
    (root / "lib").symlink_to("usr/lib")
    (root / "up").symlink_to("../../../..")
    assert inside(root, "/bin/bench-probe") == root / "usr" / "bin" / "bench-probe"
    assert inside(root, "/lib/x/y") == root / "usr" / "lib" / "x" / "y"
    assert inside(root, "/up/etc/passwd") == root / "etc" / "passwd"  # .. stops at the image's root
    assert inside(root, "/../../etc") == root / "etc"


def test_a_directory_image_is_cached_by_its_content(tmp_path):
    root = tmp_path / "root"
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "tool").write_bytes(b"one")
    first = tree_digest(root)
    assert tree_digest(root) == first
    (root / "bin" / "tool").write_bytes(b"two")
    assert tree_digest(root) != first


def test_a_layer_the_manifest_names_but_the_archive_lacks_is_refused(tmp_path, capsys):
    import json
    import tarfile

    good = tmp_path / "good.tar"
    docker_save(good, layer(("bin/", "dir", None)))
    lacking = tmp_path / "lacking.tar"
    with tarfile.open(good) as src, tarfile.open(lacking, "w") as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read()
            if member.name == "manifest.json":
                manifest = json.loads(data)
                manifest[0]["Layers"].append("l9/layer.tar")
                data = json.dumps(manifest).encode()
                member.size = len(data)
            dst.addfile(member, io.BytesIO(data))
    assert "l9/layer.tar is missing or unreadable" in refused(tmp_path, capsys, lacking)


def test_a_symlink_loop_our_layer_would_go_through_is_refused(tmp_path, capsys):
    archive = tmp_path / "loop.tar"
    docker_save(archive, layer(("bin", "sym", "bin2"), ("bin2", "sym", "/bin")))
    assert "/bin/bench-probe loops through symlinks in the image" in refused(tmp_path, capsys, archive)


def test_a_chain_of_symlinks_is_followed_inside_the_image(tmp_path):
    root = tmp_path / "root"
    (root / "usr" / "local" / "bin").mkdir(parents=True)
    (root / "bin").symlink_to("/opt/bin")  # bin -> /opt/bin -> ../usr/bin -> local/bin: four hops, all inside
    (root / "opt").mkdir()
    (root / "opt" / "bin").symlink_to("../usr/bin")
    (root / "usr" / "bin").symlink_to("local/bin")
    assert inside(root, "/bin/bench-probe") == root / "usr" / "local" / "bin" / "bench-probe"
