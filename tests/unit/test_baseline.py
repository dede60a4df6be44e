"""Rolling per-host baselines, on runs written here."""

import pytest

from bench.analysis import baseline
from bench.errors import UsageError
from bench.analysis.store import SCHEMA_VERSION, write_run

HOST = {"hostname": "metal-1", "arch": "x86_64", "cpu_model": "EPYC", "cores": 64, "memory_gib": 251.4,
        "cgroup_version": "v2", "virtualized": False, "kernel": "6.1.0", "cpu_mhz": 2450.1}


def a_run(results, run_id, started, host=HOST, ok=True):
    samples = [dict(suite="startup", workload="probe", runner="process", iteration=i, metric="ready_ms",
                    value=1.0 + i / 10, unit="ms", ok=ok or i, error="" if ok or i else "boom") for i in range(3)]
    meta = {"schema_version": SCHEMA_VERSION, "run_id": run_id, "started": started, "host": host}
    return write_run(results, run_id, samples, meta)


def test_the_host_key_ignores_jitter_but_not_the_machine():
    key = baseline.host_key(HOST)
    assert baseline.host_key({**HOST, "cpu_mhz": 3100.0, "memory_gib": 251.1, "kernel": "6.2"}) == key
    assert baseline.host_key({**HOST, "cpu_model": "Xeon"}) != key
    assert baseline.host_key({**HOST, "hostname": "metal-2"}) != key
    assert key.startswith("metal-1-")


def test_the_window_keeps_the_newest_good_runs(tmp_path):
    store = tmp_path / "baselines"
    for i in range(4):
        key, kept = baseline.update(store, a_run(tmp_path / "r", f"run{i}", f"2026-11-0{i + 1}T00:00:00Z"), window=2)
    assert kept == ["run2", "run3"]
    assert [p.name for p in baseline.hosts(store)[key]] == ["run2", "run3"]
    found, pooled, learned = baseline.baseline_of(store, {"host": {**HOST, "cpu_mhz": 1.0}})
    assert found == key and len(pooled) == 6 and set(learned) == {("startup", "probe", "process", "ready_ms", "ms")}


def test_a_run_with_failures_is_refused(tmp_path):
    bad = a_run(tmp_path / "r", "bad", "2026-11-01T00:00:00Z", ok=False)
    with pytest.raises(UsageError, match="1 failed samples"):
        baseline.update(tmp_path / "b", bad)
    assert not (tmp_path / "b").exists() or not any((tmp_path / "b").rglob("meta.json"))


def test_no_baseline_for_a_new_host_says_how_to_make_one(tmp_path):
    with pytest.raises(UsageError, match="bench baseline update"):
        baseline.baseline_of(tmp_path, {"host": HOST})


def test_tolerances_are_learned_from_the_window():
    import pandas as pd

    def frame(values):
        return pd.DataFrame([dict(suite="s", workload="w", runner="r", metric="m", unit="ms", value=v, ok=True)
                             for v in values])

    steady = baseline.tolerances([frame([10.0, 10.0, 10.0]), frame([10.0, 10.0, 10.0])])
    assert steady[("s", "w", "r", "m", "ms")] == 0.0  # compare's --threshold then decides alone
    drifting = baseline.tolerances([frame([10.0, 10.0]), frame([12.0, 12.0])])  # pooled median 11
    assert drifting[("s", "w", "r", "m", "ms")] == pytest.approx(2 * (1 - 10 / 11))
