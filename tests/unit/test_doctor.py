"""bench doctor's noise checks against fake sysfs trees: what is noisy, and the command that fixes it."""

from pathlib import Path

from bench.checks.doctor import noise_checks


def fake_sys(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text + "\n")
    return tmp_path


NOISY = {
    "devices/system/cpu/cpu0/cpufreq/scaling_governor": "powersave",
    "devices/system/cpu/cpu1/cpufreq/scaling_governor": "performance",
    "devices/system/cpu/cpufreq/boost": "1",
    "devices/system/cpu/smt/control": "on",
    "kernel/mm/transparent_hugepage/enabled": "[always] madvise never",
    "kernel/mm/ksm/run": "1",
}


def test_a_noisy_host_gets_a_fix_for_everything(tmp_path):
    checks = {c.name: c for c in noise_checks(fake_sys(tmp_path, NOISY), loadavg="3.5 2 1 1/100 5", cores=2)}
    assert not any(c.ok for c in checks.values())
    assert checks["cpu governor"].detail == "performance, powersave"
    assert checks["cpu governor"].fix == "cpupower frequency-set -g performance"
    assert checks["turbo"].fix == "echo 0 > /sys/devices/system/cpu/cpufreq/boost"
    assert checks["smt"].fix == "echo off > /sys/devices/system/cpu/smt/control"
    assert checks["transparent hugepages"].fix.startswith("echo madvise")
    assert checks["ksm"].fix == "echo 0 > /sys/kernel/mm/ksm/run"
    assert "3.50" in checks["busy machine"].detail and checks["busy machine"].fix


def test_a_quiet_host_passes(tmp_path):
    quiet = {**NOISY, "devices/system/cpu/cpu0/cpufreq/scaling_governor": "performance",
             "devices/system/cpu/cpufreq/boost": "0", "devices/system/cpu/smt/control": "off",
             "kernel/mm/transparent_hugepage/enabled": "always [madvise] never", "kernel/mm/ksm/run": "0"}
    checks = noise_checks(fake_sys(tmp_path, quiet), loadavg="0.1 0.1 0.1 1/100 5", cores=2)
    assert all(c.ok and not c.fix for c in checks), [c for c in checks if not c.ok]


def test_intel_pstate_turbo_and_a_vm_without_cpufreq(tmp_path):
    sys = fake_sys(tmp_path, {"devices/system/cpu/intel_pstate/no_turbo": "0"})
    checks = {c.name: c for c in noise_checks(sys, loadavg="0 0 0 1/1 1", cores=4)}
    assert checks["turbo"].fix == "echo 1 > /sys/devices/system/cpu/intel_pstate/no_turbo"
    assert checks["cpu governor"].ok and "no cpufreq" in checks["cpu governor"].detail


def test_doctor_changes_nothing(tmp_path):
    sys = fake_sys(tmp_path, NOISY)
    before = {p: p.read_text() for p in sys.rglob("*") if p.is_file()}
    noise_checks(sys, loadavg="9 9 9 1/1 1", cores=1)
    assert before == {p: p.read_text() for p in sys.rglob("*") if p.is_file()}
