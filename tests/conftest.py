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
    from bench.clean import cgroups, mounts, network, state_dirs

    left = [*cgroups(), *network(), *mounts(), *state_dirs()]
    assert not left, f"the test suite left residue on the host: {left}"
