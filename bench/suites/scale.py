"""scale: many instances of one runner at once. burst: N launched together, each one's time to READY
from the common start; fill: idle instances one after another until a limit, with the host memory
each costs; neighbours: one instance's throughput and latency while K others run a load.

Every launch first asks Limits whether the host can take one more (memory budget, file
descriptors, pids): a scale run stops at a stated limit instead of taking the host down.
"""

from __future__ import annotations

import os
import resource
import time
from contextlib import ExitStack
from dataclasses import dataclass, field, replace

from bench.errors import MeasurementError, UsageError
from bench.measure import Arrivals, Failure, Found, exited_ok, launched, sample_of, samples, undisturbed, wait_all_ready
from bench.spec import IPERF_PORT, RR_PORT, SCRATCH, SERVER, Envelope, parse_size_mib, positive_int
from bench.suites import Step, Suite, one_step, option
from bench.suites.memory import SETTLE_KIB, meminfo_kib, settled_used_kib
from bench.suites.throughput import RR_METRICS, parsed, served
from bench.workload import RR_GUEST_PATH, builtin

CONCURRENCY = (1, 2, 4, 8, 16, 32)  # --concurrency's default steps
MAX_INSTANCES = 64  # the most instances a burst or a fill starts (--max-instances): pids and fds stay bounded
FDS_PER_INSTANCE = 8  # the most a launch opens here (pipes, pidfd, a VM's console socket), with room
NEIGHBOUR_LOADS = ("cpu", "membw", "disk", "net")
LOAD_S = 600  # a neighbour's load runs until it is torn down; this only bounds it if we are killed
# What the measured instance of the neighbours workload reads: its CPU rate, and where it has
# host-side servers, the round trips' percentiles.
MEASURED = (("cpu_ops_s", "ops/s"), *((m, u) for m, u in RR_METRICS if m != "net_rr_us"))


@dataclass
class Limits:
    """What one scale measurement may take: guest RAM reserved up to budget_mib, MemAvailable no
    lower than where it was less the budget, our fds under RLIMIT_NOFILE, the host's tasks under
    90% of pid_max, at most max_instances."""

    budget_mib: int
    max_instances: int = MAX_INSTANCES
    reserved_mib: int | None = None  # per instance (Runner.reserved_mib)

    def __post_init__(self) -> None:
        self.floor_kib = meminfo_kib()["MemAvailable"] - self.budget_mib * 1024

    def reached(self, up: int) -> str | None:
        """Why one more instance may not start with `up` running, or None."""
        if up >= self.max_instances:
            return f"--max-instances {self.max_instances}"
        if self.reserved_mib and (up + 1) * self.reserved_mib > self.budget_mib:
            return f"memory budget: {up + 1} x {self.reserved_mib} MiB guest RAM would pass {self.budget_mib} MiB"
        return self._memory_fell() or self._host_short(1)

    def fits(self, n: int) -> str | None:
        """Why a burst of n cannot be started at all, or None: checked before its clock starts, so
        that between launches only a VM's MemAvailable is read (in_burst)."""
        return too_many(n, self.max_instances, self.reserved_mib, self.budget_mib) or self._host_short(n)

    def in_burst(self, up: int) -> str | None:
        """Between a burst's launches: a VM's MemAvailable check (a createXML's 100 ms dwarfs it);
        nothing for others, whose launch takes a millisecond and whose burst fits() already passed."""
        return self._memory_fell() if self.reserved_mib else None

    def _memory_fell(self) -> str | None:
        if meminfo_kib()["MemAvailable"] < self.floor_kib:
            return f"memory budget: MemAvailable fell by more than {self.budget_mib} MiB"
        return None

    def _host_short(self, more: int) -> str | None:
        """Whether `more` launches would run us out of file descriptors or the host out of pids."""
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        if len(os.listdir("/proc/self/fd")) + more * FDS_PER_INSTANCE > soft:
            return f"file descriptors: {more} more would pass RLIMIT_NOFILE {soft}"
        if host_tasks() + 64 + more > 0.9 * pid_max():
            return "pids: the host's tasks near pid_max"
        return None


