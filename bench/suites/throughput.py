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
from bench.spec import HOST_L3, IPERF_PORT, RR_PORT, SCRATCH, SERVER, LaunchSpec
from bench.suites import Suite
from bench.workload import RR_GUEST_PATH, SYSCALL_GUEST_PATH, Workload

SECONDS = "4"  # each throughput sample runs this long
STREAM_SECONDS = "6"  # stress-ng's stream reports no rate for runs under ~5 s (measured: 4 s none, 5 s one)
# --temp-path: stress-ng writes temp files, by default in its working directory, which is a read-only
# root under bwrap, runc and nspawn; every runner has a writable /tmp.
STRESS = ("/usr/bin/stress-ng", "--temp-path", "/tmp", "--timeout", f"{SECONDS}s", "--metrics-brief")
STRESS_LONG = ("/usr/bin/stress-ng", "--temp-path", "/tmp", "--timeout", f"{STREAM_SECONDS}s", "--metrics-brief")
# fio: 4k random read, 4k random write, 1M sequential read, one after another (stonewall) on one
# 64 MiB file, direct I/O, one synchronous request in flight: the device's latency-bound rates.
FIO = ("/usr/bin/fio", f"--directory={SCRATCH}", "--filename=bench-fio", "--size=64M", "--direct=1",
       "--ioengine=psync", "--bs=4k", "--runtime=2", "--time_based", "--output-format=json",
       "--name=randread", "--rw=randread", "--name=randwrite", "--stonewall", "--rw=randwrite",
       "--name=seqread", "--stonewall", "--rw=read", "--bs=1M")
DISK_METRICS = (("disk_randread_iops", "IOPS"), ("disk_randwrite_iops", "IOPS"), ("disk_seq_read_mib_s", "MiB/s"))
# bench-rr first (one byte each way, as netperf TCP_RR), then iperf3's bulk rate, against servers on
# the host side of the environment's network.
NET = ("/bin/sh", "-c", f"{RR_GUEST_PATH} client {SERVER} {RR_PORT} 2 && "
       f"/usr/bin/iperf3 --client {SERVER} --port {IPERF_PORT} --time 3 --json")

RR_METRICS = (("net_rr_us", "us"), ("net_rr_p50_us", "us"), ("net_rr_p99_us", "us"), ("net_rr_p999_us", "us"))
NET_METRICS = (*RR_METRICS, ("net_gbit_s", "Gbit/s"))

WORKLOADS = (
    Workload("cpu", "throughput", (*STRESS, "--cpu", "1", "--cpu-method", "matrixprod"),
             "stress-ng cpu (matrixprod), bogo ops/s", (("cpu_ops_s", "ops/s"),), "parse_stress_ng_rate"),
    # --stream-l3-size: stress-ng sizes stream's arrays from the cache size in /sys, which a chroot or
    # bwrap lacks (it then takes 2 MiB and measured cache, not memory: 43 GiB/s against 18 here) and a
    # VM reports differently. The same size in every runner: see stream_cache_kib.
    Workload("membw", "throughput", (*STRESS_LONG, "--stream", "1", "--stream-l3-size", HOST_L3),
             "stress-ng stream, read + write MiB/s", (("mem_bw_mib_s", "MiB/s"),), "parse_stream"),
    Workload("syscall", "throughput", (SYSCALL_GUEST_PATH, SECONDS),
             "getppid() in a loop, calls/s", (("syscalls_s", "calls/s"),), "parse_bench_syscall"),
    Workload("fork", "throughput", (*STRESS, "--fork", "1"),
             "stress-ng fork: fork, exit, wait; per second", (("forks_s", "forks/s"),), "parse_stress_ng_rate"),
    Workload("disk", "throughput", FIO, "fio on the environment's own writable storage (container: overlay upper; "
             "vm: a virtio-blk disk)", DISK_METRICS, "parse_fio", scratch="own"),
    Workload("disk-volume", "throughput", FIO, "fio on a host directory handed in (container: bind mount; "
             "vm: a virtio-blk disk)", DISK_METRICS, "parse_fio", scratch="volume"),
    Workload("net", "throughput", NET, "bench-rr (TCP request/response) and iperf3 (TCP bulk) to servers on the "
             "host side", NET_METRICS, "parse_net", server=True),
)


def measure(runner, spec, workload, iteration, **_) -> list:
    """Run the tool to its end inside the instance and parse its output; a tool that fails, hangs
    or prints something unparseable gives ok=False with its output's tail, and the run goes on."""
    failed, values = Failure(), {}
    spec = replace(spec, argv=spec.argv_with({HOST_L3: f"{stream_cache_kib(spec.envelope.memory_mib)}K"}))
    with failed.recorded(), served(runner, spec, workload) as spec, launched(runner, spec) as instance:
        exited_ok(instance, spec.timeout_s)
        values = parsed(workload, instance.output)
    return samples(runner, workload, iteration, values, failed.error)


@contextmanager
def served(runner, spec: LaunchSpec, workload: Workload, slot: int = 0) -> Iterator[LaunchSpec]:
    """The spec pointed at host-side servers (bench-rr, iperf3) that run until the block ends, when
    the workload talks to them; the spec as it is otherwise. slot: another pair of ports, for
    servers beside others of the same process."""
    if not workload.server:
        yield spec
        return
    servers = HostServers(*runner.server_side(), spec.host_paths[RR_GUEST_PATH], spec.envelope.cpu_list(), slot)
    try:
        servers.start()
        yield replace(spec, argv=spec.argv_with(servers.placeholders()), server=servers.address)
    finally:
        undisturbed(servers.stop)


def parsed(workload: Workload, output: bytes) -> dict[str, float]:
    from bench import parsers

    try:
        found = getattr(parsers, workload.parser)(output.decode(errors="replace"))
    except ValueError as exc:
        raise MeasurementError(f"{exc}: {tail(output)}") from None
    return found if isinstance(found, dict) else {workload.metrics[0][0]: found}


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
    workloads=WORKLOADS,
    measure=measure,
    min_repeat=3, max_repeat=10, warmup=0,  # a sample already averages seconds of work
    envelope={"cpus": 1.0, "memory_mib": 512},  # runners compare on equal terms
    order=20,
)
