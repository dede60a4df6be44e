"""A workload running as a host child process: the instance behind process, chroot and container.

The marker and the output are read from a pipe as bytes arrive; the exit is observed through a
pidfd, so every wait has a timeout and nothing is polled on a clock.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import time
from collections.abc import Callable, Iterator

from bench.errors import MeasurementError
from runners.base import Instance

MAX_OUTPUT = 16 << 20


class Lines:
    """The complete lines of a byte stream read in chunks of any size, each with the arrival time of
    its first byte: a value a line carries ("BENCH-EXIT 127") is read once its newline has come, so a
    read that ends inside it changes neither the value nor its time."""

    def __init__(self) -> None:
        self._partial = b""
        self._since = 0  # arrival of the partial line's first byte

    def feed(self, data: bytes, arrived: int) -> list[tuple[int, bytes]]:
        """The lines data completes, as (arrival of the first byte, the line without its newline)."""
        done, start = [], 0
        while (end := data.find(b"\n", start)) >= 0:
            done.append((self._since if self._partial else arrived, self._partial + data[start:end]))
            self._partial, start = b"", end + 1
        if start < len(data):
            if not self._partial:
                self._since = arrived
            self._partial += data[start:]
        return done


class ChildInstance(Instance):
    """A child pid whose stdout+stderr arrive on out_fd."""

    DRAIN_S = 0.2  # after the exit, how long to wait for the rest of the output
    EXIT_TIMEOUT = "still running after {:g} s"

    def __init__(self, pid: int, out_fd: int, marker: bytes | None,
                 on_teardown: Callable[[], None] | None = None) -> None:
        self.pid = pid
        self.pidfd = os.pidfd_open(pid)
        self.out_fd = out_fd
        self.marker = marker
        self.on_teardown = on_teardown
        self._chunks: list[tuple[int, bytes]] = []  # (arrival ns, bytes)
        self._eof = False
        self._status: int | None = None
        self._torn_down = False
        self.echo: Callable[[bytes], None] | None = None  # bench exec streams output through this

    @property
    def output(self) -> bytes:
        return b"".join(c for _, c in self._chunks)

    @property
    def child(self) -> int:
        """The child's pid, for a call that needs one (a container has none until it spawned)."""
        if self.pid is None:
            raise MeasurementError(f"{type(self).__name__}: no process was started")
        return self.pid

    @property
    def wanted(self) -> bytes:
        """The READY marker waited for; an instance launched without one is not waited for."""
        if self.marker is None:
            raise MeasurementError("launched without a READY marker: nothing to wait for")
        return self.marker

    def _read_once(self, timeout_s: float | None) -> bool:
        """Wait for output or exit (timeout None: for as long as it takes); False on timeout."""
        fds = [self.pidfd] + ([] if self._eof else [self.out_fd])
        ready, _, _ = select.select(fds, [], [], None if timeout_s is None else max(0.0, timeout_s))
        if not ready:
            return False
        if self.out_fd in ready:
            data = os.read(self.out_fd, 65536)
            now = time.monotonic_ns()
            if not data:
                self._eof = True
            else:
                if self.echo:
                    self.echo(data)
                if sum(len(c) for _, c in self._chunks) < MAX_OUTPUT:
                    self._chunks.append((now, data))
                self._arrived(data, now)
        if self.pidfd in ready and self.t_exit is None:
            self._reap()
        return True

    def _arrived(self, data: bytes, now: int) -> None:
        """Output just read (arrived at now): for an instance that parses its stream as it comes."""

    def _reap(self) -> None:
        self.t_exit = time.monotonic_ns()
        _, self._status = os.waitpid(self.child, 0)
        self.exit_code = os.waitstatus_to_exitcode(self._status)

    @property
    def killed(self) -> bool:
        """It ended by a signal (teardown's SIGKILL of a child that had not exited), not by exiting."""
        return (self.exit_code or 0) < 0

    def _marker_time(self) -> int | None:
        pos = self.output.find(self.wanted)
        return None if pos < 0 else self._chunk_time_at(pos)

    def _chunk_time_at(self, pos: int) -> int:
        end = 0
        for arrived, chunk in self._chunks:
            end += len(chunk)
            if pos < end:
                return arrived
        raise ValueError(f"position {pos} is beyond the output read so far")

    def wait_ready(self, timeout_s: float) -> int:
        deadline = time.monotonic() + timeout_s
        while (t := self._marker_time()) is None:
            if self.t_exit is not None and self._eof:
                raise MeasurementError(f"exited with code {self.exit_code} before {self.wanted.decode()}")
            if not self._read_once(deadline - time.monotonic()):
                raise MeasurementError(f"no {self.wanted.decode()} within {timeout_s:g} s")
        self.t_ready = t
        return t

    def progress_fds(self) -> list[int]:
        return [self.pidfd] + ([] if self._eof else [self.out_fd])

    def poll_ready(self) -> int | None:
        if self.t_ready is None:
            self._read_once(0)
            self.t_ready = self._marker_time()
            if self.t_ready is None and self.t_exit is not None and self._eof:
                raise MeasurementError(f"exited with code {self.exit_code} before {self.wanted.decode()}")
        return self.t_ready

    def pump(self) -> bool:
        """Read what output is there, without waiting; True once it has exited. A service (the app
        suite) is pumped while it is loaded: one that logs each request (Python's http.server) and
        is not read stalls on a full pipe."""
        for _ in range(64):  # at most 4 MiB a call
            if not self._read_once(0) or self.t_exit is not None:
                break
        return self.t_exit is not None

    def wait_exit(self, timeout_s: float | None) -> int:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while self.t_exit is None:
            if not self._read_once(None if deadline is None else deadline - time.monotonic()):
                raise MeasurementError(self.EXIT_TIMEOUT.format(timeout_s))
        # Drain what is left in the pipe; a leftover grandchild may hold it open, so don't wait long.
        while not self._eof and self._read_once(self.DRAIN_S):
            pass
        assert self.exit_code is not None  # _reap() set it with t_exit
        return self.exit_code

    def teardown(self) -> None:
        if self._torn_down:
            return
        self._torn_down = True
        try:
            if self.t_exit is None:
                with contextlib.suppress(ProcessLookupError):
                    signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
                self._reap()
        finally:
            os.close(self.pidfd)
            os.close(self.out_fd)
            if self.on_teardown:
                self.on_teardown()


@contextlib.contextmanager
def pinned(cpus: list[int] | None) -> Iterator[None]:
    """Run the body with this process pinned to cpus, so that children spawned inside inherit it."""
    if cpus is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def run_quietly(argv: list[str], env: dict[str, str]) -> int:
    """Run a host command to its end with its output discarded; waits for that child only."""
    devnull = [(os.POSIX_SPAWN_OPEN, fd, os.devnull, os.O_RDWR, 0) for fd in (0, 1, 2)]
    pid = os.posix_spawn(argv[0], argv, env, file_actions=devnull)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def output_pipe() -> tuple[int, int]:
    """(read end for the host, write end for the child): CLOEXEC so no other child inherits it."""
    return os.pipe2(os.O_CLOEXEC)


def output_actions(write_fd: int) -> list[tuple]:
    """posix_spawn file actions: stdin from /dev/null, stdout and stderr into output_pipe's write end."""
    return [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_DUP2, write_fd, 1), (os.POSIX_SPAWN_DUP2, write_fd, 2)]
