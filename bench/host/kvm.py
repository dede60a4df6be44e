"""Whether KVM works here, decided by a probe and remembered for the host's boot: /dev/kvm can exist
and still hang a guest (it does on this project's CI hosts), so only a real start can tell."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path


def kvm_verdict(record: Path, key: str, probe: Callable[[], tuple[str, str]], fallback: str) -> tuple[str, str]:
    """(choice, reason): fallback where /dev/kvm cannot be opened; otherwise what probe() decided,
    kept in record for this boot and key (kernel, QEMU or runsc version), so that it runs once."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return fallback, "/dev/kvm is missing or not usable"
    key = f"{Path('/proc/sys/kernel/random/boot_id').read_text().strip()} {key}"
    try:
        cached = json.loads(record.read_text())
        if cached["key"] == key:
            return cached["accel"], cached["reason"] + " (probed earlier this boot)"
    except (OSError, ValueError, KeyError):
        pass
    accel, reason = probe()
    record.write_text(json.dumps({"key": key, "accel": accel, "reason": reason}))
    return accel, reason