def too_many(n: int, max_instances: int, reserved_mib: int | None, budget_mib: int | None) -> str:
    """Why n instances at once are too many for the limits alone, or ""."""
    if n > max_instances:
        return f"{n} at once is over --max-instances {max_instances}"
    if reserved_mib and budget_mib and n * reserved_mib > budget_mib:
        return f"{n} x {reserved_mib} MiB guest RAM is over the memory budget of {budget_mib} MiB"
    return ""


def host_tasks() -> int:
    with open("/proc/loadavg") as f:  # "0.00 0.01 0.05 1/123 4567": running/total tasks
        return int(f.read().split()[3].split("/")[1])


def pid_max() -> int:
    with open("/proc/sys/kernel/pid_max") as f:
        return int(f.read())


def steps_of(text: str, flag: str) -> tuple[int, ...]:
    return tuple(sorted({positive_int(s.strip(), flag) for s in text.split(",")}))


def host_memory_mib(text: str, flag: str) -> int:
    mib, host_mib = parse_size_mib(text), os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") >> 20
    if mib > host_mib:
        raise UsageError(f"{flag} {text}: more than this host's {host_mib} MiB of memory")
    return mib


def up_to_the_cpus(text: str, flag: str) -> int:
    n, cpus = positive_int(text, flag), len(os.sched_getaffinity(0))
    if n > cpus:  # each runs a load meant to keep a CPU busy: more only queue
        raise UsageError(f"{flag} {text}: this host has {cpus} CPUs to run them on; "
                         "more neighbours than CPUs measure the run queue, not interference")
    return n


def a_load(text: str, flag: str) -> str:
    if text not in NEIGHBOUR_LOADS:
        raise UsageError(f"{flag} {text!r}: one of {', '.join(NEIGHBOUR_LOADS)}")
    return text


@dataclass(frozen=True)
class Options:
    concurrency: tuple[int, ...] = field(default=CONCURRENCY, metadata=option(
        "--concurrency", "the burst sizes, e.g. 1,4,16 (default 1,2,4,8,16,32)", steps_of))
    max_instances: int = field(default=MAX_INSTANCES, metadata=option(
        "--max-instances", f"the most instances a burst or fill starts (default {MAX_INSTANCES})", positive_int))
    memory_budget_mib: int | None = field(default=None, metadata=option(
        "--memory-budget", "host memory a scale run may take, e.g. 8G (default: half of what is available); "
        "VMs count their whole guest RAM", host_memory_mib))
    neighbours: int | None = field(default=None, metadata=option(
        "--neighbours", "instances running the load beside the measured one (default: the CPU count)", up_to_the_cpus))
    neighbour_load: str = field(default="cpu", metadata=option(
        "--neighbour-load", f"what the neighbours run: {', '.join(NEIGHBOUR_LOADS)} (default cpu)", a_load))

    def resolved(self) -> Options:
        """The memory budget fixed when the run starts: half of what the host has available then."""
        return self if self.memory_budget_mib is not None else replace(self, memory_budget_mib=default_budget_mib())


def plan(workload, runners: list[str], status: dict, options: Options) -> tuple[list[Step], dict[str, str]]:
    """A burst is a step per --concurrency value, labelled burst-nN, in the runners it fits: not over
    --max-instances, and not over the memory budget (a VM reserves its whole guest RAM)."""
    if not workload.per_n:
        return one_step(workload, runners, status, options)
    steps, not_run = [], {}
    for n in options.concurrency:
        label, fit = f"{workload.name}-n{n}", []
        for name in runners:
            why = too_many(n, options.max_instances, status[name].get("reserved_mib"), options.memory_budget_mib)
            if why:
                not_run[f"{name}/{label}"] = why
            else:
                fit.append(name)
        if fit:
            steps.append(Step(workload, label, fit, {"n": n}))
    return steps, not_run


