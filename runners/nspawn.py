"""systemd-nspawn as a peer, on the same rootfs (read-only, private network, loopback only). Without
systemd as init there are no scope units: it starts inside the process runner's envelope (CPU affinity, and
a cgroup for a quota or a memory limit).

A workload with a network path gets nspawn's own veth on a bridge (--network-bridge), the peers'
bridge in a namespace of ours, where systemd-nspawn is started. nspawn leaves the container's end
(host0) to the container's systemd-networkd, which a workload has not: a shell in the image gives
host0 its address and route before it execs the workload, as networkd would. A disk workload gets
an overlay root of its own (the writable layer) or a host dir bound in (storage=volume)."""

from __future__ import annotations

import contextlib
import select
import shutil
import signal
from dataclasses import replace

from bench.cache import instance_dir
from bench.host.tools import host_tool
from bench.spec import SCRATCH, LaunchSpec
from runners.base import Tool
from runners.bridged import OnPeersBridge
from runners.layer import LAYER_SCRATCH, VOLUME_AT, overlay_root, unmount, volume_dir
from runners.oci import OciOptions
from runners.process import TaskInstance

STOP_GRACE_S = 5.0  # how long nspawn may take to kill its container's pid 1 and exit on SIGTERM


class NspawnInstance(TaskInstance):
    """Killing systemd-nspawn itself leaves its container running: the container's pid 1 is not its
    child in any way the kernel ends with it (a service, torn down while loaded, outlived it in the
    envelope's cgroup). On SIGTERM nspawn sends its --kill-signal (SIGKILL without --boot) to the
    container's pid 1 and exits, so teardown asks that first, and kills only an nspawn that hangs."""

    def teardown(self) -> None:
        if not self._torn_down and self.t_exit is None:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self.pidfd, signal.SIGTERM)
            select.select([self.pidfd], [], [], STOP_GRACE_S)
        super().teardown()


# What networkd would do for host0, then the workload: $1 the address/prefix, $2 the gateway.
NETWORKD = 'ip addr add "$1" dev host0 && ip link set host0 up && ip route add default via "$2" && shift 2 && exec "$@"'


class NspawnRunner(OnPeersBridge):
    paths = "disk: an overlay root (storage=volume: --bind); network: --network-bridge on our bridge; a start stays --private-network"
    name, kind, family = "nspawn", "peer", "containers"
    description = "systemd-nspawn --read-only --private-network on the guest rootfs"
    tool = Tool("systemd-nspawn", "systemd-container", r"systemd (\d+)",
                spawn="systemd-nspawn --register=no --keep-unit --pipe")
    Options = OciOptions  # state_dir and storage
    provides = frozenset({"scratch", "server"})
    listen_on = "0.0.0.0"  # its own host0 and loopback

    def launch(self, spec: LaunchSpec) -> NspawnInstance:
        from bench.host.network import BRIDGE, inside

        state = self.state_dir / spec.name
        root = volume = address = None
        options = ["--read-only"]
        argv = list(spec.argv)
        if spec.scratch:
            instance_dir(state)
            if spec.scratch == "volume" or self.storage == "volume":
                volume = volume_dir(state)
                options.append(f"--bind={volume}:{VOLUME_AT}")
            else:
                root, options = overlay_root(spec.rootfs, state), []
            argv = list(spec.argv_with({SCRATCH: VOLUME_AT if volume else LAYER_SCRATCH}))
        try:
            if spec.server is not None:
                address, gateway = self.next_on_bridge()
                options.append(f"--network-bridge={BRIDGE}")
                argv = ["/bin/sh", "-c", NETWORKD, "sh", address, gateway, *argv]
            else:
                options.append("--private-network")
            # --register=no and --keep-unit: no machined and no transient scope, which need systemd as init.
            command = [host_tool("systemd-nspawn"), "-D", root or spec.rootfs, "--register=no", "--keep-unit", "--quiet",
                       "--pipe", *options, "--timezone=off", "--resolv-conf=off", f"--hostname={spec.name[:63]}",
                       f"--machine={spec.name[:64]}", *argv]
            self._listener()  # the taskstats socket, opened in the host's namespace before any setns
            with inside(self.net.path) if address and self.net else contextlib.nullcontext():
                instance = self.spawn(command[0], command, replace(spec, argv=tuple(argv)), NspawnInstance)
        except BaseException:
            unmount(root)
            shutil.rmtree(state, ignore_errors=True)
            raise
        return self.kept(instance, address, root, state)
