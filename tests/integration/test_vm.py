"""The vm runner for real: libvirt, QEMU under TCG here (KVM where it works), a guest kernel of its own."""

import os
import subprocess
from pathlib import Path

import pytest

from bench.errors import MeasurementError
from bench.spec import LaunchSpec
from bench.analysis.store import load_run
from runners.vm import VmRunner
from tests.conftest import bench, domain_up, kill_run_then_clean

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prepared_cache")]


@pytest.fixture(scope="module")
def vm(tmp_path_factory, image):
    runner = VmRunner()
    ok, reason = runner.available()
    if not ok:
        pytest.fail(f"the vm runner is not available: {reason} (make setup starts libvirtd)")
    runner.prepare(str(image.rootfs), image.digest, str(tmp_path_factory.mktemp("vmcache")))
    yield runner
    runner.close()


def test_guest_runs_its_own_kernel(vm):
    out = bench("exec", "--runner", "vm", "--", "uname", "-r", timeout=300)
    assert out.returncode == 0, out.stderr
    guest = out.stdout.strip()
    assert guest.endswith("-cloud-amd64") and guest != os.uname().release


def test_exit_code_and_guest_memory(factory, vm):
    inst = factory.launch(vm, ["/bin/sh", "-c", "echo READY; exit 3"], name="bench-test-vm1", marker=b"READY")
    inst.wait_ready(120)
    assert inst.wait_exit(120) == 3
    extra = inst.extra_metrics()
    assert 300 < extra["guest_mem_total_mib"][0] <= 512
    assert inst.mem_peak_mib() > 50  # QEMU's own resident memory on the host
    assert vm.accel in ("kvm", "tcg") and vm.accel_reason


def test_the_guest_kernel_runs_under_the_hosts_security_modules_and_page_zeroing(factory, vm):
    """The process and container rows run under the host kernel's policy; the vm row's guest too."""
    import re

    from bench.images.kernel import host_policy

    script = ("mount -t securityfs s /sys/kernel/security; echo READY;"
              " cat /sys/kernel/security/lsm; echo; cat /proc/cmdline")
    inst = factory.launch(vm, ["/bin/busybox", "sh", "-c", script], name="bench-test-vmlsm", marker=b"READY")
    inst.wait_ready(120)
    assert inst.wait_exit(120) == 0
    seen = inst.output.decode(errors="replace").replace("\r", "").splitlines()
    host = host_policy()
    assert host["lsm"] in seen  # the guest's active LSMs, as securityfs lists them
    assert any(f" init_on_alloc={host['init_on_alloc']} " in line for line in seen)
    if vm.accel == "tcg":  # the host's TSC rate, which is the TCG guest's
        assert any(re.search(r" tsc_early_khz=[1-9][0-9]+ ", line) for line in seen)


def test_a_guest_that_never_gets_ready_is_destroyed(factory, vm):
    inst = factory.launch(vm, ["/bin/sleep", "600"], name="bench-test-vmhang", marker=b"READY")
    with pytest.raises(MeasurementError, match="no READY within"):
        inst.wait_ready(8)
    inst.teardown()
    assert not os.path.exists(f"/proc/{inst.pid}")  # QEMU is gone


def test_a_vm_run_records_its_accelerator_and_libvirts_share_of_ready_ms(tmp_path):
    out = bench("run", "--suite", "startup", "--runners", "process,vm", "--repeat", "2", "--warmup", "0",
                "--results-dir", str(tmp_path), "--no-report", timeout=600)
    assert out.returncode == 0, out.stderr
    df, meta = load_run((tmp_path / "latest").resolve())
    assert df["ok"].all()
    assert meta["runners"]["vm"]["accel"] in ("kvm", "tcg") and meta["runners"]["vm"]["accel_reason"]
    vm_ready = df[(df["runner"] == "vm") & (df["metric"] == "ready_ms")]["value"]
    assert len(vm_ready) == 2 and (vm_ready > 50).all()
    libvirt = df[(df["runner"] == "vm") & (df["metric"] == "libvirt_start_ms")].set_index("iteration")["value"]
    ready = df[(df["runner"] == "vm") & (df["metric"] == "ready_ms")].set_index("iteration")["value"]
    assert len(libvirt) == 2 and ((libvirt > 0) & (libvirt < ready)).all()  # a part of ready_ms, not all of it


