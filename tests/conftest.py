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
    from bench.clean import (cgroups, docker_containers, domains, mounts, network, oci_containers,
                             qemu_processes, state_dirs)
    from bench.cli import cache_dir

    left = [*domains(), *qemu_processes(), *docker_containers(), *oci_containers(), *cgroups(), *network(),
            *mounts(), *state_dirs(cache_dir())]
    assert not left, f"the test suite left residue on the host: {left}"


def kill_run_then_clean(results_dir: Path, runners: str, after_s: float,
                        suite: tuple[str, ...] = ("--suite", "startup", "--repeat", "500", "--warmup", "0")) -> str:
    """SIGKILL a whole `bench run` (worker included) after_s in, run `bench clean`, and return what
    a second `bench clean --dry-run` still finds."""
    import signal
    import subprocess
    import time

    proc = subprocess.Popen([*BENCH, "run", *suite, "--runners", runners,
                             "--results-dir", str(results_dir), "--no-report"], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    time.sleep(after_s)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    subprocess.run([*BENCH, "clean", "--results-dir", str(results_dir)], cwd=ROOT, check=True, capture_output=True)
    return subprocess.run([*BENCH, "clean", "--dry-run", "--results-dir", str(results_dir)], cwd=ROOT,
                          capture_output=True, text=True, check=True).stdout.strip()
