import json

import pytest

from bench.cli import main
from runners.base import Runner
from tests.conftest import bench


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
    (["run", "--suite", "scale", "--concurrency", "1,0"], "--concurrency"),
    (["run", "--suite", "scale", "--concurrency", "many"], "--concurrency"),
    (["run", "--suite", "scale", "--max-instances", "-3"], "--max-instances"),
    (["run", "--suite", "scale", "--memory-budget", "lots"], "bad size"),
    (["run", "--suite", "scale", "--neighbours", "0"], "--neighbours"),
    (["run", "--suite", "scale", "--neighbour-load", "gpu"], "--neighbour-load"),
    (["run", "--suite", "scale", "--memory-budget", "64T"], "more than this host's"),
    (["run", "--suite", "scale", "--neighbours", "4096"], "--neighbours 4096: this host has"),
    (["run", "--suite", "startup", "--precision", "five"], "--precision"),
    (["run", "--suite", "startup", "--max-repeat", "0"], "--max-repeat"),
    (["run", "--suite", "startup", "--repeat", "3", "--precision", "2"], "--repeat N forces N rounds"),
    (["run", "--suite", "startup", "--cache", "lukewarm"], "--cache 'lukewarm': warm or cold"),
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
    out = bench("run", "--suite", "nope", "--results-dir", str(tmp_path / "r"))
    assert out.returncode == 2 and out.stderr.startswith("bench: unknown suite")
    assert not (tmp_path / "r").exists()


class Toy(Runner):
    """A runner that asks the host nothing: `bench list` is tested without probing real runtimes."""

    name, kind, family = "toy", "peer", "sandboxes"
    description = "a toy"
    enforcement = {"cpuset": "affinity", "cpu_quota": "not enforced: no cgroups", "memory": "not enforced: none"}

    def available(self):
        return False, "toys run nowhere"

    def launch(self, spec):
        raise NotImplementedError


def test_list_json_gives_suites_in_run_order_and_each_runner_with_its_contract(capsys, monkeypatch):
    from bench.analysis import views
    from bench.registry import RunnerInfo

    monkeypatch.setattr(views, "registered", lambda: {"toy": RunnerInfo("toy", "tests.unit.test_cli:Toy", Toy)})
    assert main(["list", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [s["name"] for s in data["suites"]] == ["startup", "throughput", "app", "memory", "scale"]
    assert data["suites"][0] | {"workloads": ["probe"], "min_repeat": 6, "warmup": 1} == data["suites"][0]
    assert data["runners"] == [{"name": "toy", "kind": "peer", "family": "sandboxes", "available": False,
                                "reason": "toys run nowhere", "description": "a toy",
                                "envelope": "not: cpu_quota (not enforced: no cgroups), memory (not enforced: none)",
                                "disk and network": "none",
                                "options": []}]
    assert data["workloads"][0]["metrics"] == ["ready_ms", "exit_ms", "teardown_ms", "mem_peak_mib"]
