"""Every `bench` subcommand as a user runs it, on the real host, at least once in `make test`: here,
or in the test named for it in WHERE (a rename that broke `bench verify` went unnoticed because no
test ran it whole). A subcommand the parser gains without a test here fails the first test."""

import csv
import io
import json
import re

import pytest

from bench.cli import build_parser
from tests.conftest import ROOT, bench

pytestmark = pytest.mark.integration

WHERE = {  # subcommand: the test that runs it whole, as a user would
    "run": "tests/integration/test_startup_run.py",
    "exec": "tests/integration/test_peers.py",  # every peer; test_vm, test_container, test_microvm_restore too
    "list": "tests/integration/test_commands.py",
    "doctor": "tests/integration/test_commands.py",
    "verify": ".github/workflows/nightly.yml",  # every check: test_nightly runs the workflow's steps
    "report": "tests/integration/test_commands.py",
    "compare": "tests/integration/test_commands.py",
    "baseline": "tests/integration/test_commands.py",
    "export": "tests/integration/test_commands.py",
    "kernel": "tests/integration/test_commands.py",
    "clean": "tests/integration/test_commands.py",
}


def test_every_subcommand_has_a_test_that_runs_it_whole():
    parser = build_parser()
    (sub,) = [a for a in parser._actions if a.dest == "command"]  # argparse keeps them nowhere public
    assert set(sub.choices) == set(WHERE)
    for command, path in WHERE.items():
        assert re.search(rf'bench\(\s*"{command}"|bench {command}', (ROOT / path).read_text()), \
            f"{path} never runs bench {command}"
    assert "nightly_steps(\"bench\")" in (ROOT / "tests/integration/test_nightly.py").read_text()


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    results = tmp_path_factory.mktemp("results")
    runs = []
    for _ in range(2):
        out = bench("run", "--suite", "startup", "--runners", "process,chroot", "--repeat", "3", "--results-dir",
                    results, "--no-report")
        assert out.returncode == 0, out.stderr
        runs.append(str((results / "latest").resolve()))
    return runs


def test_list_and_doctor_describe_this_host():
    listing = bench("list")
    assert listing.returncode == 0 and "startup" in listing.stdout and "container" in listing.stdout
    doctor = bench("doctor")
    assert doctor.returncode == 0 and "Traceback" not in doctor.stderr
    assert re.search(r"kvm|KVM", doctor.stdout), doctor.stdout


def test_report_compare_baseline_and_export_of_stored_runs(two_runs, tmp_path):
    first, second = two_runs
    out = bench("report", second, "--baseline", first, "--out", tmp_path / "report")
    assert out.returncode == 0 and (tmp_path / "report" / "index.html").exists(), out.stderr
    out = bench("compare", first, second, "--json")
    assert out.returncode in (0, 1), out.stderr  # 1 would be a regression between two runs: noise
    assert {v["runner"] for v in json.loads(out.stdout)} == {"process", "chroot"}
    store = tmp_path / "baselines"
    out = bench("baseline", "update", first, "--baselines-dir", store)
    assert out.returncode == 0 and "baseline of" in out.stdout, out.stderr
    out = bench("baseline", "show", "--host-of", second, "--baselines-dir", store)
    assert out.returncode == 0 and first.rsplit("/", 1)[1] in out.stdout
    out = bench("compare", "--baseline-of-host", second, "--baselines-dir", store)
    assert out.returncode in (0, 1) and "Traceback" not in out.stderr
    rows = list(csv.DictReader(io.StringIO(bench("export", second, "--format", "csv").stdout)))
    assert {r["runner"] for r in rows} == {"process", "chroot"} and all(r["ok"] == "True" for r in rows)
    assert len(json.loads(bench("export", second, "--format", "json").stdout)["samples"]) == len(rows)
    pb = json.loads(bench("export", second, "--format", "pytest-benchmark").stdout)
    assert {b["name"].split("[")[0] for b in pb["benchmarks"]} == {"process", "chroot"}


def test_kernel_build_when_cached_says_so_at_once():
    out = bench("kernel", "build", timeout=1800)  # setup built it: nothing to do
    assert out.returncode == 0 and "microvm kernel: cached" in out.stdout, out.stdout + out.stderr


def test_clean_dry_run_then_clean_on_a_host_left_clean():
    out = bench("clean", "--dry-run")
    assert out.returncode == 0 and out.stdout.strip().endswith("0 leftovers found"), out.stdout
    out = bench("clean")
    assert out.returncode == 0 and out.stdout.strip().endswith("0 leftovers removed"), out.stdout
