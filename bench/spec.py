"""The typed values that flow between the harness, the worker and the runners."""

from __future__ import annotations

import math
import os
import re
from dataclasses import asdict, dataclass, field, replace

from bench.errors import UsageError

_SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


CFS_PERIOD_US = 100_000  # the CFS period of every quota isobench sets (the kernel's default)


@dataclass(frozen=True)
class Envelope:
    """The resources every environment gets, so that runners compare on equal terms: the same CPUs
    (cpuset: the first ceil(cpus) of --cpuset, chosen once per run), the same CPU bandwidth where
    cpus is fractional, the same memory limit."""

    cpus: float | None = None
    memory_mib: int | None = None
    pids: int | None = None
    cpuset: tuple[int, ...] | None = None

    def cpu_list(self, online: list[int] | None = None) -> list[int] | None:
        """The CPUs the environment runs on: the run's cpuset, else the first ceil(cpus) online."""
        if self.cpus is None:
            return None
        if self.cpuset:
            return list(self.cpuset)
        return sorted(online or os.sched_getaffinity(0))[: max(1, math.ceil(self.cpus))]

    def quota_us(self) -> int | None:
        """The CFS quota per CFS_PERIOD_US: only for a fractional cpus (a whole N is its N CPUs)."""
        if self.cpus is None or self.cpus == math.ceil(self.cpus):
            return None
        return round(self.cpus * CFS_PERIOD_US)

    def resolved(self) -> Envelope:
        """The CPUs chosen once: the first ceil(cpus) of cpuset (the --cpuset candidates, default
        every CPU, highest first). --cpuset alone means all of those CPUs."""
        candidates = list(self.cpuset or default_cpuset())
        cpus = self.cpus if self.cpus is not None else (len(candidates) if self.cpuset else None)
        if cpus is None:
            return replace(self, cpuset=None)
        need = max(1, math.ceil(cpus))
        if need > len(candidates):
            raise UsageError(f"--cpus {cpus:g} needs {need} CPUs; --cpuset gives {len(candidates)}")
        return replace(self, cpus=cpus, cpuset=tuple(candidates[:need]))

    @classmethod
    def from_dict(cls, data: dict) -> Envelope:
        """From its JSON form (the worker protocol, meta.json)."""
        cpuset = data.get("cpuset")
        return cls(**{**data, "cpuset": tuple(cpuset) if cpuset else None})

    def cpuset_text(self) -> str | None:
        """The cpu list as cgroups and runtimes write it: "1", "0,1"."""
        cpus = self.cpu_list()
        return None if cpus is None else ",".join(map(str, cpus))


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
    publish: tuple[int, ...] = ()  # ports a service listens on, for a runner that maps them (docker -p)

    def argv_with(self, values: dict[str, str]) -> tuple[str, ...]:
        """argv with placeholders (SCRATCH, SERVER...) replaced by what they are in this environment."""
        argv = self.argv
        for placeholder, value in values.items():
            argv = tuple(arg.replace(placeholder, value) for arg in argv)
        return argv


# Placeholders in a workload's argv, filled in per environment.
SCRATCH = "@SCRATCH@"  # the directory a disk test writes to
SERVER = "@SERVER@"  # the address of the host-side servers a network workload talks to
RR_PORT, IPERF_PORT = "@PORT1@", "@PORT2@"  # two ports of this run's own for host-side servers
ROOTFS = "@ROOTFS@"  # the image's tree on the host, in a host-side server's argv (@ROOTFS@/bin/bench-rr)
IMAGE = "@IMAGE@"  # where the image's own files are, as the workload sees them: "" inside (so @IMAGE@/var/lib/x is
# /var/lib/x), the image's tree on the host for the process runner, which runs on the host (Runner.image_root)
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
    n: int = 1  # instances up at once when it was measured (the scale suite's N; pivot on it)

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


def parse_cpuset(text: str) -> list[int]:
    """'1', '0-3', '3,1' -> CPU numbers in the order given; UsageError unless this process may use each."""
    cpus: list[int] = []
    try:
        for part in text.split(","):
            low, dash, high = part.strip().partition("-")
            cpus += range(int(low), int(high if dash else low) + 1)
    except ValueError:
        raise UsageError(f"bad --cpuset {text!r}: CPU numbers and ranges such as 1 or 0-3,6") from None
    usable = os.sched_getaffinity(0)
    bad = [c for c in cpus if c not in usable]
    if bad or not cpus:
        raise UsageError(f"bad --cpuset {text!r}: this host gives CPUs {','.join(map(str, sorted(usable)))}")
    return list(dict.fromkeys(cpus))


def default_cpuset() -> list[int]:
    """Every CPU this process may use, highest first: CPU 0 takes most of a host's interrupts."""
    return sorted(os.sched_getaffinity(0), reverse=True)


def positive_int(text: str, what: str, minimum: int = 1) -> int:
    try:
        value = int(text)
    except ValueError:
        raise UsageError(f"bad {what} {text!r}: a whole number") from None
    if value < minimum:
        raise UsageError(f"bad {what} {text!r}: at least {minimum}")
    return value
