"""startup: how long an environment takes to come up, run a probe and go away, on the host clock."""

from __future__ import annotations

import time

from bench.measure import Failure, exited_ok, launched, samples
from bench.suites import Suite

METRICS = (("ready_ms", "ms"), ("exit_ms", "ms"), ("teardown_ms", "ms"), ("mem_peak_mib", "MiB"))


def measure(runner, spec, workload, iteration, **_) -> list:
    """launch -> READY -> exit -> teardown; ready_ms, exit_ms, teardown_ms and mem_peak_mib, plus
    what the instance measured itself (extra_metrics)."""
    failed, values, extra = Failure(), {}, {}
    t_launch = time.monotonic_ns()
    with failed.recorded(), launched(runner, spec) as instance:
        t_ready = instance.wait_ready(spec.timeout_s)
        t_exit = exited_ok(instance, spec.timeout_s)
        values = {"ready_ms": (t_ready - t_launch) / 1e6, "exit_ms": (t_exit - t_launch) / 1e6,
                  "mem_peak_mib": instance.mem_peak_mib()}  # before teardown removes what holds it
        extra = instance.extra_metrics()
    if not failed.error:
        values["teardown_ms"] = (time.monotonic_ns() - t_exit) / 1e6
    return samples(runner, workload, iteration, values, failed.error, extra)


SUITE = Suite(
    name="startup",
    title="Start",
    description="launch to READY, to exit, and teardown, per runner",
    needs_marker=True,
    measure=measure,
    metrics=METRICS,  # a workload file of this suite may leave its metrics out
    # Six is the fewest samples whose order statistics bound a 95% interval of the median.
    min_repeat=6, max_repeat=30, warmup=1,
    plots=("phases", "mem_peak"),
    start_rank=1,
    order=10,
    cold_start=True,
)
