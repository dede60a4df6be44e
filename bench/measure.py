"""Measurement of one instance: the startup timeline on the host clock, turned into samples."""

from __future__ import annotations

import time

from bench.errors import MeasurementError
from bench.spec import LaunchSpec, Sample
from bench.workloads import Workload
from runners.base import Runner


def measure_startup(runner: Runner, spec: LaunchSpec, workload: Workload, iteration: int) -> list[Sample]:
    """launch -> READY -> exit -> teardown; ready_ms, exit_ms, teardown_ms and mem_peak_mib."""
    instance, values, extra, error = None, {}, {}, ""
    t_launch = time.monotonic_ns()
    try:
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
            instance.teardown()
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


def measure_throughput(runner: Runner, spec: LaunchSpec, workload: Workload, iteration: int) -> list[Sample]:
    """Run the tool to its end inside the instance and parse its output; a tool that fails, hangs
    or prints something unparseable gives ok=False with its output's tail, and the run goes on."""
    from bench import parsers

    instance, value, error = None, None, ""
    try:
        instance = runner.launch(spec)
        code = instance.wait_exit(spec.timeout_s)
        if code != 0:
            raise MeasurementError(f"exit code {code}: {_tail(instance.output)}")
        value = getattr(parsers, workload.parser)(instance.output.decode(errors="replace"))
    except MeasurementError as exc:
        error = str(exc)
    except ValueError as exc:
        error = f"{exc}: {_tail(instance.output)}"
    except OSError as exc:
        error = f"{type(exc).__name__}: {exc}"
    finally:
        if instance is not None:
            instance.teardown()
    (metric, unit), = workload.metrics
    return [_sample(runner, workload, iteration, metric, unit, value, error)]


MEASURES = {"startup": measure_startup, "throughput": measure_throughput}
