import math

import pandas as pd
import pytest

from bench.analysis.stats import runner_order, summarize


def frame():
    rows = []
    for runner, values in (("chroot", [2, 4, 6, 8, 10]), ("process", [1, 2, 3, 4, 5])):
        for i, v in enumerate(values):
            rows.append(dict(run_id="r", suite="s", workload="w", runner=runner, iteration=i,
                             metric="ready_ms", value=float(v), unit="ms", ok=True, error=""))
    rows.append(dict(run_id="r", suite="s", workload="w", runner="chroot", iteration=5,
                     metric="ready_ms", value=math.nan, unit="ms", ok=False, error="timeout"))
    return pd.DataFrame(rows)


def test_the_summary_has_medians_percentiles_and_ratios_to_process():
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


def rows(metric, unit, by_runner):
    return [dict(run_id="r", suite="s", workload="w", runner=runner, iteration=i, metric=metric, value=float(v),
                 unit=unit, ok=True, error="") for runner, values in by_runner.items() for i, v in enumerate(values)]


def test_memory_overheads_are_differences_not_ratios():
    df = pd.DataFrame(rows("mem_overhead_mib", "MiB", {"process": [0.01, -0.01, 0.0], "vm": [300, 301, 302]}))
    table = summarize(df).set_index("runner")
    assert table["ratio"].isna().all()
    assert table.loc["vm", "diff"] == pytest.approx(301)


def test_headline_ratio_with_a_bootstrap_interval_around_it():
    from bench.analysis.stats import headline

    df = pd.DataFrame(rows("cpu_ops_s", "ops/s", {"process": [100, 102, 98, 101, 99], "vm": [50, 51, 49, 50, 52]})
                      + rows("mem_overhead_mib", "MiB", {"process": [0, 0.1, -0.1], "vm": [300, 310, 305]}))
    table = headline(df).set_index("metric")
    cpu = table.loc["cpu_ops_s"]
    assert cpu["runner"] == "vm" and cpu["kind"] == "ratio" and cpu["value"] == pytest.approx(0.5)
    assert cpu["ci_low"] <= 0.5 <= cpu["ci_high"] and 0.45 < cpu["ci_low"] and cpu["ci_high"] < 0.55
    mem = table.loc["mem_overhead_mib"]
    assert mem["kind"] == "difference" and mem["value"] == pytest.approx(305)
    assert mem["ci_low"] <= 305 <= mem["ci_high"]


def test_headline_has_no_interval_from_one_sample():
    from bench.analysis.stats import headline

    table = headline(pd.DataFrame(rows("net_gbit_s", "Gbit/s", {"process": [20.0], "container": [18.0]})))
    assert table.loc[0, "value"] == pytest.approx(0.9) and math.isnan(table.loc[0, "ci_low"])


def test_an_incomplete_run_says_so_first():
    from bench.analysis.report import warnings

    df = frame()
    found = warnings(df, summarize(df), {"incomplete": True, "interrupted_by": "SIGINT"})
    assert found[0].startswith("this run is incomplete: SIGINT stopped it")


def test_cold_starts_are_said_first_and_warm_ones_not_at_all():
    from bench.analysis.report import warnings

    df = frame()
    cold = warnings(df, summarize(df), {"cache": {"state": "cold", "dropped_before": ["startup"]}})
    assert cold[0].startswith("cold starts: the page cache was synced and dropped before each sample of startup")
    assert not any("cold" in w for w in warnings(df, summarize(df), {"cache": {"state": "warm"}}))


def test_a_runner_that_could_not_enforce_the_envelope_is_marked_in_the_report():
    import pandas as pd

    from bench.analysis.report import headline_table, warnings
    from bench.analysis.stats import summarize

    rows = [{"suite": "throughput", "workload": "cpu", "runner": r, "iteration": i, "metric": "cpu_ops_s",
             "value": v + i, "unit": "ops/s", "ok": True, "error": ""} for r, v in (("process", 100), ("plain", 90))
            for i in range(3)]
    df = pd.DataFrame(rows)
    meta = {"runners": {"process": {"envelope": {"cpuset": "CPU affinity"}},
                        "plain": {"envelope": {"cpuset": "not enforced", "memory": "not enforced"}}}}
    cell = headline_table(df, meta)["rows"][0]["cells"]["plain"]
    assert cell["unenforced"] == "cpuset, memory"
    assert any("plain could not enforce the envelope's cpuset, memory" in w for w in warnings(df, summarize(df), meta))
