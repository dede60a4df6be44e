"""The host fingerprint and tool versions recorded with every run: many tiny collect_* functions."""

from __future__ import annotations

import os
import platform
import re
import socket
from pathlib import Path

import bench
from bench.host.tools import versions_of


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def _bracketed(text: str | None) -> str | None:
    """'always [madvise] never' -> 'madvise'."""
    m = re.search(r"\[(\w+)\]", text or "")
    return m.group(1) if m else text


def collect_cpu_model() -> str:
    for line in (_read("/proc/cpuinfo") or "").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def collect_cpu_mhz() -> float | None:
    """The clock as measured now: it jitters from run to run, so a host's identity ignores it."""
    for line in (_read("/proc/cpuinfo") or "").splitlines():
        if line.startswith("cpu MHz"):
            return round(float(line.split(":", 1)[1]), 1)
    return None


def collect_cgroup_version() -> str:
    if Path("/sys/fs/cgroup/cgroup.controllers").exists():
        return "v2"
    return "v1 (hybrid)" if Path("/sys/fs/cgroup/unified").is_dir() else "v1"


def collect_virtualized() -> bool:
    return " hypervisor" in (_read("/proc/cpuinfo") or "")


def fingerprint() -> dict:
    import psutil

    return {
        "hostname": socket.gethostname(),
        "kernel": platform.release(),
        "arch": platform.machine(),
        "cpu_model": collect_cpu_model(),
        "cpu_mhz": collect_cpu_mhz(),
        "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "cgroup_version": collect_cgroup_version(),
        "cpu_governor": _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor") or "n/a",
        "smt": _read("/sys/devices/system/cpu/smt/control") or "n/a",
        "thp": _bracketed(_read("/sys/kernel/mm/transparent_hugepage/enabled")) or "n/a",
        "virtualized": collect_virtualized(),
        "kvm_device": os.path.exists("/dev/kvm"),
        # Every namespace's TCP takes it: with BBR, which paces, a corked 4 KiB nginx response at a
        # 1500-byte MTU ran at half the rate it had with cubic (docs/app.md).
        "tcp_congestion_control": _read("/proc/sys/net/ipv4/tcp_congestion_control") or "n/a",
    }


# The harness's own tools (the workloads'); each runner names its own (Runner.version_probes).
WORKLOAD_TOOLS = {
    "busybox": (["busybox"], r"BusyBox v([\w.\-]+)"),
    "stress-ng": (["stress-ng", "--version"], r"version ([\w.\-]+)"),
    "fio": (["fio", "--version"], r"fio-([\w.\-]+)"),
    "iperf3": (["iperf3", "--version"], r"iperf ([\w.\-]+)"),
}


def versions() -> dict:
    """isobench, Python, the workload tools and every registered runner's tools."""
    from bench.registry import registered

    found = {"isobench": bench.__version__, "python": platform.python_version(), **versions_of(WORKLOAD_TOOLS)}
    for info in registered().values():
        try:
            found.update({tool: v for tool, v in info.loaded.versions().items() if tool not in found})
        except Exception:  # noqa: BLE001, S112 -- a runner that failed to load (cls None) or a plugin's probe that broke: no version
            continue
    return found
