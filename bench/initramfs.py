"""The VM's initramfs: the guest rootfs tree, an init and kernel modules, as a newc cpio archive."""

from __future__ import annotations

import os
import stat
from pathlib import Path

INIT_SOURCE = Path(__file__).parent / "guest" / "init.sh"


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


def tree_files(root: Path) -> dict[str, tuple[int, bytes]]:
    """Every directory, file and symlink under root, as newc entries (uid and gid 0)."""
    files = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                files[rel] = (st.st_mode, os.readlink(path).encode())
            elif stat.S_ISDIR(st.st_mode):
                files[rel] = (st.st_mode, b"")
            elif stat.S_ISREG(st.st_mode):
                files[rel] = (st.st_mode, path.read_bytes())
    return files


def build_initramfs(rootfs: Path, modules: dict[str, Path], out: Path) -> Path:
    """rootfs + /init + /lib/modules/<name>.ko, written atomically to out."""
    files = tree_files(rootfs)
    files["init"] = (stat.S_IFREG | 0o755, INIT_SOURCE.read_bytes())
    files.setdefault("lib/modules", (stat.S_IFDIR | 0o755, b""))
    for name, path in modules.items():
        files[f"lib/modules/{name}.ko"] = (stat.S_IFREG | 0o644, path.read_bytes())
    tmp = out.with_suffix(f".tmp{os.getpid()}")
    tmp.write_bytes(newc_archive(files))
    os.replace(tmp, out)
    return out
