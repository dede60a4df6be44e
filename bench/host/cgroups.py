"""One cgroup per instance under a `bench` parent, behind one small interface for v1 and v2.

v1 (this machine): a directory per controller (memory, cpu, cpuacct, pids).
v2 (unified): one directory; memory.max, memory.peak, cpu.max, pids.max.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import signal
import time
from abc import ABC, abstractmethod
from pathlib import Path

from bench.spec import CFS_PERIOD_US

PARENT = "bench"
# Held shared by every runner that makes cgroups under PARENT, from its first instance to its close:
# only the last one out, on this host, may rmdir the parent (runs can overlap; see remove_parent).
PARENT_LOCK = Path("/run/lock/isobench-cgroups.lock")
V1_CONTROLLERS = ("memory", "cpu", "cpuacct", "pids", "cpuset")


class Cgroup(ABC):
    """An instance's cgroup: created with its limits, joined by the workload, read back, removed."""

    def __init__(self, dirs: list[Path]) -> None:
        self.dirs = dirs

    @property
    def procs_files(self) -> list[str]:
        """The member processes, one file per hierarchy (the harness moves pid 1 through these
        when it cannot move itself, as with a user namespace)."""
        return [str(d / "cgroup.procs") for d in self.dirs]

    @property
    def self_join_files(self) -> list[str]:
        """Where the workload writes "0" to join (itself, before exec)."""
        return self.procs_files

    @abstractmethod
    def set_limits(self, memory_mib: int | None, quota_us: int | None, pids: int | None,
                   cpuset: str | None = None) -> None:
        """The envelope's limits: memory, the CFS quota per CFS_PERIOD_US, pids, the CPU list."""

    @abstractmethod
    def memory_peak_bytes(self) -> int | None: ...

    @abstractmethod
    def reset_peak(self) -> None:
        """Start memory_peak_bytes afresh, for a cgroup that holds one instance after another."""

    @abstractmethod
    def cpu_usage_ns(self) -> int | None: ...

    @abstractmethod
    def oom_kills(self) -> int: ...

    def create(self) -> None:
        for d in self.dirs:
            d.mkdir(exist_ok=True)

    def remove(self, timeout_s: float = 5.0) -> None:
        """rmdir every directory, waiting while exiting tasks still hold it. Idempotent."""
        deadline = time.monotonic() + timeout_s
        for d in self.dirs:
            while True:
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                        raise
                    time.sleep(0.001)


