"""throughput: tools run to completion inside each environment (CPU, memory bandwidth, system
calls, fork, disk, network), their output parsed into rates."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from bench.errors import MeasurementError
from bench.measure import Failure, exited_ok, launched, samples, tail, undisturbed
from bench.servers import HostServers
from bench.spec import HOST_L3, LaunchSpec
from bench.suites import Suite
from bench.workload import Workload

# The metrics of the net workload's bench-rr line (the scale suite's neighbours read them too).
RR_METRICS = (("net_rr_us", "us"), ("net_rr_p50_us", "us"), ("net_rr_p99_us", "us"), ("net_rr_p999_us", "us"))


def measure(runner, spec, workload, iteration, **_) -> list:
    """Run the tool to its end inside the instance and parse its output (the workload's parser, regex
    or JSON path); a tool that fails, hangs or prints something unparseable gives ok=False with its
    output's tail, and the run goes on."""
    failed, values = Failure(), {}
    spec = replace(spec, argv=spec.argv_with({HOST_L3: f"{stream_cache_kib(spec.envelope.memory_mib)}K"}))
    with failed.recorded(), served(runner, spec, workload) as spec, launched(runner, spec) as instance:
        exited_ok(instance, spec.timeout_s)
        values = parsed(workload, instance.output)
    return samples(runner, workload, iteration, values, failed.error)


@contextmanager
def served(runner, spec: LaunchSpec, workload: Workload, slot: int = 0) -> Iterator[LaunchSpec]:
    """The spec pointed at the workload's host-side servers (net.toml's bench-rr and iperf3), which
    run until the block ends; the spec as it is when it has none. slot: another pair of ports, for
    servers beside others of the same process."""
    if not workload.servers:
        yield spec
        return
    netns, address = runner.server_side()
    servers = HostServers(netns, address, workload.servers, spec.rootfs, spec.envelope.cpu_list(), slot)
    try:
        servers.start()
        yield replace(spec, argv=spec.argv_with(servers.placeholders()), server=servers.address)
    finally:
        undisturbed(servers.stop)


def parsed(workload: Workload, output: bytes) -> dict[str, float]:
    try:
        return workload.parse(output.decode(errors="replace"))
    except ValueError as exc:
        raise MeasurementError(f"{exc}: {tail(output)}") from None


def stream_cache_kib(memory_mib: int | None) -> int:
    """The cache size stream is told: the host's, but no more than lets its arrays (12 times that,
    measured) fill half the envelope's memory: a VM's guest also holds its root filesystem in RAM."""
    l3 = host_l3_kib()
    return l3 if memory_mib is None else min(l3, memory_mib * 1024 // 24)


@functools.cache
def host_l3_kib(cpu: str = "/sys/devices/system/cpu/cpu0/cache") -> int:
    """The largest cache of CPU 0 (stress-ng's own fallback when sysfs says nothing: 2 MiB)."""
    sizes = []
    for index in Path(cpu).glob("index*"):
        try:
            text = (index / "size").read_text().strip()
        except OSError:
            continue
        unit = {"K": 1, "M": 1024}.get(text[-1:], None)
        sizes.append(int(text[:-1]) * unit if unit else int(text) // 1024)
    return max(sizes, default=2048)


SUITE = Suite(
    name="throughput",
    description="rates of CPU, memory, system calls, fork, disk and network work inside each environment",
    measure=measure,
    parses_output=True,
    min_repeat=3, max_repeat=10, warmup=0,  # a sample already averages seconds of work
    envelope={"cpus": 1.0, "memory_mib": 512},  # runners compare on equal terms
    order=20,
)
