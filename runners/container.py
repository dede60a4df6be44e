"""Our own container, from kernel primitives: new namespaces, a cgroup, an overlay root, pivot_root.

launch() reads top to bottom:
  1. a cgroup with the envelope's limits;           4. a shim forks pid 1 of the new pid namespace;
  2. the instance's overlay dirs (upper, work);      5. the harness plugs a veth into the netns;
  3. fork; the child unshares the namespaces;        6. pid 1 builds its root, joins the cgroup, execs.
Teardown undoes it in reverse; the mounts live only in the container's mount namespace, so they
vanish with it even when the harness is killed.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from dataclasses import replace

from bench.errors import MeasurementError
from bench.spec import SCRATCH, LaunchSpec
from runners import _linux as linux
from runners._child import ChildInstance, output_pipe
from runners.base import GUEST_ENV, Runner
from runners.cgroups import Cgroup, detect
from runners.network import NETNS_DIR, BridgeNetwork, configure_inside

NAMESPACES = (linux.CLONE_NEWNS | linux.CLONE_NEWUTS | linux.CLONE_NEWIPC | linux.CLONE_NEWNET
              | linux.CLONE_NEWPID)
# Docker's default capability set (moby/oci/caps/defaults.go); every other one leaves the bounding set.
DOCKER_CAPS = {0: "CHOWN", 1: "DAC_OVERRIDE", 3: "FOWNER", 4: "FSETID", 5: "KILL", 6: "SETGID", 7: "SETUID",
               8: "SETPCAP", 10: "NET_BIND_SERVICE", 13: "NET_RAW", 18: "SYS_CHROOT", 27: "MKNOD",
               29: "AUDIT_WRITE", 31: "SETFCAP"}
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
READONLY_PROC = ("/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus")
MASKED_PROC = ("/proc/kcore", "/proc/keys", "/proc/timer_list")
SETUP_TIMEOUT_S = 10.0
VOLUME_AT = "/mnt/volume"
USERNS_BASE, USERNS_SIZE = 100_000, 65_536  # with the user namespace option: container 0 is host 100000


@dataclass
class ContainerConfig:
    network: str = "bridge"  # or "none": loopback only
    subnet: str = "10.213.0.0/16"
    volume: str | None = None  # host dir bind-mounted at /mnt/volume (default: a fresh one for disk-volume)
    state_dir: str = "/tmp"  # per-instance upper/work dirs: /tmp/bench-<instance>/
    userns: bool = False  # a user namespace: root inside is an unprivileged uid outside
    upper_size: str | None = None  # e.g. 64M: the writable layer's size limit (its dirs on a tmpfs that big)

    def __post_init__(self) -> None:
        if isinstance(self.userns, str):  # from --option container.userns=true
            self.userns = self.userns.lower() in ("1", "true", "yes", "on")
        if self.network not in ("bridge", "none"):
            raise ValueError(f"network must be bridge or none, not {self.network!r}")
        if self.upper_size is not None:
            from bench.spec import parse_size_mib

            self.upper_size = parse_size_mib(str(self.upper_size))


class ContainerRunner(Runner):
    name = "container"
    description = "namespaces (pid, mnt, uts, ipc, net, cgroup) + cgroup limits + overlay root + veth"

    def __init__(self, **options) -> None:
        self.cfg = ContainerConfig(**options)
        self.net = BridgeNetwork(self.cfg.subnet) if self.cfg.network == "bridge" else None
        self.provides = frozenset({"scratch", "server"} if self.net else {"scratch"})
        self.cgroups = None
        self.launched = 0

    def available(self) -> tuple[bool, str]:
        if os.geteuid() != 0:
            return False, "needs root (namespaces, mounts, cgroups)"
        try:
            fs = detect()
        except OSError as exc:
            return False, str(exc)
        if "overlay" not in Path("/proc/filesystems").read_text():
            return False, "the kernel has no overlayfs"
        return True, f"root, cgroup v{fs.version}, overlayfs"

    def config(self) -> dict:
        fs = detect()
        return {"cgroup_version": fs.version, "network": self.cfg.network, "subnet": self.cfg.subnet,
                "namespaces": "pid,mnt,uts,ipc,net,cgroup", "rootfs": "overlay (image lower, per-instance upper)",
                "capabilities": "docker default", "no_new_privs": True,
                "userns": f"0 -> {USERNS_BASE} ({USERNS_SIZE} ids)" if self.cfg.userns else "none",
                "upper_size_mib": self.cfg.upper_size}

    def launch(self, spec: LaunchSpec) -> "ContainerInstance":
        if self.cgroups is None:
            self.cgroups = detect()
            self.cgroups.ensure_parent()
        if self.net:
            self.net.ensure()
        self.launched += 1
        host_end = f"bench-{os.getpid() % 1000:03d}{self.launched % 1000000:06d}"  # IFNAMSIZ: 15 chars
        inst = ContainerInstance(spec.name, spec.marker, host_end)
        try:
            inst.cgroup = self.cgroups.instance(spec.name)
            inst.cgroup.create()
            inst.cgroup.set_limits(spec.envelope.memory_mib, spec.envelope.cpus, spec.envelope.pids)
            base = Path(self.cfg.state_dir) / spec.name
            if self.cfg.upper_size:  # like Docker's --storage-opt size: writes beyond it get ENOSPC
                base.mkdir(parents=True)
                linux.mount("tmpfs", str(base), "tmpfs", linux.MS_NOSUID | linux.MS_NODEV,
                            f"size={self.cfg.upper_size}m,mode=755")
                inst.size_limited = base
            inst.dirs = overlay_dirs(base, self.cfg.userns, spec.scratch == "volume")
            address = self.net.address(self.launched) if self.net else None
            if spec.scratch:  # own: /tmp, on the overlay (its writes land in the upper dir); or the volume
                spec = replace(spec, argv=spec.argv_with({SCRATCH: VOLUME_AT if spec.scratch == "volume" else "/tmp"}))
            inst.start(spec, self.cfg, address, self.net, self.cfg.volume or inst.dirs.get("volume"))
        except BaseException:
            inst.teardown()
            raise
        return inst

    def server_side(self) -> tuple[str | None, str]:
        """The bridge's own address in bench-net: traffic crosses the veth pair and the bridge."""
        self.net.ensure()
        return str(NETNS_DIR / self.net.netns), str(self.net.gateway)

    def close(self) -> None:
        if self.net:
            self.net.close()
        if self.cgroups:
            self.cgroups.remove_parent()