def _write(path: Path, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _keyed(path: Path) -> dict[str, int]:
    try:
        return {k: int(v) for k, v in (line.split() for line in path.read_text().splitlines() if line.strip())}
    except (OSError, ValueError):
        return {}


class CgroupV1(Cgroup):
    def __init__(self, mounts: dict[str, Path], name: str) -> None:
        self.by_controller = {c: mounts[c] / PARENT / name for c in V1_CONTROLLERS}
        super().__init__(list(dict.fromkeys(self.by_controller.values())))

    @property
    def self_join_files(self) -> list[str]:
        """The `tasks` files: a single-threaded process that writes "0" there moves only itself, and
        the kernel (6.18 here) then skips cgroup_threadgroup_rwsem, whose first writer after a quiet
        spell waits an RCU grace period: 5 to 16 ms here, against 0.04 ms (measured)."""
        return [str(d / "tasks") for d in self.dirs]

    def set_limits(self, memory_mib, quota_us, pids, cpuset=None) -> None:
        mem = self.by_controller["memory"]
        if memory_mib is not None:
            _write(mem / "memory.limit_in_bytes", str(memory_mib << 20))
            if (mem / "memory.memsw.limit_in_bytes").exists():  # no escape into swap
                _write(mem / "memory.memsw.limit_in_bytes", str(memory_mib << 20))
        if quota_us is not None:
            _write(self.by_controller["cpu"] / "cpu.cfs_period_us", str(CFS_PERIOD_US))
            _write(self.by_controller["cpu"] / "cpu.cfs_quota_us", str(quota_us))
        if pids is not None:
            _write(self.by_controller["pids"] / "pids.max", str(pids))
        if cpuset is not None:  # its mems came from the parent at mkdir (cgroup.clone_children)
            _write(self.by_controller["cpuset"] / "cpuset.cpus", cpuset)

    def memory_peak_bytes(self) -> int | None:
        return _read_int(self.by_controller["memory"] / "memory.max_usage_in_bytes")

    def reset_peak(self) -> None:
        _write(self.by_controller["memory"] / "memory.max_usage_in_bytes", "0")

    def cpu_usage_ns(self) -> int | None:
        return _read_int(self.by_controller["cpuacct"] / "cpuacct.usage")

    def oom_kills(self) -> int:
        return _keyed(self.by_controller["memory"] / "memory.oom_control").get("oom_kill", 0)


class CgroupV2(Cgroup):
    def __init__(self, root: Path, name: str) -> None:
        super().__init__([root / PARENT / name])
        self.dir = self.dirs[0]
        self._peak_fd: int | None = None  # memory.peak, reset through this fd (kernel 6.12+)

    def set_limits(self, memory_mib, quota_us, pids, cpuset=None) -> None:
        if memory_mib is not None:
            _write(self.dir / "memory.max", str(memory_mib << 20))
            if (self.dir / "memory.swap.max").exists():
                _write(self.dir / "memory.swap.max", "0")
        if quota_us is not None:
            _write(self.dir / "cpu.max", f"{quota_us} {CFS_PERIOD_US}")
        if pids is not None:
            _write(self.dir / "pids.max", str(pids))
        if cpuset is not None:
            _write(self.dir / "cpuset.cpus", cpuset)

    def memory_peak_bytes(self) -> int | None:
        if self._peak_fd is None:
            return _read_int(self.dir / "memory.peak")
        try:
            return int(os.pread(self._peak_fd, 64, 0).split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def reset_peak(self) -> None:
        """A write to memory.peak resets the peak seen through that fd (kernels before 6.12 refuse:
        then the peak stays the cgroup's lifetime peak)."""
        if self._peak_fd is None:
            self._peak_fd = os.open(self.dir / "memory.peak", os.O_RDWR | os.O_CLOEXEC)
        try:
            os.pwrite(self._peak_fd, b"reset\n", 0)
        except OSError:
            pass

    def remove(self, timeout_s: float = 5.0) -> None:
        if self._peak_fd is not None:
            os.close(self._peak_fd)
            self._peak_fd = None
        super().remove(timeout_s)

    def cpu_usage_ns(self) -> int | None:
        usec = _keyed(self.dir / "cpu.stat").get("usage_usec")
        return None if usec is None else usec * 1000

    def oom_kills(self) -> int:
        return _keyed(self.dir / "memory.events").get("oom_kill", 0)


@contextlib.contextmanager
def joined(join_files: list[str], home_files: list[str]):
    """The calling process (single-threaded) inside a cgroup for the body, so that what it spawns
    there starts inside, then back home. With v1's tasks files a move costs ~0.04 ms (see
    CgroupV1.self_join_files)."""
    for path in join_files:
        _write(Path(path), "0")
    try:
        yield
    finally:
        for path in home_files:
            _write(Path(path), "0")


def kill_and_remove(path: Path, timeout_s: float = 5.0) -> None:
    """SIGKILL what still runs in one of our instance cgroups, then rmdir it, waiting briefly for the
    dying to leave. For cgroups whose owner can no longer clean up (a runtime killed mid-start, a
    run killed outright)."""
    deadline = time.monotonic() + timeout_s
    while path.exists():
        for line in (path / "cgroup.procs").read_text().split():
            try:
                os.kill(int(line), signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            path.rmdir()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


class CgroupFS:
    """The host's cgroup layout: which version, where, and how to make an instance cgroup."""

    def __init__(self, version: int, root: Path, mounts: dict[str, Path]) -> None:
        self.version, self.root, self.mounts = version, root, mounts
        self.lock: int | None = None

    def hold(self) -> None:
        """Take this runner's share of the parent: until remove_parent, no other run removes it.
        Blocks only while a last user is removing an empty parent, which takes microseconds."""
        if self.lock is None:
            PARENT_LOCK.parent.mkdir(parents=True, exist_ok=True)
            self.lock = os.open(PARENT_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            fcntl.flock(self.lock, fcntl.LOCK_SH)

    def ensure_parent(self) -> None:
        self.hold()
        if self.version == 2:
            (self.root / PARENT).mkdir(exist_ok=True)
            for d in (self.root, self.root / PARENT):
                _write(d / "cgroup.subtree_control", "+memory +cpu +pids +cpuset")
        else:
            for c in V1_CONTROLLERS:
                (self.mounts[c] / PARENT).mkdir(exist_ok=True)
            # A v1 cpuset takes no task until it has CPUs and memory nodes: the parent copies them
            # from the root, and every child copies them from the parent when it is made.
            cpuset = self.mounts["cpuset"]
            for name in ("cpuset.cpus", "cpuset.mems"):
                if (cpuset / name).exists() and not (cpuset / PARENT / name).read_text().strip():
                    _write(cpuset / PARENT / name, (cpuset / name).read_text().strip())
            if (cpuset / PARENT / "cgroup.clone_children").exists():
                _write(cpuset / PARENT / "cgroup.clone_children", "1")

    def remove_parent(self) -> None:
        """Give up this runner's share; the last user on the host rmdirs the (empty) bench parent(s).
        Checking "no instances left" is not enough: another run, between two instances, has none for
        a moment, and the parent removed then made its next instance's mkdir fail. Releasing before
        trying the exclusive lock means that of two runners ending together, the later one gets it."""
        if self.lock is None:
            return
        fcntl.flock(self.lock, fcntl.LOCK_UN)
        try:
            fcntl.flock(self.lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # another runner still uses the parent and removes it when it ends
            pass
        else:
            for parent in self.leftovers():
                if parent.name == PARENT:
                    try:
                        parent.rmdir()
                    except OSError:  # a killed run's instances are still there: bench clean's
                        pass
        finally:
            os.close(self.lock)
            self.lock = None

    def home_join_files(self, cgroup: Cgroup, proc_self_cgroup: str | None = None) -> list[str]:
        """Where this process writes "0" to go back where it came from, file for file as
        cgroup.self_join_files (see joined)."""
        text = proc_self_cgroup if proc_self_cgroup is not None else Path("/proc/self/cgroup").read_text()
        own = {}
        for line in text.splitlines():
            _, controllers, path = line.split(":", 2)
            for c in controllers.split(",") if controllers else [""]:
                own[c] = path.lstrip("/")
        if self.version == 2:
            return [str(self.root / own[""] / "cgroup.procs")]
        by_mount = {self.mounts[c]: c for c in reversed(V1_CONTROLLERS)}
        return [str(d.parent.parent / own[by_mount[d.parent.parent]] / "tasks") for d in cgroup.dirs]

    def instance(self, name: str) -> Cgroup:
        return CgroupV2(self.root, name) if self.version == 2 else CgroupV1(self.mounts, name)

    def leftovers(self) -> list[Path]:
        """Instance cgroups left under a bench parent (deepest first), then the parents. In v1 every
        hierarchy is searched: runc, given cgroupsPath /bench/..., creates the parent in all of them."""
        if self.version == 2:
            parents = [self.root / PARENT]
        else:
            parents = sorted(d / PARENT for d in self.root.iterdir() if (d / PARENT).is_dir())
        found = [child for p in parents if p.is_dir() for child in p.iterdir() if child.is_dir()]
        return found + [p for p in parents if p.is_dir()]


def detect(root: str = "/sys/fs/cgroup", mountinfo: str = "/proc/self/mountinfo") -> CgroupFS:
    """v2 when the unified hierarchy has the memory controller, else v1 from the mount table."""
    base = Path(root)
    controllers = (base / "cgroup.controllers")
    if controllers.exists() and "memory" in controllers.read_text().split():
        return CgroupFS(2, base, {})
    mounts = v1_mounts(Path(mountinfo).read_text())
    missing = [c for c in V1_CONTROLLERS if c not in mounts]
    if missing:
        raise OSError(f"cgroup v1 controllers not mounted: {', '.join(missing)}")
    return CgroupFS(1, base, mounts)


def v1_mounts(mountinfo: str) -> dict[str, Path]:
    """Pure: controller -> mount point, from /proc/self/mountinfo text."""
    found = {}
    for line in mountinfo.splitlines():
        pre, _, post = line.partition(" - ")
        fields, tail = pre.split(), post.split()
        if len(tail) >= 3 and tail[0] == "cgroup":
            for option in tail[2].split(","):
                if option in V1_CONTROLLERS:
                    found[option] = Path(fields[4])
    return found
