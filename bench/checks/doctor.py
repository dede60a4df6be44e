"""`bench doctor`: what this host can and cannot run, and why. Changes nothing."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from bench.checks import hostinfo
from bench.registry import inspect_runner, registered
from runners.base import Check


def _read(root: Path, rel: str) -> str | None:
    return hostinfo._read(str(root / rel))


def check_governors(sys: Path) -> Check:
    governors = sorted({p.read_text().strip() for p in sys.glob("devices/system/cpu/cpu[0-9]*/cpufreq/scaling_governor")})
    if not governors:
        return Check("cpu governor", True, "no cpufreq here (a VM or a fixed clock)")
    ok = governors == ["performance"]
    return Check("cpu governor", ok, ", ".join(governors),
                 "" if ok else "cpupower frequency-set -g performance")


def check_turbo(sys: Path) -> Check:
    no_turbo, boost = _read(sys, "devices/system/cpu/intel_pstate/no_turbo"), _read(sys, "devices/system/cpu/cpufreq/boost")
    if no_turbo is not None:
        return Check("turbo", no_turbo == "1", "intel_pstate turbo " + ("off" if no_turbo == "1" else "on"),
                     "" if no_turbo == "1" else "echo 1 > /sys/devices/system/cpu/intel_pstate/no_turbo")
    if boost is not None:
        return Check("turbo", boost == "0", "cpufreq boost " + ("off" if boost == "0" else "on"),
                     "" if boost == "0" else "echo 0 > /sys/devices/system/cpu/cpufreq/boost")
    return Check("turbo", True, "no turbo control here")


def check_smt(sys: Path) -> Check:
    smt = _read(sys, "devices/system/cpu/smt/control")
    ok = smt in (None, "off", "forceoff", "notsupported", "notimplemented")
    return Check("smt", ok, f"SMT {smt or 'unknown'}" + ("" if ok else ": sibling threads share a core's caches"),
                 "" if ok else "echo off > /sys/devices/system/cpu/smt/control")


def check_thp(sys: Path) -> Check:
    thp = hostinfo._bracketed(_read(sys, "kernel/mm/transparent_hugepage/enabled"))
    ok = thp in (None, "madvise", "never")
    return Check("transparent hugepages", ok, f"{thp or 'unknown'}" + ("" if ok else ": khugepaged works behind your back"),
                 "" if ok else "echo madvise > /sys/kernel/mm/transparent_hugepage/enabled")


def check_ksm(sys: Path) -> Check:
    ksm = _read(sys, "kernel/mm/ksm/run")
    ok = ksm in (None, "0")
    return Check("ksm", ok, "KSM " + ("off" if ok else "merging pages in the background"),
                 "" if ok else "echo 0 > /sys/kernel/mm/ksm/run")


def check_busy(loadavg: str, cores: int) -> Check:
    load = float(loadavg.split()[0])
    ok = load < 0.25 * cores
    return Check("busy machine", ok, f"load average {load:.2f} on {cores} cores",
                 "" if ok else "wait for (or stop) the other work; `top` shows what runs")


def noise_checks(sys: Path = Path("/sys"), loadavg: str | None = None, cores: int | None = None) -> list[Check]:
    """The settings that make numbers noisy, each with the command that would fix it."""
    loadavg = loadavg if loadavg is not None else Path("/proc/loadavg").read_text()
    return [check_governors(sys), check_turbo(sys), check_smt(sys), check_thp(sys), check_ksm(sys),
            check_busy(loadavg, cores or os.cpu_count() or 1)]


def check_root() -> Check:
    root = os.geteuid() == 0
    return Check("root", root, "running as root" if root else "chroot, containers and cleanup need root")


def check_tools() -> list[Check]:
    checks = []
    for tool in ("busybox", "stress-ng", "fio", "iperf3", "cc"):
        path = shutil.which(tool)
        checks.append(Check(f"tool {tool}", path is not None, path or "missing: run `make setup`"))
    return checks


def check_user_namespaces() -> Check:
    value = hostinfo._read("/proc/sys/user/max_user_namespaces")
    ok = value not in (None, "0")
    return Check("user namespaces", ok, f"max_user_namespaces={value}")


def check_noise(host: dict) -> list[Check]:
    return [*noise_checks(),
            Check("virtualized host", not host["virtualized"],
                  "this host is a VM: absolute numbers include its hypervisor" if host["virtualized"] else "bare metal",
                  "run nightly numbers on bare metal" if host["virtualized"] else "")]


def checks(cache_dir: str) -> list[Check]:
    host = hostinfo.fingerprint()
    found = [check_root(), *check_tools(), check_user_namespaces(),
             Check("cgroups", True, host["cgroup_version"]), *check_noise(host)]
    for name, info in registered().items():
        ok, reason, own = inspect_runner(info, cache_dir)
        found.append(Check(f"runner {name}", ok, reason))
        found += [Check(f"{name}: {c.name}", c.ok, c.detail, c.fix) for c in own]
    return found