def overlay_dirs(base: Path, userns: bool, volume: bool = False) -> dict[str, Path]:
    dirs = {name: base / name for name in ("upper", "work", "merged", *(("volume",) if volume else ()))}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
        if userns:  # the overlay is written by the container's root, which is USERNS_BASE out here
            os.chown(d, USERNS_BASE, USERNS_BASE)
    return dirs


class ContainerInstance(ChildInstance):
    """Holds everything launch created, so that teardown can undo exactly that, in reverse."""

    def __init__(self, name: str, marker: bytes | None, host_end: str) -> None:
        self.name, self.marker, self.host_end = name, marker, host_end
        self.cgroup: Cgroup | None = None
        self.dirs: dict[str, Path] = {}
        self.net: BridgeNetwork | None = None
        self.size_limited: Path | None = None  # the tmpfs under the dirs, with upper_size
        self._torn_down = False
        self.pid = None

    def start(self, spec: LaunchSpec, cfg: ContainerConfig, address: str | None, net: BridgeNetwork | None,
              volume: Path | str | None):
        read_fd, write_fd = output_pipe()
        unshared_r, unshared_w = os.pipe2(os.O_CLOEXEC)  # child -> harness: namespaces and pid 1 exist
        go_r, go_w = os.pipe2(os.O_CLOEXEC)  # harness -> child: the network is plugged in
        err_r, err_w = os.pipe2(os.O_CLOEXEC)  # child -> harness: why setup failed (EOF: exec'd)
        procs = self.cgroup.procs_files
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child, and must never return into the harness
            try:
                _child(spec, cfg, address, volume, procs, write_fd, unshared_w, go_r, err_w)
            finally:
                os._exit(127)
        for fd in (write_fd, unshared_w, go_r, err_w):
            os.close(fd)
        super().__init__(pid, read_fd, spec.marker)
        try:
            if self.cgroup.early_procs_file:
                with open(self.cgroup.early_procs_file, "w") as f:
                    f.write(str(pid))
            pid1 = _expect_pid(unshared_r)
            if cfg.userns:
                write_id_maps(pid)
            if net:
                self.net = net
                net.attach(pid, self.host_end)
            if cfg.userns:  # a mapped root may not write the host's cgroupfs: the harness moves pid 1
                for path in self.cgroup.procs_files:
                    with open(path, "w") as f:
                        f.write(str(pid1))
            os.write(go_w, b"g")
        except OSError as exc:  # the child's own reason, when it has one, says more
            reason = _read_all(err_r, 1.0) or f"{exc} ({self._child_status()})"
            raise MeasurementError(f"container setup failed: {reason}") from exc
        finally:
            os.close(unshared_r)
            os.close(go_w)
        try:
            error = _read_all(err_r)
        finally:
            os.close(err_r)
        if error:
            raise MeasurementError(f"container setup failed: {error}")

    def _child_status(self) -> str:
        if select.select([self.pidfd], [], [], 1.0)[0]:
            self._reap()
            return f"the child exited with {self.exit_code}"
        return "the child is still running"

    def mem_peak_mib(self) -> float | None:
        peak = self.cgroup.memory_peak_bytes() if self.cgroup else None
        return None if peak is None else peak / 2**20

    def cpu_time_ms(self) -> float | None:
        usage = self.cgroup.cpu_usage_ns() if self.cgroup else None
        return None if usage is None else usage / 1e6

    def oom_killed(self) -> bool:
        return bool(self.cgroup and self.cgroup.oom_kills())

    def teardown(self) -> None:
        if self._torn_down:
            return
        if self.pid is not None:
            killed = self._kill_cgroup()
            super().teardown()  # the shim: killed if needed, reaped; the output pipe closed
            _reap_orphans(killed)
        self._torn_down = True
        if self.net:
            self.net.detach(self.host_end)
        if self.cgroup:
            self.cgroup.remove()
        if self.size_limited:
            try:
                linux.umount(str(self.size_limited), linux.MNT_DETACH)
            except OSError:
                pass  # already gone (bench clean, or a second teardown)
        if self.dirs or self.size_limited:
            shutil.rmtree(self.size_limited or self.dirs["upper"].parent, ignore_errors=True)

    def _kill_cgroup(self) -> list[int]:
        """SIGKILL whatever still runs in the cgroup (pid 1 going takes the namespace down)."""
        pids = self._cgroup_pids()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return pids

    def _cgroup_pids(self) -> list[int]:
        if self.cgroup is None:
            return []
        try:
            with open(self.cgroup.procs_files[0]) as f:
                return [int(line) for line in f if line.strip()]
        except OSError:
            return []


