"""The lean-worker rule, checked where it matters: a real worker, after preparing and measuring the
process, chroot, container and vm runners, has loaded nothing that makes a fork expensive."""

import pytest

from bench.client import WorkerClient
from bench.images.image import build_image
from bench.spec import Envelope
from tests.conftest import FAT

pytestmark = pytest.mark.integration

RUNNERS = {"process": "runners.process:ProcessRunner", "chroot": "runners.chroot:ChrootRunner",
           "container": "runners.container:ContainerRunner", "vm": "runners.vm:VmRunner"}


def test_a_worker_that_prepared_and_measured_four_runners_has_loaded_nothing_fat(prepared_cache):
    from bench.cache import cache_dir

    image = build_image(cache_dir())
    client = WorkerClient()
    try:
        status = client.init(RUNNERS, image, Envelope(), {}, cache_dir())
        assert all(s["available"] for s in status.values()), status
        for n, runner in enumerate(RUNNERS):
            reply = client.request(op="measure", suite="startup", workload="probe", runner=runner, iteration=0,
                                   name=f"bench-lean-{n}", params={})
            assert all(s["ok"] for s in reply["samples"]), reply
        loaded = set(client.request(op="modules")["modules"])
    finally:
        client.close()
    assert sorted(loaded & set(FAT)) == []
