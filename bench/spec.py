"""The typed values that flow between the harness, the worker and the runners."""

from __future__ import annotations

import math
import os
import re
from dataclasses import asdict, dataclass, field

from bench.errors import UsageError

_SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


@dataclass(frozen=True)
class Envelope:
    """The resources every environment gets, so that runners compare on equal terms."""

    cpus: float | None = None
    memory_mib: int | None = None
    pids: int | None = None

    def cpu_list(self, online: list[int]) -> list[int] | None:
        """The CPUs an affinity-only runner pins to: ceil(cpus) of the online ones."""
        if self.cpus is None:
            return None
        return online[: max(1, math.ceil(self.cpus))]


@dataclass(frozen=True)
class LaunchSpec:
    """One instance to start: what to run (guest paths) inside which image and envelope."""

    name: str
    argv: tuple[str, ...]
    rootfs: str
    host_paths: dict[str, str] = field(default_factory=dict)
    envelope: Envelope = Envelope()
    marker: bytes | None = b"READY"
    timeout_s: float = 30.0
    scratch: str | None = None  # "own" (the environment's writable storage) or "volume" (a host dir handed in)
    server: str | None = None  # the address of host-side servers the workload talks to (network workloads)

    def argv_with(self, values: dict[str, str]) -> tuple[str, ...]:
        """argv with placeholders (SCRATCH, SERVER...) replaced by what they are in this environment."""
        argv = self.argv
        for placeholder, value in values.items():
            argv = tuple(arg.replace(placeholder, value) for arg in argv)
        return argv


# Placeholders in a workload's argv, filled in per environment.
SCRATCH = "@SCRATCH@"  # the directory a disk test writes to
SERVER = "@SERVER@"  # the address of the host-side servers a network workload talks to
RR_PORT, IPERF_PORT = "@RR_PORT@", "@IPERF_PORT@"
HOST_L3 = "@HOST_L3@"  # the host's last-level cache size, so that stream sizes its arrays alike everywhere


@dataclass(frozen=True)
class Sample:
    """One measurement, the unit every runner and suite produces (PerfKitBenchmarker's Sample)."""

    suite: str
    workload: str
    runner: str
    iteration: int
    metric: str
    value: float
    unit: str
    ok: bool = True
    error: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def parse_size_mib(text: str) -> int:
    """'512M', '1G', '65536K', '1073741824' -> MiB. Raises UsageError on anything else."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*", text, re.IGNORECASE)
    if not m:
        raise UsageError(f"bad size {text!r}: use a number with K, M, G or T (e.g. 512M)")
    size = float(m.group(1)) * _SIZE_UNITS[m.group(2).upper()]
    if m.group(2) == "" and size < 1 << 20:
        raise UsageError(f"bad size {text!r}: a bare number is bytes; did you mean {text}M?")
    mib = int(size // (1 << 20))
    if mib < 1:
        raise UsageError(f"bad size {text!r}: at least 1M")
    return mib


def parse_cpus(text: str) -> float:
    """'1', '0.5', '2' -> float > 0. Raises UsageError on anything else."""
    try:
        cpus = float(text)
    except ValueError:
        raise UsageError(f"bad --cpus {text!r}: a positive number such as 1 or 0.5") from None
    if not (cpus > 0 and math.isfinite(cpus)):
        raise UsageError(f"bad --cpus {text!r}: must be greater than 0")
    usable = len(os.sched_getaffinity(0))
    if cpus > usable:  # a ratio under an envelope no runner can honour would measure nothing real
        raise UsageError(f"bad --cpus {text!r}: this host gives at most {usable} CPUs")
    return cpus


def positive_int(text: str, what: str, minimum: int = 1) -> int:
    try:
        value = int(text)
    except ValueError:
        raise UsageError(f"bad {what} {text!r}: a whole number") from None
    if value < minimum:
        raise UsageError(f"bad {what} {text!r}: at least {minimum}")
    return value