def _reap_orphans(pids: list[int], timeout_s: float = 2.0) -> None:
    """Reap the killed members that were reparented to us (the worker is a subreaper): a zombie
    still holds its cgroup, which then cannot be removed. Only happens when teardown killed them."""
    pending, deadline = set(pids), time.monotonic() + timeout_s
    while pending and time.monotonic() < deadline:
        for pid in list(pending):
            try:
                if os.waitpid(pid, os.WNOHANG)[0]:
                    pending.discard(pid)
            except ChildProcessError:  # not ours: reaped by the shim, or gone
                if not os.path.exists(f"/proc/{pid}"):
                    pending.discard(pid)
        if pending:
            time.sleep(0.002)


def write_id_maps(pid: int) -> None:
    for name in ("uid_map", "gid_map"):
        with open(f"/proc/{pid}/{name}", "w") as f:
            f.write(f"0 {USERNS_BASE} {USERNS_SIZE}\n")


def _expect_pid(fd: int) -> int:
    """The shim's word: pid 1's pid, as the harness sees it."""
    if not select.select([fd], [], [], SETUP_TIMEOUT_S)[0]:
        raise MeasurementError("container setup: no word from the child about the namespaces")
    text = os.read(fd, 32).decode()
    if not text.endswith("\n"):
        raise MeasurementError("container setup: the child died before creating pid 1")
    return int(text)


