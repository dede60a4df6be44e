"""--image SRC: what is refused (one line, exit 2, nothing stored), and how our layer finds its way
through an image's symlinks without ever leaving it."""

import os

import pytest

from bench.cli import main
from bench.user_image import inside, tree_digest
from tests.unit.test_image_import import docker_save, layer


def refused(tmp_path, capsys, source) -> str:
    assert main(["run", "--suite", "startup", "--image", str(source), "--runners", "process",
                 "--results-dir", str(tmp_path / "results")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert not (tmp_path / "results").exists()
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
