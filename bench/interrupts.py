"""Ctrl-C and SIGTERM in the measuring worker: they raise KeyboardInterrupt so that a long wait ends
at once and the instance is torn down, but never inside a launch or a teardown. Raised there, the
exception can land between libvirt creating a domain and the harness holding it, or between killing
a cgroup's tasks and removing the cgroup, and leave that behind. Inside `held()` a signal is noted
and raised when the section ends. The signal mask is left alone: children started meanwhile (a
container's pid 1, a workload) must get the signals they normally would."""

from __future__ import annotations

import signal

_depth = 0
_pending = False


def handler(signum, frame) -> None:
    global _pending
    # Once: Ctrl-C reaches the worker, then `bench` sends SIGTERM; the second must change nothing.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if _depth:
        _pending = True
        return
    raise KeyboardInterrupt


class _Held:
    """The section in which a signal waits (a plain object: it sits inside a timed launch, and a
    generator context manager costs three times as much)."""

    def __enter__(self) -> None:
        global _depth
        _depth += 1

    def __exit__(self, *exc) -> None:
        global _depth, _pending
        _depth -= 1
        if not _depth and _pending:
            _pending = False
            raise KeyboardInterrupt


_HELD = _Held()


def held() -> _Held:
    return _HELD