def measure(runner, spec, workload, iteration, n: int = 1, memory_budget_mib: int | None = None,
            max_instances: int = MAX_INSTANCES, neighbours: int | None = None, neighbour_load: str = "cpu", **_) -> list:
    limits = Limits(memory_budget_mib or default_budget_mib(), max_instances, runner.reserved_mib(spec.envelope))
    if workload.name == "burst":
        return burst(runner, spec, workload, iteration, n, limits)
    if workload.name == "fill":
        return fill(runner, spec, workload, iteration, limits)
    return noisy(runner, spec, workload, iteration, neighbours or len(os.sched_getaffinity(0)), neighbour_load)


def default_budget_mib() -> int:
    """Half of what the host has available now."""
    return meminfo_kib()["MemAvailable"] // 2048


def burst(runner, spec, workload, iteration, n: int, limits: Limits) -> list:
    """n launches back to back from one clock start, then every READY awaited together (one poll
    over all of them, no thread each); each instance's ready_ms is from the common start. Per burst:
    last_ready_ms and launch_rate_s (n over the time to the last READY). Teardown is timed per
    instance, one after another, after all have exited."""
    label = replace(workload, name=f"burst-n{n}")
    failed, per_instance, per_burst = Failure(), [], {}
    with failed.recorded(), ExitStack() as up:
        why = limits.fits(n)
        if why:
            raise MeasurementError(f"not started: {why}")
        instances, specs, arrivals = [], [replace(spec, name=f"{spec.name}-{i}") for i in range(n)], Arrivals()
        t0 = time.monotonic_ns()
        for i, one in enumerate(specs):
            why = limits.in_burst(i)
            if why:
                raise MeasurementError(f"stopped after {i} of {n}: {why}")
            instances.append(up.enter_context(launched(runner, one)))
            arrivals.add(instances[-1])
            arrivals.take()  # one poll over all: an early READY is timed when it comes
        ready = arrivals.wait(spec.timeout_s)
        for instance in instances:
            exited_ok(instance, spec.timeout_s)
        for instance, t_ready in zip(instances, ready, strict=True):
            begun = time.monotonic_ns()
            undisturbed(instance.teardown)
            per_instance.append({"ready_ms": (t_ready - t0) / 1e6, "teardown_ms": (time.monotonic_ns() - begun) / 1e6})
        last = (max(ready) - t0) / 1e6
        per_burst = {"last_ready_ms": last, "launch_rate_s": n / (last / 1e3)}
    if failed.error:
        return samples(runner, label, iteration, {}, failed.error, n=n)
    found = [sample_of(runner, label, iteration, metric, values[metric], n=n)
             for values in per_instance for metric in ("ready_ms", "teardown_ms")]
    return found + [sample_of(runner, label, iteration, metric, value, n=n) for metric, value in per_burst.items()]


def fill(runner, spec, workload, iteration, limits: Limits) -> list:
    """Idle instances started one after another, each kept up, until a limit or the first failure.
    After each: its start_ms (launch to READY), and the host memory in use per instance once it
    has stopped moving (MemTotal - MemAvailable against before the first). What that reading can
    resolve is known once all are torn down: the host's own drift over the same time (the reading
    after against before) plus the settling tolerance, over the count (mem_resolution_mib)."""
    starts: list[float] = []
    used: list[int] = []
    stopped: str | None = ""
    before = settled_used_kib()
    with ExitStack() as up:
        for k in range(1, limits.max_instances + 2):
            stopped = limits.reached(k - 1)
            if stopped:
                break
            t0 = time.monotonic_ns()
            try:
                instance = up.enter_context(launched(runner, replace(spec, name=f"{spec.name}-{k}")))
                t_ready = instance.wait_ready(spec.timeout_s)
            except (MeasurementError, OSError) as exc:
                stopped = f"the first failure, at instance {k}: {exc}"
                break
            starts.append((t_ready - t0) / 1e6)
            used.append(settled_used_kib())
    drift = abs(settled_used_kib() - before)
    found = []
    for k, (start, now) in enumerate(zip(starts, used, strict=True), start=1):
        found += [sample_of(runner, workload, iteration, "start_ms", start, n=k),
                  sample_of(runner, workload, iteration, "mem_per_instance_mib", (now - before) / k / 1024, n=k),
                  sample_of(runner, workload, iteration, "mem_resolution_mib", (SETTLE_KIB + drift) / k / 1024, n=k)]
    reached = len(starts)
    return Found([*found, sample_of(runner, workload, iteration, "instances", reached, n=reached)], note=stopped or "")


