"""Real OCI runtimes as peers: an OCI bundle (config.json) generated from the guest rootfs and the
envelope, run with `runc run` or `crun run` in the foreground, output on our pipe, timed the same way.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from bench.cache import instance_dir
from bench.errors import MeasurementError
from bench.host.tools import host_tool
from bench.spec import CFS_PERIOD_US, SCRATCH, LaunchSpec
from runners._child import run_quietly

if TYPE_CHECKING:  # for annotations only: cgroups are detected at the first launch, the network on the first need
    from bench.host.cgroups import CgroupFS
    from bench.host.network import BridgeNetwork
from runners.base import GUEST_ENV, Residue, installed
from runners.container import DOCKER_CAPS, MASKED_PROC, READONLY_PROC
from runners.layer import LAYER_SCRATCH, VOLUME_AT, check_storage, overlay_root, unmount, volume_dir
from runners.process import ProcessRunner, TaskInstance
from runners.seccomp import oci_seccomp


def oci_config(spec: LaunchSpec, cgroups_path: str, netns: str | None = None, root: str | None = None,
               volume: str | None = None) -> dict:
    """Pure: the bundle's config.json, shaped like `runc spec` with Docker's defaults and our envelope.
    netns: a network namespace made for it (CNI's); root: a writable root to use instead of the
    image (an overlay, as containerd's snapshotter mounts); volume: a host dir bound at VOLUME_AT."""
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
        "root": {"path": root or spec.rootfs, "readonly": root is None},
        "hostname": spec.name[:63],
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": [*nosuid, "mode=1777", "size=65536k"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": [*nosuid, "ro"]},
            {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "mode=1777"]},
            *([{"destination": VOLUME_AT, "type": "bind", "source": volume, "options": ["rbind", "rw"]}] if volume else []),
        ],
        "linux": {
            "cgroupsPath": cgroups_path,
            "resources": resources,
            "namespaces": [{"type": t, **({"path": netns} if t == "network" and netns else {})}
                           for t in ("pid", "network", "ipc", "uts", "mount", "cgroup")],
            "maskedPaths": list(MASKED_PROC),
            "readonlyPaths": list(READONLY_PROC),
            "seccomp": oci_seccomp(),  # Docker's default, as Docker hands it to runc
        },
    }




@dataclass
class OciOptions:
    state_dir: str = field(default="/tmp", metadata={"help": "where per-instance bundles go"})
    storage: str = field(default="layer", metadata={
        "help": "where a disk workload writes: layer (an overlay root, as containerd's snapshotter mounts) "
                "or volume (a host dir bound in)"})

    def __post_init__(self) -> None:
        check_storage(self.storage)


