"""The baseline: the workload as a plain child process of the host. Every ratio is taken against it."""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import shutil
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, TypeVar, overload

from bench.host import cgroups
from bench.host.taskstats import TaskstatsListener
from bench.spec import SCRATCH, Envelope, LaunchSpec
from runners._child import ChildInstance, output_actions, output_pipe, pinned
from runners.base import GUEST_ENV, Runner, installed

# Where the kernel refuses taskstats (to any pid namespace but the first: a CI job in a container),
# the peak is read from a memory cgroup the workload starts in. wait4's ru_maxrss is no substitute:
# it holds the spawning worker's own RSS (see bench/host/taskstats.py).
CGROUP_PEAK = "memory cgroup peak (taskstats unavailable here: {})"


_RUNNERS = itertools.count()


T = TypeVar("T", bound="TaskInstance")  # what spawn() makes: a TaskInstance, or a subclass given


@dataclass
class ProcessOptions:
    cgroup: bool = field(default=False, metadata={
        "help": "start in a cgroup of its own even without limits: what cgroup accounting costs (an A/B)"})


class ProcessRunner(Runner):
    paths = "disk: a host dir (/tmp/bench-NAME); network: the host's loopback"
    name = "process"
    family = "process-like"
    description = "plain child process (posix_spawn); the baseline"
    provides = frozenset({"scratch", "server"})
    state_dir = Path("/tmp")  # a disk workload's scratch: /tmp/bench-<instance>/
    enforcement: ClassVar[dict[str, str]] = {"cpuset": "CPU affinity (sched_setaffinity before posix_spawn)",
                                             "cpu_quota": "a cgroup of its own, CFS quota (no namespaces)",
                                             "memory": "a cgroup of its own, memory limit (no namespaces)"}

    Options: ClassVar[type | None] = ProcessOptions

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if cls.kind == "peer" and cls.Options is ProcessOptions:
            cls.Options = None  # a peer built on this runner takes none of its options: its own tool decides

    def __init__(self, cgroup: bool = False) -> None:
        self.always_cgroup = cgroup
        self._taskstats: TaskstatsListener | None = None
        self._mem_method: str | None = None  # decided by the first _listener() call
        self._cgroups: cgroups.CgroupFS | None = None
        self._cgroup: cgroups.Cgroup | None = None  # one for every instance, made when first needed
        self._limited: Envelope | None = None  # the envelope whose limits _cgroup has
        self._home: list[str] = []  # the worker's own cgroup files, to go back to after a spawn

    def available(self) -> tuple[bool, str]:
        return installed(self.tool.command, self.tool.package) if self.tool else (True, "always")

    def config(self) -> dict:
        self._listener()
        if self.tool and self.tool.spawn:  # a peer that starts its own tool inside this runner's envelope
            return {"spawn": self.tool.spawn, "mem_peak": self._mem_method,
                    "limits": "the process runner's: affinity, and a cgroup of its own for a quota or memory"}
        return {"spawn": "posix_spawn", "mem_peak": self._mem_method,
                **({"cgroup": "always a cgroup of its own (an A/B)"} if self.always_cgroup else {})}

    def launch(self, spec: LaunchSpec) -> ChildInstance:
        argv, cleanup = with_scratch(spec, self.state_dir / spec.name, None) if spec.scratch else (spec.argv, None)
        return self.spawn(host_path(spec, argv[0]), host_argv(spec, argv), spec, on_teardown=cleanup)

    def image_root(self, rootfs: str) -> str:
        """The plain process runs the host's programs in the host's tree: the image's files are at its
        rootfs there. Every runner built on this one runs in the image."""
        return rootfs if self.name == "process" else ""

    def server_side(self) -> tuple[str | None, str]:
        return None, "127.0.0.1"  # loopback: the host's own network stack, nothing in between

    @overload
    def spawn(self, path: str, argv: list[str], spec: LaunchSpec, instance_cls: None = None,
              on_teardown: Callable[[], None] | None = None, fds: dict[int, int] | None = None) -> TaskInstance: ...

    @overload
    def spawn(self, path: str, argv: list[str], spec: LaunchSpec, instance_cls: type[T],
              on_teardown: Callable[[], None] | None = None, fds: dict[int, int] | None = None) -> T: ...

    def spawn(self, path: str, argv: list[str], spec: LaunchSpec, instance_cls: type[TaskInstance] | None = None,
              on_teardown: Callable[[], None] | None = None, fds: dict[int, int] | None = None) -> TaskInstance:
        """fds: {fd in the child: our fd} handed over beside stdout and stderr (0 replaces stdin)."""
        taskstats = self._listener()
        try:
            read_fd, write_fd = output_pipe()
        except BaseException:
            if on_teardown:
                on_teardown()
            raise
        actions = output_actions(write_fd) + [(os.POSIX_SPAWN_DUP2, ours, theirs) for theirs, ours in (fds or {}).items()]
        try:
            if taskstats:
                taskstats.reset()
            cgroup = self._instance_cgroup(spec.envelope, taskstats is None)
            inside = cgroups.joined(cgroup.self_join_files, self._home) if cgroup else contextlib.nullcontext()
            with pinned(spec.envelope.cpu_list()), inside:
                # setsid: a Ctrl-C at the terminal reaches `bench`, which stops cleanly, not the workload
                pid = os.posix_spawn(path, argv, GUEST_ENV, file_actions=actions, setsid=True)
        except BaseException:
            os.close(read_fd)
            if on_teardown:
                on_teardown()
            raise
        finally:
            os.close(write_fd)
        return (instance_cls or TaskInstance)(pid, read_fd, spec.marker, taskstats, on_teardown,
                                              None if taskstats else cgroup)

    def _listener(self) -> TaskstatsListener | None:
        if self._mem_method is None:
            try:
                self._taskstats, self._mem_method = TaskstatsListener(), "taskstats"
            except OSError as exc:  # no root, no CONFIG_TASKSTATS, or a pid namespace other than the first
                self._mem_method = CGROUP_PEAK.format(exc)
        return self._taskstats

    def _instance_cgroup(self, envelope: Envelope, for_peak: bool) -> cgroups.Cgroup | None:
        """The cgroup the workload starts in, when one is needed: for the envelope's memory limit or
        fractional CPU quota (a resource envelope, no namespaces), or for the peak where taskstats is
        refused. One for the runner's instances one after another: made on the first launch (a
        warm-up), kept until close()."""
        if not (for_peak or envelope.memory_mib or envelope.quota_us() or self.always_cgroup):
            return None
        if self._cgroup is None:
            self._cgroups = cgroups.detect()
            self._cgroups.ensure_parent()
            # Unique per runner object: the memory suite's idle baseline is a second process runner.
            cgroup = self._cgroups.instance(f"bench-{self.name}-{os.getpid()}-{next(_RUNNERS)}")
            cgroup.create()
            self._cgroup, self._home = cgroup, self._cgroups.home_join_files(cgroup)
        if envelope != self._limited:
            self._cgroup.set_limits(envelope.memory_mib, envelope.quota_us(), None)
            self._limited = envelope
        if for_peak:  # a write on the timed path: only when the peak is read from here
            self._cgroup.reset_peak()
        return self._cgroup

    def close(self) -> None:
        if self._taskstats:
            self._taskstats.close()
        if self._cgroup:
            self._cgroup.remove()
        if self._cgroups:
            self._cgroups.remove_parent()
        self._taskstats, self._mem_method, self._cgroups, self._cgroup, self._limited = None, None, None, None, None


