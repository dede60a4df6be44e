import math

import pandas as pd
import pytest

from bench.stats import runner_order, summarize


def frame():
    rows = []
    for runner, values in (("chroot", [2, 4, 6, 8, 10]), ("process", [1, 2, 3, 4, 5])):
        for i, v in enumerate(values):
            rows.append(dict(run_id="r", suite="s", workload="w", runner=runner, iteration=i,
                             metric="ready_ms", value=float(v), unit="ms", ok=True, error=""))
    rows.append(dict(run_id="r", suite="s", workload="w", runner="chroot", iteration=5,
                     metric="ready_ms", value=math.nan, unit="ms", ok=False, error="timeout"))
    return pd.DataFrame(rows)


def test_summary_statistics():
    table = summarize(frame()).set_index("runner")
    assert table.loc["process", "median"] == 3
    assert table.loc["chroot", "median"] == 6
    assert table.loc["chroot", "ratio"] == pytest.approx(2.0)
    assert table.loc["process", "ratio"] == pytest.approx(1.0)
    assert table.loc["process", "p5"] == pytest.approx(1.2)
    assert table.loc["process", "p95"] == pytest.approx(4.8)
    assert table.loc["process", "cv"] == pytest.approx(pd.Series([1, 2, 3, 4, 5]).std() / 3)
    assert table.loc["chroot", "n"] == 5 and table.loc["chroot", "failed"] == 1
    assert table.loc["process", "failed"] == 0


def test_order_is_appearance_and_baseline_first():
    assert summarize(frame())["runner"].tolist() == ["chroot", "process"]
    assert runner_order(["vm", "chroot", "process", "vm"]) == ["process", "vm", "chroot"]


def test_no_baseline_gives_no_ratio():
    df = frame()
    table = summarize(df[df["runner"] == "chroot"])
    assert table["ratio"].isna().all()
