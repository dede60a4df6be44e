"""Pure parsers of workload tool output. Each is tested against real output under tests/data/."""

from __future__ import annotations

import re
from dataclasses import dataclass

_METRIC_ROW = re.compile(
    r"metrc:\s+\[\d+\]\s+(?P<stressor>[\w-]+)\s+(?P<ops>\d+)\s+(?P<real>[\d.]+)\s+(?P<usr>[\d.]+)\s+"
    r"(?P<sys>[\d.]+)\s+(?P<rate_real>[\d.]+)\s+(?P<rate_cpu>[\d.]+)")


@dataclass(frozen=True)
class StressNgMetrics:
    stressor: str
    bogo_ops: int
    real_s: float
    bogo_ops_per_s: float  # per second of wall-clock time: what a throughput ratio compares


def parse_stress_ng(text: str) -> list[StressNgMetrics]:
    """The per-stressor rows of `stress-ng --metrics-brief`; ValueError when there are none."""
    rows = [StressNgMetrics(m["stressor"], int(m["ops"]), float(m["real"]), float(m["rate_real"]))
            for m in _METRIC_ROW.finditer(text)]
    if not rows:
        raise ValueError("no stress-ng metrics in the output")
    return rows


_STREAM_RATE = re.compile(r"memory rate: ([\d.]+) MB read/sec, ([\d.]+) MB write/sec")
_SYSCALLS = re.compile(r"^syscalls_per_s (\d+)", re.MULTILINE)


def parse_stress_ng_rate(text: str) -> float:
    """bogo ops per second of wall-clock time, summed over the stressors of one run."""
    return sum(row.bogo_ops_per_s for row in parse_stress_ng(text))


def parse_stream(text: str) -> float:
    """stress-ng stream: read + write rate. stress-ng's "MB" is 2**20 bytes, so this is MiB/s."""
    rates = _STREAM_RATE.findall(text)
    if not rates:
        raise ValueError("no stream memory rate in the output (stress-ng reports none for runs under ~5 s)")
    return sum(float(read) + float(write) for read, write in rates)


def parse_bench_syscall(text: str) -> float:
    found = _SYSCALLS.search(text)
    if not found:
        raise ValueError("no syscalls_per_s line in the output")
    return float(found.group(1))