def _expect(fd: int, what: str) -> None:
    if not select.select([fd], [], [], SETUP_TIMEOUT_S)[0] or not os.read(fd, 1):
        raise MeasurementError(f"container setup: no word from the child about {what}")


def _read_all(fd: int, timeout_s: float | None = None) -> str:
    """Everything the child reports until it execs or exits (or until timeout_s)."""
    chunks = []
    while select.select([fd], [], [], timeout_s)[0] and (chunk := os.read(fd, 4096)):
        chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def _child(spec, cfg, address, volume, procs, out_fd, unshared_w, go_r, err_w) -> None:  # pragma: no cover
    """Runs in the forked child (its caller _exits): namespaces, then pid 1's setup."""
    try:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGPIPE):  # not the harness's Python handlers
            signal.signal(sig, signal.SIG_DFL)
        os.setsid()
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, 0)
        os.dup2(out_fd, 1)
        os.dup2(out_fd, 2)
        linux.unshare(NAMESPACES | (linux.CLONE_NEWUSER if cfg.userns else 0))
        pid1 = os.fork()
        if pid1:
            os.write(unshared_w, f"{pid1}\n".encode())
            _shim(pid1, err_w, null)
        _container_init(spec, cfg, address, volume, [] if cfg.userns else procs, go_r)
    except BaseException as exc:
        _report(err_w, exc)


def _report(err_w: int, exc: BaseException) -> None:  # pragma: no cover
    """Tell the harness why setup failed, if it is still listening."""
    try:
        os.write(err_w, f"{type(exc).__name__}: {exc}".encode())
    except OSError:
        pass


def _shim(pid1: int, err_w: int, null: int) -> None:  # pragma: no cover
    """The namespace's parent: waits for pid 1 and exits as it did (a signal N becomes 128+N).

    It shares pid 1's mount namespace, so pid 1's pivot_root moves its root too: it must not touch
    a path from here on (it did, and lost races against pid 1 mounting /dev)."""
    os.close(err_w)
    os.dup2(null, 1)  # let go of the output pipe: EOF when the container's last process is gone
    os.dup2(null, 2)
    _, status = os.waitpid(pid1, 0)
    code = os.waitstatus_to_exitcode(status)
    os._exit(128 - code if code < 0 else code)


def _container_init(spec: LaunchSpec, cfg: ContainerConfig, address, volume, procs, go_r) -> None:  # pragma: no cover
    """pid 1: hostname, root filesystem, network, cgroup, privileges, then exec the workload."""
    cgroup_fds = [os.open(p, os.O_WRONLY) for p in procs]  # opened while the host's cgroupfs is visible
    if cfg.userns:  # nothing privileged until the harness has written our id maps
        _expect(go_r, "the id maps")
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
    linux.sethostname(spec.name[:63])
    build_root(spec.rootfs, Path(cfg.state_dir) / spec.name, volume)
    if not cfg.userns:
        _expect(go_r, "the network")
    configure_inside(address if cfg.network == "bridge" else None)
    drop_privileges()
    for fd in cgroup_fds:  # last, so the harness's own Python pages are not charged to the container
        os.write(fd, b"0")
        os.close(fd)
    linux.unshare(linux.CLONE_NEWCGROUP)  # rooted at the instance cgroup
    os.execve(spec.argv[0], list(spec.argv), GUEST_ENV)


