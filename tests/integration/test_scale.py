"""The scale suite end to end: bursts, a fill to its limit, noisy neighbours, and what Ctrl-C and
SIGKILL leave with many instances up."""

import os
import signal
import subprocess
from pathlib import Path

import pytest

from bench.analysis.store import load_run
from tests.conftest import BENCH, ROOT, bench, kill_run_then_clean, wait_until


def run(tmp_path, *args, timeout=900, said=None):
    out = bench("run", *args, "--results-dir", tmp_path, "--no-report", timeout=timeout)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr
    if said is not None:
        said.append(out.stdout)
    return load_run((tmp_path / "latest").resolve())


def test_a_burst_gives_every_instance_its_ready_time_from_the_common_start_and_the_bursts_rate(tmp_path):
    df, meta = run(tmp_path, "--suite", "startup,scale", "--workloads", "probe,burst", "--runners", "process,container",
                   "--concurrency", "1,4", "--repeat", "2")
    assert df["ok"].all(), df[~df["ok"]]["error"].tolist()
    burst = df[df["suite"] == "scale"]
    assert set(burst["workload"]) == {"burst-n1", "burst-n4"}
    for (runner, label, iteration), part in burst.groupby(["runner", "workload", "iteration"]):
        n = int(label.removeprefix("burst-n"))
        assert (part["n"] == n).all()
        values = part.groupby("metric")["value"]
        assert values.size().to_dict() == {"ready_ms": n, "teardown_ms": n, "last_ready_ms": 1, "launch_rate_s": 1}
        last = values.max()["last_ready_ms"]
        assert last == values.max()["ready_ms"]
        assert values.max()["launch_rate_s"] == pytest.approx(n / (last / 1e3))
    assert (df[df["suite"] == "startup"]["n"] == 1).all()
    assert meta["scale"]["concurrency"] == [1, 4] and meta["scale"]["memory_budget_mib"] > 0


def test_a_fill_stops_at_the_limit_it_names_with_a_reading_per_count_and_nothing_left(tmp_path):
    df, meta = run(tmp_path, "--suite", "scale", "--workloads", "fill", "--runners", "container", "--max-instances", "5")
    assert df["ok"].all(), df[~df["ok"]]["error"].tolist()
    assert df[df["metric"] == "instances"]["value"].tolist() == [5]
    for metric in ("start_ms", "mem_per_instance_mib", "mem_resolution_mib"):
        assert sorted(df[df["metric"] == metric]["n"]) == [1, 2, 3, 4, 5]
    assert meta["rounds"]["fill"]["container"]["notes"] == ["--max-instances 5"]
    assert bench("clean", "--dry-run", "--results-dir", tmp_path).stdout.strip() == "0 leftovers found"


def test_vms_stop_at_the_memory_budget_counting_their_whole_guest_ram(tmp_path):
    df, meta = run(tmp_path, "--suite", "scale", "--workloads", "fill", "--runners", "vm", "--memory-budget", "1G",
                   "--memory", "512M")
    assert df[df["metric"] == "instances"]["value"].tolist() == [2]
    assert meta["rounds"]["fill"]["vm"]["notes"] == ["memory budget: 3 x 512 MiB guest RAM would pass 1024 MiB"]


def test_a_burst_over_the_budget_is_not_started_and_the_run_says_why(tmp_path):
    said = []
    df, meta = run(tmp_path, "--suite", "scale", "--workloads", "burst", "--runners", "process,vm",
                   "--concurrency", "1,4", "--memory-budget", "1G", "--memory", "512M", "--repeat", "1", said=said)
    assert set(df[df["runner"] == "vm"]["workload"]) == {"burst-n1"}
    assert meta["not_run"] == {"vm/burst-n4": "4 x 512 MiB guest RAM is over the memory budget of 1024 MiB"}
    assert "left out: vm/burst-n4: 4 x 512 MiB guest RAM is over the memory budget of 1024 MiB" in said[0]


def test_a_run_that_can_do_nothing_says_why_in_one_line_exits_2_and_stores_nothing(tmp_path):
    out = bench("run", "--suite", "scale", "--workloads", "burst", "--runners", "process", "--concurrency", "100000",
                "--results-dir", tmp_path / "r", "--no-report")
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stdout + out.stderr
    assert out.stderr.strip() == "bench: nothing to run: process/burst-n100000: 100000 at once is over --max-instances 64"
    assert not (tmp_path / "r").exists()


def test_neighbours_give_interference_ratios_of_the_cpu_rate_and_the_latency_tail(tmp_path):
    df, meta = run(tmp_path, "--suite", "scale", "--workloads", "neighbours", "--runners", "process,container",
                   "--neighbours", "1", "--repeat", "1")
    assert df["ok"].all(), df[~df["ok"]]["error"].tolist()
    for runner in ("process", "container"):
        values = df[df["runner"] == runner].set_index("metric")["value"]
        for metric in ("cpu_ops_s", "net_rr_p50_us", "net_rr_p99_us", "net_rr_p999_us"):
            assert values[f"interference_{metric}"] == pytest.approx(values[f"{metric}_beside"] / values[f"{metric}_alone"])
    assert (df["n"] == 2).all() and meta["scale"]["neighbour_load"] == "cpu"


def containers_up() -> int:
    """Our container instances with a root mounted: their overlay dirs under /tmp."""
    return sum(1 for d in Path("/tmp").glob("bench-*-*") if (d / "upper").is_dir())


def domains_up() -> int:
    import libvirt

    conn = libvirt.open("qemu:///system")
    try:
        return sum(1 for d in conn.listAllDomains() if d.name().startswith("bench-") and d.isActive())
    finally:
        conn.close()


FILL = ("--suite", "scale", "--workloads", "fill")


@pytest.mark.parametrize("runner, up, count", [("container", containers_up, 32), ("vm", domains_up, 8)])
def test_ctrl_c_with_many_up_tears_every_one_down(tmp_path, runner, up, count):
    proc = subprocess.Popen([*BENCH, "run", *FILL, "--runners", runner, "--max-instances", str(count + 1),
                             "--results-dir", str(tmp_path), "--no-report"], cwd=ROOT, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: up() >= count or proc.poll() is not None, f"{count} {runner} instances up")
        assert proc.poll() is None, proc.communicate()
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 128 + signal.SIGINT, err
    assert up() == 0
    assert bench("clean", "--dry-run", "--results-dir", tmp_path).stdout.strip() == "0 leftovers found"


@pytest.mark.parametrize("runner, up, count", [("container", containers_up, 32), ("vm", domains_up, 8)])
def test_sigkill_with_many_up_then_bench_clean_leaves_nothing(tmp_path, runner, up, count):
    left = kill_run_then_clean(tmp_path, runner, lambda: up() >= count,
                               suite=(*FILL, "--max-instances", str(count + 1)))
    assert left == "0 leftovers found"
    assert up() == 0


@pytest.mark.parametrize("load", ["membw", "disk", "net"])
def test_every_neighbour_load_runs_beside_the_measured_one(tmp_path, load):
    """net: each neighbour talks to host-side servers of its own, on ports of its own."""
    df, meta = run(tmp_path, "--suite", "scale", "--workloads", "neighbours", "--runners", "process",
                   "--neighbours", "2", "--neighbour-load", load, "--repeat", "1")
    assert df["ok"].all(), df[~df["ok"]]["error"].tolist()
    assert "interference_net_rr_p99_us" in set(df["metric"]) and meta["scale"]["neighbour_load"] == load