def load_argv(load: str) -> tuple[str, ...]:
    """What a neighbour runs, READY first (so that the measurement starts once the load does)."""
    tools = {"cpu": "/usr/bin/stress-ng --temp-path /tmp --cpu 1 --cpu-method matrixprod",
             "membw": "/usr/bin/stress-ng --temp-path /tmp --stream 1 --stream-l3-size 4M",
             "disk": f"/usr/bin/stress-ng --temp-path {SCRATCH} --hdd 1 --hdd-bytes 64M",
             "net": f"/usr/bin/iperf3 --client {SERVER} --port {IPERF_PORT} --time {LOAD_S}"}
    timeout = "" if load == "net" else f" --timeout {LOAD_S}s"
    return ("/bin/sh", "-c", f"echo READY; exec {tools[load]}{timeout}")


def measured_argv(server: bool) -> tuple[str, ...]:
    """The measured instance: stress-ng's CPU rate, then bench-rr's round trips where it has servers."""
    cpu = " ".join(builtin()["cpu"].argv)  # bench/workloads/cpu.toml
    rr = f" && {RR_GUEST_PATH} client {SERVER} {RR_PORT} 2" if server else ""
    return ("/bin/sh", "-c", cpu + rr)


def noisy(runner, spec, workload, iteration, k: int, load: str) -> list:
    """The measured instance alone, then beside k neighbours running the load (the order swapped on
    odd rounds), on equal terms: it runs on the host's last CPU, the neighbours on the others (on
    all of them, on a one-CPU host), each with the run's memory limit or 512 MiB. interference_*:
    the metric with neighbours over the metric alone (rates: under 1 is slower; times: over 1)."""
    server = "server" in runner.provides
    cpus = sorted(os.sched_getaffinity(0))
    memory = spec.envelope.memory_mib or 512
    mine = replace(spec, argv=measured_argv(server), marker=None, timeout_s=120,
                   envelope=Envelope(cpus=1.0, memory_mib=memory, cpuset=(cpus[-1],)))
    theirs = replace(spec, argv=load_argv(load), marker=b"READY", scratch="own" if load == "disk" else None,
                     envelope=Envelope(cpus=float(max(1, len(cpus) - 1)), memory_mib=memory,
                                       cpuset=tuple(cpus[:-1] or cpus)))
    measured = [(m, unit) for m, unit in MEASURED if server or m == "cpu_ops_s"]  # round trips need servers
    metrics = [m for m, _ in measured]
    failed, values = Failure(), {}
    with failed.recorded():
        if load in ("disk", "net") and {"disk": "scratch", "net": "server"}[load] not in runner.provides:
            raise MeasurementError(f"{runner.name} cannot run the {load} load: it provides no "
                                   f"{'scratch storage' if load == 'disk' else 'host-side servers'}")
        order = (False, True) if iteration % 2 == 0 else (True, False)
        found = {busy: one_measured(runner, mine, theirs, k if busy else 0, workload) for busy in order}
        for metric in metrics:
            values[f"{metric}_alone"], values[f"{metric}_beside"] = found[False][metric], found[True][metric]
            values[f"interference_{metric}"] = found[True][metric] / found[False][metric]
    return samples(runner, replace(workload, metrics=neighbour_metrics(measured)), iteration, values, failed.error,
                   n=k + 1)


