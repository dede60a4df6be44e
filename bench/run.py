"""`bench run`: build the image, drive the lean worker round by round, store, report."""

from __future__ import annotations

import os
import signal
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from bench.analysis import store
from bench.analysis.stats import interval_pct
from bench.checks import hostinfo
from bench.checks.verify import last_verdict
from bench.client import WorkerClient, WorkerDied
from bench.errors import MeasurementError, UsageError
from bench.images.image import build_image
from bench.images.user_image import build_user_image
from bench.options import convert
from bench.registry import registered
from bench.spec import Envelope
from bench.suites import Step, suites
from bench.workload import Workload, select

DEFAULT_PRECISION = 0.05


@dataclass(frozen=True)
class RunOptions:
    suite: str
    runners: str | None
    workloads: str | None
    repeat: int | None  # forces this many rounds; None: rounds until --precision is reached
    warmup: int | None
    envelope: Envelope
    results_dir: Path
    reports_dir: Path
    report: bool
    cache_dir: Path
    workload_files: tuple[Path, ...] = ()  # --workload-file: workloads of the user's own
    image: str | None = None  # --image: a directory, an image archive or a Docker image name
    options: dict = field(default_factory=dict)  # runner -> {option: value}
    suite_options: dict = field(default_factory=dict)  # suite -> {option: typed value}, as given (Suite.Options)
    precision: float = DEFAULT_PRECISION  # the median's 95% interval within ± this share of it
    max_repeat: int | None = None  # None: the suite's and the runner's own limits
    cache: str = "warm"  # "cold": the page cache is dropped before each sample of a startup-like suite


def choose_runners(arg: str | None) -> list[str] | None:
    """The runners named by --runners (None: every available one); UsageError for unknown names.
    A variant is a runner with options of its own, NAME:KEY=VALUE[:KEY=VALUE], measured beside the
    plain one in the same run (an A/B in one run: container,container:seccomp=none)."""
    known = sorted(registered())
    if arg is None:
        return None
    wanted = [r.strip() for r in arg.split(",") if r.strip()]
    unknown = [r for r in wanted if runner_name(r) not in known]
    if unknown or not wanted:
        raise UsageError(f"unknown runner {','.join(unknown) or arg!r}; choose from: {', '.join(known)}")
    for label in wanted:
        variant_options(label)  # a malformed variant is bad usage before anything runs
    return list(dict.fromkeys(wanted))


def runner_name(label: str) -> str:
    """The registered runner behind a label: "container:seccomp=none" -> "container"."""
    return label.split(":", 1)[0]


def variant_options(label: str) -> dict[str, str]:
    options = {}
    for item in label.split(":")[1:]:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"bad runner variant {label!r}: NAME:KEY=VALUE[:KEY=VALUE]")
        options[key] = value
    return options


def runner_options(labels, given: dict) -> dict:
    """Per label: the typed options of --option NAME.KEY=VALUE, then the variant's own on top."""
    unknown = sorted(set(given) - {runner_name(label) for label in labels})
    if unknown:
        raise UsageError(f"--option for a runner not in this run: {', '.join(unknown)}")
    found = {}
    for label in labels:
        name = runner_name(label)
        raw = {**given.get(name, {}), **variant_options(label)}
        if raw:
            found[label] = convert(name, registered()[name].loaded, raw)
    return found


@dataclass
class Rounds:
    """How many rounds one runner gets for one workload, and why they stopped: --repeat N forces N;
    otherwise rounds are added until every metric's median has its 95% interval within ±precision,
    from min_repeat on, up to max_repeat (pyperf and hyperfine decide by the data too)."""

    warmup: int
    min_repeat: int
    max_repeat: int
    precision: float | None  # None with a forced --repeat
    n: int = 0
    stopped: str = ""
    widest: float = float("nan")  # the widest interval, ± share of its median, when it stopped
    forced_by: str = "--repeat"  # what fixed the rounds, without a precision
    notes: list[str] = field(default_factory=list)  # what the measurements said of themselves (a fill's limit)

    def done(self, values: dict[str, list[float]], failed: int) -> bool:
        """Called after each measured round with the runner's values so far, per metric."""
        if self.n < self.min_repeat:
            return False
        widths = [interval_pct(v) for v in values.values() if v]
        self.widest = max(widths, default=float("nan"))
        if self.precision is None:
            self.stopped = f"{self.forced_by} {self.n}"
        elif not widths and failed:
            self.stopped = f"every sample failed in {self.n} rounds"
        elif self.widest <= self.precision:
            self.stopped = f"precision reached: every median within ±{self.widest:.1%} (95%)"
        elif self.n >= self.max_repeat:
            self.stopped = f"max-repeat {self.max_repeat} reached, widest interval ±{self.widest:.1%}"
        return bool(self.stopped)

    def as_meta(self) -> dict:
        return {"n": self.n, "warmup": self.warmup, "stopped": self.stopped,
                "widest_interval_pct": None if self.widest != self.widest else round(100 * self.widest, 2),
                **({"notes": self.notes} if self.notes else {})}


