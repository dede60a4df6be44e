"""systemd-nspawn as a peer, on the same rootfs (read-only, private network, loopback only). Without
systemd as init there are no scope units: it starts inside the process runner's envelope (CPU affinity, and
a cgroup for a quota or a memory limit)."""

from __future__ import annotations

import shutil

from bench.spec import LaunchSpec
from runners.process import ProcessRunner, TaskInstance


class NspawnRunner(ProcessRunner):
    version_probes = {"systemd-nspawn": (["systemd-nspawn", "--version"], r"systemd (\d+)")}
    Options = None  # a peer: its own tool decides
    name = "nspawn"
    family = "containers"
    kind = "peer"
    description = "systemd-nspawn --read-only --private-network on the guest rootfs"

    def available(self) -> tuple[bool, str]:
        path = shutil.which("systemd-nspawn")
        return (True, path) if path else (False, "systemd-nspawn is not installed (apt-get install systemd-container)")

    def config(self) -> dict:
        return {**super().config(), "spawn": "systemd-nspawn --register=no --keep-unit --pipe",
                "limits": "the process runner's: affinity, and a cgroup of its own for a quota or memory"}

    def launch(self, spec: LaunchSpec) -> TaskInstance:
        nspawn = shutil.which("systemd-nspawn")
        # --register=no and --keep-unit: no machined and no transient scope, which need systemd as init.
        argv = [nspawn, "-D", spec.rootfs, "--register=no", "--keep-unit", "--quiet", "--pipe",
                "--private-network", "--read-only", "--timezone=off", "--resolv-conf=off",
                f"--hostname={spec.name[:63]}", *spec.argv]
        return self.spawn(nspawn, argv, spec)
