"""Our own container, from kernel primitives: new namespaces, a cgroup, an overlay root, pivot_root.

launch() reads top to bottom, on two cores at once:
  1. bench-container-init is spawned;                4. it unshares the rest and forks pid 1;
  2. the harness makes the cgroup with the limits    5. the harness plugs a veth into the netns
     and the overlay dirs (upper, work) meanwhile;      while pid 1 builds its root;
  3. init unshares the netns and says so;            6. pid 1 brings eth0 up, joins the cgroup, execs.
Steps 1, 3, 4 and 6 are container_init.c beside this file, carrying out what this module decides
(the paths, the kept capabilities, the masked /proc paths): startup is what we measure, and a Python
child took ~5 ms longer than the C one to reach exec. Teardown undoes it all in reverse; the mounts
live only in the container's mount namespace, so they vanish with it even when the harness is killed.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import ClassVar

from bench.errors import MeasurementError
from bench.host import linux
from bench.host.cgroups import Cgroup, CgroupFS, detect
from bench.host.network import NETNS_DIR, BridgeNetwork
from bench.spec import SCRATCH, LaunchSpec
from runners._child import ChildInstance, output_actions, output_pipe
from runners.base import GUEST_ENV, Instance, Runner

INIT_SOURCE = Path(__file__).with_name("container_init.c")
SECCOMP_COMPILER = Path(__file__).with_name("seccomp_compile.c")
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
# The same for every instance: built once, not on each (timed) launch.
POLICY_ARGS = (f"--devices={','.join(DEVICES)}", f"--readonly={','.join(READONLY_PROC)}",
               f"--masked={','.join(MASKED_PROC)}", f"--keep-caps={','.join(map(str, DOCKER_CAPS))}")


@dataclass
class ContainerConfig:
    network: str = field(default="bridge", metadata={"help": "bridge (a veth into our bridge) or none (loopback only)"})
    subnet: str = field(default="10.213.0.0/16", metadata={"help": "the bridge's private subnet"})
    storage: str = field(default="layer", metadata={
        "help": "where a disk workload writes: layer (the overlay's upper dir) or volume (a host dir bound in)"})
    volume: str | None = field(default=None, metadata={
        "help": "host dir bind-mounted at /mnt/volume (default: a fresh one for disk-volume)"})
    state_dir: str = field(default="/tmp", metadata={"help": "where per-instance upper/work dirs go"})
    userns: bool = field(default=False, metadata={"help": "a user namespace: root inside is uid 100000 outside"})
    upper_size: str | None = field(default=None, metadata={
        "help": "the writable layer's size limit, e.g. 64M (its dirs on a tmpfs that big)"})
    seccomp: str = field(default="default", metadata={
        "help": "default (Docker's default profile, as runc and Docker apply it) or none"})
    pidns: bool = field(default=True, metadata={
        "help": "a pid namespace of its own; false only to measure what one costs (an A/B)"})

    def __post_init__(self) -> None:
        if self.seccomp not in ("default", "none"):
            raise ValueError(f"seccomp must be default or none, not {self.seccomp!r}")
        if self.storage not in ("layer", "volume"):
            raise ValueError(f"storage must be layer or volume, not {self.storage!r}")
        if self.network not in ("bridge", "none"):
            raise ValueError(f"network must be bridge or none, not {self.network!r}")
        self.upper_size_mib  # noqa: B018 -- parsed once here so that a bad size is refused before a launch

    @property
    def upper_size_mib(self) -> int | None:
        """upper_size in MiB ("64M", "1G"); UsageError for anything else."""
        from bench.spec import parse_size_mib

        return None if self.upper_size is None else parse_size_mib(str(self.upper_size))


class ContainerRunner(Runner):
    paths = "disk: the overlay's upper dir (a volume: a host dir bound in); network: a veth into our bridge (network=none: loopback only)"
    name = "container"
    family = "containers"
    description = "namespaces (pid, mnt, uts, ipc, net, cgroup) + cgroup limits + overlay root + veth"

    Options = ContainerConfig
    enforcement: ClassVar[dict[str, str]] = {"cpuset": "cpuset cgroup", "cpu_quota": "cpu cgroup, CFS quota", "memory": "memory cgroup"}

    def __init__(self, **options) -> None:
        self.cfg = ContainerConfig(**options)
        self.net = BridgeNetwork(self.cfg.subnet) if self.cfg.network == "bridge" else None
        self.provides = frozenset({"scratch", "server"} if self.net else {"scratch"})
        self.cgroups: CgroupFS | None = None
        self.launched = 0
        self.init: str | None = None  # the bench-container-init binary, built by prepare()
        self.seccomp: str | None = None  # Docker's default policy as BPF, compiled by prepare()

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

    def prepare(self, rootfs: str, image_digest: str, cache_dir: str) -> None:
        if self.init is None:
            from bench.images.image import build_static, compiler

            self.init = build_static(Path(cache_dir), INIT_SOURCE, compiler())
        if self.cfg.seccomp == "default" and self.seccomp is None:
            self.seccomp = compile_seccomp(Path(cache_dir))

    def config(self) -> dict:
        fs = detect()
        return {"cgroup_version": fs.version, "network": self.cfg.network, "subnet": self.cfg.subnet,
                "namespaces": "pid,mnt,uts,ipc,net,cgroup" if self.cfg.pidns else "mnt,uts,ipc,net,cgroup (no pid: an A/B)", "rootfs": "overlay (image lower, per-instance upper)",
                "capabilities": "docker default", "no_new_privs": True,
                "seccomp": "docker default (libseccomp, BPF loaded last)" if self.cfg.seccomp == "default" else "none",
                "userns": f"0 -> {USERNS_BASE} ({USERNS_SIZE} ids)" if self.cfg.userns else "none",
                "upper_size_mib": self.cfg.upper_size_mib}

    def launch(self, spec: LaunchSpec) -> ContainerInstance:
        if self.init is None:
            raise MeasurementError("container: prepare() builds bench-container-init before the first launch")
        if self.cgroups is None:
            self.cgroups = detect()
            self.cgroups.ensure_parent()
        cgroups = self.cgroups
        if self.net:
            self.net.ensure()
        self.launched += 1
        host_end = f"bench-{os.getpid() % 1000:03d}{self.launched % 1000000:06d}"  # IFNAMSIZ: 15 chars
        inst = ContainerInstance(spec.name, spec.marker, host_end)
        inst.address = self.net.address(self.launched) if self.net else None
        base = Path(self.cfg.state_dir) / spec.name
        if spec.scratch and self.cfg.storage == "volume":
            spec = replace(spec, scratch="volume")
        dirs = overlay_dirs(base, spec.scratch == "volume")
        address = inst.address
        if spec.scratch:  # own: /tmp, on the overlay (its writes land in the upper dir); or the volume
            spec = replace(spec, argv=spec.argv_with({SCRATCH: VOLUME_AT if spec.scratch == "volume" else "/tmp"}))
        try:
            if self.cfg.upper_size_mib:  # like Docker's --storage-opt size: writes beyond it get ENOSPC. Mounted
                # before init unshares its mount namespace: a mount made after it would not be seen there
                base.mkdir(parents=True)
                inst.size_limited = base
                linux.mount("tmpfs", str(base), "tmpfs", linux.MS_NOSUID | linux.MS_NODEV,
                            f"size={self.cfg.upper_size_mib}m,mode=700")
            inst.cgroup = cgroups.instance(spec.name)
            inst.spawn(self.init, spec, self.cfg, address, self.cfg.volume or dirs.get("volume"), base, self.seccomp)
            # init execs and unshares on the other core meanwhile; pid 1 waits for these
            inst.cgroup.create()
            env = spec.envelope
            inst.cgroup.set_limits(env.memory_mib, env.quota_us(), env.pids, env.cpuset_text())
            inst.dirs = dirs
            make_dirs(base, dirs, self.cfg.userns)
            inst.connect(self.net, self.cfg.userns)
        except BaseException:
            inst.teardown()
            raise
        return inst

    def server_side(self) -> tuple[str | None, str]:
        """The bridge's own address in bench-net: traffic crosses the veth pair and the bridge."""
        if self.net is None:
            raise MeasurementError("container:network=none has no network path to host-side servers")
        self.net.ensure()
        return str(NETNS_DIR / self.net.netns), str(self.net.gateway)

    listen_on = "0.0.0.0"  # its own network namespace: its veth and its loopback

    def guest_address(self, instance: Instance) -> str:
        if not isinstance(instance, ContainerInstance) or instance.address is None:
            raise MeasurementError("container: the instance has no address on the bridge (network=none)")
        return instance.address.split("/")[0]

    def close(self) -> None:
        if self.net:
            self.net.close()
        if self.cgroups:
            self.cgroups.remove_parent()
            self.cgroups = None