def rounds(workload: Workload, runner: str, opts: RunOptions) -> Rounds:
    defaults = suites()[workload.suite].defaults()
    warmup = opts.warmup if opts.warmup is not None else defaults["warmup"]
    if opts.repeat is not None:
        return Rounds(warmup, opts.repeat, opts.repeat, None)
    if workload.repeat is not None:
        return Rounds(warmup, workload.repeat, workload.repeat, None, forced_by="the workload's own rounds:")
    limit = opts.max_repeat or min(defaults["max_repeat"], registered()[runner_name(runner)].loaded.max_repeat)
    return Rounds(warmup, min(defaults["min_repeat"], limit), limit, opts.precision)


def active_runners(status: dict, wanted: list[str] | None) -> list[str]:
    if wanted is None:
        return [name for name, s in status.items() if s["available"]]
    missing = [f"{n} ({status[n]['reason']})" for n in wanted if not status[n]["available"]]
    if missing:
        raise UsageError(f"runner not available here: {'; '.join(missing)}")
    return wanted


def suite_envelope(envelope: Envelope, workloads: list[Workload]) -> Envelope:
    """--cpus/--memory as given; otherwise the defaults of the suites in this run (throughput: 1, 512M)."""
    defaults: dict = {}
    for w in workloads:
        defaults.update(suites()[w.suite].envelope)
    return replace(envelope, cpus=envelope.cpus if envelope.cpus is not None else defaults.get("cpus"),
                   memory_mib=envelope.memory_mib if envelope.memory_mib is not None else defaults.get("memory_mib")
                   ).resolved()


def writable_results_dir(path: Path) -> None:
    """Checked before anything is measured (and without creating anything): a run that could not
    be stored should not start."""
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"results dir {path}: {existing} is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"results dir {path}: {existing} is not writable")


class _Terminated(KeyboardInterrupt):
    """SIGTERM, handled as Ctrl-C is: stop, tear down, keep what was measured."""


def _on_sigterm(signum, frame):
    raise _Terminated


def run(opts: RunOptions, console: Console) -> tuple[int, Path | None]:
    """Returns (exit code, run dir). Interrupted (SIGINT, SIGTERM) while measuring, the samples
    completed so far are stored as a run marked incomplete, and the code is 128 + the signal."""
    from bench.checks.clean import run_lock

    workloads = select(opts.suite, opts.workloads, opts.workload_files)
    opts = replace(opts, envelope=suite_envelope(opts.envelope, workloads))
    wanted = choose_runners(opts.runners)
    writable_results_dir(opts.results_dir)
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    run_id = store.new_run_id()
    lock = run_lock(exclusive=False)  # `bench clean` waits for no run
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return _run(opts, console, workloads, wanted, started, run_id)
    finally:
        signal.signal(signal.SIGTERM, previous)
        os.close(lock)


def _run(opts, console, workloads, wanted, started, run_id) -> tuple[int, Path | None]:
    settings = suite_settings(workloads, opts.suite_options)
    image = run_image(opts, workloads, console)
    client = WorkerClient()
    samples: list[dict] = []
    rounds_meta: dict = {}
    journal = store.Journal(opts.results_dir, run_id)
    interrupted, died = None, None
    try:
        targets = {n: registered()[runner_name(n)].target for n in (wanted or registered())}
        opts = replace(opts, options=runner_options(targets, opts.options))
        with console.status("preparing the runners (a VM's kernel and initramfs, the KVM probe)"):
            status = client.init(targets, image, opts.envelope, opts.options, opts.cache_dir, workloads)
        names = active_runners(status, wanted)
        plan, not_run = plan_runs(workloads, names, status, settings)
        if not plan:
            raise UsageError(f"nothing to run: {left_out_text(not_run)}")
        meta = head_meta(opts, workloads, image, status, names, not_run, started, run_id, settings)
        journal.begin(meta)
        try:
            measure_all(client, plan, opts, run_id, console, samples, rounds_meta, journal, settings)
        except KeyboardInterrupt as exc:
            interrupted = signal.SIGTERM if isinstance(exc, _Terminated) else signal.SIGINT
            client.interrupt()  # the worker tears its current instance down, then exits
        except WorkerDied as exc:  # killed, or crashed: what it measured until then is kept
            died = str(exc)
    finally:
        client.close()
        journal.close()
    meta.update({
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "rounds": {w: {n: r.as_meta() for n, r in p.items()} for w, p in rounds_meta.items()},
        "warnings": runner_warnings(samples, names), "incomplete": bool(interrupted or died),
        **({"interrupted_by": interrupted.name} if interrupted else {}), **({"worker_died": died} if died else {}),
    })
    stopped = f"interrupted by {interrupted.name}" if interrupted else died
    code = 128 + interrupted if interrupted else 1
    if stopped and not samples:
        journal.drop()
        if died:
            raise MeasurementError(f"{died} before any sample was complete; nothing stored")
        console.print(f"bench: {stopped} before any sample was complete; nothing stored")
        return code, None
    run_dir = store.write_run(opts.results_dir, run_id, samples, meta)  # UsageError, no half run, if it cannot
    if stopped:
        console.print(f"bench: {stopped}: {len(samples)} samples stored as an incomplete run")
        return code, run_dir
    failed = sum(not s["ok"] for s in samples)
    return (1 if failed else 0), run_dir


