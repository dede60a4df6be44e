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


PROBE_GUEST_PATH = "/bin/bench-probe"
STARTUP_METRICS = (("ready_ms", "ms"), ("exit_ms", "ms"), ("teardown_ms", "ms"), ("mem_peak_mib", "MiB"))

WORKLOADS = (
    Workload("probe", "startup", (PROBE_GUEST_PATH,), "prints READY and exits 0", STARTUP_METRICS),
)

# Rounds per runner when --repeat/--warmup are not given: enough for a stable median of a ~1 ms launch.
SUITE_DEFAULTS = {"startup": {"repeat": 30, "warmup": 3}}


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
