"""A `bench run` killed mid-measurement loses nothing it completed: its journal and head become an
incomplete run when `bench clean` finds them; a line cut short by the kill is no sample."""

import json

from bench.analysis import store
from bench.checks.clean import staging_dirs
from bench.spec import Sample


def journal_of_a_killed_run(results, samples: int, cut: bool = False) -> store.Journal:
    journal = store.Journal(results, "20261204T000000Z-abcdef")
    journal.begin({"schema_version": 1, "run_id": "20261204T000000Z-abcdef", "host": {"hostname": "h"},
                   "suites": ["startup"]})
    for i in range(samples):
        journal.add([Sample("startup", "probe", "process", i, "ready_ms", 1.0 + i, "ms").to_dict()])
    journal.close()
    if cut:  # the kill came while a line was being written
        with open(journal.path, "a") as f:
            f.write('{"suite": "startup", "wor')
    return journal


def test_bench_clean_recovers_a_killed_runs_samples_as_an_incomplete_run(tmp_path):
    journal_of_a_killed_run(tmp_path, 3, cut=True)
    (leftover,) = staging_dirs(tmp_path, tmp_path / "reports", tmp_path / "cache")
    assert "journal" in leftover.kind
    leftover.remove()
    (run,) = [p for p in tmp_path.iterdir()]
    df, meta = store.load_run(run)
    assert df["value"].tolist() == [1.0, 2.0, 3.0]
    assert meta["incomplete"] and meta["interrupted_by"] == "killed" and meta["recovered_by"] == "bench clean"
    assert not (tmp_path / "latest").exists()  # a run recovered after the fact is not the newest


def test_a_run_killed_before_its_first_sample_leaves_nothing(tmp_path):
    journal = journal_of_a_killed_run(tmp_path, 0)
    assert not journal.path.parent.exists()  # nothing is written before the first sample
    journal = journal_of_a_killed_run(tmp_path, 1)
    journal.path.write_text('{"cut')  # only a partial line
    for leftover in staging_dirs(tmp_path, tmp_path / "reports", tmp_path / "cache"):
        leftover.remove()
    assert list(tmp_path.iterdir()) == []


def test_a_stored_run_carries_no_journal_or_head(tmp_path):
    journal = journal_of_a_killed_run(tmp_path, 2)
    run = store.write_run(tmp_path, "20261204T000000Z-abcdef",
                          [json.loads(line) for line in journal.path.read_text().splitlines()],
                          {"schema_version": 1, "run_id": "20261204T000000Z-abcdef", "host": {}})
    assert sorted(p.name for p in run.iterdir()) == ["meta.json", "samples.parquet"]
