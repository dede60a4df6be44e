"""Where isobench keeps what it builds (images, the app image, user images, kernels, snapshots,
baselines), closed to everyone but root.

An image's tree keeps its setuid and setgid files and file capabilities, as Docker keeps them; a
tree that any local user could reach would hand them an image's setuid-root shell. So the cache's
top is root's alone, as Docker closed its data root after CVE-2021-41091, but for one thing: the
container runner's user namespace (container:userns=true) maps its root to USERNS_ID, which must
pass through the cache to reach the image it mounts. Group USERNS_ID may pass (x), not list; the
user nobody may do neither.
"""

from __future__ import annotations

import os
from pathlib import Path

USERNS_ID = 100_000  # runners/container.py: root of a user namespace is this uid and gid outside
CLOSED_MODE = 0o710  # root: everything; group USERNS_ID: pass through; others: nothing


def cache_dir() -> Path:
    """XDG_CACHE_HOME, else /var/cache for root (a user namespace's root must reach the image
    layer, and /root is closed to it), else ~/.cache; made, and closed to others, here."""
    if os.environ.get("XDG_CACHE_HOME"):
        path = Path(os.environ["XDG_CACHE_HOME"]) / "isobench"
    else:
        path = Path("/var/cache/isobench" if os.geteuid() == 0 else os.path.expanduser("~/.cache/isobench"))
    return closed(path)


def closed(path: Path) -> Path:
    """path, made if missing, reachable by root and a user namespace's root only; a cache that an
    earlier version left open (0755) is closed too."""
    path.mkdir(parents=True, exist_ok=True)
    st = path.stat()
    if os.geteuid() != 0:  # a user's own cache: theirs alone
        if st.st_mode & 0o777 != 0o700:
            path.chmod(0o700)
        return path
    if (st.st_uid, st.st_gid) != (0, USERNS_ID):
        os.chown(path, 0, USERNS_ID)
    if st.st_mode & 0o7777 != CLOSED_MODE:
        path.chmod(CLOSED_MODE)
    return path


def instance_dir(path: Path, userns: bool = False) -> Path:
    """A per-instance directory (a container's upper layer, a bundle, a VM's state), root's alone;
    with userns, group USERNS_ID may pass through it to the directories it owns inside."""
    path.mkdir(parents=True, exist_ok=True)
    if userns:
        os.chown(path, 0, USERNS_ID)
    path.chmod(CLOSED_MODE if userns else 0o700)
    return path