def build_root(image: str, base: Path, volume: str | None) -> None:  # pragma: no cover
    """Overlay root with /dev, /proc and a read-only /sys, then pivot_root and drop the old root.

    /proc and /sys are mounted while the host's are still visible: in a user namespace the kernel
    refuses them otherwise (mount_too_revealing)."""
    linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)  # nothing propagates to the host
    root = str(base / "merged")
    # nodev on everything the container can write to: with CAP_MKNOD (Docker's set) it may create a
    # device node, but never open one, so the host's disks stay out of reach (Docker uses the devices
    # cgroup for that; nodev works the same on cgroup v1 and v2). Its own /dev entries are bind mounts.
    linux.mount("overlay", root, "overlay", linux.MS_NODEV,
                f"lowerdir={image},upperdir={base / 'upper'},workdir={base / 'work'}")
    if volume:
        os.makedirs(root + VOLUME_AT, exist_ok=True)
        linux.mount(str(volume), root + VOLUME_AT, None, linux.MS_BIND | linux.MS_REC)
        linux.mount(None, root + VOLUME_AT, None, linux.MS_BIND | linux.MS_REMOUNT | linux.MS_NODEV | linux.MS_NOSUID)
    mount_dev(root)
    mount_proc(root)
    linux.mount("sysfs", f"{root}/sys", "sysfs", linux.MS_RDONLY | linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC)
    os.chdir(root)
    linux.pivot_root(".", ".")  # as runc does: the old root ends up stacked on "/", then detached
    linux.umount(".", linux.MNT_DETACH)
    os.chdir("/")


def mount_proc(root: str) -> None:  # pragma: no cover
    nosuid = linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC
    linux.mount("proc", f"{root}/proc", "proc", nosuid)
    for path in READONLY_PROC:
        target = root + path
        if os.path.exists(target):
            linux.mount(target, target, None, linux.MS_BIND)
            linux.mount(None, target, None, linux.MS_BIND | linux.MS_REMOUNT | linux.MS_RDONLY | nosuid)
    for path in MASKED_PROC:
        if os.path.exists(root + path):
            linux.mount(f"{root}/dev/null", root + path, None, linux.MS_BIND)


def mount_dev(root: str) -> None:  # pragma: no cover
    """A tmpfs /dev with the host's device nodes bound in (mknod is refused in a user namespace)."""
    dev = f"{root}/dev"
    linux.mount("tmpfs", dev, "tmpfs", linux.MS_NOSUID | linux.MS_NOEXEC | linux.MS_NODEV, "mode=755,size=64k")
    for name in DEVICES:
        os.close(os.open(f"{dev}/{name}", os.O_CREAT | os.O_WRONLY, 0o666))
        linux.mount(f"/dev/{name}", f"{dev}/{name}", None, linux.MS_BIND)
    os.mkdir(f"{dev}/pts")
    linux.mount("devpts", f"{dev}/pts", "devpts", linux.MS_NOSUID | linux.MS_NOEXEC,
                "newinstance,ptmxmode=0666,mode=620")
    os.symlink("pts/ptmx", f"{dev}/ptmx")
    os.mkdir(f"{dev}/shm")
    linux.mount("shm", f"{dev}/shm", "tmpfs", linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC, "mode=1777,size=64m")
    for fd, name in enumerate(("stdin", "stdout", "stderr")):
        os.symlink(f"/proc/self/fd/{fd}", f"{dev}/{name}")
    os.symlink("/proc/self/fd", f"{dev}/fd")


def drop_privileges() -> None:  # pragma: no cover
    """Bounding set down to Docker's defaults (root's exec then gets no more), no_new_privs on."""
    last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    for cap in range(last + 1):
        if cap not in DOCKER_CAPS:
            linux.prctl(linux.PR_CAPBSET_DROP, cap)
    linux.prctl(linux.PR_CAP_AMBIENT, linux.PR_CAP_AMBIENT_CLEAR_ALL)
    linux.prctl(linux.PR_SET_NO_NEW_PRIVS, 1)
