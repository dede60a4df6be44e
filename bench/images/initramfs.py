"""The VM's boot files: a small initramfs (our static init and the kernel modules) as a
newc cpio archive, and the guest rootfs as a read-only ext4 disk image that the init mounts and runs the
workload in.

Not the rootfs itself as the initramfs: the kernel reads and unpacks an initramfs in full before
init runs, and the 110 MB rootfs (Debian's fio links ceph, rbd and ICU libraries) took 0.4 to 0.9 s
of a TCG boot here. A disk is read as files are opened, as a real VM's root is."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from bench.atomic import staged
from bench.host.tools import run_captured

INIT_SOURCE = Path(__file__).parents[1] / "guest" / "init.c"
SIGNATURE_MAGIC = b"~Module signature appended~\n"


def _entry(name: str, mode: int, data: bytes, ino: int, nlink: int = 1, rdev: int = 0) -> bytes:
    name_b = name.encode() + b"\0"
    header = "070701" + "".join(f"{v:08X}" for v in (
        ino, mode, 0, 0, nlink, 0, len(data), 0, 0, os.major(rdev), os.minor(rdev), len(name_b), 0))
    raw = header.encode() + name_b
    raw += b"\0" * (-len(raw) % 4) + data
    return raw + b"\0" * (-len(raw) % 4)


def newc_archive(files: dict[str, tuple[int, bytes]]) -> bytes:
    """Pure: {path inside: (mode, data or link target)} -> a newc cpio archive with its trailer."""
    out = [_entry(name, mode, data, ino) for ino, (name, (mode, data)) in enumerate(sorted(files.items()), 1)]
    out.append(_entry("TRAILER!!!", 0, b"", 0))
    return b"".join(out)


def unsigned(ko: bytes) -> bytes:
    """Pure: a kernel module without its appended signature (struct module_signature, 12 bytes
    ending in the signature's big-endian length, sits before the magic string).

    Checking Debian's signatures (RSA, emulated) took ~130 ms of a TCG boot for the six modules the
    root disk needs; an unsigned module loads the same, and the kernel notes it as taint E."""
    if not ko.endswith(SIGNATURE_MAGIC):
        return ko
    end = len(ko) - len(SIGNATURE_MAGIC)
    sig_len = int.from_bytes(ko[end - 4:end], "big")
    return ko[:end - 12 - sig_len]


def build_initramfs(init: Path, modules: dict[str, Path], out: Path) -> Path:
    """/init + /lib/modules/<name>.ko, written atomically to out. No busybox: the kernel unpacks every
    byte before init runs, and the one tool the init needs (`ip`, for the net workloads) is on the
    root disk, which is mounted by then."""
    files = {d: (stat.S_IFDIR | 0o755, b"") for d in ("dev", "proc", "sys", "newroot", "lib", "lib/modules")}
    files["init"] = (stat.S_IFREG | 0o755, init.read_bytes())
    for name, path in modules.items():
        files[f"lib/modules/{name}.ko"] = (stat.S_IFREG | 0o644, unsigned(path.read_bytes()))
    with staged(out) as tmp:
        tmp.write_bytes(newc_archive(files))
    return out


def build_root_disk(rootfs: Path, out: Path, mkfs: str) -> Path:
    """The rootfs as an ext4 image (no journal: the guest mounts it read-only), written atomically."""
    used = sum(st.st_size for st in (p.lstat() for p in rootfs.rglob("*")) if stat.S_ISREG(st.st_mode))
    size_mib = used * 5 // 4 // 2**20 + 32  # room for metadata and the many small files
    with staged(out) as tmp:
        with open(tmp, "wb") as f:
            f.truncate(size_mib << 20)
        code, said = run_captured([mkfs, "-q", "-F", "-d", str(rootfs), "-O", "^has_journal", "-E",
                                   "nodiscard,root_owner=0:0", "-L", "bench-root", str(tmp)], timeout_s=600)
        if code:
            raise OSError(f"{mkfs} -d {rootfs}: {said.strip()}")
    return out
