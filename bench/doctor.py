"""`bench doctor`: what this host can and cannot run, and why. Changes nothing."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

from bench import hostinfo
from bench.registry import availability, registered


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


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


def check_kvm(cache_dir: str) -> Check:
    from runners.vm import cached_accel

    verdict = cached_accel(cache_dir)
    if not os.path.exists("/dev/kvm"):
        return Check("kvm", False, f"/dev/kvm missing: VMs run under TCG (emulation). {verdict}")
    return Check("kvm", "accel: tcg" not in verdict, f"/dev/kvm present; {verdict}")


def check_noise(host: dict) -> list[Check]:
    return [
        Check("cpu governor", host["cpu_governor"] in ("performance", "n/a"),
              f"{host['cpu_governor']}" + ("" if host["cpu_governor"] in ("performance", "n/a")
                                           else ": `cpupower frequency-set -g performance`")),
        Check("virtualized host", not host["virtualized"],
              "this host is a VM: absolute numbers include its hypervisor" if host["virtualized"] else "bare metal"),
    ]


def checks(cache_dir: str) -> list[Check]:
    host = hostinfo.fingerprint()
    found = [check_root(), *check_tools(), check_user_namespaces(),
             Check("cgroups", True, host["cgroup_version"]), check_kvm(cache_dir), *check_noise(host)]
    for name, info in registered().items():
        ok, reason = availability(info)
        found.append(Check(f"runner {name}", ok, reason))
    return found
