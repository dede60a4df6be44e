"""Stage, then rename: the one way isobench writes a file or a folder that a crash must never leave
half made. Every staging path starts with STAGING_PREFIX, which is how `bench clean` finds those a
killed process left behind."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

STAGING_PREFIX = ".bench-tmp-"


def begin(final: Path) -> Path:
    """A fresh staging path beside final (the same filesystem, so the rename is atomic)."""
    staging = final.with_name(f"{STAGING_PREFIX}{final.name}-{os.getpid()}")
    remove(staging)
    final.parent.mkdir(parents=True, exist_ok=True)
    return staging


def commit(staging: Path, final: Path, replace: bool = True) -> None:
    """Put staging in final's place. A folder that exists already is replaced, or with replace=False
    kept (another process built the same content first) and the staging dropped."""
    if staging.is_dir() and final.is_dir():
        if not replace:
            remove(staging)
            return
        shutil.rmtree(final)
    os.replace(staging, final)


@contextlib.contextmanager
def staged(final: Path, replace: bool = True):
    """with staged(path) as tmp: write tmp (a file, or a folder you make); on leaving, tmp becomes
    path; on an error tmp is removed and path is as it was."""
    staging = begin(final)
    try:
        yield staging
        commit(staging, final, replace)
    except BaseException:
        remove(staging)
        raise


def remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    with contextlib.suppress(OSError):
        path.unlink()


def leftovers(base: Path) -> list[Path]:
    """Staging paths under base, at any depth (not looking inside one)."""
    found = []
    for root, dirs, files in os.walk(base):
        for name in [*dirs, *files]:
            if name.startswith(STAGING_PREFIX):
                found.append(Path(root) / name)
        dirs[:] = [d for d in dirs if not d.startswith(STAGING_PREFIX)]
    return sorted(found)
