"""bench verify's verdicts: a ratio within its tolerance (and the harness's own slack), or a floor."""

from bench.checks.verify import Verdict


def test_a_check_within_tolerance_and_slack_is_ok_and_beyond_is_off():
    assert Verdict("cpu", "a", "b", 1040.0, 1000.0, 0.05).ok
    assert not Verdict("cpu", "a", "b", 1060.0, 1000.0, 0.05).ok
    start = Verdict("startup", "a", "b", 0.80, 0.60, 0.10, slack=0.3)  # 0.2 ms of the harness's own
    assert start.ok and round(start.ratio, 3) == 1.333
    assert not Verdict("startup", "a", "b", 3.09, 0.686, 0.10, slack=0.3).ok  # a sleep in the launch path


def test_a_floor_may_be_exceeded_but_not_undercut():
    assert Verdict("floor", "container", "unshare+chroot", 4.9, 2.8, 0.10, lower_bound=True).ok
    assert not Verdict("floor", "container", "unshare+chroot", 2.0, 2.8, 0.10, lower_bound=True).ok
