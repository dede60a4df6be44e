"""The host side of a network workload: the servers its file declares (net.toml: a bench-rr and an
iperf3 server, each serving one client), started for one sample in the network namespace the runner
names (the bench bridge's for a container, the host's for a process or a VM's tap) and stopped after
it. Traffic stays there."""

from __future__ import annotations

import os
import select
import signal
import time

from bench.errors import MeasurementError
from bench.spec import IPERF_PORT, ROOTFS, RR_PORT, SERVER
from runners._child import pinned

NSENTER = "/usr/bin/nsenter"
LISTEN_TIMEOUT_S = 5.0


def ports(slot: int = 0) -> tuple[int, int]:
    """Ports per measuring process, so that two runs at once never meet on loopback; slot: one more
    pair in the same process (the scale suite's neighbours each talk to servers of their own).
    Outside the kernel's ephemeral range: a client that churns connections (wrk against a server
    that closes each one) leaves thousands of them in TIME_WAIT, and a TIME_WAIT socket of a client
    without SO_REUSEADDR on our port made the next server's bind fail (EADDRINUSE), SO_REUSEADDR or not."""
    low, high = ephemeral_range()
    first, last = (10000, low - 1) if low - 10000 >= 2000 else (high + 1, 65535)
    pairs = (last - first + 1) // 2
    rr = first + 2 * ((os.getpid() + 997 * slot) % pairs)
    return rr, rr + 1


def ephemeral_range(path: str = "/proc/sys/net/ipv4/ip_local_port_range") -> tuple[int, int]:
    try:
        with open(path) as f:
            low, high = map(int, f.read().split())
        return low, high
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def server_cpus(envelope_cpus: list[int] | None) -> list[int] | None:
    """Where the host-side servers run: the CPUs the environment does not have, when there are any,
    so that a server never competes with its own client and lands in the same place for every runner
    (on 2 CPUs, floating servers moved loopback iperf3 by 15% either way between two runs)."""
    if not envelope_cpus:
        return None
    rest = sorted(os.sched_getaffinity(0) - set(envelope_cpus))
    return rest or None


def spawn_host_side(argv: list[str], netns: str | None, cpus: list[int] | None, what: str) -> tuple[int, int]:
    """(pid, the read end of its stdout and stderr) of a program started on the host side of an
    environment: in netns (None: the host's), pinned to cpus, in a session of its own. what: how
    an error names it."""
    if netns:
        argv = [NSENTER, f"--net={netns}", "--", *argv]
    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    actions = [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
               (os.POSIX_SPAWN_DUP2, write_fd, 1), (os.POSIX_SPAWN_DUP2, write_fd, 2)]
    try:
        with pinned(cpus):
            pid = os.posix_spawn(argv[0], argv, {"PATH": "/usr/bin:/bin"}, file_actions=actions, setsid=True)
    except OSError as exc:
        os.close(read_fd)
        raise MeasurementError(f"{what} {argv[0]}: {exc.strerror}") from None
    finally:
        os.close(write_fd)
    return pid, read_fd


class HostServers:
    def __init__(self, netns: str | None, address: str, servers, rootfs: str, cpus: list[int] | None = None,
                 slot: int = 0) -> None:
        """servers: the workload's (bench.workload.Server); rootfs: the image's tree on the host (@ROOTFS@)."""
        self.slot = slot
        self.netns, self.address, self.servers, self.rootfs = netns, address, servers, rootfs
        self.cpus = server_cpus(cpus)
        self.procs: list[tuple[int, int]] = []  # (pid, stdout read end)

    def placeholders(self) -> dict[str, str]:
        rr, iperf = ports(self.slot)
        return {SERVER: self.address, RR_PORT: str(rr), IPERF_PORT: str(iperf)}

    def start(self) -> None:
        values = {**self.placeholders(), ROOTFS: self.rootfs}
        try:
            for server in self.servers:
                argv = list(server.argv)
                for placeholder, value in values.items():
                    argv = [arg.replace(placeholder, value) for arg in argv]
                self._spawn(argv, server.ready.encode())
        except BaseException:
            self.stop()
            raise

    def _spawn(self, argv: list[str], ready: bytes) -> None:
        pid, read_fd = spawn_host_side(argv, self.netns, self.cpus, "host-side server")
        self.procs.append((pid, read_fd))
        self._await_ready(read_fd, ready)

    def _await_ready(self, fd: int, ready: bytes) -> None:
        seen, deadline = b"", time.monotonic() + LISTEN_TIMEOUT_S
        while ready not in seen:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise MeasurementError(f"host-side server printed no {ready.decode()!r} within {LISTEN_TIMEOUT_S:g} s")
            chunk = os.read(fd, 4096)
            if not chunk:
                raise MeasurementError(f"host-side server exited: {seen.decode(errors='replace').strip()[-200:]}")
            seen += chunk

    def stop(self) -> None:
        """Kill what still runs (a server whose client never came) and reap it. Idempotent."""
        for pid, fd in self.procs:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.waitpid(pid, 0)
            os.close(fd)
        self.procs = []
