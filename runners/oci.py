"""Real OCI runtimes as peers: an OCI bundle (config.json) generated from the guest rootfs and the
envelope, run with `runc run` or `crun run` in the foreground, output on our pipe, timed the same way.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from bench.cache import instance_dir
from bench.host.tools import host_tool
from bench.spec import CFS_PERIOD_US, LaunchSpec
from runners._child import run_quietly

if TYPE_CHECKING:  # for annotations only: cgroups are detected at the first launch
    from bench.host.cgroups import CgroupFS
from runners.base import GUEST_ENV, Residue, StateDir, installed
from runners.container import DOCKER_CAPS, MASKED_PROC, READONLY_PROC
from runners.process import ProcessRunner, TaskInstance
from runners.seccomp import oci_seccomp


def oci_config(spec: LaunchSpec, cgroups_path: str) -> dict:
    """Pure: the bundle's config.json, shaped like `runc spec` with Docker's defaults and our envelope."""
    caps = [f"CAP_{name}" for name in DOCKER_CAPS.values()]
    env = spec.envelope
    resources: dict = {}
    if env.memory_mib:
        resources["memory"] = {"limit": env.memory_mib << 20, "swap": env.memory_mib << 20}
    if env.cpus:
        resources["cpu"] = {"cpus": env.cpuset_text()}
        if env.quota_us():
            resources["cpu"] |= {"quota": env.quota_us(), "period": CFS_PERIOD_US}
    if env.pids:
        resources["pids"] = {"limit": env.pids}
    nosuid = ["nosuid", "noexec", "nodev"]
    return {
        "ociVersion": "1.0.2",
        "process": {"terminal": False, "user": {"uid": 0, "gid": 0}, "args": list(spec.argv),
                    "env": [f"{k}={v}" for k, v in GUEST_ENV.items()], "cwd": "/", "noNewPrivileges": True,
                    "capabilities": {k: caps for k in ("bounding", "effective", "permitted")}},
        "root": {"path": spec.rootfs, "readonly": True},
        "hostname": spec.name[:63],
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": [*nosuid, "mode=1777", "size=65536k"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": [*nosuid, "ro"]},
            {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "mode=1777"]},
        ],
        "linux": {
            "cgroupsPath": cgroups_path,
            "resources": resources,
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount", "cgroup")],
            "maskedPaths": list(MASKED_PROC),
            "readonlyPaths": list(READONLY_PROC),
            "seccomp": oci_seccomp(),  # Docker's default, as Docker hands it to runc
        },
    }


class OciRunner(ProcessRunner):
    """`<runtime> run --bundle DIR ID`: the runtime's own start path, end to end."""

    runtime = "runc"
    kind = "peer"
    family = "containers"
    enforcement: ClassVar[dict[str, str]] = {"cpuset": "cpuset cgroup (OCI linux.resources.cpu.cpus)",
                                             "cpu_quota": "cpu cgroup (OCI linux.resources.cpu.quota)",
                                             "memory": "memory cgroup (OCI linux.resources.memory)"}
    state_root = "/run/runc"

    Options: ClassVar[type | None] = StateDir

    def __init__(self, state_dir: str = "/tmp") -> None:
        super().__init__()
        self.state_dir = Path(state_dir)
        self.cgroups: CgroupFS | None = None

    def available(self) -> tuple[bool, str]:
        if os.geteuid() != 0:
            return False, f"{self.runtime} needs root here (rootless is not set up)"
        return installed(self.runtime, self.runtime)

    @classmethod
    def versions(cls) -> dict[str, str]:
        from bench.host.tools import versions_of

        return versions_of({cls.runtime: ([cls.runtime, "--version"], rf"{cls.runtime} version (\S+)")})

    @classmethod
    def state_names(cls) -> list[str]:
        """The containers the runtime keeps state for under state_root, ours (bench-...) only."""
        return sorted(p.name for p in Path(cls.state_root).glob("bench-*"))

    @classmethod
    def residues(cls, cache_dir: str) -> list[Residue]:
        """Containers named bench-... whose `run` was killed before it could delete them."""
        return [Residue(f"{cls.runtime} container", name) for name in cls.state_names()]

    @classmethod
    def remove(cls, residue: Residue) -> None:
        run_quietly([shutil.which(cls.runtime) or cls.runtime, *cls.root_flags(), "delete", "--force", residue.name],
                    GUEST_ENV)

    def config(self) -> dict:
        return {**super().config(), "spawn": f"{shutil.which(self.runtime)} run (foreground)",
                "bundle": "generated config.json, rootfs read-only, Docker's default capabilities",
                "seccomp": "docker default (runners/seccomp.py, as OCI linux.seccomp)",
                "network": "own netns, loopback only"}

    def launch(self, spec: LaunchSpec) -> TaskInstance:
        if self.cgroups is None:  # runc makes the bench parent; ours to share and remove like the container's
            from bench.host.cgroups import detect

            self.cgroups = detect()
            self.cgroups.hold()
        assert self.cgroups is not None
        bundle = self.state_dir / spec.name
        instance_dir(bundle)
        (bundle / "config.json").write_text(json.dumps(oci_config(spec, f"/bench/{spec.name}")))
        runtime = host_tool(self.runtime)
        argv = [runtime, *self.global_flags(), "run", "--bundle", str(bundle), spec.name]
        instance = self.spawn(runtime, argv, spec)
        instance.on_teardown = lambda: self._delete(spec.name, bundle, killed=instance.killed)
        return instance

    @classmethod
    def root_flags(cls) -> list[str]:
        """Where the runtime keeps its state, as flags before its command (runsc: its own --root)."""
        return []

    def global_flags(self) -> list[str]:
        """The runtime's flags before `run` (runsc's --root and --platform)."""
        return self.root_flags()

    def close(self) -> None:
        """runc creates the bench parent cgroup for cgroupsPath but removes only its leaf."""
        super().close()
        if self.cgroups:
            self.cgroups.remove_parent()
            self.cgroups = None

    def _delete(self, name: str, bundle: Path, killed: bool = False) -> None:
        """`run` deletes its container when it returns; force it only when state was left behind.
        A runtime killed mid-start (Ctrl-C) may have made the container's cgroups but not yet its
        state, so `delete` knows nothing of them: those are removed here by name. Only then: the
        search walks every cgroup hierarchy, and teardown is timed."""
        if name in self.state_names():
            run_quietly([host_tool(self.runtime), *self.root_flags(), "delete", "--force", name], GUEST_ENV)
        if killed:
            from bench.host.cgroups import kill_and_remove

            for leaf in self.cgroups.leftovers() if self.cgroups else ():
                if leaf.name == name:
                    kill_and_remove(leaf)
        shutil.rmtree(bundle, ignore_errors=True)


class RuncRunner(OciRunner):
    name = "runc"
    description = "runc run on an OCI bundle of the guest rootfs"


class CrunRunner(OciRunner):
    name = "crun"
    runtime = "crun"
    state_root = "/run/crun"
    description = "crun run on an OCI bundle of the guest rootfs"

    def available(self) -> tuple[bool, str]:
        ok, reason = super().available()
        controllers = hybrid_v2_controllers()
        if ok and controllers:
            return False, (f"crun refuses this host's hybrid cgroup layout: \"cgroups in hybrid mode not "
                           f"supported, drop all controllers from cgroupv2\" (the unified hierarchy has "
                           f"{', '.join(controllers)})")
        return ok, reason


def hybrid_v2_controllers(root: str = "/sys/fs/cgroup") -> list[str]:
    """The controllers on the unified hierarchy of a hybrid (v1 + v2) layout; crun wants none."""
    unified = Path(root) / "unified" / "cgroup.controllers"
    return unified.read_text().split() if unified.exists() else []