def suite_settings(workloads: list[Workload], given: dict) -> dict:
    """The options of each suite of the run that has any (Suite.settings): typed, checked, resolved."""
    found = {}
    for name in dict.fromkeys(w.suite for w in workloads):
        settings = suites()[name].settings(given.get(name, {}))
        if settings is not None:
            found[name] = settings
    return found


def head_meta(opts, workloads, image, status, names, not_run, started, run_id, settings) -> dict:
    """meta.json as the run knows it when it begins measuring (the journal keeps it beside the
    samples); _run adds the end, the rounds and the warnings."""
    return {
        "schema_version": store.SCHEMA_VERSION, "run_id": run_id, "started": started,
        "command": " ".join(["bench", *sys.argv[1:]]), "suites": sorted({w.suite for w in workloads}),
        "workloads": [w.name for w in workloads], "envelope": asdict(opts.envelope),
        "workload_files": {w.name: {"origin": w.origin, "sha256": w.digest} for w in workloads if not w.builtin},
        "precision_pct": None if opts.repeat else round(100 * opts.precision, 3),
        "image": {"digest": image.digest, "rootfs": str(image.rootfs), "source": image.source,
                  **({"base_digest": image.base_digest} if image.base_digest else {})},
        "host": hostinfo.fingerprint(), "versions": hostinfo.versions(),
        "runners": {n: {"kind": registered()[runner_name(n)].loaded.kind,
                        "family": registered()[runner_name(n)].loaded.family,
                        **({"options": opts.options[n]} if n in opts.options else {}),
                        "envelope": status[n]["enforced"], **status[n]["config"]} for n in names},
        "skipped_runners": {n: s["reason"] for n, s in status.items() if n not in names},
        "not_run": not_run, **{suite: asdict(s) for suite, s in settings.items()},
        "cache": cache_meta(opts.cache, workloads), "verify": last_verdict(opts.cache_dir),
    }


def run_image(opts: RunOptions, workloads: list[Workload], console: Console):
    """--image's; else the app image (with our layer) when a suite of the run asks for it; else ours."""
    if opts.image:
        with console.status(f"preparing the image {opts.image}"):
            return build_user_image(opts.image, opts.cache_dir, say=lambda text: console.print(text, soft_wrap=True))
    builders = list(dict.fromkeys(image for w in workloads if (image := suites()[w.suite].image)))
    if len(builders) > 1:
        raise UsageError("these suites each run in an image of their own: run them apart, or give one --image")
    if builders:
        rootfs, digest, source = builders[0](opts.cache_dir, console.print)
        with console.status(f"adding our tools to {source}"):
            return build_user_image(str(rootfs), opts.cache_dir, known=(digest, source))
    with console.status("building the guest image"):
        return build_image(opts.cache_dir)


def params(step: Step, opts: RunOptions, settings: dict) -> dict:
    """What one measurement is told: its suite's options, the step's own (a burst's n), the cache state."""
    suite = step.workload.suite
    return {**(asdict(settings[suite]) if suite in settings else {}), **step.extra, "cache": opts.cache}


def cache_meta(state: str, workloads: list[Workload]) -> dict:
    """meta.json's page-cache record: warm, or cold and the suites whose samples it applied to."""
    if state != "cold":
        return {"state": state}
    return {"state": state, "dropped_before": sorted({w.suite for w in workloads if suites()[w.suite].cold_start})}


