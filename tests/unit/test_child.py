"""The instance machinery with real child processes (no root needed)."""

import os
import time

import pytest

from bench.errors import MeasurementError
from runners._child import ChildInstance, output_pipe
from tests.conftest import wait_until


def spawn(script: str, marker=b"READY", fds: dict[int, int] | None = None) -> ChildInstance:
    read_fd, write_fd = output_pipe()
    pid = os.posix_spawn("/bin/sh", ["/bin/sh", "-c", script], {"PATH": "/usr/bin:/bin"},
                         file_actions=[(os.POSIX_SPAWN_DUP2, write_fd, 1),
                                       *((os.POSIX_SPAWN_DUP2, ours, theirs) for theirs, ours in (fds or {}).items())])
    os.close(write_fd)
    return ChildInstance(pid, read_fd, marker)


def test_marker_split_across_writes_is_timed_at_its_first_byte():
    """The marker's first half is read, and only then is the child let go to write the rest: READY's
    time is before the release, whatever the load on the host."""
    go_r, go_w = os.pipe()
    inst = spawn("printf 'boot\\nREA'; read go <&3; printf 'DY\\n'; exit 3", fds={3: go_r})
    os.close(go_r)
    wait_until(lambda: inst.pump() or b"REA" in inst.output, "the marker's first half")
    released = time.monotonic_ns()
    os.write(go_w, b"go\n")
    os.close(go_w)
    assert inst.wait_ready(5) < released
    assert inst.wait_exit(5) == 3
    assert inst.output == b"boot\nREADY\n"
    inst.teardown()
    inst.teardown()  # idempotent


def test_exit_before_marker_is_reported():
    inst = spawn("echo nope; exit 1")
    with pytest.raises(MeasurementError, match="exited with code 1 before READY"):
        inst.wait_ready(5)
    inst.teardown()


def test_hang_times_out_and_teardown_kills():
    inst = spawn("sleep 30")
    with pytest.raises(MeasurementError, match="no READY within 0.2 s"):
        inst.wait_ready(0.2)
    with pytest.raises(MeasurementError, match="still running"):
        inst.wait_exit(0.1)
    inst.teardown()
    assert inst.exit_code == -9
    with pytest.raises(ProcessLookupError):
        os.kill(inst.pid, 0)


def test_many_awaited_together_are_each_timed_when_their_ready_arrives(tmp_path):
    """The second prints READY first and only then lets the first go on: awaited one after another
    (the first first), the second's READY would be read, and timed, after the first's."""
    from bench.measure import wait_all_ready

    flag = tmp_path / "go"
    first = spawn(f"while [ ! -e {flag} ]; do :; done; echo READY")
    second = spawn(f"echo READY; sleep 0.05; touch {flag}")
    try:
        t_first, t_second = wait_all_ready([first, second], 10)
        assert t_second < t_first
        assert (first.t_ready, second.t_ready) == (t_first, t_second)
    finally:
        first.teardown()
        second.teardown()


def test_many_awaited_together_fail_on_the_first_that_exits_without_ready_or_on_the_timeout():
    from bench.measure import wait_all_ready

    fine, broken = spawn("echo READY; sleep 30"), spawn("echo nope; exit 4")
    with pytest.raises(MeasurementError, match="exited with code 4 before READY"):
        wait_all_ready([fine, broken], 10)
    slow = spawn("sleep 30")
    with pytest.raises(MeasurementError, match="1 of 2 not READY within 0.2 s"):
        wait_all_ready([fine, slow], 0.2)
    for inst in (fine, broken, slow):
        inst.teardown()
