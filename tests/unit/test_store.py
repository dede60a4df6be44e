import json
import math

import pandas as pd
import pytest

from bench.analysis import store
from bench.errors import UsageError
from bench.spec import Sample


def samples(n=3):
    out = []
    for runner, base in (("process", 1.0), ("chroot", 2.0)):
        for i in range(n):
            out.append(Sample("startup", "probe", runner, i, "ready_ms", base + i / 10, "ms").to_dict())
    out.append(Sample("startup", "probe", "chroot", n, "ready_ms", math.nan, "ms", False, "boom").to_dict())
    return out


def test_a_stored_run_reads_back_with_its_columns_types_and_errors(tmp_path):
    run_dir = store.write_run(tmp_path, "r1", samples(), {"schema_version": 1, "run_id": "r1", "host": {}})
    df, meta = store.load_run(run_dir)
    assert list(df.columns) == store.COLUMNS
    assert len(df) == 7 and set(df["run_id"]) == {"r1"}
    assert df["ok"].dtype == bool and df["iteration"].dtype == "int64"
    assert df.loc[~df["ok"], "error"].tolist() == ["boom"]
    assert meta["run_id"] == "r1"
    assert (tmp_path / "latest").resolve() == run_dir
    assert store.resolve_run("latest", tmp_path) == run_dir
    assert store.resolve_run(str(run_dir), tmp_path / "elsewhere") == run_dir


def test_failed_write_leaves_nothing(tmp_path):
    with pytest.raises((TypeError, ValueError)):  # an iteration that is not a number fails mid-write
        store.write_run(tmp_path, "r2", [{"iteration": None}], {"schema_version": 1})
    assert list(tmp_path.iterdir()) == []


def test_unwritable_results_dir_is_a_usage_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UsageError, match="cannot write results"):
        store.write_run(blocker, "r3", samples(), {"schema_version": 1})


def test_corrupt_runs_are_usage_errors(tmp_path):
    run_dir = store.write_run(tmp_path, "r4", samples(), {"schema_version": 1, "host": {}})
    (run_dir / "samples.parquet").write_bytes(b"not parquet")
    with pytest.raises(UsageError, match="cannot read run"):
        store.load_run(run_dir)
    other = store.write_run(tmp_path, "r5", samples(), {"schema_version": 1})
    (other / "meta.json").write_text("{")
    with pytest.raises(UsageError):
        store.load_run(other)
    pd.DataFrame({"x": [1]}).to_parquet(other / "samples.parquet")
    (other / "meta.json").write_text(json.dumps({"schema_version": 1, "host": {}}))
    with pytest.raises(UsageError, match="not an isobench run"):
        store.load_run(other)
    with pytest.raises(UsageError, match="no run"):
        store.resolve_run("nope", tmp_path)


def test_run_ids_do_not_collide():
    ids = {store.new_run_id() for _ in range(50)}
    assert len(ids) == 50


def test_run_ids_sort_by_the_time_they_were_made(monkeypatch):
    import time

    made, gmtime = [], time.gmtime
    for clock in (1_700_000_000, 1_700_000_059, 1_700_003_600, 1_800_000_000):  # a minute, an hour, years apart
        monkeypatch.setattr(time, "gmtime", lambda *_, clock=clock: gmtime(clock))
        made.append(store.new_run_id())
    assert sorted(made) == made and len(set(made)) == len(made)


def test_a_staged_write_is_whole_or_absent_and_clean_finds_what_a_kill_left(tmp_path):
    from bench import atomic

    target = tmp_path / "kernels" / "linux-image"
    with pytest.raises(RuntimeError):
        with atomic.staged(target) as staging:
            staging.mkdir()
            (staging / "vmlinux").write_text("half")
            raise RuntimeError("download failed")
    assert not target.exists() and atomic.leftovers(tmp_path) == []
    with atomic.staged(target) as staging:
        staging.mkdir()
        (staging / "vmlinux").write_text("whole")
    assert (target / "vmlinux").read_text() == "whole"
    killed = atomic.begin(tmp_path / "baselines" / "host" / "run")  # a process killed mid-write leaves this
    killed.mkdir(parents=True)
    (killed / "meta.json").write_text("{")
    assert atomic.leftovers(tmp_path) == [killed]


def test_a_run_stored_before_the_n_column_reads_back_as_one_instance_at_a_time(tmp_path):
    run_dir = store.write_run(tmp_path, "r1", samples(), {"schema_version": 1, "run_id": "r1", "host": {}})
    df, _ = store.load_run(run_dir)
    df.drop(columns="n").to_parquet(run_dir / "samples.parquet", index=False)
    old, _ = store.load_run(run_dir)
    assert list(old.columns) == store.COLUMNS and (old["n"] == 1).all()
