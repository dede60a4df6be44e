"""Runner registry: the `bench.runners` entry-point group, built-ins included (parent side only)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from runners.base import Runner

GROUP = "bench.runners"


@dataclass(frozen=True)
class RunnerInfo:
    name: str
    target: str  # "module:Class", what the worker imports
    cls: type[Runner] | None
    load_error: str = ""


@cache
def registered() -> dict[str, RunnerInfo]:
    """Every registered runner by name; one that fails to import is listed with the reason."""
    from importlib.metadata import entry_points  # here, not at the top: the worker imports this module

    found = {}
    for ep in sorted(entry_points(group=GROUP), key=lambda e: e.name):
        try:
            found[ep.name] = RunnerInfo(ep.name, ep.value, ep.load())
        except Exception as exc:  # a broken plugin must not break `bench list`
            found[ep.name] = RunnerInfo(ep.name, ep.value, None, f"cannot load {ep.value}: {exc}")
    return found


def availability(info: RunnerInfo, cache_dir: str | None = None) -> tuple[bool, str]:
    """Whether the runner is available and why; with cache_dir, what it would run as (cached_state)."""
    if info.cls is None:
        return False, info.load_error
    runner = None
    try:
        runner = info.cls()
        ok, reason = runner.available()
        state = runner.cached_state(cache_dir) if ok and cache_dir is not None else ""
        return ok, f"{reason}; {state}" if state else reason
    except Exception as exc:
        return False, f"availability check failed: {exc}"
    finally:
        if runner is not None:
            runner.close()


def inspect_runner(info: RunnerInfo, cache_dir: str) -> tuple[bool, str, list]:
    """Whether the runner is available and why, and its own doctor checks."""
    if info.cls is None:
        return False, info.load_error, []
    runner = None
    try:
        runner = info.cls()
        ok, reason = runner.available()
        return ok, reason, runner.doctor_checks(cache_dir) if ok else []
    except Exception as exc:
        return False, f"availability check failed: {exc}", []
    finally:
        if runner is not None:
            runner.close()  # a libvirt connection, a taskstats socket


def load_target(target: str) -> type[Runner]:
    """Import "module:Class" without importlib.metadata (which would make the worker fat)."""
    import importlib

    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)
