"""How the disk, network and memory workloads are planned and set up, without running them."""

import pytest

from bench.run import plan_runs
from bench.spec import SCRATCH, LaunchSpec
from bench.workload import builtin
from bench.suites.memory import host_used_kib
from runners.process import host_argv
from runners.vm.domain import domain_xml, guest_cmdline


WORKLOADS = list(builtin().values())


def workloads(*names):
    return [w for w in WORKLOADS if w.name in names]


def test_runners_that_lack_what_a_workload_needs_are_left_out_with_the_reason():
    status = {"process": {"provides": ["scratch", "server"]}, "bwrap": {"provides": []},
              "container": {"provides": ["scratch"]}}  # container with network=none
    plan, not_run = plan_runs(workloads("cpu", "disk", "net"), ["process", "bwrap", "container"], status)
    assert [(step.label, step.runners) for step in plan] == [
        ("cpu", ["process", "bwrap", "container"]), ("disk", ["process", "container"]), ("net", ["process"])]
    assert not_run == {"bwrap/disk": "bwrap does not provide a scratch directory or disk",
                       "bwrap/net": "bwrap does not provide a network path to host-side servers",
                       "container/net": "container does not provide a network path to host-side servers"}


def test_a_burst_is_a_step_per_concurrency_and_a_vm_leaves_out_the_bursts_its_guest_ram_cannot_fit():
    from dataclasses import replace

    from bench.suites import suites

    scale = suites()["scale"].settings({"concurrency": (1, 4, 16), "memory_budget_mib": 4096, "max_instances": 8})
    status = {"process": {"provides": []}, "vm": {"provides": ["scratch", "server"], "reserved_mib": 512}}
    plan, not_run = plan_runs(workloads("burst"), ["process", "vm"], status, {"scale": scale})
    assert [(step.label, step.runners, step.extra) for step in plan] == [
        ("burst-n1", ["process", "vm"], {"n": 1}), ("burst-n4", ["process", "vm"], {"n": 4})]
    assert not_run == {"process/burst-n16": "16 at once is over --max-instances 8",
                       "vm/burst-n16": "16 at once is over --max-instances 8"}
    plan, not_run = plan_runs(workloads("burst"), ["vm"], status, {"scale": replace(scale, max_instances=64)})
    assert [step.label for step in plan] == ["burst-n1", "burst-n4"]
    assert not_run == {"vm/burst-n16": "16 x 512 MiB guest RAM is over the memory budget of 4096 MiB"}


def test_every_throughput_and_memory_metric_of_the_design_is_produced():
    metrics = {m for w in WORKLOADS for m, _ in w.metrics}
    assert {"cpu_ops_s", "mem_bw_mib_s", "syscalls_s", "forks_s", "disk_randread_iops", "disk_randwrite_iops",
            "disk_seq_read_mib_s", "net_gbit_s", "net_rr_us", "mem_overhead_mib", "mem_per_instance_mib"} <= metrics


def test_placeholders_are_filled_in():
    (disk,) = workloads("disk")
    spec = LaunchSpec("bench-x", disk.argv, "/rootfs", scratch="own")
    assert f"--directory={SCRATCH}" in spec.argv
    assert "--directory=/mnt/scratch" in spec.argv_with({SCRATCH: "/mnt/scratch"})


def test_a_process_runs_the_host_copies_of_our_guest_tools():
    spec = LaunchSpec("bench-x", (), "/rootfs", host_paths={"/bin/bench-rr": "/cache/bench-rr",
                                                             "/usr/bin/iperf3": "/usr/bin/iperf3"})
    argv = host_argv(spec, ("/bin/sh", "-c", "/bin/bench-rr client 1 && /usr/bin/iperf3 -c 1; /x/bin/bench-rr"))
    assert argv == ["/bin/sh", "-c", "/cache/bench-rr client 1 && /usr/bin/iperf3 -c 1; /x/bin/bench-rr"]


def test_a_vm_gets_a_scratch_disk_and_a_nic_only_when_asked():
    plain = domain_xml("bench-1", "tcg", 1, 512, "/k", "/i", "/root.ext4", "console=ttyS0", "/c.sock")
    assert plain.count("<disk") == 1 and "<interface" not in plain  # the read-only root disk only
    assert "<source file='/root.ext4'/>" in plain and "<serial>bench-root</serial><readonly/>" in plain
    both = domain_xml("bench-1", "tcg", 1, 512, "/k", "/i", "/root.ext4", "console=ttyS0", "/c.sock", "/s.img", "bench-tap7")
    assert "<source file='/s.img'/>" in both and "cache='none'" in both and "<serial>bench-scratch</serial>" in both
    assert "<target dev='bench-tap7' managed='no'/>" in both and "<model type='virtio'/>" in both
    cmdline = guest_cmdline(("true",), ["virtio_blk"], "bench-scratch", "10.214.0.2/30")
    assert cmdline.endswith("bench.modules=virtio_blk bench.scratch=bench-scratch bench.net=10.214.0.2/30")


def test_every_vm_device_sits_on_its_own_slot_of_the_root_bus():
    """No pcie-root-port for libvirt to add in between: each would be one more bridge to boot."""
    import re

    both = domain_xml("bench-1", "tcg", 1, 512, "/k", "/i", "/root.ext4", "console=ttyS0", "/c.sock", "/s.img", "bench-tap7")
    addresses = re.findall(r"<address type='pci' domain='0' bus='0' slot='(\d+)' function='0'/>", both)
    assert len(addresses) == 3 == len(set(addresses))  # root disk, scratch disk, NIC
    assert "machine='q35'" in both


