"""What every suite's measurement shares: launching with a guaranteed teardown, turning what went
wrong into a failed sample, and the samples themselves. Lean: the worker imports it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bench.errors import MeasurementError
from bench.interrupts import held
from bench.spec import LaunchSpec, Sample
from bench.workload import Workload

if TYPE_CHECKING:
    from runners.base import Instance, Runner


def undisturbed(teardown) -> None:
    """Run a teardown to its end even when Ctrl-C arrives meanwhile (see bench.interrupts)."""
    with held():
        teardown()


@contextmanager
def launched(runner: Runner, spec: LaunchSpec) -> Iterator[Instance]:
    """An instance of the runner, torn down on the way out whatever happens. A Ctrl-C during the
    launch is raised once the instance holds what launch made, so that teardown finds it."""
    instance = None
    try:
        with held():
            instance = runner.launch(spec)
        yield instance
    finally:
        if instance is not None:
            undisturbed(instance.teardown)


@dataclass
class Failure:
    """Why a measurement failed, if it did: what a sample's `error` says."""

    error: str = ""

    @contextmanager
    def recorded(self) -> Iterator[None]:
        """A measurement error or a host error ends the measurement, not the run."""
        try:
            yield
        except MeasurementError as exc:
            self.error = str(exc)
        except OSError as exc:
            self.error = f"{type(exc).__name__}: {exc}"


def exited_ok(instance: Instance, timeout_s: float) -> None:
    """Wait for the workload to end; anything but exit 0 fails the measurement, with its output's tail."""
    code = instance.wait_exit(timeout_s)
    if code != 0:
        raise MeasurementError(f"exit code {code}: {tail(instance.output)}")


def tail(output: bytes, limit: int = 300) -> str:
    return output[-limit:].decode(errors="replace").strip()


def samples(runner: Runner, workload: Workload, iteration: int, values: dict[str, float | None], error: str,
            extra: dict[str, tuple[float, str]] | None = None) -> list[Sample]:
    """A sample per declared metric the runner can measure (ok, or failed with the error), then its extras."""
    declared = [(metric, unit, values.get(metric)) for metric, unit in workload.metrics
                if metric not in runner.cannot_measure]
    extras = [(metric, unit, value) for metric, (value, unit) in (extra or {}).items()]
    return [_sample(runner, workload, iteration, metric, unit, value, error) for metric, unit, value in declared + extras]


def _sample(runner, workload, iteration, metric, unit, value, error) -> Sample:
    if value is None and not error:
        error = f"{runner.name} cannot measure {metric} here"
    return Sample(workload.suite, workload.name, runner.name, iteration, metric,
                  float("nan") if value is None else float(value), unit, not error, error)
