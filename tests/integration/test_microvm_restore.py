"""The microvm runner (our kernel on QEMU's microvm machine) and the vm-restore runner (a guest
restored from a snapshot taken once per run), for real under TCG or KVM."""

import pytest

from bench.spec import Envelope
from bench.analysis.store import load_run
from runners.restore import VmRestoreRunner
from tests.conftest import bench, kill_run_then_clean, sampled

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prepared_cache")]


@pytest.mark.parametrize("runner", ["microvm", "vm-restore"])
def test_it_runs_the_same_rootfs_and_passes_exit_codes(runner):
    out = bench("exec", "--runner", runner, "--", "sh", "-c", "test -x /bin/bench-probe && echo same-rootfs; exit 4")
    assert out.returncode == 4, out.stderr
    assert "same-rootfs" in out.stdout.splitlines()


@pytest.mark.parametrize("runner", ["vm", "qemu", "microvm", "vm-restore", "uml"])
def test_the_guests_timers_tick(runner):
    """A sleep returns in every guest: a microvm without the 8259 got no timer interrupt, so its
    `sleep 1` (and fio, and any service that waits with a timeout) never returned, while every
    start that did not wait on a timer looked fine."""
    out = bench("exec", "--runner", runner, "--", "sh", "-c", "sleep 0.2 && echo slept; exit 7")
    assert out.returncode == 7, out.stderr
    assert "slept" in out.stdout.replace("\r", "").splitlines()


def test_each_restored_copy_runs_the_argv_it_is_handed(factory):
    """One snapshot, two restores: the argv arrives after the snapshot was taken, over the console."""
    runner = factory.runner(VmRestoreRunner)
    runner.prepare_envelope(Envelope())
    first = factory.run(runner, "echo one; exit 3")
    second = factory.run(runner, "echo two; exit 5")
    lines = [code_and_output[1].replace("\r", "").splitlines() for code_and_output in (first, second)]
    assert (first[0], lines[0][0], second[0], lines[1][0]) == (3, "one", 5, "two"), lines  # console lines follow
    assert len(runner.snapshots) == 1


def test_guests_restored_from_one_snapshot_do_not_see_each_others_writes(factory):
    """The scratch disk the snapshot saw is under a temporary overlay in each restore: what one
    writes there, the next never finds."""
    from bench.spec import SCRATCH

    runner = factory.runner(VmRestoreRunner)
    runner.prepare_envelope(Envelope(), [frozenset({"scratch"})])
    # Read from the disk, not the page cache the snapshot holds; and written through to the disk.
    script = (f"echo 3 > /proc/sys/vm/drop_caches; ls {SCRATCH}; echo mine > {SCRATCH}/written && sync && "
              f"cat {SCRATCH}/written")
    first = factory.run(runner, script, scratch="own")
    second = factory.run(runner, script, scratch="own")
    for code, output, _ in (first, second):
        lines = output.replace("\r", "").splitlines()
        assert code == 0 and "mine" in lines, output
        assert "written" not in lines, output  # ls found nothing the other restore wrote
    assert len(runner.snapshots) == 2  # the plain one and the one with a disk


def test_a_run_records_the_kernel_the_machine_and_the_snapshot(tmp_path):
    out = bench("run", "--suite", "startup", "--runners", "process,microvm,vm-restore", "--repeat", "2", "--warmup", "0",
                "--memory", "256M", "--results-dir", tmp_path, "--no-report")
    assert out.returncode == 0, out.stderr
    df, meta = load_run((tmp_path / "latest").resolve())
    assert df["ok"].all(), df[~df["ok"]]["error"].tolist()
    assert (df[df["metric"] == "ready_ms"].groupby("runner")["value"].count() == 2).all()
    micro, restore = meta["runners"]["microvm"], meta["runners"]["vm-restore"]
    assert micro["kernel"].startswith("microvm-") and micro["machine"].startswith("microvm,")
    assert micro["kernel_build_s"] > 0
    snapshot = restore["snapshots"]["256M-1cpu"]  # the run's envelope: 256 MiB of guest RAM
    assert snapshot["size_mib"] > 0 and snapshot["boot_ms"] > 0
    total = df[df["metric"] == "guest_mem_total_mib"].groupby("runner")["value"].max()
    assert total["vm-restore"] < 256 and total["microvm"] < 256


def test_the_vm_runner_boots_the_microvm_kernel_on_q35():
    """--option vm.kernel=microvm: kernel and machine measured apart (virtio-pci with MSI-X here)."""
    out = bench("exec", "--runner", "vm", "--option", "kernel=microvm", "--", "sh", "-c", "cat /proc/version; exit 6")
    assert out.returncode == 6, out.stderr
    assert "6.1" in out.stdout


@pytest.mark.parametrize("runner", ["microvm", "vm-restore"])
def test_a_killed_run_leaves_nothing_after_bench_clean(tmp_path, runner):
    assert kill_run_then_clean(tmp_path, runner, sampled(tmp_path, runner)) == "0 leftovers found"
