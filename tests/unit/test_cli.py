import json
import subprocess

import pytest

from bench.cli import main
from tests.conftest import BENCH, ROOT


@pytest.mark.parametrize("argv, message", [
    (["run", "--suite", "nope"], "unknown suite"),
    (["run", "--suite", "startup", "--runners", "nope"], "unknown runner"),
    (["run", "--suite", "startup", "--workloads", "nope"], "unknown workload"),
    (["run", "--suite", "startup", "--repeat", "0"], "--repeat"),
    (["run", "--suite", "startup", "--warmup", "-1"], "--warmup"),
    (["run", "--suite", "startup", "--memory", "12XB"], "bad size"),
    (["run", "--suite", "startup", "--cpus", "-1"], "--cpus"),
    (["run", "--suite", "startup", "--cpus", "1000"], "this host gives at most"),
    (["exec", "--runner", "process", "--cpus", "1000", "--", "true"], "this host gives at most"),
    (["run"], "--suite"),
    (["run", "--suite", "startup", "--precision", "0"], "--precision"),
    (["run", "--suite", "startup", "--precision", "five"], "--precision"),
    (["run", "--suite", "startup", "--max-repeat", "0"], "--max-repeat"),
    (["run", "--suite", "startup", "--repeat", "3", "--precision", "2"], "--repeat N forces N rounds"),
    (["frobnicate"], "invalid choice"),
    (["report", "/nonexistent/run"], "no run"),
])
def test_bad_usage_is_one_line_and_exit_2(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_bad_usage_writes_nothing(tmp_path):
    out = subprocess.run([*BENCH, "run", "--suite", "nope", "--results-dir", str(tmp_path / "r")],
                         cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 2 and out.stderr.startswith("bench: unknown suite")
    assert not (tmp_path / "r").exists()


def test_list_json(capsys):
    assert main(["list", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [s["name"] for s in data["suites"]] == ["startup", "throughput", "memory"]  # run order
    runners = {r["name"]: r for r in data["runners"]}
    assert runners["process"]["available"] is True
    assert {"process", "chroot"} <= set(runners)
    assert data["workloads"][0]["metrics"] == ["ready_ms", "exit_ms", "teardown_ms", "mem_peak_mib"]


def test_doctor_runs(capsys):
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "cgroups" in out and "runner process" in out
