"""cgroup v1 and v2 behind one interface, against fake cgroupfs trees (v2 can't run for real here)."""

from pathlib import Path

import pytest

from bench.host import cgroups
from bench.host.cgroups import CgroupV1, CgroupV2, detect, v1_mounts


@pytest.fixture(autouse=True)
def own_parent_lock(tmp_path, monkeypatch):
    """The host's lock is shared with real runs; these fake trees get their own."""
    monkeypatch.setattr(cgroups, "PARENT_LOCK", tmp_path / "cgroups.lock")


def fake_v2(tmp_path: Path) -> Path:
    root = tmp_path / "cgroup"
    root.mkdir()
    (root / "cgroup.controllers").write_text("cpuset cpu io memory hugetlb pids rdma misc\n")
    (root / "cgroup.subtree_control").write_text("")
    return root


def test_v2_detected_and_parent_enables_controllers(tmp_path):
    root = fake_v2(tmp_path)
    fs = detect(str(root), mountinfo="/nonexistent")
    assert fs.version == 2
    fs.ensure_parent()
    assert (root / "cgroup.subtree_control").read_text() == "+memory +cpu +pids +cpuset"
    assert (root / "bench" / "cgroup.subtree_control").read_text() == "+memory +cpu +pids +cpuset"


def test_v2_limits_and_accounting(tmp_path):
    root = fake_v2(tmp_path)
    fs = detect(str(root), mountinfo="/nonexistent")
    fs.ensure_parent()
    cg = fs.instance("bench-x")
    assert isinstance(cg, CgroupV2)
    cg.create()
    (cg.dir / "memory.swap.max").write_text("max\n")
    cg.set_limits(memory_mib=64, quota_us=50_000, pids=32, cpuset="1")
    assert (cg.dir / "memory.max").read_text() == str(64 << 20)
    assert (cg.dir / "memory.swap.max").read_text() == "0"
    assert (cg.dir / "cpu.max").read_text() == "50000 100000"
    assert (cg.dir / "pids.max").read_text() == "32"
    assert (cg.dir / "cpuset.cpus").read_text() == "1"
    assert cg.procs_files == [str(cg.dir / "cgroup.procs")]
    assert cg.self_join_files == cg.procs_files  # v2 has no per-thread move for a domain cgroup
    (cg.dir / "memory.peak").write_text("1048576\n")
    (cg.dir / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    (cg.dir / "cpu.stat").write_text("usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n")
    assert cg.memory_peak_bytes() == 1 << 20
    assert cg.oom_kills() == 1
    assert cg.cpu_usage_ns() == 1_500_000


def test_v2_without_swap_accounting_skips_swap(tmp_path):
    fs = detect(str(fake_v2(tmp_path)), mountinfo="/nonexistent")
    fs.ensure_parent()
    cg = fs.instance("bench-y")
    cg.create()
    cg.set_limits(memory_mib=8, quota_us=None, pids=None)
    assert not (cg.dir / "memory.swap.max").exists() and not (cg.dir / "cpu.max").exists()


def test_remove_is_idempotent(tmp_path):
    fs = detect(str(fake_v2(tmp_path)), mountinfo="/nonexistent")
    fs.ensure_parent()
    cg = fs.instance("bench-z")
    cg.create()
    cg.remove()
    cg.remove()
    assert not cg.dir.exists()
    assert fs.leftovers() == [Path(fs.root / "bench")]


def test_the_parent_outlives_a_run_ending_while_another_is_between_instances(tmp_path):
    mounts = {c: tmp_path / c for c in cgroups.V1_CONTROLLERS}  # v1: plain directories rmdir like cgroups
    for m in mounts.values():
        m.mkdir()
    ending, going_on = (cgroups.CgroupFS(1, tmp_path, mounts) for _ in range(2))
    ending.ensure_parent()
    going_on.ensure_parent()  # and has no instance at this moment: the parents are empty
    ending.remove_parent()
    assert all((m / "bench").is_dir() for m in mounts.values())  # removed here, going_on's next mkdir failed
    going_on.instance("bench-next").create()
    going_on.instance("bench-next").remove()
    going_on.remove_parent()  # the last one out removes them
    assert not any((m / "bench").exists() for m in mounts.values())
    going_on.remove_parent()  # idempotent


def test_v1_mounts_from_real_mountinfo(data_dir):
    mounts = v1_mounts((data_dir / "mountinfo_hybrid_v1.txt").read_text())
    assert mounts["memory"] == Path("/sys/fs/cgroup/memory")
    assert mounts["cpuacct"] == Path("/sys/fs/cgroup/cpuacct")
    assert "systemd" not in mounts


def test_v1_limits_go_to_each_controller(tmp_path):
    mounts = {c: tmp_path / c for c in cgroups.V1_CONTROLLERS}
    for m in mounts.values():
        (m / "bench").mkdir(parents=True)
    cg = CgroupV1(mounts, "bench-x")
    cg.create()
    (cg.by_controller["memory"] / "memory.memsw.limit_in_bytes").write_text("")
    cg.set_limits(memory_mib=64, quota_us=150_000, pids=10, cpuset="0,1")
    assert (cg.by_controller["memory"] / "memory.limit_in_bytes").read_text() == str(64 << 20)
    assert (cg.by_controller["memory"] / "memory.memsw.limit_in_bytes").read_text() == str(64 << 20)
    assert (cg.by_controller["cpu"] / "cpu.cfs_quota_us").read_text() == "150000"
    assert (cg.by_controller["pids"] / "pids.max").read_text() == "10"
    assert (cg.by_controller["cpuset"] / "cpuset.cpus").read_text() == "0,1"
    assert len(cg.procs_files) == 5
    assert sorted(cg.self_join_files) == sorted(str(d / "tasks") for d in cg.dirs)  # a thread moving itself: no RCU wait
    (cg.by_controller["memory"] / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    assert cg.oom_kills() == 2


def test_missing_v1_controller_is_reported(tmp_path):
    (tmp_path / "mountinfo").write_text("")
    with pytest.raises(OSError, match="not mounted"):
        detect(str(tmp_path), mountinfo=str(tmp_path / "mountinfo"))


def test_v1_home_join_files_lead_back_to_each_hierarchy_own_cgroup(tmp_path):
    mounts = {"memory": tmp_path / "memory", "cpu": tmp_path / "cpu,cpuacct", "cpuacct": tmp_path / "cpu,cpuacct",
              "pids": tmp_path / "pids", "cpuset": tmp_path / "cpuset"}
    fs = cgroups.CgroupFS(1, tmp_path, mounts)
    cg = fs.instance("bench-x")
    proc_self = "12:pids:/ci/job\n5:cpu,cpuacct:/\n4:memory:/ci/job\n3:cpuset:/\n0::/\n"
    home = fs.home_join_files(cg, proc_self)
    assert home == [str(tmp_path / "memory/ci/job/tasks"), str(tmp_path / "cpu,cpuacct/tasks"),
                    str(tmp_path / "pids/ci/job/tasks"), str(tmp_path / "cpuset/tasks")]
    assert len(home) == len(cg.self_join_files)  # file for file


def test_v2_home_join_file_and_a_peak_reset_through_its_own_fd(tmp_path):
    root = fake_v2(tmp_path)
    fs = detect(str(root), mountinfo="/nonexistent")
    fs.ensure_parent()
    cg = fs.instance("bench-x")
    cg.create()
    assert fs.home_join_files(cg, "0::/ci/job\n") == [str(root / "ci/job/cgroup.procs")]
    (cg.dir / "memory.peak").write_text("7340032\n")
    cg.reset_peak()  # the kernel resets the peak seen through that fd; a plain file just takes the write
    assert (cg.dir / "memory.peak").read_text().startswith("reset")
    (cg.dir / "memory.peak").write_text("1048576\n")
    assert cg.memory_peak_bytes() == 1 << 20  # read back through the same fd
    (cg.dir / "memory.peak").unlink()
    cg.remove()  # closes the fd too
    assert not cg.dir.exists()


def test_joined_moves_in_then_home_even_when_the_body_fails(tmp_path):
    inside, home = tmp_path / "in", tmp_path / "home"
    inside.write_text("")
    home.write_text("")
    with pytest.raises(RuntimeError):
        with cgroups.joined([str(inside)], [str(home)]):
            assert inside.read_text() == "0" and home.read_text() == ""
            raise RuntimeError
    assert home.read_text() == "0"
