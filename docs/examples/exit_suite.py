"""exit: launch to the exit of /bin/true, with no READY marker. A suite in one file: copied into
bench/suites/ it is found, listed, run, stored and reported like the built-in ones."""

from __future__ import annotations

import time

from bench.measure import Failure, exited_ok, launched, samples
from bench.suites import Suite
from bench.workload import Workload


def measure(runner, spec, workload, iteration, **_) -> list:
    failed, values = Failure(), {}
    t_launch = time.monotonic_ns()
    with failed.recorded(), launched(runner, spec) as instance:
        exited_ok(instance, spec.timeout_s)
        values["true_exit_ms"] = (instance.t_exit - t_launch) / 1e6
    return samples(runner, workload, iteration, values, failed.error)


SUITE = Suite(
    name="exit",
    description="launch to the exit of /bin/true",
    workloads=(Workload("true", "exit", ("/bin/true",), "busybox true", (("true_exit_ms", "ms"),)),),
    measure=measure,
    min_repeat=3, max_repeat=10, warmup=1,
    order=90,
)
