"""LXC as a peer: lxc-execute of the workload on the same rootfs, with an empty network and the
envelope as cgroup limits, from a config file written per instance.

A workload with a network path gets LXC's own veth (lxc.net.0.type = veth) on the peers' bridge, in
a namespace of ours where lxc-execute is started; the address and gateway go in the config as LXC's
users write them. Not with lxc.net.0.link: LXC looks the bridge up in /sys/class/net, which shows
the host's namespace (sysfs shows the namespace of whoever mounted it), and failed "bridge interface
doesn't exist"; its up hook (lxc.net.0.script.up) puts the host end on the bridge over netlink. A disk workload gets an overlay root of its own (the writable
layer; LXC's dir: rootfs would write into the shared image) or a host dir bound in (storage=volume)."""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import replace
from pathlib import Path
from typing import ClassVar

from bench.cache import instance_dir
from bench.host.tools import host_tool
from bench.spec import CFS_PERIOD_US, SCRATCH, LaunchSpec
from runners.base import Tool
from runners.bridged import OnPeersBridge
from runners.layer import LAYER_SCRATCH, VOLUME_AT, overlay_root, unmount, volume_dir
from runners.oci import OciOptions
from runners.process import TaskInstance


def lxc_config(spec: LaunchSpec, cgroup_version: int, net: tuple[str, str, str] | None = None,
               root: str | None = None, volume: str | None = None) -> str:
    """Pure: the container's config file. net: (up hook, address/prefix, gateway) for a veth whose
    host end the hook puts on the bridge; root: a writable root instead of the image; volume: a host
    dir bound at VOLUME_AT."""
    network = (["lxc.net.0.type = veth", f"lxc.net.0.script.up = {net[0]}", "lxc.net.0.flags = up",
                "lxc.net.0.name = eth0", f"lxc.net.0.ipv4.address = {net[1]}", f"lxc.net.0.ipv4.gateway = {net[2]}"]
               if net else ["lxc.net.0.type = empty"])
    lines = [f"lxc.rootfs.path = dir:{root or spec.rootfs}", *network, f"lxc.uts.name = {spec.name[:63]}"]
    if volume:
        lines.append(f"lxc.mount.entry = {volume} {VOLUME_AT.lstrip('/')} none bind,create=dir 0 0")
    env, v1 = spec.envelope, cgroup_version == 1
    if env.memory_mib:
        lines.append(f"lxc.cgroup{'' if v1 else '2'}.memory.{'limit_in_bytes' if v1 else 'max'} = {env.memory_mib << 20}")
    if env.cpus:
        lines.append(f"lxc.cgroup{'' if v1 else '2'}.cpuset.cpus = {env.cpuset_text()}")
    if env.quota_us():
        quota = env.quota_us()
        lines += ([f"lxc.cgroup.cpu.cfs_quota_us = {quota}", f"lxc.cgroup.cpu.cfs_period_us = {CFS_PERIOD_US}"] if v1
                  else [f"lxc.cgroup2.cpu.max = {quota} {CFS_PERIOD_US}"])
    if env.pids:
        lines.append(f"lxc.cgroup{'' if v1 else '2'}.pids.max = {env.pids}")
    return "\n".join(lines) + "\n"


class LxcRunner(OnPeersBridge):
    paths = "disk: an overlay root (storage=volume: a host dir); network: LXC's veth on our bridge; a start stays lxc.net type empty"
    name, kind, family = "lxc", "peer", "containers"
    tool = Tool("lxc-execute", "lxc", r"^([\d.]+)")
    description = "lxc-execute on the guest rootfs, empty network, envelope as cgroup limits"

    Options = OciOptions  # state_dir and storage, as the OCI runtimes'
    provides = frozenset({"scratch", "server"})
    listen_on = "0.0.0.0"  # its own eth0 and loopback
    enforcement: ClassVar[dict[str, str]] = {"cpuset": "cpuset cgroup (lxc.cgroup.cpuset.cpus)", "cpu_quota": "cpu cgroup (lxc.cgroup)",
                                             "memory": "memory cgroup (lxc.cgroup)"}

    def up_hook(self) -> Path:
        """LXC's network up hook for this process, written once: its 5th argument is the veth's host end."""
        from bench.host.network import BRIDGE

        hook = Path("/tmp") / f"bench-lxc-up-{os.getpid()}.sh"
        if not hook.exists():
            hook.write_text(f'#!/bin/sh\nexec /usr/sbin/ip link set "$5" master {BRIDGE} up\n')
            hook.chmod(0o700)
        return hook

    def close(self) -> None:
        """LXC leaves an lxc.pivot cgroup in every hierarchy; take it away once nothing uses it."""
        (Path("/tmp") / f"bench-lxc-up-{os.getpid()}.sh").unlink(missing_ok=True)
        super().close()
        for pivot in Path("/sys/fs/cgroup").glob("*/lxc.pivot"):
            try:
                pivot.rmdir()
            except OSError:
                pass

    def config(self) -> dict:
        return {**super().config(), "spawn": "lxc-execute -f <generated config>"}

    def launch(self, spec: LaunchSpec) -> TaskInstance:
        from bench.host.cgroups import detect
        from bench.host.network import inside

        state = self.state_dir / spec.name
        instance_dir(state)
        root = volume = net = None
        try:
            if spec.scratch:
                if spec.scratch == "volume" or self.storage == "volume":
                    volume = volume_dir(state)
                else:
                    root = overlay_root(spec.rootfs, state)
                spec = replace(spec, argv=spec.argv_with({SCRATCH: VOLUME_AT if volume else LAYER_SCRATCH}))
            if spec.server is not None:
                net = (str(self.up_hook()), *self.next_on_bridge())
            (state / "lxc.conf").write_text(lxc_config(spec, detect().version, net, root, volume))
            lxc = host_tool("lxc-execute")
            argv = [lxc, "-n", spec.name, "-P", str(state), "-f", str(state / "lxc.conf"), "--", *spec.argv]
            self._listener()  # the taskstats socket, opened in the host's namespace before any setns
            with inside(self.net.path) if net and self.net else contextlib.nullcontext():
                instance = self.spawn(lxc, argv, spec)
        except BaseException:
            unmount(root)
            shutil.rmtree(state, ignore_errors=True)
            raise
        return self.kept(instance, net[1] if net else None, root, state)
