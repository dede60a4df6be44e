"""What runs inside every environment: a workload, and the guest paths of the tools isobench brings."""

from __future__ import annotations

from dataclasses import dataclass


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
    per_n: bool = False  # measured once per --concurrency step, labelled NAME-nN (the scale suite's burst)
    repeat: int | None = None  # rounds when --repeat is not given, if not the suite's (a fill is one sweep)

    def needs(self) -> set[str]:
        """What a runner must provide to run this workload (Runner.provides)."""
        return ({"scratch"} if self.scratch else set()) | ({"server"} if self.server else set())


# isobench's own static tools in every image (bench/guest/*.c, built by bench.image)
PROBE_GUEST_PATH = "/bin/bench-probe"
SYSCALL_GUEST_PATH = "/bin/bench-syscall"
RR_GUEST_PATH = "/bin/bench-rr"
