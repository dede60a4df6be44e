"""The classic jail: the same child process with its root changed to the guest rootfs.

Launched as posix_spawn of the static busybox `chroot` applet rather than a Python fork: measured
here with hyperfine, busybox chroot + probe takes 0.9 ms, coreutils chroot(8) 1.5 ms, and a fork
from the worker 1.9 ms, which would bury the cost of the chroot() itself under Python's.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from bench.host.tools import host_tool
from bench.spec import LaunchSpec
from runners.base import Residue
from runners.process import ProcessRunner, TaskInstance, with_scratch

BUSYBOX_PATHS = ("/bin/busybox", "/usr/bin/busybox")


def host_busybox() -> str | None:
    return next((p for p in BUSYBOX_PATHS if os.access(p, os.X_OK)), None) or shutil.which("busybox")


class ChrootRunner(ProcessRunner):
    paths = "disk: a dir inside the jail; network: the host's loopback"
    name = "chroot"
    family = "process-like"
    description = "child process chroot()ed into the guest rootfs (busybox chroot)"
    provides = frozenset({"scratch", "server"})  # scratch inside the jail; the host's loopback

    def available(self) -> tuple[bool, str]:
        if os.geteuid() != 0:
            return False, "chroot() needs root"
        if host_busybox() is None:
            return False, "busybox is not installed (apt-get install busybox-static)"
        return True, "root, busybox"

    @classmethod
    def residues(cls, cache_dir: str) -> list[Residue]:
        """Scratch dirs inside the image's jail, the only place a chroot can write to."""
        return [Residue("scratch dir", str(p)) for p in sorted(Path(cache_dir).glob("images/*/rootfs/tmp/bench-*"))
                if p.is_dir()]

    @classmethod
    def remove(cls, residue: Residue) -> None:
        shutil.rmtree(residue.name, ignore_errors=True)

    def config(self) -> dict:
        return {**super().config(), "spawn": f"posix_spawn {host_busybox()} chroot"}

    def launch(self, spec: LaunchSpec) -> TaskInstance:
        busybox = host_tool("busybox", host_busybox())
        # A disk workload's scratch is inside the jail, the only place a chroot can write to.
        argv, cleanup = (with_scratch(spec, Path(spec.rootfs) / "tmp" / spec.name, f"/tmp/{spec.name}")
                         if spec.scratch else (spec.argv, None))
        return self.spawn(busybox, [busybox, "chroot", spec.rootfs, *argv], spec, on_teardown=cleanup)
