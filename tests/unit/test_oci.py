from bench.spec import Envelope, LaunchSpec
from runners.oci import hybrid_v2_controllers, oci_config


def test_bundle_carries_envelope_and_docker_defaults():
    spec = LaunchSpec("bench-x", ("/bin/bench-probe",), "/img/rootfs",
                      envelope=Envelope(cpus=0.5, memory_mib=64, pids=32, cpuset=(1,)))
    cfg = oci_config(spec, "/bench/bench-x")
    assert cfg["root"] == {"path": "/img/rootfs", "readonly": True}
    assert cfg["process"]["args"] == ["/bin/bench-probe"] and cfg["process"]["noNewPrivileges"]
    assert "CAP_SYS_ADMIN" not in cfg["process"]["capabilities"]["bounding"]
    assert "CAP_NET_RAW" in cfg["process"]["capabilities"]["effective"]
    res = cfg["linux"]["resources"]
    assert res["memory"]["limit"] == 64 << 20 and res["cpu"] == {"cpus": "1", "quota": 50000, "period": 100000}
    assert res["pids"] == {"limit": 32}
    assert cfg["linux"]["cgroupsPath"] == "/bench/bench-x"
    assert {n["type"] for n in cfg["linux"]["namespaces"]} == {"pid", "network", "ipc", "uts", "mount", "cgroup"}
    assert "/proc/sys" in cfg["linux"]["readonlyPaths"] and "/proc/kcore" in cfg["linux"]["maskedPaths"]


def test_no_envelope_no_limits():
    cfg = oci_config(LaunchSpec("bench-y", ("/bin/true",), "/r"), "/bench/bench-y")
    assert cfg["linux"]["resources"] == {}


def test_hybrid_controllers(tmp_path):
    assert hybrid_v2_controllers(str(tmp_path)) == []
    (tmp_path / "unified").mkdir()
    (tmp_path / "unified" / "cgroup.controllers").write_text("hugetlb\n")
    assert hybrid_v2_controllers(str(tmp_path)) == ["hugetlb"]


def test_lxc_config_for_v1_and_v2():
    from runners.lxc import lxc_config

    spec = LaunchSpec("bench-l", ("/bin/true",), "/r", envelope=Envelope(cpus=0.5, memory_mib=64, pids=10, cpuset=(1,)))
    v1 = lxc_config(spec, 1)
    assert "lxc.rootfs.path = dir:/r" in v1 and "lxc.net.0.type = empty" in v1
    assert f"lxc.cgroup.memory.limit_in_bytes = {64 << 20}" in v1 and "lxc.cgroup.cpu.cfs_quota_us = 50000" in v1
    v2 = lxc_config(spec, 2)
    assert f"lxc.cgroup2.memory.max = {64 << 20}" in v2 and "lxc.cgroup2.cpu.max = 50000 100000" in v2
    assert "lxc.cgroup2.pids.max = 10" in v2
    assert "lxc.cgroup.cpuset.cpus = 1" in v1 and "lxc.cgroup2.cpuset.cpus = 1" in v2


def test_a_whole_cpu_count_is_a_cpuset_and_no_quota():
    spec = LaunchSpec("bench-z", ("/bin/true",), "/r", envelope=Envelope(cpus=2, cpuset=(1, 0)))
    assert oci_config(spec, "/bench/bench-z")["linux"]["resources"]["cpu"] == {"cpus": "1,0"}


def test_the_bundle_and_our_container_get_the_same_seccomp_policy():
    from runners.seccomp import ALLOWED, policy_text

    seccomp = oci_config(LaunchSpec("bench-s", ("/bin/true",), "/r"), "/bench/bench-s")["linux"]["seccomp"]
    assert seccomp["defaultAction"] == "SCMP_ACT_ERRNO" and seccomp["defaultErrnoRet"] == 1
    rules = {r["names"][0]: r for r in seccomp["syscalls"][1:]}
    assert rules["clone"]["args"] == [{"index": 0, "value": 0x7E020000, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]
    assert rules["clone3"]["errnoRet"] == 38
    assert "unshare" not in ALLOWED and "mount" not in ALLOWED and "getppid" in ALLOWED
    text = policy_text().splitlines()
    assert text[0] == "default errno 1" and "allow clone 0 masked_eq 0 2114060288" in text
    assert len([line for line in text if line.startswith("allow ")]) == len(ALLOWED) + 7
