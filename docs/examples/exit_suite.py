"""exit: launch to the exit of a workload that prints no READY marker. A suite is this one file: copied
into bench/suites/, it is found, listed, run, stored and reported like the built-in ones, with its
option (--exit-launches, a flag of `bench run`) and its own rows in the report's headline. Its
workloads are files that name it (true.toml beside it), in bench/workloads/ or given with
--workload-file."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from bench.measure import Failure, exited_ok, launched, samples
from bench.spec import positive_int
from bench.suites import Suite, option


@dataclass(frozen=True)
class Options:
    launches: int = field(default=1, metadata=option(
        "--exit-launches", "launches one after another per sample; the sample is their mean (default 1)", positive_int))


def measure(runner, spec, workload, iteration, launches: int = 1, **_) -> list:
    failed, values = Failure(), {}
    with failed.recorded():
        took = []
        for _ in range(launches):
            t_launch = time.monotonic_ns()
            with launched(runner, spec) as instance:
                exited_ok(instance, spec.timeout_s)
                took.append((instance.t_exit - t_launch) / 1e6)
        values["true_exit_ms"] = sum(took) / len(took)
    return samples(runner, workload, iteration, values, failed.error)


def headline(df, meta: dict) -> list[dict]:
    """The report's rows for this suite: each workload's median exit time per runner, in ms. The report
    passes the run's samples (a pandas DataFrame); the module itself imports no pandas."""
    rows = []
    for workload, part in df[df["ok"]].groupby("workload"):
        medians = part.groupby("runner")["value"].median()
        rows.append({"label": f"exit/{workload}", "metric": f"launch to exit, {meta['exit']['launches']} at a time (ms)",
                     "cells": {runner: {"text": f"{value:.2f} ms"} for runner, value in medians.items()}})
    return rows


SUITE = Suite(
    name="exit",
    description="launch to the exit of a command",
    measure=measure,
    metrics=(("true_exit_ms", "ms"),),  # what measure() gives, for a workload file that names no metrics
    min_repeat=3, max_repeat=10, warmup=1,
    order=90,
    Options=Options,
    title="Exit",
    headline=headline,
)
