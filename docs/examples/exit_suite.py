"""exit: launch to the exit of a workload that prints no READY marker. A suite is this file and its
workloads' files (true.toml beside it): copied into bench/suites/ and bench/workloads/, they are found,
listed, run, stored and reported like the built-in ones."""

from __future__ import annotations

import time

from bench.measure import Failure, exited_ok, launched, samples
from bench.suites import Suite


def measure(runner, spec, workload, iteration, **_) -> list:
    failed, values = Failure(), {}
    t_launch = time.monotonic_ns()
    with failed.recorded(), launched(runner, spec) as instance:
        exited_ok(instance, spec.timeout_s)
        values["true_exit_ms"] = (instance.t_exit - t_launch) / 1e6
    return samples(runner, workload, iteration, values, failed.error)


SUITE = Suite(
    name="exit",
    description="launch to the exit of a command",
    measure=measure,
    metrics=(("true_exit_ms", "ms"),),  # what measure() gives, for a workload file that names no metrics
    min_repeat=3, max_repeat=10, warmup=1,
    order=90,
)
