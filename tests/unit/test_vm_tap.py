"""A VM runner's tap: one guest with a network at a time, said in one line, given back at teardown."""

import pytest

from bench.errors import MeasurementError
from runners.qemu import QemuRunner
from runners.restore import VmRestoreRunner


@pytest.mark.parametrize("cls", [QemuRunner, VmRestoreRunner])
def test_a_second_networked_guest_is_refused_until_the_first_gives_the_tap_back(cls):
    runner = cls()
    runner.tap = object()  # made by server_side on a real run; only its identity matters here
    tap, release = runner.claimed_tap("bench-a")
    assert tap is runner.tap
    with pytest.raises(MeasurementError, match="one guest with a network at a time here, and bench-a has the tap"):
        runner.claimed_tap("bench-b")
    release()
    release()  # a teardown that runs twice gives back nothing it does not hold
    _, release_c = runner.claimed_tap("bench-c")
    release()  # bench-a's, late: bench-c keeps the tap
    with pytest.raises(MeasurementError, match="bench-c has the tap"):
        runner.claimed_tap("bench-d")
    release_c()
    assert runner.tap_user == ""
