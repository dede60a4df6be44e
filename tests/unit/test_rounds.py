"""How many rounds a runner gets: forced by --repeat, or decided by the data with --precision."""

import numpy as np
import pytest

from bench.schedule import Rounds
from bench.analysis.stats import interval_pct, median_interval


def test_the_median_interval_is_the_binomial_order_statistics():
    values = list(range(1, 11))  # n=10: x(2) and x(9), coverage 97.9%
    assert median_interval(values) == (2.0, 9.0)
    assert median_interval([5, 1, 3, 2, 4, 6]) == (1.0, 6.0)  # n=6: the range, coverage 96.9%
    assert median_interval([3, 1, 2]) == (1.0, 3.0)  # under 6: the range
    low, high = median_interval(np.arange(100))
    assert (low, high) == (39.0, 60.0)


def test_interval_pct_is_the_wider_side_as_a_share_of_the_median():
    assert interval_pct([90, 100, 100, 100, 100, 120]) == pytest.approx(0.2)
    assert interval_pct([0, 0, 0]) == 0.0


def test_precision_stops_a_runner_once_every_metric_is_tight():
    r = Rounds(warmup=1, min_repeat=6, max_repeat=30, precision=0.05)
    steady = {"ready_ms": [], "exit_ms": []}
    for i in range(6):
        r.n += 1
        steady["ready_ms"].append(100 + i % 2)
        steady["exit_ms"].append(200 - i % 3)
        assert r.done(steady, 0) == (r.n == 6)
    assert r.stopped.startswith("precision reached") and r.widest < 0.05


def test_a_noisy_metric_keeps_rounds_coming_until_max_repeat():
    r = Rounds(warmup=0, min_repeat=6, max_repeat=8, precision=0.05)
    noisy = {"ready_ms": []}
    done = []
    for i in range(8):
        r.n += 1
        noisy["ready_ms"].append([1, 3, 2, 5, 1, 4, 2, 6][i])
        done.append(r.done(noisy, 0))
    assert done == [False] * 7 + [True]
    assert r.stopped.startswith("max-repeat 8 reached") and r.as_meta()["widest_interval_pct"] > 5


def test_a_forced_repeat_stops_at_exactly_n():
    r = Rounds(warmup=0, min_repeat=3, max_repeat=3, precision=None)
    values = {"x": []}
    for i in range(3):
        r.n += 1
        values["x"].append(float(i))
        assert r.done(values, 0) == (i == 2)
    assert r.stopped == "--repeat 3"


def test_a_runner_whose_every_sample_fails_stops_at_min_repeat():
    r = Rounds(warmup=0, min_repeat=3, max_repeat=30, precision=0.05)
    r.n = 3
    assert r.done({}, failed=12) and r.stopped == "every sample failed in 3 rounds"


def test_the_order_alternates_so_each_runner_follows_each_other_as_often_as_it_precedes_it():
    from bench.schedule import round_order

    names = ["process", "vm", "qemu"]
    flat = [name for rnd in range(4) for name in round_order(names, rnd)]
    assert flat[:6] == ["process", "vm", "qemu", "qemu", "vm", "process"]
    pairs = list(zip(flat, flat[1:]))
    assert pairs.count(("vm", "qemu")) == pairs.count(("qemu", "vm")) == 2
    assert pairs.count(("process", "vm")) == pairs.count(("vm", "process")) == 2