def compile_seccomp(cache_dir: Path) -> str:
    """Docker's default policy (runners/seccomp.py) as a BPF program, compiled with libseccomp once
    per policy text and compiler."""
    import hashlib

    from bench.atomic import staged
    from bench.host.tools import run_captured
    from bench.images.image import build_static, compiler
    from runners.seccomp import policy_text

    tool = build_static(cache_dir, SECCOMP_COMPILER, compiler(), ("-lseccomp",))
    text = policy_text()
    out = cache_dir / "seccomp" / f"docker-default-{hashlib.sha256((text + tool).encode()).hexdigest()[:16]}.bpf"
    if not out.exists():
        with staged(out) as tmp:
            policy = tmp.with_name(tmp.name + ".policy")
            policy.write_text(text)
            try:
                code, said = run_captured([tool, str(policy), str(tmp)])
            finally:
                policy.unlink()
            if code:
                raise MeasurementError(f"cannot compile the seccomp policy: {said.strip()}")
    return str(out)


def overlay_dirs(base: Path, volume: bool = False) -> dict[str, Path]:
    return {name: base / name for name in ("upper", "work", "merged", *(("volume",) if volume else ()))}


def make_dirs(base: Path, dirs: dict[str, Path], userns: bool) -> None:
    """The overlay's dirs under base, which no one but root (and with userns, the container's root
    passing through) may reach: what a container writes, setuid files included, stays its own."""
    from bench.cache import instance_dir

    instance_dir(base, userns)
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
        if userns:  # the overlay is written by the container's root, which is USERNS_BASE out here
            os.chown(d, USERNS_BASE, USERNS_BASE)


