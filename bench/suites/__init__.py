"""Suites: one module each in this package, each declaring a SUITE. Adding a suite is adding a file.

A suite says how one sample of its workloads (the files in bench/workloads/ that name it) is measured, how many rounds it gets by
default, the envelope it runs in when --cpus/--memory are not given, its options (flags of `bench
run`, recorded in meta.json under the suite's name), how a workload becomes steps, and what its
report section holds. The command line, the run and the report ask the suites; they name none.
Lean: the worker imports every suite module, so none imports pandas or plotting at the top (a
report hook imports what it needs when the report calls it, which the worker never does).
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # for annotations only: bench.workload checks a workload file against the suites
    from bench.workload import Workload


# Plots a suite's report section can ask for beyond a distribution per metric (bench.analysis.report.PLOTS).
PLOTS = ("phases", "mem_peak", "cdf", "scaling", "fill", "interference")


def option(flag: str, help: str, parse: Callable[[str, str], Any]) -> dict:
    """A suite option's field metadata: its `bench run` flag, its help, and parse(text, flag) -> value
    (UsageError, one line, on bad input). Declared as a dataclass field, like Runner.Options':
    `concurrency: tuple[int, ...] = field(default=(1, 2), metadata=option("--concurrency", ...))`."""
    return {"flag": flag, "help": help, "parse": parse}


@dataclass(frozen=True)
class Step:
    """One workload as the run measures it: a suite's plan() may make several of one workload (the
    scale suite's burst, once per --concurrency value, labelled NAME-nN)."""

    workload: Workload
    label: str  # what its samples and rounds are filed under: the workload's name, or NAME-nN
    runners: list[str]
    extra: dict = field(default_factory=dict)  # told to the measurement beside the suite's options


def one_step(workload: Workload, runners: list[str], status: dict, options: Any) -> tuple[list[Step], dict[str, str]]:
    """The default plan: the workload once, in every runner that can run it."""
    return [Step(workload, workload.name, runners)], {}


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    # (runner, spec, workload, iteration, **params) -> list[Sample]; params: its options' fields, the
    # step's extra (a burst's n) and the run's cache state
    measure: Callable
    # Rounds per runner when --repeat is not given (bench.run.Rounds): at least min_repeat, then more
    # until --precision is reached, up to max_repeat (or the runner's own, lower, max_repeat).
    min_repeat: int = 3
    max_repeat: int = 10
    warmup: int = 1
    # The envelope when --cpus/--memory are not given: {"cpus": 1.0, "memory_mib": 512}.
    envelope: dict = field(default_factory=dict)
    plots: tuple[str, ...] = ()  # of PLOTS, drawn before the distributions
    order: int = 50  # where it runs in --suite all, and where its sections sit in the report
    cold_start: bool = False  # startup-like: with --cache cold, the page cache is dropped before each sample
    # What a workload file of this suite may leave out or must give: the metrics its measure()
    # gives when the file names none; whether each metric is read from the workload's output (then
    # each needs a parser, a regex or a JSON path); workloads whose argv measure() builds itself.
    metrics: tuple[tuple[str, str], ...] = ()
    parses_output: bool = False
    composed: tuple[str, ...] = ()
    # Without --image, its workloads run in this image instead of ours: (cache_dir, say) -> (rootfs,
    # digest, source), the tree to which our tools are added in a layer (the app suite's Debian image).
    image: Callable[..., tuple[Path, str, str]] | None = None
    needs_marker: bool = False  # its workloads print a marker once up (a service of the app suite need not)
    # Its options: a frozen dataclass whose fields carry option(...) metadata, None for none. An
    # optional resolved(self) fills in what depends on the host when the run starts.
    Options: type | None = None
    # (workload, runners able to run it, the runners' status, options) -> (steps, {"runner/label": why not})
    plan: Callable[..., tuple[list[Step], dict[str, str]]] = one_step
    # Its report section: the title, and headline(df, meta) -> rows of its own for the headline table,
    # in place of the generic median-and-ratio rows of its metrics (None: the generic rows).
    title: str = ""
    # Whose one-instance ready_ms orders the report's runners by what they cost to start: the suite
    # of the run with the lowest rank above 0 (startup's, else a scale run's burst-n1).
    start_rank: int = 0
    headline: Callable[..., list[dict]] | None = None

    def __post_init__(self) -> None:
        if not self.title:
            object.__setattr__(self, "title", self.name.capitalize())
        unknown = [p for p in self.plots if p not in PLOTS]
        if unknown:
            raise ValueError(f"suite {self.name}: unknown plots {unknown}")

    def settings(self, given: dict) -> Any:
        """Its options as given on the command line ({field: typed value}), defaults elsewhere, then
        resolved against the host; None for a suite with none."""
        if self.Options is None:
            return None
        settings = self.Options(**given)
        return settings.resolved() if hasattr(settings, "resolved") else settings

    def defaults(self) -> dict:
        return {"min_repeat": self.min_repeat, "max_repeat": self.max_repeat, "warmup": self.warmup}


@functools.cache
def suites() -> dict[str, Suite]:
    """Every suite in this package, in run order."""
    found = []
    for path in sorted(Path(__file__).parent.glob("[!_]*.py")):
        module = importlib.import_module(f"{__name__}.{path.stem}")
        if not isinstance(getattr(module, "SUITE", None), Suite):
            raise TypeError(f"{path} declares no SUITE = Suite(...)")
        found.append(module.SUITE)
    return {s.name: s for s in sorted(found, key=lambda s: (s.order, s.name))}
