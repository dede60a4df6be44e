"""bubblewrap as a peer: `bwrap --unshare-all` on the same rootfs. bubblewrap has no cgroups of its own:
it starts inside the process runner's envelope (CPU affinity, and a cgroup for a quota or a memory limit)."""

from __future__ import annotations

import shutil

from bench.spec import LaunchSpec
from runners.base import Tool
from runners.process import ProcessRunner, TaskInstance


class BwrapRunner(ProcessRunner):
    name, kind, family = "bwrap", "peer", "sandboxes"
    description = "bubblewrap --unshare-all on the guest rootfs"
    tool = Tool("bwrap", "bubblewrap", r"bubblewrap ([\w.\-]+)", spawn="bwrap --unshare-all --die-with-parent")

    def launch(self, spec: LaunchSpec) -> TaskInstance:
        argv = bwrap_argv(spec.rootfs, spec.name, spec.argv)
        return self.spawn(argv[0], argv, spec)


def bwrap_argv(rootfs: str, name: str, argv) -> list[str]:
    """The whole bwrap command line for a workload (bench verify times the same one directly)."""
    return [shutil.which("bwrap") or "bwrap", "--unshare-all", "--die-with-parent", "--ro-bind", rootfs, "/",
            "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--hostname", name[:63],
            "--chdir", "/", "--", *argv]