class TaskInstance(ChildInstance):
    """A child whose peak memory is the process tree's peak RSS from taskstats, or where taskstats
    is refused, the peak of the memory cgroup it started in."""

    def __init__(self, pid, out_fd, marker, taskstats: TaskstatsListener | None, on_teardown=None,
                 cgroup: cgroups.Cgroup | None = None):
        super().__init__(pid, out_fd, marker, on_teardown)
        self.taskstats, self.cgroup = taskstats, cgroup

    def teardown(self) -> None:
        """A workload torn down while it runs goes with what it forked: its session's process group
        (spawn's setsid), so that a service's workers (nginx's) do not outlive it. Not yet reaped, its
        pid, and so its group's id, are still its own."""
        if self.t_exit is None and not self._torn_down:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.child, signal.SIGKILL)
        super().teardown()

    def mem_peak_mib(self) -> float | None:
        if self.t_exit is None:
            return None
        if self.taskstats is None:
            peak = self.cgroup.memory_peak_bytes() if self.cgroup else None
            return None if peak is None else peak / 2**20
        kib = self.taskstats.tree_peak_kib(self.child)
        return None if kib is None else kib / 1024


def with_scratch(spec: LaunchSpec, host_dir: Path, guest_dir: str | None) -> tuple[tuple[str, ...], Callable[[], None]]:
    """For a disk workload: argv with SCRATCH filled in (guest_dir, or host_dir itself when None),
    and what removes the scratch dir again. For a process or a chroot the environment's own storage
    and a volume are the same directory."""
    host_dir.mkdir(parents=True)
    return spec.argv_with({SCRATCH: guest_dir or str(host_dir)}), lambda: shutil.rmtree(host_dir, ignore_errors=True)


def host_argv(spec: LaunchSpec, argv: tuple[str, ...]) -> list[str]:
    """argv[1:] with our own guest tools named by their host copies (`sh -c "/bin/bench-rr ..."`);
    the rest of the image is copied from the host's own paths, which a process finds as they are."""
    if len(argv) < 2:  # the usual case, and a launch being timed: nothing to rewrite
        return list(argv)
    ours = {guest: host for guest, host in spec.host_paths.items() if guest != host}
    if not ours:
        return list(argv)
    pattern = re.compile(r"(?<![\w/.-])(" + "|".join(map(re.escape, ours)) + r")(?![\w/.-])")
    return [argv[0], *(pattern.sub(lambda m: ours[m.group(1)], arg) for arg in argv[1:])]


def host_path(spec: LaunchSpec, guest: str) -> str:
    """The host file behind a guest path, following the image's symlinks (/bin/sh -> busybox).

    argv[0] keeps the guest name, so that busybox still knows which applet it is."""
    path = guest
    for _ in range(16):
        if path in spec.host_paths:
            return spec.host_paths[path]
        inside = os.path.join(spec.rootfs, path.lstrip("/"))
        if not os.path.islink(inside):
            break
        target = os.readlink(inside)
        path = target if target.startswith("/") else os.path.normpath(os.path.join(os.path.dirname(path), target))
    return guest
