"""The peer runtimes for real, fed the same rootfs and measured the same way as our runners."""

import json

import pytest

from bench.analysis.store import load_run
from tests.conftest import bench, kill_run_then_clean, sampled

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prepared_cache")]


@pytest.mark.parametrize("runner", ["bwrap", "runc", "docker", "qemu", "nspawn", "lxc", "gvisor", "uml"])
def test_peer_runs_the_same_rootfs_and_passes_exit_codes(runner):
    out = bench("exec", "--runner", runner, "--", "sh", "-c", "test -x /bin/bench-probe && echo same-rootfs; exit 4")
    assert out.returncode == 4, out.stderr
    assert "same-rootfs" in out.stdout.splitlines()


@pytest.mark.parametrize("runner", ["runc", "docker"])
def test_a_user_namespace_is_refused_under_dockers_default_seccomp(runner):
    """Our runc bundle carries the same policy (runners/seccomp.py) as Docker hands its runc."""
    out = bench("exec", "--runner", runner, "--", "unshare", "-Ur", "id")
    assert out.returncode != 0 and "Operation not permitted" in out.stdout + out.stderr


def test_every_peer_starts_and_docker_says_why_it_has_no_peak_memory(tmp_path):
    out = bench("run", "--suite", "startup", "--runners", "process,bwrap,runc,docker,qemu", "--repeat", "2",
                "--warmup", "0", "--results-dir", str(tmp_path), "--no-report")
    assert out.returncode == 0, out.stderr
    df, meta = load_run((tmp_path / "latest").resolve())
    assert df["ok"].all()
    ready = df[df["metric"] == "ready_ms"].groupby("runner")["value"].count()
    assert (ready == 2).all() and len(ready) == 5
    assert {meta["runners"][r]["kind"] for r in ("bwrap", "runc", "docker", "qemu")} == {"peer"}
    assert "mem_peak_mib" not in set(df[df["runner"] == "docker"]["metric"])  # said why in meta instead
    assert "not measured" in meta["runners"]["docker"]["mem_peak"]


def test_docker_envelope_is_applied():
    out = bench("exec", "--runner", "docker", "--memory", "64M", "--", "dd", "if=/dev/zero", "of=/dev/null",
                "bs=200M", "count=1")
    assert out.returncode == 137  # killed by the memory limit, exactly as in our container


def test_crun_says_why_it_cannot_run_here():
    runners = {r["name"]: r for r in json.loads(bench("list", "runners", "--json").stdout)["runners"]}
    from runners.oci import hybrid_v2_controllers

    if hybrid_v2_controllers():
        assert runners["crun"]["available"] is False and "hybrid" in runners["crun"]["reason"]
    else:
        assert runners["crun"]["available"] is True


def test_podman_says_why_it_cannot_run_here():
    from runners.podman import CAP_SYS_RESOURCE, has_capability

    runners = {r["name"]: r for r in json.loads(bench("list", "runners", "--json").stdout)["runners"]}
    if not has_capability(CAP_SYS_RESOURCE):
        assert runners["podman"]["available"] is False and "CAP_SYS_RESOURCE" in runners["podman"]["reason"]
    else:
        assert bench("exec", "--runner", "podman", "--", "true").returncode == 0


def test_lxc_applies_the_memory_limit():
    out = bench("exec", "--runner", "lxc", "--memory", "64M", "--", "dd", "if=/dev/zero", "of=/dev/null",
                "bs=200M", "count=1")
    assert out.returncode == 137  # the OOM kill, passed on by lxc-execute


def test_throughput_tools_run_on_read_only_roots(tmp_path):
    """stress-ng writes temp files: under bwrap, runc and nspawn the root is read-only, /tmp is not."""
    out = bench("run", "--suite", "throughput", "--workloads", "fork", "--runners", "bwrap,runc,nspawn,docker,lxc,gvisor",
                "--repeat", "1", "--results-dir", str(tmp_path), "--no-report")
    assert out.returncode == 0, out.stdout[-2000:]
    df, _ = load_run((tmp_path / "latest").resolve())
    assert df["ok"].all() and len(df) == 6


def test_gvisor_pays_for_every_system_call_in_its_sentry(tmp_path):
    """gVisor's cost is system calls: getppid() answered by the Sentry, not the host kernel. The
    platform it ran on is recorded with why, and its sandbox's private memory is its overhead."""
    out = bench("run", "--suite", "throughput,memory", "--workloads", "syscall,idle", "--runners", "process,gvisor",
                "--repeat", "1", "--warmup", "0", "--results-dir", str(tmp_path), "--no-report")
    assert out.returncode == 0, out.stderr
    df, meta = load_run((tmp_path / "latest").resolve())
    assert df["ok"].all()
    value = df.set_index(["metric", "runner"])["value"]
    assert value["syscalls_s", "gvisor"] < 0.5 * value["syscalls_s", "process"]
    assert value["mem_overhead_mib", "gvisor"] > 1  # the Sentry and the Gofer are processes of their own
    assert meta["runners"]["gvisor"]["platform"] in ("ptrace", "kvm") and meta["runners"]["gvisor"]["platform_reason"]


def test_a_killed_gvisor_run_leaves_nothing_after_bench_clean(tmp_path):
    assert kill_run_then_clean(tmp_path, "gvisor", sampled(tmp_path, "gvisor")) == "0 leftovers found"


def test_uml_runs_a_kernel_as_host_processes_and_pays_for_system_calls_in_it(tmp_path):
    """UML's guest processes are host processes its kernel traces: every system call goes through
    the UML kernel, so syscalls/s falls far below the host's; a fork is a new traced host process."""
    out = bench("run", "--suite", "startup,throughput", "--workloads", "probe,syscall", "--runners", "process,uml",
                "--repeat", "2", "--warmup", "0", "--results-dir", str(tmp_path), "--no-report")
    assert out.returncode == 0, out.stderr
    df, meta = load_run((tmp_path / "latest").resolve())
    assert df["ok"].all(), df[~df["ok"]]["error"].tolist()
    value = df.groupby(["metric", "runner"])["value"].median()
    assert value["syscalls_s", "uml"] < 0.5 * value["syscalls_s", "process"]
    assert value["ready_ms", "uml"] > value["ready_ms", "process"]  # a kernel boots first
    assert meta["runners"]["uml"]["kind"] == "peer" and meta["versions"]["linux.uml"]


def test_a_killed_uml_run_leaves_nothing_after_bench_clean(tmp_path):
    assert kill_run_then_clean(tmp_path, "uml", sampled(tmp_path, "uml")) == "0 leftovers found"
