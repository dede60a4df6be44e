"""Suites and their workloads: what runs inside every environment, and which metrics it yields."""

from __future__ import annotations

from dataclasses import dataclass

from bench.errors import UsageError


@dataclass(frozen=True)
class Workload:
    name: str
    suite: str
    argv: tuple[str, ...]  # guest paths
    description: str
    metrics: tuple[tuple[str, str], ...]  # (metric, unit)
    parser: str | None = None  # a function of bench.parsers: tool output -> the metric's value
    timeout_s: float = 60.0


PROBE_GUEST_PATH = "/bin/bench-probe"
SYSCALL_GUEST_PATH = "/bin/bench-syscall"
SECONDS = "4"  # each throughput sample runs this long
STREAM_SECONDS = "6"  # stress-ng's stream reports no rate for runs under ~5 s (measured: 4 s none, 5 s one)
STARTUP_METRICS = (("ready_ms", "ms"), ("exit_ms", "ms"), ("teardown_ms", "ms"), ("mem_peak_mib", "MiB"))

# --temp-path: stress-ng writes temp files, by default in its working directory, which is a read-only
# root under bwrap, runc and nspawn; every runner has a writable /tmp.
STRESS = ("/usr/bin/stress-ng", "--temp-path", "/tmp", "--timeout", f"{SECONDS}s", "--metrics-brief")
STRESS_LONG = ("/usr/bin/stress-ng", "--temp-path", "/tmp", "--timeout", f"{STREAM_SECONDS}s", "--metrics-brief")

WORKLOADS = (
    Workload("probe", "startup", (PROBE_GUEST_PATH,), "prints READY and exits 0", STARTUP_METRICS),
    Workload("cpu", "throughput", (*STRESS, "--cpu", "1", "--cpu-method", "matrixprod"),
             "stress-ng cpu (matrixprod), bogo ops/s", (("cpu_ops_s", "ops/s"),), "parse_stress_ng_rate"),
    Workload("membw", "throughput", (*STRESS_LONG, "--stream", "1"),
             "stress-ng stream, read + write MiB/s", (("mem_bw_mib_s", "MiB/s"),), "parse_stream"),
    Workload("syscall", "throughput", (SYSCALL_GUEST_PATH, SECONDS),
             "getppid() in a loop, calls/s", (("syscalls_s", "calls/s"),), "parse_bench_syscall"),
    Workload("fork", "throughput", (*STRESS, "--fork", "1"),
             "stress-ng fork: fork, exit, wait; per second", (("forks_s", "forks/s"),), "parse_stress_ng_rate"),
)

# Rounds per runner when --repeat/--warmup are not given: enough for a stable median of a ~1 ms
# launch; a throughput sample already averages seconds of work.
SUITE_DEFAULTS = {"startup": {"repeat": 30, "warmup": 3}, "throughput": {"repeat": 3, "warmup": 0}}
# The envelope a suite gets when --cpus/--memory are not given, so that runners compare on equal terms.
SUITE_ENVELOPE = {"throughput": {"cpus": 1.0, "memory_mib": 512}}


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
