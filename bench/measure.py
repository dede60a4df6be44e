"""Measurement of one instance: the startup timeline on the host clock, turned into samples."""

from __future__ import annotations

import functools
import os
import time
from dataclasses import replace
from pathlib import Path

from bench.errors import MeasurementError
from bench.interrupts import held
from bench.servers import HostServers
from bench.spec import HOST_L3, LaunchSpec, Sample
from bench.workloads import DENSITY, RR_GUEST_PATH, Workload
from runners.base import Runner

SETTLE_S = 0.5  # after an idle instance is up, before its memory is read


def undisturbed(teardown) -> None:
    """Run a teardown to its end even when Ctrl-C arrives meanwhile (see bench.interrupts)."""
    with held():
        teardown()


def measure_startup(runner: Runner, spec: LaunchSpec, workload: Workload, iteration: int, **_) -> list[Sample]:
    """launch -> READY -> exit -> teardown; ready_ms, exit_ms, teardown_ms and mem_peak_mib."""
    instance, values, extra, error = None, {}, {}, ""
    t_launch = time.monotonic_ns()
    try:
        with held():  # a Ctrl-C here is raised once `instance` holds what launch made
            instance = runner.launch(spec)
        t_ready = instance.wait_ready(spec.timeout_s)
        code = instance.wait_exit(spec.timeout_s)
        if code != 0:
            raise MeasurementError(f"exit code {code}: {_tail(instance.output)}")
        values = {"ready_ms": (t_ready - t_launch) / 1e6, "exit_ms": (instance.t_exit - t_launch) / 1e6,
                  "mem_peak_mib": instance.mem_peak_mib()}  # before teardown removes what holds it
        extra = instance.extra_metrics()
    except MeasurementError as exc:
        error = str(exc)
    except OSError as exc:
        error = f"{type(exc).__name__}: {exc}"
    finally:
        if instance is not None:
            undisturbed(instance.teardown)
    t_clean = time.monotonic_ns()
    if not error:
        values["teardown_ms"] = (t_clean - instance.t_exit) / 1e6
    samples = [_sample(runner, workload, iteration, metric, unit, values.get(metric), error)
               for metric, unit in workload.metrics if metric not in runner.cannot_measure]
    return samples + [_sample(runner, workload, iteration, metric, unit, value, error)
                      for metric, (value, unit) in extra.items()]


def _sample(runner, workload, iteration, metric, unit, value, error) -> Sample:
    if value is None and not error:
        error = f"{runner.name} cannot measure {metric} here"
    return Sample(workload.suite, workload.name, runner.name, iteration, metric,
                  float("nan") if value is None else float(value), unit, not error, error)


def _tail(output: bytes, limit: int = 300) -> str:
    return output[-limit:].decode(errors="replace").strip()


def measure_throughput(runner: Runner, spec: LaunchSpec, workload: Workload, iteration: int, **_) -> list[Sample]:
    """Run the tool to its end inside the instance and parse its output; a tool that fails, hangs
    or prints something unparseable gives ok=False with its output's tail, and the run goes on."""
    from bench import parsers

    instance, servers, values, error = None, None, {}, ""
    spec = replace(spec, argv=spec.argv_with({HOST_L3: f"{stream_cache_kib(spec.envelope.memory_mib)}K"}))
    try:
        if workload.server:
            servers = HostServers(*runner.server_side(), spec.host_paths[RR_GUEST_PATH], spec.envelope.cpu_list())
            spec = replace(spec, argv=spec.argv_with(servers.placeholders()), server=servers.address)
            servers.start()
        with held():  # a Ctrl-C here is raised once `instance` holds what launch made
            instance = runner.launch(spec)
        code = instance.wait_exit(spec.timeout_s)
        if code != 0:
            raise MeasurementError(f"exit code {code}: {_tail(instance.output)}")
        parsed = getattr(parsers, workload.parser)(instance.output.decode(errors="replace"))
        values = parsed if isinstance(parsed, dict) else {workload.metrics[0][0]: parsed}
    except MeasurementError as exc:
        error = str(exc)
    except ValueError as exc:
        error = f"{exc}: {_tail(instance.output)}"
    except OSError as exc:
        error = f"{type(exc).__name__}: {exc}"
    finally:
        if instance is not None:
            undisturbed(instance.teardown)
        if servers is not None:
            undisturbed(servers.stop)
    return [_sample(runner, workload, iteration, metric, unit, values.get(metric), error)
            for metric, unit in workload.metrics]


def measure_memory(runner: Runner, spec: LaunchSpec, workload: Workload, iteration: int,
                   density: int = DENSITY, **_) -> list[Sample]:
    """idle: the instance's host-side memory (the private dirty pages of its host processes: what only
    it holds and the kernel cannot drop) minus that of the same idle workload as a plain process,
    started just before it. Not PSS: it would charge our container's shim half the worker's Python
    pages it shares copy-on-write; not clean private pages: QEMU maps its kernel and initramfs
    files (173 MiB of page cache here), which is reclaimable and shared with the next VM.
    density: host memory in use with `density` instances up at once, per instance: kernel objects
    (namespaces, cgroups, mounts) and page cache included."""
    from runners.process import ProcessRunner

    value, error = None, ""
    try:
        if workload.name == "idle":
            plain = ProcessRunner()
            try:
                baseline = _idle_private_kib(plain, replace(spec, name=f"{spec.name}-plain"))
            finally:
                plain.close()
            value = (_idle_private_kib(runner, spec) - baseline) / 1024
        else:
            value = _used_per_instance_kib(runner, spec, density) / 1024
    except MeasurementError as exc:
        error = str(exc)
    except OSError as exc:
        error = f"{type(exc).__name__}: {exc}"
    (metric, unit), = workload.metrics
    return [_sample(runner, workload, iteration, metric, unit, value, error)]


def _idle_private_kib(runner: Runner, spec: LaunchSpec) -> int:
    instance = None
    try:
        with held():
            instance = runner.launch(spec)
        instance.wait_ready(spec.timeout_s)
        time.sleep(SETTLE_S)
        return tree_private_kib(instance.pid)
    finally:
        if instance is not None:
            undisturbed(instance.teardown)


def _used_per_instance_kib(runner: Runner, spec: LaunchSpec, n: int) -> float:
    """Host memory in use (MemTotal - MemAvailable) with n instances up, minus before, over n."""
    before = settled_used_kib()  # what the previous sample (a VM's 512 MiB) frees, freed
    instances = []
    try:
        for i in range(n):
            with held():
                instances.append(runner.launch(replace(spec, name=f"{spec.name}-{i}")))
            instances[-1].wait_ready(spec.timeout_s)
        after = settled_used_kib()
    finally:
        for instance in reversed(instances):
            undisturbed(instance.teardown)
    return (after - before) / n


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


def settled_used_kib(step_s: float = 0.25, within_kib: int = 512, limit_s: float = 5.0) -> int:
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
    fields = {}
    for line in (meminfo if meminfo is not None else Path("/proc/meminfo").read_text()).splitlines():
        key, _, rest = line.partition(":")
        fields[key] = int(rest.split()[0])
    return fields["MemTotal"] - fields["MemAvailable"]


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


MEASURES = {"startup": measure_startup, "throughput": measure_throughput, "memory": measure_memory}
