import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).parent / "data"
BENCH = [sys.executable, "-m", "bench.cli"]


@pytest.fixture
def data_dir() -> Path:
    return DATA


def pytest_collection_modifyitems(config, items):
    """Integration tests need root; without it they are skipped, with the reason printed (-ra)."""
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="integration test: needs root (namespaces, chroot, taskstats)")
    for item in items:
        if "integration" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def image(tmp_path_factory):
    """The real guest image, built once per test session into a private cache."""
    if shutil.which("busybox") is None or shutil.which("stress-ng") is None:
        pytest.fail("setup is incomplete: run `make setup` (busybox-static, stress-ng, fio, iperf3, gcc)")
    from bench.image import build_image

    return build_image(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="session", autouse=True)
def host_left_clean():
    """After the whole suite, nothing of ours may remain on the host: cgroups, netns, links, mounts, dirs."""
    yield
    if os.geteuid() != 0:
        return
    from bench.clean import host_residues, runner_residues
    from bench.cli import cache_dir

    left = [r.residue for r in [*runner_residues(cache_dir()), *host_residues()]]
    assert not left, f"the test suite left residue on the host: {left}"


@pytest.fixture(scope="session")
def prepared_cache(tmp_path_factory):
    """Everything `bench run` prepares once per host, prepared before the tests that time or interrupt
    runs: the VM's kernel, initramfs and root disk, the KVM probe, the Docker image import. On a fresh
    machine that takes minutes, which no test should mistake for a hang."""
    import json
    import subprocess

    listing = json.loads(subprocess.run([*BENCH, "list", "runners", "--json"], cwd=ROOT, capture_output=True,
                                        text=True, check=True).stdout)
    runners = ",".join(r["name"] for r in listing["runners"] if r["available"])
    out = subprocess.run([*BENCH, "run", "--suite", "startup", "--runners", runners, "--repeat", "1", "--warmup", "0",
                          "--no-report", "--results-dir", str(tmp_path_factory.mktemp("prepare"))],
                         cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert out.returncode == 0, out.stderr + out.stdout


def wait_until(predicate, what: str, timeout_s: float = 600, step_s: float = 0.05) -> None:
    """Poll for the progress a test expects (never a fixed sleep); fail after a generous bound."""
    import time

    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(step_s)


def journalled(results_dir: Path) -> set[str]:
    """The runners with a stored sample in a run in progress under results_dir (bench.store.Journal)."""
    import json

    found = set()
    for journal in Path(results_dir).glob(".bench-tmp-*/samples.jsonl"):
        for line in journal.read_text().splitlines():
            try:
                found.add(json.loads(line)["runner"])
            except ValueError:
                pass  # a line being written
    return found


def sampled(results_dir: Path, runner: str):
    """A predicate for wait_until: runner has a stored sample in the run in progress."""
    return lambda: runner in journalled(results_dir)


def domain_up() -> bool:
    """A guest of ours is running in libvirt (a predicate for wait_until)."""
    import libvirt

    conn = libvirt.open("qemu:///system")
    try:
        return any(d.name().startswith("bench-") and d.isActive() for d in conn.listAllDomains())
    finally:
        conn.close()


def kill_run_then_clean(results_dir: Path, runners: str, when,
                        suite: tuple[str, ...] = ("--suite", "startup", "--repeat", "500", "--warmup", "0")) -> str:
    """SIGKILL a whole `bench run` (worker included) once when() holds, run `bench clean`, and return
    what a second `bench clean --dry-run` still finds."""
    import signal
    import subprocess

    proc = subprocess.Popen([*BENCH, "run", *suite, "--runners", runners,
                             "--results-dir", str(results_dir), "--no-report"], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_until(lambda: when() or proc.poll() is not None, "the run to reach the point to kill it at")
        assert proc.poll() is None, "the run ended before it could be killed"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    subprocess.run([*BENCH, "clean", "--results-dir", str(results_dir)], cwd=ROOT, check=True, capture_output=True)
    return subprocess.run([*BENCH, "clean", "--dry-run", "--results-dir", str(results_dir)], cwd=ROOT,
                          capture_output=True, text=True, check=True).stdout.strip()