class ContainerInstance(ChildInstance):
    """Holds everything launch created, so that teardown can undo exactly that, in reverse."""

    def __init__(self, name: str, marker: bytes | None, host_end: str) -> None:
        self.name, self.marker, self.host_end = name, marker, host_end
        self.cgroup: Cgroup | None = None
        self.dirs: dict[str, Path] = {}
        self.net: BridgeNetwork | None = None
        self.size_limited: Path | None = None  # the tmpfs under the dirs, with upper_size
        self.address: str | None = None  # its veth's, ADDRESS/PREFIX, on the bench bridge
        self._torn_down = False
        self._setup_fds: tuple[int, ...] = ()  # init's pipes, until connect() is done with them
        self.pid = None

    def spawn(self, init: str, spec: LaunchSpec, cfg: ContainerConfig, address: str | None,
              volume: Path | str | None, base: Path, seccomp: str | None = None) -> None:
        """Start bench-container-init; what pid 1 needs from the harness comes later, through connect()."""
        read_fd, write_fd = output_pipe()
        sync_r, sync_w = os.pipe2(os.O_CLOEXEC)  # init -> harness: the netns exists ("n"), then pid 1's pid
        go_r, go_w = os.pipe2(os.O_CLOEXEC)  # harness -> pid 1: cgroup and dirs made ("p"), network plugged in ("g")
        err_r, err_w = os.pipe2(os.O_CLOEXEC)  # init -> harness: why setup failed (EOF: the workload's exec)
        argv = [init, f"--sync={sync_w}", f"--go={go_r}", f"--error={err_w}", f"--hostname={spec.name[:63]}",
                f"--lower={spec.rootfs}", f"--base={base}", *POLICY_ARGS,
                *([f"--volume={volume}", f"--volume-at={VOLUME_AT}"] if volume else []),
                *([f"--address={address}"] if address else []),
                *([f"--seccomp={seccomp}"] if seccomp else []),
                *([] if cfg.pidns else ["--no-pidns"]),
                # a mapped root may not write the host's cgroupfs: then the harness moves pid 1
                *(["--userns"] if cfg.userns else [f"--join={p}" for p in self.own_cgroup.self_join_files]),
                "--", *spec.argv]
        actions = output_actions(write_fd)
        try:
            for fd in (sync_w, go_r, err_w):  # init marks them close-on-exec again, for the workload
                os.set_inheritable(fd, True)
            # setsid: a Ctrl-C at the terminal reaches `bench`, which tears the container down itself
            pid = os.posix_spawn(init, argv, GUEST_ENV, file_actions=actions, setsid=True,
                                 setsigdef=(signal.SIGPIPE, signal.SIGXFSZ))
        except BaseException:
            for fd in (read_fd, sync_r, go_w, err_r):
                os.close(fd)
            raise
        finally:
            for fd in (write_fd, sync_w, go_r, err_w):
                os.close(fd)
        super().__init__(pid, read_fd, spec.marker)
        self._setup_fds = (sync_r, go_w, err_r)

    @property
    def own_cgroup(self) -> Cgroup:
        """Its cgroup, which launch() names before spawn()."""
        if self.cgroup is None:
            raise MeasurementError("container: spawn() before the instance's cgroup was named")
        return self.cgroup

    def connect(self, net: BridgeNetwork | None, userns: bool) -> None:
        """Tell pid 1 its cgroup and dirs exist, plug the veth into the new netns, let pid 1 go on,
        and wait until it execs the workload (or says why it could not)."""
        sync_r, go_w, err_r = self._setup_fds
        try:
            os.write(go_w, b"p")
            _word(sync_r, "the network namespace")
            if userns:
                write_id_maps(self.child)
            if net:
                self.net = net
                net.attach(self.child, self.host_end)
            if userns:
                pid1 = _expect_pid(sync_r)
                for path in self.own_cgroup.procs_files:
                    with open(path, "w") as f:
                        f.write(str(pid1))
            os.write(go_w, b"g")
        except (OSError, MeasurementError) as exc:  # init's own reason, when it has one, says more
            reason = _read_all(err_r, 1.0) or f"{exc} ({self._child_status()})"
            raise MeasurementError(f"container setup failed: {reason}") from exc
        finally:
            self._close_setup_fds(sync_r, go_w)
        try:
            error = _read_all(err_r)
        finally:
            self._close_setup_fds(err_r)
        if error:
            raise MeasurementError(f"container setup failed: {error}")

    def _close_setup_fds(self, *fds: int) -> None:
        for fd in fds:
            os.close(fd)
        self._setup_fds = tuple(fd for fd in self._setup_fds if fd not in fds)

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
        self._close_setup_fds(*self._setup_fds)  # pid 1, if waiting for the harness, gives up
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


def _word(fd: int, what: str, size: int = 1) -> bytes:
    """What init says next on fd (up to size bytes)."""
    if not select.select([fd], [], [], SETUP_TIMEOUT_S)[0]:
        raise MeasurementError(f"no word from bench-container-init about {what}")
    data = os.read(fd, size)
    if not data:
        raise MeasurementError(f"bench-container-init ended before {what} existed")
    return data


def _expect_pid(fd: int) -> int:
    """The shim's word: pid 1's pid, as the harness sees it."""
    text = _word(fd, "pid 1", 32).decode()
    if not text.endswith("\n"):
        raise MeasurementError("bench-container-init ended before creating pid 1")
    return int(text)


def _read_all(fd: int, timeout_s: float | None = None) -> str:
    """Everything init reports until the workload's exec or its exit (or until timeout_s)."""
    chunks = []
    while select.select([fd], [], [], timeout_s)[0] and (chunk := os.read(fd, 4096)):
        chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")
