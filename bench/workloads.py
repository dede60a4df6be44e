"""Suites and their workloads: what runs inside every environment, and which metrics it yields."""

from __future__ import annotations

from dataclasses import dataclass

from bench.errors import UsageError
from bench.spec import HOST_L3, IPERF_PORT, RR_PORT, SCRATCH, SERVER


@dataclass(frozen=True)
class Workload:
    name: str
    suite: str
    argv: tuple[str, ...]  # guest paths
    description: str
    metrics: tuple[tuple[str, str], ...]  # (metric, unit)
    parser: str | None = None  # a function of bench.parsers: tool output -> value, or {metric: value}
    timeout_s: float = 60.0
    marker: bool = False  # prints READY once it is up (startup and memory workloads)
    scratch: str | None = None  # "own" or "volume": where a disk workload's SCRATCH lives
    server: bool = False  # talks to host-side servers at SERVER (bench-rr, iperf3)

    def needs(self) -> set[str]:
        """What a runner must provide to run this workload (Runner.provides)."""
        return ({"scratch"} if self.scratch else set()) | ({"server"} if self.server else set())


PROBE_GUEST_PATH = "/bin/bench-probe"
SYSCALL_GUEST_PATH = "/bin/bench-syscall"
RR_GUEST_PATH = "/bin/bench-rr"
SECONDS = "4"  # each throughput sample runs this long
STREAM_SECONDS = "6"  # stress-ng's stream reports no rate for runs under ~5 s (measured: 4 s none, 5 s one)
STARTUP_METRICS = (("ready_ms", "ms"), ("exit_ms", "ms"), ("teardown_ms", "ms"), ("mem_peak_mib", "MiB"))

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
IDLE = ("/bin/sh", "-c", "echo READY; sleep 600")  # up, then nothing: what being there costs

WORKLOADS = (
    Workload("probe", "startup", (PROBE_GUEST_PATH,), "prints READY and exits 0", STARTUP_METRICS, marker=True),
    Workload("cpu", "throughput", (*STRESS, "--cpu", "1", "--cpu-method", "matrixprod"),
             "stress-ng cpu (matrixprod), bogo ops/s", (("cpu_ops_s", "ops/s"),), "parse_stress_ng_rate"),
    # --stream-l3-size: stress-ng sizes stream's arrays from the cache size in /sys, which a chroot or
    # bwrap lacks (it then takes 2 MiB and measured cache, not memory: 43 GiB/s against 18 here) and a
    # VM reports differently. The same size in every runner: see measure.stream_cache_kib.
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
             "host side", (("net_rr_us", "us"), ("net_gbit_s", "Gbit/s")), "parse_net", server=True),
    Workload("idle", "memory", IDLE, "private memory of an idle instance's host processes minus the same as a plain process",
             (("mem_overhead_mib", "MiB"),), marker=True),
    Workload("density", "memory", IDLE, "N idle instances at once: host memory used per instance",
             (("mem_per_instance_mib", "MiB"),), marker=True),
)

# Rounds per runner when --repeat is not given (see bench.run.Rounds): at least min_repeat, then more
# until --precision is reached, up to max_repeat (or the runner's own, lower, max_repeat). Six is the
# fewest samples whose order statistics bound a 95% interval of the median; a throughput sample
# already averages seconds of work.
SUITE_DEFAULTS = {"startup": {"min_repeat": 6, "max_repeat": 30, "warmup": 1},
                  "throughput": {"min_repeat": 3, "max_repeat": 10, "warmup": 0},
                  "memory": {"min_repeat": 3, "max_repeat": 6, "warmup": 1}}
DENSITY = 4  # instances at once in the density workload (bench run --density N)
# The envelope a suite gets when --cpus/--memory are not given, so that runners compare on equal terms.
SUITE_ENVELOPE = {"throughput": {"cpus": 1.0, "memory_mib": 512}, "memory": {"cpus": 1.0, "memory_mib": 512}}


def suites() -> list[str]:
    return sorted({w.suite for w in WORKLOADS})


def select(suite_arg: str, workload_arg: str | None) -> list[Workload]:
    """The workloads named by --suite (comma list, or 'all') and --workloads; UsageError otherwise."""
    names = suites() if suite_arg == "all" else [s.strip() for s in suite_arg.split(",") if s.strip()]
    unknown = [s for s in names if s not in suites()]
    if unknown or not names:
        raise UsageError(f"unknown suite {','.join(unknown) or suite_arg!r}; choose from: {', '.join(suites())}, all")
    chosen = [w for w in WORKLOADS if w.suite in names]
    if workload_arg:
        wanted = [w.strip() for w in workload_arg.split(",") if w.strip()]
        valid = sorted({w.name for w in chosen})
        bad = [w for w in wanted if w not in valid]
        if bad or not wanted:
            raise UsageError(f"unknown workload {','.join(bad) or workload_arg!r} for suite {suite_arg}; choose from: {', '.join(valid)}")
        chosen = [w for w in chosen if w.name in wanted]
    return chosen
