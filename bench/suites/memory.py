"""memory: what being there costs, as host memory: one idle instance against a plain process, and
several idle instances at once, per instance."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from bench.errors import MeasurementError
from bench.measure import Failure, launched, samples
from bench.spec import positive_int
from bench.suites import Suite, option

SETTLE_S = 0.5  # after an idle instance is up, before its memory is read
DENSITY = 4  # instances at once in the density workload (bench run --density N)


@dataclass(frozen=True)
class Options:
    density: int = field(default=DENSITY, metadata=option(
        "--density", f"instances at once in the density workload (default {DENSITY})", positive_int))


def measure(runner, spec, workload, iteration, density: int = DENSITY, **_) -> list:
    """idle: the instance's host-side memory (the private dirty pages of its host processes: what only
    it holds and the kernel cannot drop) minus that of the same idle workload as a plain process,
    started just before it. Not PSS: it would charge our container's shim half the worker's Python
    pages it shares copy-on-write; not clean private pages: QEMU maps its kernel and initramfs
    files (173 MiB of page cache here), which is reclaimable and shared with the next VM.
    density: host memory in use with `density` instances up at once, per instance: kernel objects
    (namespaces, cgroups, mounts) and page cache included."""
    from runners.process import ProcessRunner

    failed, values = Failure(), {}
    with failed.recorded():
        if workload.name == "idle":
            plain = ProcessRunner()
            try:
                baseline = idle_private_kib(plain, replace(spec, name=f"{spec.name}-plain"))
            finally:
                plain.close()
            values["mem_overhead_mib"] = (idle_private_kib(runner, spec) - baseline) / 1024
        else:
            per, resolution = used_per_instance_kib(runner, spec, density)
            values = {"mem_per_instance_mib": per / 1024, "mem_resolution_mib": resolution / 1024}
    return samples(runner, workload, iteration, values, failed.error, n=density if workload.name == "density" else 1)


def idle_private_kib(runner, spec) -> int:
    with launched(runner, spec) as instance:
        instance.wait_ready(spec.timeout_s)
        time.sleep(SETTLE_S)
        if instance.pid is None:
            raise MeasurementError(f"{runner.name} names no host process for its instance: its memory cannot be read")
        return tree_private_kib(instance.pid)


def used_per_instance_kib(runner, spec, n: int) -> tuple[float, float]:
    """Host memory in use (MemTotal - MemAvailable) with n instances up, minus before, over n; and
    what that can resolve: the host's own drift meanwhile (the reading once they are gone against
    before) plus the settling tolerance, over n. A reading within it is no measured cost."""
    from contextlib import ExitStack

    before = settled_used_kib()  # what the previous sample (a VM's 512 MiB) frees, freed
    with ExitStack() as up:  # torn down in reverse order of launch
        for i in range(n):
            up.enter_context(launched(runner, replace(spec, name=f"{spec.name}-{i}"))).wait_ready(spec.timeout_s)
        after = settled_used_kib()
    drift = abs(settled_used_kib() - before)
    return (after - before) / n, (SETTLE_KIB + drift) / n


SETTLE_KIB = 512  # settled_used_kib's tolerance: two readings this close count as still


def settled_used_kib(step_s: float = 0.25, within_kib: int = SETTLE_KIB, limit_s: float = 5.0) -> int:
    """Host memory in use once it stops moving: two readings step_s apart within within_kib."""
    deadline = time.monotonic() + limit_s
    last = host_used_kib()
    while True:
        time.sleep(step_s)
        now = host_used_kib()
        if abs(now - last) <= within_kib or time.monotonic() > deadline:
            return now
        last = now


def host_used_kib(meminfo: str | None = None) -> int:
    fields = meminfo_kib(meminfo)
    return fields["MemTotal"] - fields["MemAvailable"]


def meminfo_kib(meminfo: str | None = None) -> dict[str, int]:
    """/proc/meminfo's fields, in KiB."""
    fields = {}
    for line in (meminfo if meminfo is not None else Path("/proc/meminfo").read_text()).splitlines():
        key, _, rest = line.partition(":")
        fields[key] = int(rest.split()[0])
    return fields


def tree_private_kib(pid: int) -> int:
    """Private dirty memory of pid and all its descendants: anonymous memory nobody else shares."""
    total = 0
    for p in process_tree(pid):
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                total += sum(int(line.split()[1]) for line in f if line.startswith("Private_Dirty:"))
        except OSError:
            pass  # gone meanwhile
    return total


def process_tree(pid: int) -> list[int]:
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except OSError:
            pass
    return tree


SUITE = Suite(
    name="memory",
    description="host memory an idle instance costs, alone and several at once",
    needs_marker=True,
    measure=measure,
    min_repeat=3, max_repeat=6, warmup=1,
    envelope={"cpus": 1.0, "memory_mib": 512},
    order=30,
    Options=Options,
)