def one_measured(runner, mine, theirs, k: int, workload) -> dict[str, float]:
    with ExitStack() as up:
        busy = []
        for i in range(k):
            spec = replace(theirs, name=f"{theirs.name}-n{i}")
            if SERVER in " ".join(spec.argv):  # a net load: servers of its own, on ports of its own
                spec = up.enter_context(served(runner, spec, with_servers(workload), slot=i + 1))
            busy.append(up.enter_context(launched(runner, spec)))
        wait_all_ready(busy, theirs.timeout_s)
        with served(runner, mine, with_servers(workload, SERVER in " ".join(mine.argv))) as spec, \
                launched(runner, spec) as instance:
            exited_ok(instance, spec.timeout_s)
            found = parsed(replace(workload, parser="parse_stress_ng_rate", metrics=MEASURED[:1]), instance.output)
            if RR_GUEST_PATH in " ".join(mine.argv):  # unparseable output: a failed sample, as in throughput
                found |= parsed(replace(workload, parser="parse_rr"), instance.output)
        for instance in busy:  # a neighbour that died meanwhile measured nothing beside this one
            if instance.t_exit is not None:
                raise MeasurementError(f"a neighbour's load ended early ({instance.exit_code})")
        return found


def with_servers(workload, wanted: bool = True):
    """The workload with the net workload's host-side servers (bench-rr, iperf3), or with none."""
    return replace(workload, servers=builtin()["net"].servers if wanted else ())


def neighbour_metrics(measured) -> tuple[tuple[str, str], ...]:
    """interference_M: M beside the neighbours over M alone; and both readings, M_alone and M_beside."""
    return (*((f"interference_{m}", "x") for m, _ in measured),
            *((f"{m}_{when}", u) for m, u in measured for when in ("alone", "beside")))


NEIGHBOUR_METRICS = neighbour_metrics(MEASURED)

def headline(df, meta: dict) -> list[dict]:
    """The headline's rows, in absolute numbers: the launch rate at the highest N that every runner of
    the burst reached, and the instance count where each runner's fill stopped. Called by the report
    (parent side), with the run's samples as a DataFrame."""
    from bench.analysis.stats import median_interval
    from bench.analysis.views import fmt_number

    rows = []
    rate = df[df["ok"] & df["workload"].str.match(r"burst-n\d+$") & (df["metric"] == "launch_rate_s")]
    if len(rate):
        n = int(rate.groupby("runner")["n"].max().min())
        cells = {}
        for runner, part in rate[rate["n"] == n].groupby("runner", sort=False):
            low, high = median_interval(part["value"].to_numpy())
            cells[runner] = {"text": f"{fmt_number(part['value'].median())}/s ({fmt_number(low)}–{fmt_number(high)})"}
        rows.append({"label": f"scale/burst-n{n}", "metric": "launch rate (instances/s, at the highest N all reached)",
                     "cells": cells})
    fill = df[df["ok"] & (df["workload"] == "fill") & (df["metric"] == "instances")]
    if len(fill):
        notes = meta.get("rounds", {}).get("fill", {})
        cells = {}
        for runner, part in fill.groupby("runner", sort=False):
            said = notes[runner].get("notes", []) if isinstance(notes.get(runner), dict) else []
            why = "; ".join(dict.fromkeys(said))  # the same limit in every round, said once
            cells[runner] = {"text": f"{int(part['value'].max())}" + (f" (stopped by {why})" if why else "")}
        rows.append({"label": "scale/fill", "metric": "instances up when the fill stopped", "cells": cells})
    return rows


SUITE = Suite(
    name="scale",
    description="many at once: bursts of N launches, filling the host to a limit, noisy neighbours",
    needs_marker=True,
    measure=measure,
    composed=("neighbours",),  # its argv is built here
    min_repeat=3, max_repeat=3, warmup=0,
    plots=("cdf", "scaling", "fill", "interference"),
    order=40,
    Options=Options,
    plan=plan,
    start_rank=2,
    headline=headline,
)
