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
from bench.checks import hostinfo
from bench.checks.verify import last_verdict
from bench.client import WorkerClient, WorkerDied
from bench.errors import MeasurementError, UsageError
from bench.images.image import build_image
from bench.images.user_image import build_user_image
from bench.options import convert
from bench.registry import registered, runner_name
from bench.schedule import Schedule, Turn
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
    journal = store.Journal(opts.results_dir, run_id)
    recorder, schedule = Recorder(journal), Schedule([], opts)
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
            schedule = Schedule(plan, opts)
            measure_all(client, schedule, recorder, opts, run_id, console, settings)
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
        "rounds": schedule.as_meta(),
        "warnings": runner_warnings(recorder.samples, names), "incomplete": bool(interrupted or died),
        **({"interrupted_by": interrupted.name} if interrupted else {}), **({"worker_died": died} if died else {}),
    })
    stopped = f"interrupted by {interrupted.name}" if interrupted else died
    code = 128 + interrupted if interrupted else 1
    samples = recorder.samples
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
                why = [status[name].get("lacks", {}).get(m) for m in missing]
                not_run[f"{name}/{w.name}"] = "; ".join(filter(None, why)) or (
                    f"{name} does not provide {' or '.join(NEED_WORDS[m] for m in missing)}")
            else:
                able.append(name)
        if able:
            suite = suites()[w.suite]
            steps, left_out = suite.plan(w, able, status, (settings or {}).get(w.suite) or suite.settings({}))
            plan += steps
            not_run |= left_out
    return plan, not_run


class Recorder:
    """What the run keeps of each reply: its samples, journalled as they come so that an interrupted
    run keeps them; per runner and step, the values of the declared metrics and the failures that
    decide its rounds (Schedule asks so_far), and what the measurement said of itself (a fill's limit)."""

    def __init__(self, journal: store.Journal) -> None:
        self.journal = journal
        self.samples: list[dict] = []
        self._values: dict[tuple[str, str], dict[str, list[float]]] = {}
        self._failed: dict[tuple[str, str], int] = {}

    def record(self, turn: Turn, reply: dict) -> None:
        if turn.round < 0:  # a warm-up round: measured, not kept
            return
        turn.rounds.n += 1
        self.samples.extend(reply["samples"])
        self.journal.add(reply["samples"])
        if reply.get("note"):
            turn.rounds.notes.append(reply["note"])
        key, declared = (turn.step.label, turn.runner), {metric for metric, _ in turn.step.workload.metrics}
        values = self._values.setdefault(key, {})
        for sample in reply["samples"]:  # a runner's extra metrics are diagnostics
            if sample["ok"] and sample["metric"] in declared:
                values.setdefault(sample["metric"], []).append(sample["value"])
            elif not sample["ok"]:
                self._failed[key] = self._failed.get(key, 0) + 1

    def so_far(self, label: str, runner: str) -> tuple[dict[str, list[float]], int]:
        """The declared metrics' values and the count of failed samples of one runner in one step."""
        return self._values.get((label, runner), {}), self._failed.get((label, runner), 0)


def measure_all(client: WorkerClient, schedule: Schedule, recorder: Recorder, opts: RunOptions, run_id: str,
                console: Console, settings: dict) -> None:
    """Each turn of the schedule measured by the worker and recorded, under a progress bar whose
    total shrinks as runners reach their precision early."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("eta"), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("measuring", total=schedule.total)
        for n, turn in enumerate(schedule.turns(recorder.so_far), 1):
            progress.update(task, total=schedule.total, description=f"{turn.step.workload.suite}/{turn.step.label} "
                            f"{turn.runner} " + ("(warm-up)" if turn.round < 0 else f"round {turn.round + 1}"))
            reply = client.request(op="measure", suite=turn.step.workload.suite, workload=turn.step.workload.name,
                                   runner=turn.runner, iteration=turn.round, name=f"bench-{run_id}-{n}",
                                   params=params(turn.step, opts, settings))
            recorder.record(turn, reply)
            progress.advance(task)


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