def test_libvirt_reads_the_guest_cpu_back_in_two_calls_unless_told_stock():
    import xml.etree.ElementTree as ET

    from runners.vm.domain import VmConfig

    qemu_ns = "{http://libvirt.org/schemas/domain/qemu/1.0}"
    for readback, deleted in (("words", ["cpu-unavailable-features"]), ("stock", [])):
        xml = domain_xml("bench-1", "tcg", 1, 512, "/k", "/i", "/root.ext4", "console=ttyS0", "/c.sock",
                         cpu_readback=readback)
        root = ET.fromstring(xml)  # well-formed, namespace declared
        assert [d.get("capability") for d in root.iter(f"{qemu_ns}del")] == deleted
    with pytest.raises(ValueError, match="cpu_readback must be words or stock, not 'fast'"):
        VmConfig(cpu_readback="fast")


def test_a_modules_appended_signature_is_cut_off():
    from bench.images.initramfs import SIGNATURE_MAGIC, unsigned

    body, signature = b"\x7fELF module body", b"S" * 300
    info = bytes(8) + len(signature).to_bytes(4, "big")  # struct module_signature: sig_len last, big-endian
    assert unsigned(body + signature + info + SIGNATURE_MAGIC) == body
    assert unsigned(body) == body  # unsigned already


def test_the_workload_travels_as_its_argv_nul_separated():
    import base64

    cmdline = guest_cmdline(("/bin/sh", "-c", "echo 'a b'; exit 3"), [])
    packed = next(a for a in cmdline.split() if a.startswith("bench.argv="))[len("bench.argv="):]
    assert base64.b64decode(packed).split(b"\0") == [b"/bin/sh", b"-c", b"echo 'a b'; exit 3"]


def test_only_a_single_vcpu_guest_goes_without_the_apic_timer():
    assert " noapictimer " in guest_cmdline(("true",), [], vcpus=1)
    assert "noapictimer" not in guest_cmdline(("true",), [], vcpus=2)  # each CPU needs its own timer


def test_the_guest_kernel_takes_the_hosts_parameters_before_the_workload():
    cmdline = guest_cmdline(("true",), [], host={"lsm": "lockdown,capability", "init_on_alloc": "0"})
    assert " lsm=lockdown,capability init_on_alloc=0 bench.argv=" in cmdline


@pytest.mark.parametrize("cmdline, config, zeroes", [
    ("quiet", "CONFIG_INIT_ON_ALLOC_DEFAULT_ON=y\n", "1"),  # Debian's default
    ("quiet", "# CONFIG_INIT_ON_ALLOC_DEFAULT_ON is not set\n", "0"),
    ("init_on_alloc=1 quiet", "# CONFIG_INIT_ON_ALLOC_DEFAULT_ON is not set\n", "1"),  # the command line wins
    ("init_on_alloc=on init_on_alloc=0", "CONFIG_INIT_ON_ALLOC_DEFAULT_ON=y\n", "0"),  # the last one does
    ("xinit_on_alloc=1", None, None),  # not the parameter; no configuration to read: unknown
    ("init_on_alloc=0 init_on_alloc=maybe", "", "0"),  # the kernel ignores what is not a boolean
])
def test_whether_the_host_kernel_zeroes_the_pages_it_allocates(cmdline, config, zeroes):
    from bench.images.kernel import init_on_alloc

    assert init_on_alloc(cmdline, config) == zeroes


@pytest.mark.parametrize("text, used", [("MemTotal: 1000 kB\nMemFree: 10 kB\nMemAvailable: 600 kB\n", 400)])
def test_host_memory_in_use(text, used):
    assert host_used_kib(text) == used


def test_stream_gets_the_hosts_last_level_cache_size(tmp_path):
    from bench.suites.throughput import host_l3_kib

    for i, size in enumerate(("32K", "1024K", "32768K")):
        (tmp_path / f"index{i}").mkdir()
        (tmp_path / f"index{i}" / "size").write_text(size + "\n")
    assert host_l3_kib(str(tmp_path)) == 32768
    assert host_l3_kib(str(tmp_path / "none")) == 2048  # stress-ng's own default


def test_streams_arrays_fit_half_the_envelope(monkeypatch):
    from bench.suites import throughput

    monkeypatch.setattr(throughput, "host_l3_kib", lambda: 32768)
    assert throughput.stream_cache_kib(None) == 32768
    assert throughput.stream_cache_kib(512) == 21845  # 12 x 21845K = 256 MiB, half of 512M
    assert throughput.stream_cache_kib(4096) == 32768


def test_a_scale_measurement_stops_at_the_first_limit_it_meets_and_says_which():
    from bench.suites.scale import Limits

    limits = Limits(budget_mib=1024, max_instances=3, reserved_mib=512)
    assert limits.reached(0) is None and limits.reached(1) is None
    assert limits.reached(2) == "memory budget: 3 x 512 MiB guest RAM would pass 1024 MiB"
    assert limits.reached(3) == "--max-instances 3"
    assert limits.fits(2) is None
    assert limits.fits(3) == "3 x 512 MiB guest RAM is over the memory budget of 1024 MiB"
    assert Limits(budget_mib=1024, max_instances=64).fits(65) == "65 at once is over --max-instances 64"
