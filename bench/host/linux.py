"""The few Linux calls Python 3.11 lacks (setns, mount, prctl...), through ctypes.

The container's own setup (unshare, pivot_root, capabilities) is C: runners/container_init.c."""

from __future__ import annotations

import ctypes
import os

CLONE_NEWNET = 0x40000000

MS_NOSUID, MS_NODEV = 0x2, 0x4
MNT_DETACH = 2

PR_SET_PDEATHSIG, PR_SET_CHILD_SUBREAPER = 1, 36

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def _b(text: str | None) -> bytes | None:
    return None if text is None else os.fsencode(text)


def setns(fd: int, nstype: int = 0) -> None:
    _check(_libc.setns(fd, nstype), "setns")


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0, data: str | None = None) -> None:
    _check(_libc.mount(_b(source), _b(target), _b(fstype), ctypes.c_ulong(flags), _b(data)),
           f"mount {fstype or ''} {target}")


def umount(target: str, flags: int = 0) -> None:
    _check(_libc.umount2(_b(target), flags), f"umount {target}")


def prctl(option: int, arg2: int = 0, arg3: int = 0) -> int:
    return _check(_libc.prctl(option, ctypes.c_ulong(arg2), ctypes.c_ulong(arg3), 0, 0), f"prctl {option}")


DROP_CACHES = "/proc/sys/vm/drop_caches"


def drop_page_cache() -> None:
    """What --cache cold does before each start: write dirty pages back, then drop the page cache,
    dentries and inodes, so that the next start reads its binaries, kernel and image from disk."""
    os.sync()
    with open(DROP_CACHES, "w") as f:
        f.write("3")
