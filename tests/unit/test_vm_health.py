"""What tells a user that libvirt is slow here, and why: bench doctor's checks and a run's warning."""

import os
import xml.etree.ElementTree as ET

from runners.vm import VmRunner
from runners.vm.accel import kvm_device_check
from runners.vm.domain import tiny_domain_xml
from runners.vm.runner import SLOW_LIBVIRT_START_MS


def test_a_kvm_device_left_as_root_0600_is_named_with_the_fix(tmp_path):
    dev = tmp_path / "kvm"
    dev.write_text("")
    os.chmod(dev, 0o600)
    check = kvm_device_check(str(dev))
    assert not check.ok and "0600" in check.detail and "re-probes QEMU" in check.detail
    assert check.fix.startswith(f"chgrp kvm {dev} && chmod 0660 {dev}")


def test_no_kvm_device_is_fine_for_libvirt():
    check = kvm_device_check("/nonexistent/kvm")
    assert check.ok and "TCG" in check.detail


def test_the_tiny_domain_starts_nothing_but_libvirt_and_qemu():
    root = ET.fromstring(tiny_domain_xml("bench-doctor-1"))
    assert root.findtext("name") == "bench-doctor-1"
    assert root.find("os/kernel") is None and root.find("devices/disk") is None
    assert root.find("devices/interface") is None


def test_a_slow_libvirt_start_is_a_warning_of_the_run_and_a_fast_one_is_not():
    (warning,) = VmRunner.warnings({"libvirt_start_ms": 9962.0, "ready_ms": 11800.0})
    assert "9,962 ms" in warning and "/dev/kvm" in warning and "bench doctor" in warning
    assert VmRunner.warnings({"libvirt_start_ms": SLOW_LIBVIRT_START_MS - 1}) == []
    assert VmRunner.warnings({"ready_ms": 1300.0}) == []


def test_every_vcpu_is_pinned_and_the_emulator_kept_on_the_set():
    from runners.vm.domain import cputune_xml

    xml = cputune_xml(2, [3, 1], None)
    assert "<vcpupin vcpu='0' cpuset='3'/><vcpupin vcpu='1' cpuset='1'/><emulatorpin cpuset='3,1'/>" in xml
    assert "quota" not in xml and cputune_xml(1, None, None) == ""
    assert "<global_quota>50000</global_quota>" in cputune_xml(1, [1], 50_000)
