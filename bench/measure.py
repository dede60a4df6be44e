"""What every suite's measurement shares: launching with a guaranteed teardown, turning what went
wrong into a failed sample, and the samples themselves. Lean: the worker imports it."""

from __future__ import annotations

import select
import time
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


class Found(list):
    """A measurement's samples, and what the run should record beside them (why a fill stopped)."""

    def __init__(self, samples=(), note: str = "") -> None:
        super().__init__(samples)
        self.note = note


def samples(runner: Runner, workload: Workload, iteration: int, values: dict[str, float | None], error: str,
            extra: dict[str, tuple[float, str]] | None = None, n: int = 1) -> list[Sample]:
    """A sample per declared metric the runner can measure (ok, or failed with the error), then its extras."""
    declared = [(metric, unit, values.get(metric)) for metric, unit in workload.metrics
                if metric not in runner.cannot_measure]
    extras = [(metric, unit, value) for metric, (value, unit) in (extra or {}).items()]
    return [_sample(runner, workload, iteration, metric, unit, value, error, n) for metric, unit, value in declared + extras]


def sample_of(runner: Runner, workload: Workload, iteration: int, metric: str, value: float, n: int = 1) -> Sample:
    """One ok sample of a declared metric (a suite that gives several values of it per round)."""
    unit = dict(workload.metrics)[metric]
    return _sample(runner, workload, iteration, metric, unit, value, "", n)


def wait_all_ready(instances: list[Instance], timeout_s: float) -> list[int]:
    """Each instance's READY arrival time, all awaited together: one poll over every instance's
    progress fds, each instance asked only when one of its fds has something (no thread each, and
    no instance's READY read late because another was being waited for). The first instance that
    fails or times out raises MeasurementError."""
    deadline = time.monotonic() + timeout_s
    poller, owner = select.poll(), {}

    def watch(instance) -> None:
        for fd in instance.progress_fds():
            poller.register(fd, select.POLLIN | select.POLLPRI)
            owner[fd] = instance

    def unwatch(instance) -> None:
        for fd in [fd for fd, i in owner.items() if i is instance]:
            poller.unregister(fd)
            del owner[fd]

    alone = [i for i in instances if not i.progress_fds()]
    for instance in instances:
        if instance.progress_fds() and instance.poll_ready() is None:
            watch(instance)
    while owner:
        left = deadline - time.monotonic()
        if left <= 0:
            raise MeasurementError(f"{len(set(owner.values()))} of {len(instances)} not READY within {timeout_s:g} s")
        for fd, _ in poller.poll(max(1, int(left * 1000))):
            instance = owner.get(fd)
            if instance is None:
                continue  # its other fd already answered in this round
            unwatch(instance)
            if instance.poll_ready() is None:
                watch(instance)  # its fds again: the output's end may have gone
    for instance in alone:
        instance.wait_ready(max(0.0, deadline - time.monotonic()))
    return [instance.t_ready for instance in instances]


def _sample(runner, workload, iteration, metric, unit, value, error, n: int = 1) -> Sample:
    if value is None and not error:
        error = f"{runner.name} cannot measure {metric} here"
    return Sample(workload.suite, workload.name, runner.name, iteration, metric,
                  float("nan") if value is None else float(value), unit, not error, error, n)
