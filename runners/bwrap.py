"""bubblewrap as a peer: `bwrap --unshare-all` on the same rootfs. bubblewrap has no cgroups of its own:
it starts inside the process runner's envelope (CPU affinity, and a cgroup for a quota or a memory limit)."""

from __future__ import annotations

import shutil

from bench.spec import LaunchSpec
from runners.process import ProcessRunner, TaskInstance


class BwrapRunner(ProcessRunner):
    Options = None  # a peer: its own tool decides
    name = "bwrap"
    version_probes = {"bwrap": (["bwrap", "--version"], r"bubblewrap ([\w.\-]+)")}
    family = "sandboxes"
    kind = "peer"
    description = "bubblewrap --unshare-all on the guest rootfs"

    def available(self) -> tuple[bool, str]:
        path = shutil.which("bwrap")
        return (True, path) if path else (False, "bubblewrap is not installed (apt-get install bubblewrap)")

    def config(self) -> dict:
        return {**super().config(), "spawn": "bwrap --unshare-all --die-with-parent",
                "limits": "the process runner's: affinity, and a cgroup of its own for a quota or memory"}

    def launch(self, spec: LaunchSpec) -> TaskInstance:
        argv = bwrap_argv(spec.rootfs, spec.name, spec.argv)
        return self.spawn(argv[0], argv, spec)


def bwrap_argv(rootfs: str, name: str, argv) -> list[str]:
    """The whole bwrap command line for a workload (bench verify times the same one directly)."""
    return [shutil.which("bwrap") or "bwrap", "--unshare-all", "--die-with-parent", "--ro-bind", rootfs, "/",
            "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--hostname", name[:63],
            "--chdir", "/", "--", *argv]
