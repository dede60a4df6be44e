"""Suites: one module each in this package, each declaring a SUITE. Adding a suite is adding a file.

A suite says how one sample of its workloads (the files in bench/workloads/ that name it) is measured, how many rounds it gets by
default, the envelope it runs in when --cpus/--memory are not given, and what its report section
draws. Lean: the worker imports every suite module, so none imports pandas or plotting at the top.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


# Plots a suite's report section can ask for beyond a distribution per metric (bench.analysis.report.PLOTS).
PLOTS = ("phases", "memory", "cdf", "scaling", "fill", "interference")


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    # (runner, spec, workload, iteration, **params) -> list[Sample]; params: run options such as density
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
    image: str | None = None  # "app": without --image, its workloads run in the app image (bench.images.app_image)
    needs_marker: bool = False  # its workloads print a marker once up (a service of the app suite need not)

    def __post_init__(self) -> None:
        unknown = [p for p in self.plots if p not in PLOTS]
        if unknown:
            raise ValueError(f"suite {self.name}: unknown plots {unknown}")

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
