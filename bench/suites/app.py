"""app: real services in each environment, loaded from the host side. nginx serving a static file
to wrk, redis to redis-benchmark (rates and latency percentiles), nginx's first answer from the
launch (gVisor's StartupNginx), and a Python interpreter's imports to READY.

The services run in the app image (bench.images.app_image: Debian 12 with nginx-light, redis-server and
python3-minimal), or in --image. A service listens on the environment's own address (a process or
a chroot: the host's loopback), the client runs where the runner's host-side servers run (its
network namespace), pinned to the CPUs the environment does not have, as the throughput suite's
servers are.
"""

from __future__ import annotations

import errno
import os
import select
import signal
import socket
import time
from dataclasses import replace

from bench.errors import MeasurementError
from bench.measure import Failure, launched, samples, tail
from bench.servers import ports, server_cpus, spawn_host_side
from bench.spec import IPERF_PORT, RR_PORT, LaunchSpec
from bench.suites import Suite
from bench.suites.startup import measure as startup_measure

GUEST = "@GUEST@"  # in a client's argv: the address the service is reached at from the host side
LISTEN = "@LISTEN@"  # in the workload's argv: the address it listens on in its environment
ATTEMPT_S = 0.01  # a connection not answered within this is tried afresh (a SYN into a booting guest is lost)
RETRY_S = 0.0005  # after a refused connection (nothing listens yet), the next try


def app_rootfs(cache_dir, say):
    """The image this suite's workloads run in without --image: (rootfs, digest, source)."""
    from bench.images import app_image

    rootfs, digest = app_image.build_app_image(cache_dir, say=say)
    return rootfs, digest, app_image.SOURCE


def measure(runner, spec, workload, iteration, **_) -> list:
    """A service: launch, wait until it answers, then time its first answer (http) or load it
    with the client and read the client's output; anything else: launch to READY as startup."""
    if not workload.listen:
        return startup_measure(runner, spec, workload, iteration)
    netns, host_address = runner.server_side()
    port_values = dict(zip((RR_PORT, IPERF_PORT), map(str, ports()), strict=True))
    port = int(filled(workload.listen, port_values))
    spec = replace(spec, argv=spec.argv_with({**port_values, LISTEN: runner.listen_on}), server=host_address,
                   publish=(port,))
    failed, values = Failure(), {}
    t_launch = time.monotonic_ns()
    with failed.recorded(), launched(runner, spec) as instance:
        deadline = time.monotonic() + spec.timeout_s
        address = runner.guest_address(instance)
        answered = first_answer(netns, address, port, workload.http, deadline, instance)
        if workload.http:
            values["first_response_ms"] = (answered - t_launch) / 1e6
        else:
            argv = [filled(arg, {GUEST: address, **port_values}) for arg in workload.client]
            output = client_output(argv, netns, spec, deadline, instance)
            if instance.pump():
                raise MeasurementError(f"the service exited while loaded ({instance.exit_code}): {tail(instance.output)}")
            try:
                values = workload.parse(output)
            except ValueError as exc:
                raise MeasurementError(f"{exc}: {tail(output.encode())}") from None
    return samples(runner, workload, iteration, values, failed.error)


def filled(arg: str, values: dict[str, str]) -> str:
    for placeholder, value in values.items():
        arg = arg.replace(placeholder, value)
    return arg


def netns_socket(netns: str | None) -> socket.socket:
    """A TCP socket in the network namespace at netns (a socket stays in the one it was made in)."""
    if netns is None:
        return socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    from bench.host import linux

    own, there = os.open("/proc/self/ns/net", os.O_RDONLY), os.open(netns, os.O_RDONLY)
    try:
        linux.setns(there, linux.CLONE_NEWNET)
        try:
            return socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        finally:
            linux.setns(own, linux.CLONE_NEWNET)
    finally:
        os.close(own)
        os.close(there)


def first_answer(netns: str | None, address: str, port: int, path: str | None, deadline: float, instance) -> int:
    """monotonic_ns when the service first answered: a whole HTTP response to GET path (read to
    its end), or, without a path, an accepted connection. Tried again and again until then."""
    request = f"GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n".encode() if path else b""
    while True:
        if time.monotonic() > deadline:
            raise MeasurementError(f"nothing answered on {address}:{port} in time: {tail(instance.output)}")
        if instance.pump():
            raise MeasurementError(f"exited with code {instance.exit_code} before answering: {tail(instance.output)}")
        with netns_socket(netns) as s:
            s.setblocking(False)
            code = s.connect_ex((address, port))
            if code == errno.EINPROGRESS:
                if not select.select([], [s], [], ATTEMPT_S)[1]:
                    continue  # no answer yet: a fresh SYN rather than the kernel's retry a second later
                code = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code:
                time.sleep(RETRY_S)
                continue
            if not path:
                return time.monotonic_ns()
            response = exchange(s, request, deadline)
            if response is None:
                continue  # reset before it answered: not up yet
            if not response.startswith(b"HTTP/1.1 200") and not response.startswith(b"HTTP/1.0 200"):
                raise MeasurementError(f"GET {path}: {response[:80].decode(errors='replace')!r}")
            return time.monotonic_ns()


def exchange(s: socket.socket, request: bytes, deadline: float) -> bytes | None:
    """Send the request and read the response to its end (HTTP/1.0: the server closes); None if
    the connection was reset."""
    s.setblocking(True)
    s.settimeout(max(0.001, deadline - time.monotonic()))
    chunks = []
    try:
        s.sendall(request)
        while chunk := s.recv(65536):
            chunks.append(chunk)
    except (ConnectionResetError, BrokenPipeError):
        return None
    except TimeoutError:
        raise MeasurementError("the HTTP response did not end in time") from None
    return b"".join(chunks)


def client_output(argv: list[str], netns: str | None, spec: LaunchSpec, deadline: float, instance) -> str:
    """Run the host-side client to its end in the runner's network namespace, on the CPUs the
    environment does not have, reading the service's output meanwhile; the client's output, or
    MeasurementError with its tail."""
    pid, read_fd = spawn_host_side(argv, netns, server_cpus(spec.envelope.cpu_list()), "the client")
    chunks = []
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                os.kill(pid, signal.SIGKILL)
                raise MeasurementError(f"the client {os.path.basename(argv[-1])} did not end in time")
            if select.select([read_fd], [], [], min(left, 0.05))[0]:
                chunk = os.read(read_fd, 65536)
                if not chunk:
                    break
                chunks.append(chunk)
            instance.pump()
    finally:
        os.close(read_fd)
        code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    output = b"".join(chunks)
    if code:
        raise MeasurementError(f"the client {os.path.basename(argv[0])} exited with {code}: {tail(output)}")
    return output.decode(errors="replace")


SUITE = Suite(
    name="app",
    description="nginx and redis loaded from the host side, nginx's first answer, Python's imports",
    needs_marker=True,
    measure=measure,
    min_repeat=3, max_repeat=10, warmup=1,
    envelope={"cpus": 1.0, "memory_mib": 512},  # the throughput suite's: runners compare on equal terms
    order=25,
    parses_output=False,  # a client's output, or the suite's own clock
    image=app_rootfs,
    title="Applications",
)
