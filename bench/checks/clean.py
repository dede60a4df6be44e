"""`bench clean`: find and remove everything of ours left on the host (all named bench-...).

It removes leftovers of any bench process, so don't run it beside a `bench run` you want to keep.
"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench import atomic
from bench.atomic import STAGING_PREFIX
from bench.errors import UsageError
from runners.base import Residue

STATE_DIR = Path("/tmp")


@dataclass(frozen=True)
class Leftover:
    """A residue and who removes it: a runner class (Runner.remove), or the host plumbing."""

    residue: Residue
    remover: Callable[[Residue], None] = field(compare=False, repr=False)

    @property
    def kind(self) -> str:
        return self.residue.kind

    @property
    def name(self) -> str:
        return self.residue.name

    def remove(self) -> None:
        self.remover(self.residue)


def _remove_path(residue: Residue) -> None:
    shutil.rmtree(residue.name, ignore_errors=True)
    Path(residue.name).unlink(missing_ok=True)


def _remove_cgroup(residue: Residue) -> None:
    from bench.host.cgroups import kill_and_remove

    kill_and_remove(Path(residue.name))


def _remove_netns(residue: Residue) -> None:
    from bench.host.network import ip

    ip("netns", "delete", residue.name)


def _remove_link(residue: Residue) -> None:
    from bench.host.network import ip

    ip("link", "delete", residue.name)


def _unmount(residue: Residue) -> None:
    from bench.host.linux import MNT_DETACH, umount

    umount(residue.name, MNT_DETACH)


def lock_path() -> Path:
    return Path("/run/lock/isobench.lock") if os.geteuid() == 0 else Path(f"/tmp/isobench-{os.getuid()}.lock")


def run_lock(exclusive: bool) -> int:
    """`bench run` holds the lock shared while it runs; `bench clean` needs it exclusive, so that it
    never removes the cgroups, netns or domains of a run that is still going. Returns the fd."""
    import fcntl

    path = lock_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        if exclusive:
            raise UsageError("a bench run is in progress on this host: clean after it ends "
                             "(it removes what it creates itself)") from None
        raise UsageError("bench clean is running on this host: run again when it is done") from None
    return fd


def _recover_run(residue: Residue) -> None:
    from bench.analysis.store import recover

    recover(Path(residue.name))
    _remove_path(residue)


def staging_dirs(results_dir: Path, reports_dir: Path, cache_dir: Path) -> list[Leftover]:
    """Half-written runs, reports, images, kernels, baselines... a killed `bench` left behind: the
    staging paths of bench.atomic, anywhere in the cache. A killed run's journal is not lost: its
    samples become an incomplete run (bench.analysis.store.recover) before its staging dir goes."""
    from bench.analysis.store import Journal

    found = []
    for base in (results_dir, reports_dir):
        if base.is_dir():
            found += sorted(base.glob(f"{STAGING_PREFIX}*"))
    return [Leftover(Residue("killed run's journal (its samples kept as an incomplete run)", str(p)), _recover_run)
            if (p / Journal.HEAD).exists() else Leftover(Residue("staging dir", str(p)), _remove_path)
            for p in found + atomic.leftovers(cache_dir)]


def cgroups() -> list[Leftover]:
    from bench.host.cgroups import detect

    try:
        return [Leftover(Residue("cgroup", str(p)), _remove_cgroup) for p in detect().leftovers()]
    except OSError:
        return []


def network() -> list[Leftover]:
    from bench.host.network import leftover_netns

    links = [name for _, name in socket.if_nameindex() if name.startswith("bench-")]
    return ([Leftover(Residue("link", name), _remove_link) for name in links]
            + [Leftover(Residue("netns", name), _remove_netns) for name in leftover_netns()])


def mounts(mountinfo: str = "/proc/self/mountinfo") -> list[Leftover]:
    """Our mounts left in the host's namespace (deepest first). The netns file goes with its netns."""
    points = [line.split()[4] for line in Path(mountinfo).read_text().splitlines()]
    ours = [p for p in points if "/bench-" in p and not p.startswith("/run/netns/")]
    return [Leftover(Residue("mount", p), _unmount) for p in sorted(ours, key=len, reverse=True)]


def state_dirs() -> list[Leftover]:
    """Per-instance dirs (bundles, consoles, disks, overlays) in /tmp."""
    return [Leftover(Residue("state dir", str(p)), _remove_path) for p in sorted(STATE_DIR.glob("bench-*")) if p.is_dir()]


def runner_residues(cache_dir: Path) -> list[Leftover]:
    """What each registered runner says a killed run of it can leave (Runner.residues), once each."""
    from bench.registry import registered

    found: dict[Residue, Leftover] = {}
    for info in registered().values():
        if info.cls is None:
            continue
        for residue in info.cls.residues(str(cache_dir)):
            found.setdefault(residue, Leftover(residue, info.cls.remove))
    return list(found.values())


def host_residues() -> list[Leftover]:
    """The host plumbing's own (cgroups, bench-* links and netns, mounts, /tmp/bench-*)."""
    return [*cgroups(), *network(), *mounts(), *state_dirs()]


def residues(results_dir: Path, reports_dir: Path, cache_dir: Path) -> list[Leftover]:
    """In removal order: the runners' (domains, processes, runtime containers) first, then cgroups,
    network, mounts, and files last."""
    return [*runner_residues(cache_dir), *host_residues(), *staging_dirs(results_dir, reports_dir, cache_dir)]