def left_out_text(not_run: dict[str, str]) -> str:
    """Every step left out, in one line, the same reasons said once: what `bench run` exits 2 with."""
    by_reason: dict[str, list[str]] = {}
    for step, why in not_run.items():
        by_reason.setdefault(why, []).append(step)
    if not by_reason:
        return "no workload selected"
    return "; ".join(f"{', '.join(steps)}: {why}" for why, steps in by_reason.items())


NEED_WORDS = {"scratch": "a scratch directory or disk", "server": "a network path to host-side servers"}


def plan_runs(workloads: list[Workload], names: list[str], status: dict, settings: dict | None = None
              ) -> tuple[list[Step], dict[str, str]]:
    """The steps, each with the runners that can run it, and {"runner/label": why not} for the others:
    a runner that lacks what a workload needs, or what the workload's suite leaves out (Suite.plan)."""
    plan, not_run = [], {}
    for w in workloads:
        able = []
        for name in names:
            missing = sorted(w.needs() - set(status[name].get("provides", ())))
            if missing:
                not_run[f"{name}/{w.name}"] = f"{name} does not provide {' or '.join(NEED_WORDS[m] for m in missing)}"
            else:
                able.append(name)
        if able:
            suite = suites()[w.suite]
            steps, left_out = suite.plan(w, able, status, (settings or {}).get(w.suite) or suite.settings({}))
            plan += steps
            not_run |= left_out
    return plan, not_run


def measure_all(client, plan, opts, run_id, console, samples: list[dict], rounds_meta: dict, journal, settings) -> None:
    """Round-robin over the runners still measuring, the order reversed every other round, so that
    drift on the host hits them alike; a runner leaves once its Rounds are done. Samples are kept (and
    journalled) as they complete, so that an interrupted run keeps them. rounds_meta gets why each
    runner stopped."""
    todo = [(step, {name: rounds(step.workload, name, opts) for name in step.runners}) for step in plan]
    total = sum(r.warmup + r.max_repeat for _, plans in todo for r in plans.values())
    n = 0
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("eta"), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("measuring", total=total)
        for step, plans in todo:
            workload = step.workload
            rounds_meta[step.label] = plans
            values: dict[str, dict[str, list[float]]] = {name: {} for name in plans}
            declared = {metric for metric, _ in workload.metrics}
            failed = dict.fromkeys(plans, 0)
            active = list(plans)
            rnd = -max(r.warmup for r in plans.values())
            while active:
                for name in round_order(active, rnd):
                    r = plans[name]
                    if rnd < -r.warmup:
                        continue
                    n += 1
                    progress.update(task, description=f"{workload.suite}/{step.label} {name} "
                                    + ("(warm-up)" if rnd < 0 else f"round {rnd + 1}"))
                    reply = client.request(op="measure", suite=workload.suite, workload=workload.name,
                                           runner=name, iteration=rnd, name=f"bench-{run_id}-{n}",
                                           params=params(step, opts, settings))
                    if rnd >= 0:
                        r.n += 1
                        samples.extend(reply["samples"])
                        journal.add(reply["samples"])
                        if reply.get("note"):
                            r.notes.append(reply["note"])
                        for sample in reply["samples"]:  # a runner's extra metrics are diagnostics
                            if sample["ok"] and sample["metric"] in declared:
                                values[name].setdefault(sample["metric"], []).append(sample["value"])
                            elif not sample["ok"]:
                                failed[name] += 1
                    progress.advance(task)
                rnd += 1
                for name in [a for a in active if rnd > 0 and plans[a].done(values[a], failed[a])]:
                    active.remove(name)
                    total -= plans[name].max_repeat - plans[name].n
                    progress.update(task, total=total)


def round_order(names: list[str], rnd: int) -> list[str]:
    """The round's order: as given, then reversed, alternately (ABBA), so that each runner follows
    each other as often as it precedes it. A VM started right after another VM's teardown ran 10 to
    30% slower here (the host still frees the last guest's memory), which a fixed order charged to
    one runner alone."""
    return list(names) if rnd % 2 == 0 else names[::-1]


def runner_warnings(samples: list[dict], names: list[str]) -> list[str]:
    """What each runner says a reader must know about its numbers in this run (Runner.warnings)."""
    import statistics

    found = []
    for name in names:
        by_metric: dict[str, list[float]] = {}
        for s in samples:
            if s["runner"] == name and s["ok"]:
                by_metric.setdefault(s["metric"], []).append(s["value"])
        found += registered()[runner_name(name)].loaded.warnings({m: statistics.median(v) for m, v in by_metric.items()})
    return found
