"""The container runner for real: namespaces, overlay, cgroup limits, network. Each attack is tried."""

import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from bench.parsers import parse_stress_ng
from bench.spec import Envelope
from bench.analysis.store import load_run
from runners.container import ContainerRunner
from tests.conftest import DATA, ROOT, RunnerFactory, bench, kill_run_then_clean, sampled, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def runner(factory):
    return factory.runner(ContainerRunner)


def test_pid_1_sees_only_its_own_processes(factory, runner):
    code, out, _ = factory.run(runner, "echo pid=$$; ps -o pid,comm")
    assert code == 0 and "pid=1\n" in out
    pids = [line.split()[0] for line in out.splitlines()[2:]]
    assert pids and all(int(p) < 10 for p in pids), out


def test_own_hostname_and_only_lo_and_eth0(factory, runner):
    code, out, _ = factory.run(runner, "hostname; ls /sys/class/net")
    lines = out.split()
    assert lines[0] == "bench-test-c" != socket.gethostname()
    assert lines[1:] == ["eth0", "lo"]


def test_host_files_are_unreachable(factory, runner, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("token-77a1")
    code, out, _ = factory.run(runner, f"cat {secret}; cat /../../..{secret}; ls /proc/1/root{tmp_path}; "
                                      f"cat /proc/1/root{secret}; cd /../../..; ls; echo END")
    assert "token-77a1" not in out and out.strip().endswith("END")
    assert "PRETTY_NAME" not in out and "home" not in out.split()


def test_chroot_escape_attempt_stays_inside(factory, runner, tmp_path):
    volume = tmp_path / "vol"
    volume.mkdir()
    subprocess.run(["cc", "-static", "-O2", "-o", str(volume / "escape"), str(DATA / "chroot_escape.c")], check=True)
    (tmp_path / "secret").write_text("token-91c3")
    r = factory.runner(ContainerRunner, volume=str(volume))
    inst = factory.launch(r, ["/mnt/volume/escape", "sh", "-c", f"cat {tmp_path}/secret; ls /; echo END"])
    inst.wait_exit(30)
    out = inst.output.decode()
    assert out.strip().endswith("END"), out
    assert "token-91c3" not in out
    listing = out.split("\n")[1:-2]  # after cat's complaint, before END
    assert sorted(listing) == sorted(os.listdir(factory.image.rootfs)), out


def test_writes_land_in_the_upper_dir_and_vanish(factory, runner, image):
    inst = factory.launch(runner, ["/bin/sh", "-c", "echo data > /newfile; echo changed > /etc/hostname"])
    assert inst.wait_exit(30) == 0
    upper = inst.dirs["upper"]
    assert (upper / "newfile").read_text() == "data\n"
    assert (upper / "etc/hostname").read_text() == "changed\n"
    inst.teardown()
    assert not (image.rootfs / "newfile").exists()
    assert (image.rootfs / "etc/hostname").read_text() == "bench\n"  # the image layer is untouched
    assert not upper.exists()


def test_memory_limit_oom_kills_a_200_mib_allocation(factory, runner):
    inst = factory.launch(runner, ["/bin/dd", "if=/dev/zero", "of=/dev/null", "bs=200M", "count=1"],
                          Envelope(memory_mib=64))
    assert inst.wait_exit(60) == 137
    assert inst.oom_killed()


def test_bench_exec_reports_oom(tmp_path):
    out = bench("exec", "--runner", "container", "--memory", "64M", "--", "dd", "if=/dev/zero", "of=/dev/null",
                "bs=200M", "count=1", timeout=120)
    assert out.returncode == 137
    assert out.stderr.strip().endswith("killed: out of memory, limit 64 MiB")


def test_bench_exec_passes_exit_code_and_output():
    out = bench("exec", "--runner", "container", "--", "sh", "-c", "echo hello; exit 5", timeout=120)
    assert out.returncode == 5 and out.stdout == "hello\n"


def test_pids_limit_contains_a_fork_bomb(factory, runner):
    inst = factory.launch(runner, ["/bin/sh", "-c", "bomb() { bomb | bomb & }; bomb; sleep 30"], Envelope(pids=32))
    pids_dir = inst.cgroup.by_controller["pids"] if hasattr(inst.cgroup, "by_controller") else inst.cgroup.dir

    def refused() -> int:
        events = (pids_dir / "pids.events").read_text().split()
        return int(events[events.index("max") + 1])

    wait_until(lambda: refused() > 0, "the pids limit to refuse a fork", timeout_s=30)  # the bomb hit it
    assert int((pids_dir / "pids.current").read_text()) <= 32
    inst.teardown()
    assert not pids_dir.exists()


def stress_cpu_rate(factory, runner, envelope) -> float:
    code, out, _ = factory.run(runner, "stress-ng --cpu 1 --timeout 4s --metrics-brief", envelope)
    assert code == 0, out
    return parse_stress_ng(out)[0].bogo_ops_per_s


def test_half_a_cpu_halves_cpu_throughput(factory, runner):
    full = stress_cpu_rate(factory, runner, Envelope())
    half = stress_cpu_rate(factory, runner, Envelope(cpus=0.5))
    assert 0.5 * 0.85 <= half / full <= 0.5 * 1.15, (half, full)


def test_container_reaches_the_bridge(factory, runner):
    code, out, _ = factory.run(runner, f"ping -c 1 -W 3 {runner.net.gateway}")
    assert code == 0, out


def test_network_none_has_only_loopback(factory):
    code, out, _ = factory.run(factory.runner(ContainerRunner, network="none"), "ls /sys/class/net")
    assert out.split() == ["lo"]


def test_capabilities_are_dockers_default_and_no_new_privs(factory, runner):
    code, out, _ = factory.run(runner, "grep -E '^(CapBnd|CapEff|NoNewPrivs)' /proc/self/status")
    fields = dict(line.split(":\t") for line in out.strip().splitlines())
    assert int(fields["CapBnd"], 16) == int(fields["CapEff"], 16) == 0x00000000a80425fb
    assert fields["NoNewPrivs"] == "1"


def test_dockers_default_seccomp_refuses_a_user_namespace_and_none_allows_it(factory, runner):
    """Under Docker `unshare -Ur id` is refused (no CAP_SYS_ADMIN: no unshare); without the filter a
    workload could make a user namespace with every capability inside it."""
    code, out, _ = factory.run(runner, "grep -E '^Seccomp:' /proc/self/status; unshare -Ur id")
    assert code != 0 and "Operation not permitted" in out and "uid=0" not in out
    assert out.split()[:2] == ["Seccomp:", "2"]  # filter mode
    code, out, _ = factory.run(factory.runner(ContainerRunner, seccomp="none"), "unshare -Ur id")
    assert code == 0 and out.startswith("uid=0(root)")


def test_proc_sys_and_sys_are_read_only(factory, runner):
    code, out, _ = factory.run(runner, "echo 1 > /proc/sys/kernel/panic_on_oops; echo x > /sys/kernel/uevent_helper; "
                                      "mount -t tmpfs t /mnt; echo END")
    assert out.count("Read-only file system") == 2, out
    assert "permission denied" in out.lower() or "not permitted" in out  # no CAP_SYS_ADMIN: no mount


def test_a_container_run_stores_every_metric_with_a_peak_of_its_own_pages(tmp_path):
    out = bench("run", "--suite", "startup", "--runners", "process,container", "--repeat", "3", "--results-dir",
                str(tmp_path), "--no-report", timeout=300)
    assert out.returncode == 0, out.stderr
    import pandas as pd

    df = pd.read_parquet(tmp_path / "latest" / "samples.parquet")
    assert df["ok"].all() and len(df[df["runner"] == "container"]) == 12
    peak = df[(df["runner"] == "container") & (df["metric"] == "mem_peak_mib")]["value"]
    assert (peak > 0).all() and (peak < 16).all()


def test_killed_run_is_cleaned_by_bench_clean(tmp_path):
    assert kill_run_then_clean(tmp_path, "container", sampled(tmp_path, "container")) == "0 leftovers found"
    (run,) = [p for p in tmp_path.iterdir() if not p.name.startswith(".")]  # no half run: the journal, recovered
    df, meta = load_run(run)
    assert meta["incomplete"] and meta["recovered_by"] == "bench clean" and len(df) > 0 and df["ok"].all()


def test_a_hundred_launches_in_a_row_all_succeed(factory, runner):
    """Guards the launch races (a shim touching paths while pid 1 pivots once killed 1 launch in 50)."""
    for i in range(100):
        inst = factory.launch(runner, ["/bin/bench-probe"], name=f"bench-many-{i}", marker=b"READY")
        inst.wait_ready(10)
        assert inst.wait_exit(10) == 0
        inst.teardown()
    assert os.path.exists(ROOT)  # and this process still sees its own filesystem


@pytest.fixture(scope="module")
def open_image():
    """An image in a cache closed as `bench` closes its own (bench.cache.closed: 0710, group 100000)
    under an open dir, not under pytest's 0700 tmp: a user namespace's root (host uid 100000) can
    pass through to it, and nobody else can."""
    import tempfile

    from bench.cache import closed
    from bench.images.image import build_image

    base = tempfile.mkdtemp(prefix="isobench-test-")
    os.chmod(base, 0o755)
    yield build_image(closed(Path(base) / "isobench"))
    shutil.rmtree(base)


def test_user_namespace_root_is_unprivileged_outside(open_image):
    factory = RunnerFactory(open_image)
    try:
        inst = factory.launch(factory.runner(ContainerRunner, userns="true"),
                              ["/bin/sh", "-c", "cat /proc/self/uid_map; id -u; echo x > /owned; ls /sys/class/net; echo $$"])
        assert inst.wait_exit(30) == 0, inst.output
        owned = (inst.dirs["upper"] / "owned").stat()
    finally:
        factory.close()
    out = inst.output.decode().split()
    assert out[:3] == ["0", "100000", "65536"] and out[3] == "0"
    assert owned.st_uid == 100000  # root inside writes as an unprivileged uid on the host
    assert out[4:] == ["eth0", "lo", "1"]


# The attacks of issue 9, each tried for real.

def host_root_device():
    st = os.stat("/")
    return os.major(st.st_dev), os.minor(st.st_dev)


def test_a_host_block_device_can_be_made_but_never_opened_or_mounted(factory, runner):
    """CAP_MKNOD is in Docker's set; every place the container can write is nodev."""
    major, minor = host_root_device()
    inst = factory.launch(runner, ("/bin/sh", "-c", f"""
        for dir in /tmp /dev /dev/shm /mnt/volume; do
            mknod $dir/disk b {major} {minor} && echo made-$dir
            head -c 512 $dir/disk >/dev/null 2>&1 && echo READ-$dir
            mkdir -p /mnt/m && mount $dir/disk /mnt/m 2>/dev/null && echo MOUNTED-$dir
        done; true"""), name="bench-test-dev", scratch="volume")
    assert inst.wait_exit(30) == 0
    out = inst.output.decode()
    assert "made-/tmp" in out  # the attack really got as far as a device node
    assert "READ-" not in out and "MOUNTED-" not in out, out


def test_no_kernel_modules_and_no_network_administration(factory, runner):
    code, out, _ = factory.run(runner, "insmod /bin/busybox; echo rc=$?; "
                                      "ip link add bench-evil type dummy; echo rc=$?; "
                                      "ip link set lo mtu 1200; echo rc=$?")
    assert out.count("rc=0") == 0 and out.count("Operation not permitted") >= 2, out


def test_host_processes_are_out_of_sight_and_out_of_reach(factory, runner):
    me = os.getpid()
    code, out, _ = factory.run(runner, f"cat /proc/{me}/status 2>&1; kill -0 {me}; echo kill=$?; "
                                      "grep -c . /proc/1/cmdline")
    assert "kill=1" in out and "Name:" not in out, out


def test_one_instance_cannot_read_anothers_files(factory, runner):
    a = factory.launch(runner, ["/bin/sh", "-c", "echo secret-of-a > /tmp/secret; echo READY; sleep 30"],
                       name="bench-test-a", marker=b"READY")
    a.wait_ready(10)
    upper = Path("/tmp/bench-test-a/upper/tmp/secret")
    assert upper.read_text() == "secret-of-a\n"  # it is there, on the host
    code, out, _ = factory.run(runner, "cat /tmp/secret; find / -xdev -name secret 2>/dev/null; "
                                       "ls /tmp/bench-test-a 2>&1; echo done")
    assert "secret-of-a" not in out and "done" in out, out


def test_the_upper_dir_size_limit_holds(factory):
    r = factory.runner(ContainerRunner, upper_size="16M")
    code, out, inst = factory.run(r, "dd if=/dev/zero of=/tmp/fill bs=1M count=64 2>&1; echo rc=$?")
    assert "No space left on device" in out and "rc=1" in out, out
    assert not Path("/tmp/bench-test-c").exists()
