"""The throughput suite for real: the same tools in every runner, parsed into one metric each."""

import json

import pytest

from bench.analysis.store import load_run
from bench.workload import Workload
from tests.conftest import bench, measure_in_process

pytestmark = pytest.mark.integration


def test_throughput_in_process_chroot_and_container(tmp_path):
    out = bench("run", "--suite", "throughput", "--runners", "process,chroot,container", "--repeat", "1",
                "--results-dir", str(tmp_path), "--no-report", timeout=900)
    assert out.returncode == 0, out.stderr
    df, meta = load_run((tmp_path / "latest").resolve())
    assert df["ok"].all(), df[~df["ok"]]["error"].tolist()
    every = {"cpu_ops_s", "mem_bw_mib_s", "syscalls_s", "forks_s", "disk_randread_iops", "disk_randwrite_iops",
             "disk_seq_read_mib_s", "net_gbit_s", "net_rr_us",  # DESIGN's throughput table
             "net_rr_p50_us", "net_rr_p99_us", "net_rr_p999_us"}  # and the round trips' percentiles
    for runner in ("process", "chroot", "container"):
        assert set(df[df["runner"] == runner]["metric"]) == every
    assert set(df[df["metric"] == "disk_randread_iops"]["workload"]) == {"disk", "disk-volume"}
    assert (df["value"] > 0).all()
    import os

    highest = max(os.sched_getaffinity(0))  # the suite's default envelope: one CPU, the same for every runner
    assert meta["envelope"] == {"cpus": 1.0, "memory_mib": 512, "pids": None, "cpuset": [highest]}
    assert meta["runners"]["process"]["envelope"]["cpuset"].startswith("CPU affinity")
    assert meta["runners"]["container"]["envelope"] == {"cpuset": "cpuset cgroup", "memory": "memory cgroup"}
    assert meta["not_run"] == {}


def test_disk_and_net_in_a_vm(tmp_path):
    """fio on a virtio-blk scratch disk, bench-rr and iperf3 across a virtio NIC to our own tap."""
    out = bench("run", "--suite", "throughput", "--workloads", "disk,net", "--runners", "vm", "--repeat", "1",
                "--results-dir", str(tmp_path), "--no-report", timeout=600)
    assert out.returncode == 0, out.stderr
    df, meta = load_run((tmp_path / "latest").resolve())
    assert df["ok"].all(), df[~df["ok"]]["error"].tolist()
    assert set(df["metric"]) == {"disk_randread_iops", "disk_randwrite_iops", "disk_seq_read_mib_s", "net_gbit_s",
                                 "net_rr_us", "net_rr_p50_us", "net_rr_p99_us", "net_rr_p999_us"}
    rr = df.set_index("metric")["value"]
    assert rr["net_rr_p50_us"] <= rr["net_rr_p99_us"] <= rr["net_rr_p999_us"]
    assert (df["value"] > 0).all()
    assert meta["runners"]["vm"]["accel"] in ("kvm", "tcg")


def test_a_runner_without_a_network_path_is_left_out_and_says_why(tmp_path):
    """Every runner has a disk and a network path now; a variant without one (docker:network=none)
    leaves the network workload out, and the run says why."""
    out = bench("run", "--suite", "throughput", "--workloads", "net,syscall", "--runners", "process,docker:network=none",
                "--repeat", "1", "--results-dir", str(tmp_path), "--no-report", timeout=300)
    assert out.returncode == 0, out.stderr
    df, meta = load_run((tmp_path / "latest").resolve())
    assert set(df[df["runner"] == "docker:network=none"]["workload"]) == {"syscall"}
    assert meta["not_run"] == {
        "docker:network=none/net": "docker:network=none does not provide a network path to host-side servers"}


def test_memory_suite_charges_a_vm_more_than_a_container_and_a_process_nothing(tmp_path):
    out = bench("run", "--suite", "memory", "--runners", "process,container,vm", "--repeat", "1", "--warmup", "0",
                "--density", "2", "--results-dir", str(tmp_path), "--reports-dir", str(tmp_path / "reports"),
                timeout=600)
    assert out.returncode == 0, out.stderr
    df, meta = load_run((tmp_path / "latest").resolve())
    assert df["ok"].all(), df[~df["ok"]]["error"].tolist()
    value = df.set_index(["metric", "runner"])["value"]
    assert abs(value["mem_overhead_mib", "process"]) < 1  # the same idle process twice: no overhead
    assert 0 < value["mem_overhead_mib", "container"] < value["mem_overhead_mib", "vm"]
    assert value["mem_per_instance_mib", "vm"] > 64  # a guest kernel, its page cache and QEMU itself
    # each density reading comes with what it can resolve: the host's drift plus the settling tolerance
    assert (df[df["metric"] == "mem_resolution_mib"]["value"] >= 0.5 / 2).all()
    assert meta["memory"] == {"density": 2}  # the memory suite's options, under its name
    html = next((tmp_path / "reports").glob("*/index.html")).read_text()
    assert "Against a plain process" in html and "MiB" in html


def test_a_tool_that_fails_gives_ok_false_with_its_output(factory):
    broken = Workload(name="broken", suite="throughput", argv=("/usr/bin/stress-ng", "--no-such-stressor"),
                      description="fails", metrics=(("cpu_ops_s", "ops/s"),), parser="parse_stress_ng_rate", timeout_s=30)
    sample = measure_in_process(factory, broken)
    assert not sample.ok and "exit code" in sample.error and "no-such-stressor" in sample.error


def test_garbage_output_is_not_a_number(factory):
    garbage = Workload(name="garbage", suite="throughput", argv=("/bin/echo", "hello"), description="prints garbage",
                       metrics=(("syscalls_s", "calls/s"),), parser="parse_bench_syscall", timeout_s=30)
    sample = measure_in_process(factory, garbage)
    assert not sample.ok and "no syscalls_per_s line" in sample.error and "hello" in sample.error


def test_compare_flags_half_a_cpu_as_a_regression(tmp_path):
    def cpu_run(*extra):
        out = bench("run", "--suite", "throughput", "--workloads", "cpu", "--runners", "container", "--repeat",
                    "4", "--results-dir", str(tmp_path), "--no-report", *extra, timeout=300)
        assert out.returncode == 0, out.stderr
        return str((tmp_path / "latest").resolve())

    base, half = cpu_run(), cpu_run("--cpus", "0.5")
    out = bench("compare", base, half, "--json")
    assert out.returncode == 1
    assert [v["verdict"] for v in json.loads(out.stdout)] == ["regression"]
