"""docs/extending.md's worked examples, run: a runner added as a plugin through an entry point, and a
suite added as one file. Each runs, is stored, and is seen by list, doctor and clean."""

import ast
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


def test_a_suite_is_one_new_file_with_an_option_and_a_report_section(tmp_path):
    """In a copy of the harness, the example suite dropped into bench/suites/ (its only file there; its
    workload comes with --workload-file) is listed with its option, takes it as a flag of bench run,
    records it, and gets its own rows in the report's headline."""
    tree = tmp_path / "tree"
    for package in ("bench", "runners"):
        shutil.copytree(ROOT / package, tree / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(EXAMPLES / "exit_suite.py", tree / "bench" / "suites" / "exit.py")
    env = {**os.environ, "PYTHONPATH": str(tree)}

    suites = json.loads(bench("list", "suites", "--json", env=env, cwd=tree).stdout)["suites"]
    assert suites[-1]["name"] == "exit" and suites[-1]["options"][0]["name"] == "--exit-launches"
    assert "--exit-launches" in bench("run", "--help", env=env, cwd=tree).stdout
    bad = bench("run", "--suite", "exit", "--exit-launches", "0", env=env, cwd=tree)
    assert bad.returncode == 2 and bad.stderr.strip() == "bench: bad --exit-launches '0': at least 1"
    run = bench("run", "--suite", "exit", "--workload-file", str(EXAMPLES / "true.toml"), "--exit-launches", "2",
                "--runners", "process,container", "--repeat", "3", "--results-dir", str(tmp_path / "r"),
                "--reports-dir", str(tmp_path / "reports"), env=env, cwd=tree)
    assert run.returncode == 0, run.stderr
    df, meta = load_run((tmp_path / "r" / "latest").resolve())
    assert meta["suites"] == ["exit"] and meta["exit"] == {"launches": 2} and df["ok"].all()
    assert set(df["metric"]) == {"true_exit_ms"} and set(df["runner"]) == {"process", "container"}
    page = (tmp_path / "reports" / meta["run_id"] / "index.html").read_text()
    assert "exit/true" in page and "launch to exit, 2 at a time (ms)" in page and ">Exit<" in page


def named_suites(path: Path, names: set[str]) -> list[str]:
    """Where a module names a suite in its code: a string that is a suite's name or starts "NAME/"
    (docstrings and help prose aside)."""
    tree = ast.parse(path.read_text())
    prose = {id(n.body[0].value) for n in ast.walk(tree) if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef))
             and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    return [f"{path.relative_to(ROOT)}:{n.lineno} {n.value!r}" for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in prose
            and (n.value in names or n.value.split("/")[0] in names and "/" in n.value)]


def test_the_command_line_the_run_and_the_analysis_name_no_suite():
    from bench.suites import suites

    names = set(suites()) | {"exit"}
    modules = [ROOT / "bench" / "cli.py", ROOT / "bench" / "run.py", *sorted((ROOT / "bench" / "analysis").glob("*.py"))]
    assert [hit for path in modules for hit in named_suites(path, names)] == []
    seeded = ROOT / "bench" / "analysis" / "stats.py"
    assert named_suites(seeded, {"process"}), "the check finds a name where one is (stats.py's baseline runner)"


def test_the_suite_flags_of_before_keep_their_names_and_meaning(tmp_path):
    """--concurrency, --max-instances, --memory-budget, --neighbours and --neighbour-load (scale),
    --density (memory) and --cache, as they were: given, each reaches the measurement and meta.json."""
    run = bench("run", "--suite", "scale,memory", "--workloads", "burst,idle", "--runners", "process",
                "--concurrency", "2,1", "--max-instances", "4", "--memory-budget", "1G", "--neighbours", "1",
                "--neighbour-load", "membw", "--density", "2", "--cache", "cold", "--repeat", "1",
                "--results-dir", str(tmp_path / "r"), "--no-report")
    assert run.returncode == 0, run.stderr
    df, meta = load_run((tmp_path / "r" / "latest").resolve())
    assert meta["scale"] == {"concurrency": [1, 2], "max_instances": 4, "memory_budget_mib": 1024,
                             "neighbours": 1, "neighbour_load": "membw"}
    assert meta["memory"] == {"density": 2} and meta["cache"] == {"state": "cold", "dropped_before": []}  # startup-like suites only
    assert set(df.loc[df["workload"].str.startswith("burst"), "workload"]) == {"burst-n1", "burst-n2"}
