"""LXC as a peer: lxc-execute of the workload on the same rootfs, with an empty network and the
envelope as cgroup limits, from a config file written per instance."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import ClassVar

from bench.cache import instance_dir
from bench.host.tools import host_tool
from bench.spec import CFS_PERIOD_US, LaunchSpec
from runners.base import StateDir, Tool
from runners.process import ProcessRunner, TaskInstance


def lxc_config(spec: LaunchSpec, cgroup_version: int) -> str:
    """Pure: the container's config file."""
    lines = [f"lxc.rootfs.path = dir:{spec.rootfs}", "lxc.net.0.type = empty", f"lxc.uts.name = {spec.name[:63]}"]
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


class LxcRunner(ProcessRunner):
    name, kind, family = "lxc", "peer", "containers"
    tool = Tool("lxc-execute", "lxc", r"^([\d.]+)")
    description = "lxc-execute on the guest rootfs, empty network, envelope as cgroup limits"

    Options = StateDir
    enforcement: ClassVar[dict[str, str]] = {"cpuset": "cpuset cgroup (lxc.cgroup.cpuset.cpus)", "cpu_quota": "cpu cgroup (lxc.cgroup)",
                                             "memory": "memory cgroup (lxc.cgroup)"}

    def __init__(self, state_dir: str = "/tmp") -> None:
        super().__init__()
        self.state_dir = Path(state_dir)

    def close(self) -> None:
        """LXC leaves an lxc.pivot cgroup in every hierarchy; take it away once nothing uses it."""
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

        state = self.state_dir / spec.name
        instance_dir(state)
        (state / "lxc.conf").write_text(lxc_config(spec, detect().version))
        lxc = host_tool("lxc-execute")
        argv = [lxc, "-n", spec.name, "-P", str(state), "-f", str(state / "lxc.conf"), "--", *spec.argv]
        instance = self.spawn(lxc, argv, spec)
        instance.on_teardown = lambda: shutil.rmtree(state, ignore_errors=True)
        return instance
