"""docs/extending.md's worked examples, run: a runner added as a plugin through an entry point, and a
suite added as one file. Each runs, is stored, and is seen by list, doctor and clean."""

import json
import os
import shutil
from pathlib import Path

import pytest

from bench.analysis.store import load_run
from tests.conftest import ROOT, bench

pytestmark = pytest.mark.integration
EXAMPLES = ROOT / "docs" / "examples"


@pytest.fixture
def plugin_path(tmp_path):
    """An environment whose Python finds the example runner as an installed distribution would be:
    its module, and a dist-info with its `bench.runners` entry point, on PYTHONPATH."""
    site = tmp_path / "site"
    site.mkdir()
    shutil.copy(EXAMPLES / "nice_runner.py", site / "isobench_nice.py")
    info = site / "isobench_nice-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: isobench-nice\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[bench.runners]\nnice = isobench_nice:NiceRunner\n")
    yield {**os.environ, "PYTHONPATH": str(site)}
    shutil.rmtree("/tmp/isobench-nice", ignore_errors=True)


def test_a_plugin_runner_is_listed_run_checked_and_cleaned_like_a_built_in(plugin_path, tmp_path):
    listed = {r["name"]: r for r in json.loads(bench("list", "runners", "--json", env=plugin_path).stdout)["runners"]}
    assert listed["nice"]["available"] and listed["nice"]["kind"] == "peer"
    assert listed["nice"]["envelope"] == "all enforced"  # inherited from the process runner

    run = bench("run", "--suite", "startup", "--runners", "process,nice", "--repeat", "3",
                "--results-dir", str(tmp_path / "r"), "--no-report", env=plugin_path)
    assert run.returncode == 0, run.stderr
    df, meta = load_run((tmp_path / "r" / "latest").resolve())
    nice = df[df["runner"] == "nice"]
    assert nice["ok"].all() and set(nice["metric"]) == {"ready_ms", "exit_ms", "teardown_ms", "mem_peak_mib"}
    assert meta["runners"]["nice"]["spawn"] == "nice -n 5" and meta["versions"]["nice"]

    doctor = bench("doctor", env=plugin_path)
    assert "nice: marks" in doctor.stdout

    Path("/tmp/isobench-nice/bench-left-by-a-killed-run").touch()
    assert "would remove nice mark /tmp/isobench-nice/bench-left-by-a-killed-run" in bench(
        "clean", "--dry-run", env=plugin_path).stdout
    assert bench("clean", env=plugin_path).returncode == 0
    assert not list(Path("/tmp/isobench-nice").glob("bench-*"))


def test_a_suite_is_one_new_file(tmp_path):
    """In a copy of the harness, the example suite dropped into bench/suites/ is listed and run."""
    tree = tmp_path / "tree"
    for package in ("bench", "runners"):
        shutil.copytree(ROOT / package, tree / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(EXAMPLES / "exit_suite.py", tree / "bench" / "suites" / "exit.py")
    shutil.copy(EXAMPLES / "true.toml", tree / "bench" / "workloads" / "true.toml")
    env = {**os.environ, "PYTHONPATH": str(tree)}

    suites = json.loads(bench("list", "suites", "--json", env=env, cwd=tree).stdout)["suites"]
    assert [s["name"] for s in suites][-1] == "exit"
    run = bench("run", "--suite", "exit", "--runners", "process,container", "--repeat", "3",
                "--results-dir", str(tmp_path / "r"), "--reports-dir", str(tmp_path / "reports"), env=env, cwd=tree)
    assert run.returncode == 0, run.stderr
    df, meta = load_run((tmp_path / "r" / "latest").resolve())
    assert meta["suites"] == ["exit"] and df["ok"].all()
    assert set(df["metric"]) == {"true_exit_ms"} and set(df["runner"]) == {"process", "container"}
    assert (tmp_path / "reports" / meta["run_id"] / "index.html").exists()
