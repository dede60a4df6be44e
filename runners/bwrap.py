"""bubblewrap as a peer: `bwrap --unshare-all` on the same rootfs. bubblewrap has no cgroups of its own:
it starts inside the process runner's envelope (CPU affinity, and a cgroup for a quota or a memory limit).

A workload with a network path runs as Flatpak runs an app that may use the network: `--share-net`,
in the network namespace it was started in, which is one of ours (the peers' bridge namespace), so
its service listens on that namespace's loopback and the host's stays untouched. bubblewrap has no
writable layer: a disk workload writes to a host directory bound in (`--bind`), as Flatpak binds
each app's own data directory (~/.var/app/ID); a volume is the same thing."""

from __future__ import annotations

import contextlib
import shutil
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from bench.cache import instance_dir
from bench.spec import SCRATCH, LaunchSpec
from runners.base import Tool
from runners.process import ProcessRunner, TaskInstance

if TYPE_CHECKING:  # for annotations only: the network module is imported on the first network workload
    from bench.host.network import BridgeNetwork

SCRATCH_AT = "/tmp/scratch"  # on the sandbox's tmpfs /tmp, where bwrap can make the mount point


class BwrapRunner(ProcessRunner):
    paths = "disk: a host dir bound in (no writable layer); network: --share-net in a netns of ours; a start stays --unshare-all"
    name, kind, family = "bwrap", "peer", "sandboxes"
    description = "bubblewrap --unshare-all on the guest rootfs (--share-net in a netns of ours for a network path)"
    tool = Tool("bwrap", "bubblewrap", r"bubblewrap ([\w.\-]+)", spawn="bwrap --unshare-all --die-with-parent")
    provides = frozenset({"scratch", "server"})

    def __init__(self, **options) -> None:
        super().__init__(**options)
        self.net: BridgeNetwork | None = None  # the peers' shared bridge namespace, taken on the first network workload

    def server_side(self) -> tuple[str | None, str]:
        if self.net is None:
            from bench.host.network import shared_bridge

            self.net = shared_bridge()
            self.net.ensure()
        return self.net.path, "127.0.0.1"  # the sandbox shares that namespace: its loopback

    def launch(self, spec: LaunchSpec) -> TaskInstance:
        from bench.host.network import inside

        host_dir = Path("/tmp") / spec.name if spec.scratch else None
        if host_dir:
            instance_dir(host_dir)
            spec = replace(spec, argv=spec.argv_with({SCRATCH: SCRATCH_AT}))
        argv = bwrap_argv(spec.rootfs, spec.name, spec.argv, share_net=spec.server is not None,
                          binds={str(host_dir): SCRATCH_AT} if host_dir else None)
        cleanup = (lambda: shutil.rmtree(host_dir, ignore_errors=True)) if host_dir else None
        self._listener()  # the taskstats socket, opened in the host's namespace before any setns
        born_in = inside(self.server_side()[0] or "") if spec.server is not None else contextlib.nullcontext()
        with born_in:
            return self.spawn(argv[0], argv, spec, on_teardown=cleanup)

    def close(self) -> None:
        if self.net is not None:
            self.net.release()
            self.net = None
        super().close()


def bwrap_argv(rootfs: str, name: str, argv, share_net: bool = False, binds: dict[str, str] | None = None) -> list[str]:
    """The whole bwrap command line for a workload (bench verify times the same one directly)."""
    bound = [arg for host, at in (binds or {}).items() for arg in ("--bind", host, at)]
    return [shutil.which("bwrap") or "bwrap", "--unshare-all", *(["--share-net"] if share_net else []),
            "--die-with-parent", "--ro-bind", rootfs, "/", "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", *bound,
            "--hostname", name[:63], "--chdir", "/", "--", *argv]