def test_a_hanging_guest_is_recorded_not_fatal(tmp_path, vm, image):
    from bench.suites.startup import measure as measure_startup
    from bench.workload import Workload

    hang = Workload(name="hang", suite="startup", argv=("/bin/sleep", "600"), description="never ready",
                    metrics=(("ready_ms", "ms"),))
    spec = LaunchSpec("bench-test-vmhang2", hang.argv, str(image.rootfs), timeout_s=5)
    samples = measure_startup(vm, spec, hang, 0)
    assert [s.ok for s in samples] == [False] and "no READY within 5 s" in samples[0].error


def test_killed_mid_boot_leaves_nothing_after_clean(tmp_path):
    assert kill_run_then_clean(tmp_path, "vm", domain_up) == "0 leftovers found"  # a guest is booting
    qemus = subprocess.run(["pgrep", "-f", "qemu-system-x86_64.*guest=bench-"], capture_output=True, text=True)
    assert qemus.stdout.strip() == ""


def test_a_guest_libvirt_cannot_start_is_one_line_not_a_traceback(vm):
    """KVM asked for where QEMU cannot set it up (here: an MSR the host's KVM refuses)."""
    if not vm.accel_reason.startswith("KVM guest failed to start"):
        pytest.skip(f"QEMU starts KVM guests on this host ({vm.accel_reason}): no start failure to provoke")
    out = bench("exec", "--runner", "vm", "--option", "accel=kvm", "--", "true", timeout=120)
    assert out.returncode == 1 and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert out.stderr.startswith("bench: libvirt could not start bench-exec-")


def test_bench_exec_of_a_missing_command_in_a_vm_says_why_and_exits_127():
    out = bench("exec", "--runner", "vm", "--", "/nonexistent", timeout=300)
    assert out.returncode == 127
    assert "cannot exec /nonexistent: No such file or directory" in out.stdout + out.stderr


@pytest.fixture
def far_host():
    """A netns of ours behind a veth, routed from the host: what a guest must not reach through its tap."""
    names = ("bench-test-far", "bench-farh", "bench-farg")
    subprocess.run(["ip", "netns", "add", names[0]], check=True)
    try:
        for argv in (["link", "add", names[1], "type", "veth", "peer", "name", names[2], "netns", names[0]],
                     ["addr", "add", "10.215.0.1/30", "dev", names[1]], ["link", "set", names[1], "up"],
                     ["-n", names[0], "addr", "add", "10.215.0.2/30", "dev", names[2]],
                     ["-n", names[0], "link", "set", names[2], "up"], ["-n", names[0], "link", "set", "lo", "up"],
                     ["-n", names[0], "route", "add", "default", "via", "10.215.0.1"]):
            subprocess.run(["ip", *argv], check=True)
        yield "10.215.0.2"
    finally:
        subprocess.run(["ip", "link", "delete", names[1]], capture_output=True)
        subprocess.run(["ip", "netns", "delete", names[0]], check=True)


def test_a_guest_routing_through_its_tap_reaches_only_the_host_side_of_its_link(factory, vm, far_host):
    gateway = vm.server_side()[1]
    script = (f"ip route add default via {gateway}; ping -c 1 -W 2 {gateway} >/dev/null && echo HOST-REACHED; "
              f"ping -c 1 -W 2 {far_host} >/dev/null && echo FAR-REACHED; echo DONE")
    inst = factory.launch(vm, ["/bin/sh", "-c", script], name="bench-test-vmfwd", server=gateway)
    assert inst.wait_exit(120) == 0
    out = inst.output.decode(errors="replace")
    assert "DONE" in out and "HOST-REACHED" in out, out
    assert "FAR-REACHED" not in out
    assert Path(f"/proc/sys/net/ipv4/conf/{vm.tap.name}/forwarding").read_text().strip() == "0"
