"""A failing test keeps its evidence: what the harness saves under artifacts/ when a test fails, shown
by running a test that fails (in a pytest of its own, with tests/conftest.py's fixtures)."""

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.integration

FAILING = '''
from runners.process import ProcessRunner
from tests.conftest import bench


def test_that_fails(factory, tmp_path):
    instance = factory.launch(factory.runner(ProcessRunner), ["/bin/sh", "-c", "echo the instance said this"])
    instance.wait_exit(30)
    run = bench("run", "--suite", "startup", "--runners", "process", "--repeat", "1", "--warmup", "0",
                "--no-report", "--results-dir", tmp_path / "r")
    assert run.returncode == 0
    assert False, "failed on purpose"


def test_that_passes(factory):
    factory.launch(factory.runner(ProcessRunner), ["/bin/true"]).wait_exit(30)
'''


def test_a_failing_test_leaves_its_commands_its_instances_output_and_its_runs_journal(tmp_path):
    (tmp_path / "conftest.py").write_text("from tests.conftest import *  # noqa: F403 -- the project's fixtures\n")
    (tmp_path / "test_inner.py").write_text(FAILING)
    artifacts = tmp_path / "artifacts"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ISOBENCH_ARTIFACTS": str(artifacts)}
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
                          str(tmp_path)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert "1 failed, 1 passed" in out.stdout, out.stdout + out.stderr
    (kept,) = artifacts.iterdir()  # the failed test's, not the passing one's
    assert kept.name == "test_inner.py_test_that_fails" and f"evidence of the failure: {kept}" in out.stdout
    assert (kept / "instance-1-bench-test-c.log").read_text() == "the instance said this\n"
    commands = (kept / "commands.log").read_text()
    assert commands.startswith("$ bench run --suite startup") and "exit code 0" in commands
    (meta,) = (kept / "results").glob("*/meta.json")  # the run the test made, as stored
    assert '"suites": [' in meta.read_text()
