import os
import subprocess

import pytest

from bench.images import image
from bench.errors import UsageError


def test_parse_ldd_real_output(data_dir):
    libs = image.parse_ldd((data_dir / "ldd_iperf3.txt").read_text())
    assert libs[-1] == "/lib64/ld-linux-x86-64.so.2"  # the interpreter is copied too
    assert "/lib/x86_64-linux-gnu/libiperf.so.0" in libs
    assert not any("vdso" in lib for lib in libs)
    assert len(libs) == 6


def test_parse_ldd_stress_ng_and_static(data_dir):
    libs = image.parse_ldd((data_dir / "ldd_stress-ng.txt").read_text())
    assert "/lib/x86_64-linux-gnu/libc.so.6" in libs and len(libs) > 5
    assert image.parse_ldd((data_dir / "ldd_busybox-static.txt").read_text()) == []


def test_missing_library_is_a_usage_error(monkeypatch):
    out = "\tlibfoo.so.1 => not found\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)\n"
    monkeypatch.setattr(image, "run_tool", lambda argv: subprocess.CompletedProcess(argv, 0, out, ""))
    with pytest.raises(UsageError, match="libfoo.so.1"):
        image.shared_libraries("/usr/bin/x")


def test_digest_follows_content(tmp_path):
    a = tmp_path / "a"
    a.write_bytes(b"one")
    inputs = {"/bin/a": str(a)}
    first = image.content_digest(inputs)
    assert image.content_digest(inputs) == first
    a.write_bytes(b"two")
    assert image.content_digest(inputs) != first
    assert image.content_digest({"/bin/b": str(a)}) != image.content_digest(inputs)


def test_populate_tree_copies_to_loader_paths(tmp_path, monkeypatch):
    lib = tmp_path / "libx.so.1"
    lib.write_bytes(b"lib")
    busybox = tmp_path / "busybox"
    busybox.write_bytes(b"#!bb")
    busybox.chmod(0o755)
    listing = "bin/sh\nusr/bin/awk\nbin/tool\n"
    monkeypatch.setattr(image, "run_tool", lambda argv: subprocess.CompletedProcess(argv, 0, listing, ""))
    root = tmp_path / "root"
    image.populate_tree(root, {"/bin/busybox": str(busybox), "/lib/x86_64-linux-gnu/libx.so.1": str(lib),
                               "/bin/tool": str(busybox)})
    assert (root / "lib/x86_64-linux-gnu/libx.so.1").read_bytes() == b"lib"
    assert os.readlink(root / "bin/sh") == "/bin/busybox"
    assert os.readlink(root / "usr/bin/awk") == "/bin/busybox"
    assert not (root / "bin/tool").is_symlink()  # a real tool is never replaced by an applet
    assert (root / "tmp").stat().st_mode & 0o1777 == 0o1777
    assert (root / "etc/passwd").read_text().startswith("root:")
