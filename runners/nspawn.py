"""systemd-nspawn as a peer, on the same rootfs (read-only, private network, loopback only). Without
systemd as init there are no scope units: it starts inside the process runner's envelope (CPU affinity, and
a cgroup for a quota or a memory limit)."""

from __future__ import annotations

from bench.host.tools import host_tool
from bench.spec import LaunchSpec
from runners.base import Tool
from runners.process import ProcessRunner, TaskInstance


class NspawnRunner(ProcessRunner):
    name, kind, family = "nspawn", "peer", "containers"
    description = "systemd-nspawn --read-only --private-network on the guest rootfs"
    tool = Tool("systemd-nspawn", "systemd-container", r"systemd (\d+)",
                spawn="systemd-nspawn --register=no --keep-unit --pipe")

    def launch(self, spec: LaunchSpec) -> TaskInstance:
        # --register=no and --keep-unit: no machined and no transient scope, which need systemd as init.
        argv = [host_tool("systemd-nspawn"), "-D", spec.rootfs, "--register=no", "--keep-unit", "--quiet", "--pipe",
                "--private-network", "--read-only", "--timezone=off", "--resolv-conf=off",
                f"--hostname={spec.name[:63]}", *spec.argv]
        return self.spawn(argv[0], argv, spec)