class OciRunner(ProcessRunner):
    """`<runtime> run --bundle DIR ID`: the runtime's own start path, end to end.

    A workload with a network path gets a network namespace wired by the CNI bridge plugin first
    (bench.host.cni), as containerd would; one without stays in an empty one (loopback only). A disk
    workload writes into an overlay root made for the instance (the image below, an upper dir of its
    own), as containerd's snapshotter gives it, or into a host dir bound in (storage=volume)."""
    paths = "disk: an overlay root (storage=volume: a host dir bound in); network: a netns wired by the CNI bridge + host-local plugins; a start stays in an empty netns"

    runtime = "runc"
    kind = "peer"
    family = "containers"
    enforcement: ClassVar[dict[str, str]] = {"cpuset": "cpuset cgroup (OCI linux.resources.cpu.cpus)",
                                             "cpu_quota": "cpu cgroup (OCI linux.resources.cpu.quota)",
                                             "memory": "memory cgroup (OCI linux.resources.memory)"}
    state_root = "/run/runc"

    Options: ClassVar[type | None] = OciOptions
    listen_on = "0.0.0.0"  # its own eth0 (CNI's) and loopback

    def __init__(self, state_dir: str = "/tmp", storage: str = "layer") -> None:
        super().__init__()
        self.state_dir = Path(state_dir)
        self.storage = OciOptions(state_dir, storage).storage
        self.cgroups: CgroupFS | None = None
        self.provides = frozenset({"scratch", "server"})
        self.net: BridgeNetwork | None = None  # the peers' namespace, where the CNI plugins run
        self.addresses: dict[int, str] = {}  # id(instance) -> its CNI address

    def server_side(self) -> tuple[str | None, str]:
        """The peers' namespace and the CNI bridge's gateway address; the bridge is made here, before
        the first ADD, so that host-side servers can listen on it (the plugin takes it as it finds it)."""
        from bench.host.cni import CNI_BRIDGE, CNI_SUBNET, gateway, lease_dir
        from bench.host.network import ip, shared_bridge

        if self.net is None:
            self.net = shared_bridge()
            self.net.ensure()
            self.net.on_close["cni leases"] = lambda: shutil.rmtree(lease_dir(), ignore_errors=True)
            if CNI_BRIDGE not in bridges_in(self.net.netns):
                prefix = CNI_SUBNET.split("/")[1]
                ip("-n", self.net.netns, "link", "add", CNI_BRIDGE, "type", "bridge")
                ip("-n", self.net.netns, "addr", "add", f"{gateway()}/{prefix}", "dev", CNI_BRIDGE)
                ip("-n", self.net.netns, "link", "set", CNI_BRIDGE, "up")
        return self.net.path, gateway()

    def guest_address(self, instance) -> str:
        address = self.addresses.get(id(instance))
        if address is None:
            raise MeasurementError(f"{self.name}: the instance was launched without a network path")
        return address

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
        from bench.host.cni import CNI_SUBNET

        return {**super().config(), "spawn": f"{shutil.which(self.runtime)} run (foreground)",
                "bundle": "generated config.json, rootfs read-only, Docker's default capabilities",
                "seccomp": "docker default (runners/seccomp.py, as OCI linux.seccomp)",
                "network": f"own netns, loopback only; with a network path: CNI bridge + host-local ({CNI_SUBNET}, "
                           "ipMasq off) run in a netns of ours",
                "storage": "overlay root per instance (upper dir of its own)" if self.storage == "layer"
                           else "a host dir bound at " + VOLUME_AT}

    def launch(self, spec: LaunchSpec) -> TaskInstance:
        if self.cgroups is None:  # runc makes the bench parent; ours to share and remove like the container's
            from bench.host.cgroups import detect

            self.cgroups = detect()
            self.cgroups.hold()
        assert self.cgroups is not None
        bundle = self.state_dir / spec.name
        instance_dir(bundle)
        cni, root, volume = None, None, None
        try:
            if spec.scratch:
                root, volume = self._storage(spec, bundle)
                spec = replace(spec, argv=spec.argv_with({SCRATCH: VOLUME_AT if volume else LAYER_SCRATCH}))
            if spec.server is not None:
                from bench.host.cni import CniNetwork

                cni = CniNetwork(spec.name, self.server_side()[0] or "")
                cni.add()
            config = oci_config(spec, f"/bench/{spec.name}", cni.path if cni else None, root, volume)
            (bundle / "config.json").write_text(json.dumps(config))
            runtime = host_tool(self.runtime)
            argv = [runtime, *self.global_flags(spec), "run", "--bundle", str(bundle), spec.name]
            instance = self.spawn_in(cni.path if cni else None, runtime, argv, spec)
        except BaseException:
            self._undo(bundle, cni, root)
            raise
        if cni:
            self.addresses[id(instance)] = cni.address or ""

        def teardown() -> None:
            self.addresses.pop(id(instance), None)
            self._delete(spec.name, bundle, killed=instance.killed, cni=cni, root=root)

        instance.on_teardown = teardown
        return instance

    def spawn_in(self, netns: str | None, runtime: str, argv: list[str], spec: LaunchSpec) -> TaskInstance:
        """The runtime started (runc: in the host's namespace; it joins the one in config.json)."""
        return self.spawn(runtime, argv, spec)

    def _storage(self, spec: LaunchSpec, bundle: Path) -> tuple[str | None, str | None]:
        """(a writable root, a volume's host dir) for a disk workload."""
        if spec.scratch == "volume" or self.storage == "volume":
            return None, volume_dir(bundle)
        return overlay_root(spec.rootfs, bundle), None

    @staticmethod
    def _undo(bundle: Path, cni, root: str | None) -> None:
        if cni:
            cni.remove()
        unmount(root)
        shutil.rmtree(bundle, ignore_errors=True)

    @classmethod
    def root_flags(cls) -> list[str]:
        """Where the runtime keeps its state, as flags before its command (runsc: its own --root)."""
        return []

    def global_flags(self, spec: LaunchSpec) -> list[str]:
        """The runtime's flags before `run` (runsc's --root, --platform and --network)."""
        return self.root_flags()

    def close(self) -> None:
        """runc creates the bench parent cgroup for cgroupsPath but removes only its leaf."""
        super().close()
        if self.cgroups:
            self.cgroups.remove_parent()
            self.cgroups = None
        self.close_network()

    def close_network(self) -> None:
        """Let go of the peers' namespace (the CNI leases go with it, whoever lets go last)."""
        if self.net is not None:
            self.net.release()
            self.net = None

    def _delete(self, name: str, bundle: Path, killed: bool = False, cni=None, root: str | None = None) -> None:
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
        self._undo(bundle, cni, root)


def bridges_in(netns: str) -> list[str]:
    """The links named in a namespace of ours (`ip -n NETNS -o link`)."""
    from bench.host.tools import run_captured

    code, out = run_captured(["ip", "-n", netns, "-o", "link", "show"])
    return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if code == 0 and ":" in line]


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
