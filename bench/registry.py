"""Runner registry: the `bench.runners` entry-point group, built-ins included (parent side only)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import TypeVar

from bench.errors import UsageError
from runners.base import Runner

T = TypeVar("T")

GROUP = "bench.runners"


@dataclass(frozen=True)
class RunnerInfo:
    name: str
    target: str  # "module:Class", what the worker imports
    cls: type[Runner] | None
    load_error: str = ""

    @property
    def loaded(self) -> type[Runner]:
        """The class of a runner that loaded; a broken plugin's is a usage error, said why."""
        if self.cls is None:
            raise UsageError(f"runner {self.name}: {self.load_error}")
        return self.cls


@cache
def registered() -> dict[str, RunnerInfo]:
    """Every registered runner by name; one that fails to import is listed with the reason."""
    from importlib.metadata import entry_points  # here, not at the top: the worker imports this module

    found = {}
    for ep in sorted(entry_points(group=GROUP), key=lambda e: e.name):
        try:
            found[ep.name] = RunnerInfo(ep.name, ep.value, ep.load())
        except Exception as exc:  # noqa: BLE001 -- a broken plugin, whatever it raises, must not break `bench list`
            found[ep.name] = RunnerInfo(ep.name, ep.value, None, f"cannot load {ep.value}: {exc}")
    return found


def _inspect(info: RunnerInfo, then: Callable[[Runner], T]) -> tuple[bool, str, T | None]:
    """Instantiate the runner, ask available(), and if so then(runner); the runner is closed after
    (a libvirt connection, a taskstats socket). A broken plugin is unavailable, with the reason."""
    if info.cls is None:
        return False, info.load_error, None
    runner = None
    try:
        runner = info.cls()
        ok, reason = runner.available()
        return ok, reason, then(runner) if ok else None
    except Exception as exc:  # noqa: BLE001 -- a plugin's check that raises is a runner not available, said why
        return False, f"availability check failed: {exc}", None
    finally:
        if runner is not None:
            runner.close()


def availability(info: RunnerInfo, cache_dir: str | None = None) -> tuple[bool, str]:
    """Whether the runner is available and why; with cache_dir, what it would run as (cached_state)."""
    ok, reason, state = _inspect(info, lambda runner: runner.cached_state(cache_dir) if cache_dir else "")
    return ok, f"{reason}; {state}" if state else reason


def inspect_runner(info: RunnerInfo, cache_dir: str) -> tuple[bool, str, list]:
    """Whether the runner is available and why, and its own doctor checks."""
    ok, reason, checks = _inspect(info, lambda runner: runner.doctor_checks(cache_dir))
    return ok, reason, list(checks or [])


def load_target(target: str) -> type[Runner]:
    """Import "module:Class" without importlib.metadata (which would make the worker fat)."""
    import importlib

    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def runner_name(label: str) -> str:
    """The registered runner behind a label: "container:seccomp=none" -> "container"."""
    return label.split(":", 1)[0]
