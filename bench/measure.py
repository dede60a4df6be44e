"""What every suite's measurement shares: launching with a guaranteed teardown, turning what went
wrong into a failed sample, and the samples themselves. Lean: the worker imports it."""

from __future__ import annotations

import select
import time
from collections.abc import Iterator, Mapping
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


def exited_ok(instance: Instance, timeout_s: float) -> int:
    """Wait for the workload to end; anything but exit 0 fails the measurement, with its output's tail.
    Returns when it exited (t_exit)."""
    code = instance.wait_exit(timeout_s)
    if code != 0:
        raise MeasurementError(f"exit code {code}: {tail(instance.output)}")
    if instance.t_exit is None:
        raise MeasurementError(f"{type(instance).__name__}.wait_exit returned without setting t_exit")
    return instance.t_exit


def tail(output: bytes, limit: int = 300) -> str:
    return output[-limit:].decode(errors="replace").strip()


class Found(list):
    """A measurement's samples, and what the run should record beside them (why a fill stopped).
    A suite's measure() returns one, or a plain list of samples (of), which says nothing beside."""

    def __init__(self, samples=(), note: str = "") -> None:
        super().__init__(samples)
        self.note = note

    @classmethod
    def of(cls, samples: list[Sample]) -> Found:
        return samples if isinstance(samples, Found) else cls(samples)


def samples(runner: Runner, workload: Workload, iteration: int, values: Mapping[str, float | None], error: str,
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


class Arrivals:
    """READY of many instances at once, without a thread each: one poll over every instance's
    progress fds, and an instance asked to read only when one of its fds has something, so that no
    READY is read late because another instance was being waited for."""

    def __init__(self) -> None:
        self.poller = select.poll()
        self.owner: dict[int, Instance] = {}  # fd -> the instance it reports progress of
        self.alone: list[Instance] = []  # instances without progress_fds(), awaited one by one
        self.instances: list[Instance] = []

    def add(self, instance: Instance) -> None:
        """Watch one more; an instance that offers no fds is waited for alone, after the others."""
        self.instances.append(instance)
        if not instance.progress_fds():
            self.alone.append(instance)
        elif instance.poll_ready() is None:
            self._watch(instance)

    def take(self, timeout_s: float = 0.0) -> None:
        """One poll (by default without waiting): what has arrived is read, and READY timed."""
        for fd, _ in self.poller.poll(max(0, int(timeout_s * 1000))):
            instance = self.owner.get(fd)
            if instance is None:
                continue  # its other fd already answered in this poll
            self._unwatch(instance)
            if instance.poll_ready() is None:
                self._watch(instance)  # its fds again: the output's end may have gone

    def wait(self, timeout_s: float) -> list[int]:
        """Each instance's READY time, in the order added; MeasurementError for the first that
        fails, or when some are not READY in time."""
        deadline = time.monotonic() + timeout_s
        while self.owner:
            left = deadline - time.monotonic()
            if left <= 0:
                raise MeasurementError(f"{len(set(self.owner.values()))} of {len(self.instances)} not READY "
                                       f"within {timeout_s:g} s")
            self.take(max(0.001, left))
        for instance in self.alone:
            instance.wait_ready(max(0.0, deadline - time.monotonic()))
        return [instance.t_ready for instance in self.instances if instance.t_ready is not None]

    def _watch(self, instance: Instance) -> None:
        for fd in instance.progress_fds():
            self.poller.register(fd, select.POLLIN | select.POLLPRI)
            self.owner[fd] = instance

    def _unwatch(self, instance: Instance) -> None:
        for fd in [fd for fd, i in self.owner.items() if i is instance]:
            self.poller.unregister(fd)
            del self.owner[fd]


def wait_all_ready(instances: list[Instance], timeout_s: float) -> list[int]:
    """Each instance's READY arrival time, all awaited together (Arrivals)."""
    arrivals = Arrivals()
    for instance in instances:
        arrivals.add(instance)
    return arrivals.wait(timeout_s)


def _sample(runner, workload, iteration, metric, unit, value, error, n: int = 1) -> Sample:
    if value is None and not error:
        error = f"{runner.name} cannot measure {metric} here"
    return Sample(workload.suite, workload.name, runner.name, iteration, metric,
                  float("nan") if value is None else float(value), unit, not error, error, n)
