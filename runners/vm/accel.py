"""Which accelerator a guest gets: KVM where a probe boot reaches READY, TCG otherwise; and what a
TCG guest is told about the host's clock."""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

from bench.host.kvm import kvm_verdict
from runners.base import Check

KVM_PROBE_TIMEOUT_S = 10.0


@functools.cache  # measured once per process: the vm runner and the qemu peer both ask
def host_tsc_khz(cache_dir: Path) -> str | None:
    """The host's TSC rate in kHz (runners/tsc_khz.c), for a TCG guest, whose TSC is the host's.
    The guest kernel still times its CPU against the emulated PIT, but that fast calibration failed
    in 4 of 16 boots here; told the TSC rate (tsc_early_khz), the kernel then no longer falls back
    to its slow calibration, three rounds of 10 to 50 ms against PIT and HPET. None when it cannot
    be measured: the guest calibrates as usual."""
    from bench.host.tools import run_captured
    from bench.images.image import build_static, compiler

    tool = build_static(cache_dir, Path(__file__).with_name("tsc_khz.c"), compiler())
    try:
        code, out = run_captured([tool], timeout_s=5)
    except OSError:
        return None
    out = out.strip() if code == 0 else ""
    return out if out.isdigit() and int(out) > 0 else None


def choose_accel(cache_dir: Path, key: str, probe, record: str = "kvm-probe.json") -> tuple[str, str]:
    """KVM if a probe boot reaches READY, else TCG, with the reason (once per host boot, kernel, QEMU;
    a runner with a kernel of its own keeps its own record, so that two do not probe in turns)."""
    return kvm_verdict(cache_dir / record, key, probe, fallback="tcg")


def cached_accel(cache_dir: str) -> str:
    """What the last KVM probe on this boot decided, for `bench doctor` and `bench list runners`."""
    try:
        record = json.loads((Path(cache_dir) / "kvm-probe.json").read_text())
        boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except (OSError, ValueError):
        return "accel: decided by a KVM probe boot before the first VM of a run"
    if not record.get("key", "").startswith(boot_id):
        return "accel: probed on an earlier boot; probed again before the next VM"
    return f"accel: {record['accel']} ({record['reason']})"


def kvm_device_check(path: str = "/dev/kvm") -> Check:
    """/dev/kvm as udev leaves it (root:kvm 0660). Otherwise libvirt finds KVM unusable for its QEMU
    user, which disagrees with its cached QEMU capabilities, and it probes QEMU again at every start."""
    import grp
    import stat

    try:
        st = os.stat(path)
    except OSError:
        return Check("kvm device", True, f"{path} missing: VMs run emulated (TCG)")
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    mode = stat.S_IMODE(st.st_mode)
    ok = group == "kvm" and mode & 0o060 == 0o060
    return Check("kvm device", ok, f"{path} {group} {mode:04o}" + ("" if ok else ": libvirt re-probes QEMU on every domain start"),
                 "" if ok else f"chgrp kvm {path} && chmod 0660 {path}   (what udev does; `make setup` does it)")
