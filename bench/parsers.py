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
