"""`bench clean`: find and remove everything of ours left on the host (all named bench-...).

It removes leftovers of any bench process, so don't run it beside a `bench run` you want to keep.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from bench.errors import UsageError
from bench import atomic
from bench.atomic import STAGING_PREFIX

STATE_DIR = Path("/tmp")


@dataclass(frozen=True)
class Residue:
    kind: str
    name: str

    def remove(self) -> None:
        REMOVERS[self.kind](self.name)


def _remove_path(name: str) -> None:
    shutil.rmtree(name, ignore_errors=True)
    Path(name).unlink(missing_ok=True)


def _remove_cgroup(name: str) -> None:
    from runners.cgroups import kill_and_remove

    kill_and_remove(Path(name))


def _remove_netns(name: str) -> None:
    from runners.network import ip

    ip("netns", "delete", name)


def _remove_link(name: str) -> None:
    from runners.network import ip

    ip("link", "delete", name)


def _unmount(name: str) -> None:
    from runners._linux import MNT_DETACH, umount

    umount(name, MNT_DETACH)


def _remove_docker(name: str) -> None:
    from runners.docker import docker_cli

    subprocess.run([docker_cli(), "rm", "--force", name], capture_output=True, check=False)


def _kill_pid(pid: str) -> None:
    os.kill(int(pid), signal.SIGKILL)


def _destroy_domain(name: str) -> None:
    import libvirt

    conn = libvirt.open("qemu:///system")
    try:
        domain = conn.lookupByName(name)
        if domain.isActive():
            domain.destroy()
        if domain.isPersistent():
            domain.undefine()
    except libvirt.libvirtError:
        pass  # gone meanwhile
    finally:
        conn.close()


REMOVERS = {"domain": _destroy_domain, "docker container": _remove_docker, "qemu process": _kill_pid,
            "runc container": lambda name: subprocess.run(["runc", "delete", "--force", name], capture_output=True),
            "crun container": lambda name: subprocess.run(["crun", "delete", "--force", name], capture_output=True),
            "staging dir": _remove_path, "state dir": _remove_path, "cgroup": _remove_cgroup,
            "netns": _remove_netns, "link": _remove_link, "mount": _unmount}


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


def staging_dirs(results_dir: Path, reports_dir: Path, cache_dir: Path) -> list[Residue]:
    """Half-written runs, reports, images, kernels, baselines... a killed `bench` left behind: the
    staging paths of bench.atomic, anywhere in the cache."""
    found = []
    for base in (results_dir, reports_dir):
        if base.is_dir():
            found += [Residue("staging dir", str(p)) for p in base.glob(f"{STAGING_PREFIX}*")]
    return found + [Residue("staging dir", str(p)) for p in atomic.leftovers(cache_dir)]


def cgroups() -> list[Residue]:
    from runners.cgroups import detect

    try:
        return [Residue("cgroup", str(p)) for p in detect().leftovers()]
    except OSError:
        return []


def network() -> list[Residue]:
    from runners.network import leftover_netns

    found = [Residue("link", name) for _, name in socket.if_nameindex() if name.startswith("bench-")]
    return found + [Residue("netns", name) for name in leftover_netns()]


def mounts(mountinfo: str = "/proc/self/mountinfo") -> list[Residue]:
    """Our mounts left in the host's namespace (deepest first). The netns file goes with its netns."""
    points = [line.split()[4] for line in Path(mountinfo).read_text().splitlines()]
    ours = [p for p in points if "/bench-" in p and not p.startswith("/run/netns/")]
    return [Residue("mount", p) for p in sorted(ours, key=len, reverse=True)]


def domains() -> list[Residue]:
    """libvirt domains named bench-... (running or defined); their QEMU goes with them."""
    try:
        import libvirt

        libvirt.registerErrorHandler(lambda *_: None, None)
        conn = libvirt.open("qemu:///system")
    except Exception:  # no libvirt here: nothing of ours there either
        return []
    try:
        return [Residue("domain", d.name()) for d in conn.listAllDomains() if d.name().startswith("bench-")]
    finally:
        conn.close()


def docker_containers() -> list[Residue]:
    from runners.docker import docker_cli

    cli = docker_cli()
    if cli is None:
        return []
    out = subprocess.run([cli, "ps", "-a", "--filter", "name=^bench-", "--format", "{{.Names}}"],
                         capture_output=True, text=True, timeout=30, check=False)
    return [Residue("docker container", name) for name in out.stdout.split()] if out.returncode == 0 else []


def oci_containers() -> list[Residue]:
    """runc/crun containers named bench-... whose `run` was killed before it could delete them."""
    found = []
    for runtime in ("runc", "crun"):
        state = Path(f"/run/{runtime}")
        if state.is_dir():
            found += [Residue(f"{runtime} container", p.name) for p in state.glob("bench-*")]
    return found


def qemu_processes() -> list[Residue]:
    """QEMUs the qemu runner started (named -name bench-...) that outlived a killed worker."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"qemu-system-x86_64") and b"-name" in argv:
            name = argv[argv.index(b"-name") + 1].decode(errors="replace")
            if name.startswith("bench-"):
                found.append(Residue("qemu process", proc.name))
    return found


def state_dirs(cache_dir: Path | None = None) -> list[Residue]:
    """Per-instance dirs in /tmp, and the chroot runner's scratch dirs inside the image's jail."""
    found = sorted(STATE_DIR.glob("bench-*"))
    if cache_dir is not None:
        found += sorted((cache_dir / "images").glob("*/rootfs/tmp/bench-*"))
    return [Residue("state dir", str(p)) for p in found if p.is_dir()]


def residues(results_dir: Path, reports_dir: Path, cache_dir: Path) -> list[Residue]:
    """In removal order: processes and cgroups first, then network, mounts, and files last."""
    return [*domains(), *qemu_processes(), *docker_containers(), *oci_containers(), *cgroups(), *network(),
            *mounts(), *state_dirs(cache_dir),
            *staging_dirs(results_dir, reports_dir, cache_dir)]
