"""The baseline: the workload as a plain child process of the host. Every ratio is taken against it."""

from __future__ import annotations

import os

from bench.spec import LaunchSpec
from runners._child import ChildInstance, output_pipe, pinned
from runners._taskstats import TaskstatsListener
from runners.base import GUEST_ENV, Runner


class ProcessRunner(Runner):
    name = "process"
    description = "plain child process (posix_spawn); the baseline"

    def __init__(self) -> None:
        self._taskstats: TaskstatsListener | None = None
        self._mem_method: str | None = None  # decided by the first _listener() call

    def available(self) -> tuple[bool, str]:
        return True, "always"

    def config(self) -> dict:
        self._listener()
        return {"spawn": "posix_spawn", "mem_peak": self._mem_method}

    def launch(self, spec: LaunchSpec) -> ChildInstance:
        return self.spawn(host_path(spec, spec.argv[0]), list(spec.argv), spec)

    def spawn(self, path: str, argv: list[str], spec: LaunchSpec, instance_cls=None) -> "TaskInstance":
        taskstats = self._listener()
        read_fd, write_fd = output_pipe()
        actions = [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                   (os.POSIX_SPAWN_DUP2, write_fd, 1), (os.POSIX_SPAWN_DUP2, write_fd, 2)]
        try:
            if taskstats:
                taskstats.reset()
            with pinned(spec.envelope.cpu_list(sorted(os.sched_getaffinity(0)))):
                pid = os.posix_spawn(path, argv, GUEST_ENV, file_actions=actions)
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        return (instance_cls or TaskInstance)(pid, read_fd, spec.marker, taskstats)

    def _listener(self) -> TaskstatsListener | None:
        if self._mem_method is None:
            try:
                self._taskstats, self._mem_method = TaskstatsListener(), "taskstats"
            except OSError:
                self._mem_method = "unavailable (taskstats needs root and CONFIG_TASKSTATS)"
        return self._taskstats

    def close(self) -> None:
        if self._taskstats:
            self._taskstats.close()
        self._taskstats, self._mem_method = None, None


class TaskInstance(ChildInstance):
    """A child whose peak memory is the process tree's peak RSS, from taskstats."""

    def __init__(self, pid, out_fd, marker, taskstats: TaskstatsListener | None, on_teardown=None):
        super().__init__(pid, out_fd, marker, on_teardown)
        self.taskstats = taskstats

    def mem_peak_mib(self) -> float | None:
        if self.taskstats is None or self.t_exit is None:
            return None
        kib = self.taskstats.tree_peak_kib(self.pid)
        return None if kib is None else kib / 1024


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
