"""Docker as a peer, the name most users know: the guest rootfs imported as an image, each instance
a `docker run` with the same envelope, timed on our pipe like every runner.

It talks to isobench's own dockerd (scripts/setup.sh starts it): its own data root and socket, and
Docker's defaults otherwise, inside a network namespace of ours (isobench-docker). So a workload
with a network path gets what Docker's users get, the default bridge with the service's port
published (-p: NAT), and every rule, bridge and proxy stays in that namespace, never the host's.
A start without a network path (startup, scale) stays `--network none`, as it always was.

Storage, as Docker's users have it: a disk workload writes into the container's writable layer
(overlay2's upper dir) unless it asks for a volume, or `docker:storage=volume` makes every one a
volume: a host directory bind-mounted in (`-v`), as Felter et al. compared them for MySQL.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import ClassVar

from bench.cache import instance_dir
from bench.host.tools import host_tool, run_captured
from bench.spec import SCRATCH, LaunchSpec
from runners._child import run_quietly
from runners.base import GUEST_ENV, Instance, Residue
from runners.process import ProcessRunner, TaskInstance

# Debian's docker.io client matches its daemon; a newer client elsewhere on PATH may not.
CLIENTS = ("/usr/bin/docker", "/usr/local/bin/docker")
CREATE_GRACE_S = 3.0  # how long dockerd may still be creating the container of a killed `docker run`
# isobench's own dockerd, as scripts/setup.sh starts it.
SOCKET = "/run/isobench/docker.sock"
DAEMON_PID = "/run/isobench/dockerd.pid"
NETNS = "/run/netns/isobench-docker"
HOST_ADDRESS = "10.215.255.1"  # that namespace's own address: -p publishes on it, clients connect to it
LAYER_SCRATCH = "/scratch"  # in the container's writable layer (docker run --workdir makes it)
VOLUME_AT = "/mnt/volume"
NETWORKS = ("auto", "none", "bridge", "host")
STORAGES = ("layer", "volume")


@dataclass
class DockerOptions:
    network: str = field(default="auto", metadata={
        "help": "auto (none, unless the workload has a network path: then bridge), none, bridge (the default "
                "bridge, ports published with -p) or host (the daemon's namespace)"})
    storage: str = field(default="layer", metadata={
        "help": "where a disk workload writes: layer (the container's writable layer) or volume (a host dir, -v)"})
    state_dir: str = field(default="/tmp", metadata={"help": "where volumes' host directories go"})

    def __post_init__(self) -> None:
        if self.network not in NETWORKS:
            raise ValueError(f"network must be {', '.join(NETWORKS)}, not {self.network!r}")
        if self.storage not in STORAGES:
            raise ValueError(f"storage must be {' or '.join(STORAGES)}, not {self.storage!r}")


def docker_cli() -> str | None:
    return next((c for c in CLIENTS if os.access(c, os.X_OK)), None) or shutil.which("docker")


class DockerRunner(ProcessRunner):
    """Also the base of podman's runner: the same CLI, another engine."""
    paths = "disk: the container's writable layer (storage=volume: -v host dir); network: the default bridge, -p (NAT), in isobench's dockerd netns (network=host; none); a start stays --network none"

    name = "docker"
    family = "containers"
    max_repeat = 10  # an expensive start: fewer rounds at most
    enforcement: ClassVar[dict[str, str]] = {"cpuset": "cpuset cgroup (--cpuset-cpus)", "cpu_quota": "cpu cgroup (--cpus)",
                                             "memory": "memory cgroup (--memory)"}
    kind = "peer"
    version_probes: ClassVar[dict[str, tuple[list[str], str]]] = {"docker": (["docker", "--version"], r"version ([\w.\-]+)")}
    description = "docker run of the guest rootfs, imported as an image (isobench's own dockerd, in a netns of ours)"
    cannot_measure: ClassVar[dict[str, str]] = {"mem_peak_mib": "the container's processes belong to containerd, not to the harness, "
                                                                "and its cgroup is gone before a probe's exit can be read"}
    Options: ClassVar[type | None] = DockerOptions

    def __init__(self, **options) -> None:
        super().__init__()
        self.cfg = DockerOptions(**options)
        self.tag = ""  # isobench/rootfs:<digest>, once prepare() imported the rootfs
        self.provides = frozenset({"scratch"} if self.cfg.network == "none" else {"scratch", "server"})
        self.listen_on = "127.0.0.1" if self.cfg.network == "host" else "0.0.0.0"  # type: ignore[misc]  # per variant

    @classmethod
    def cli(cls) -> str | None:
        return docker_cli()

    @classmethod
    def command(cls) -> list[str]:
        """The CLI and the daemon it talks to (isobench's own); MeasurementError if the CLI is gone."""
        return [cls.client(), "--host", f"unix://{SOCKET}"]

    @classmethod
    def residues(cls, cache_dir: str) -> list[Residue]:
        """Its containers named bench-... that a killed run left (created, running or exited)."""
        if cls.cli() is None:
            return []
        code, out = run_captured([*cls.command(), "ps", "-a", "--filter", "name=^bench-", "--format", "{{.Names}}"],
                                 GUEST_ENV)
        return [Residue(f"{cls.name} container", n) for n in out.split()] if code == 0 else []

    @classmethod
    def client(cls) -> str:
        """The CLI available() found; MeasurementError if it is gone."""
        return host_tool(cls.name, cls.cli())

    @classmethod
    def remove(cls, residue: Residue) -> None:
        run_quietly([*cls.command(), "rm", "--force", residue.name], GUEST_ENV)

    def network_mode(self, spec: LaunchSpec) -> str:
        """--network for this launch: auto gives the bridge only to a workload with a network path."""
        if self.cfg.network != "auto":
            return self.cfg.network
        return "bridge" if spec.server is not None else "none"

    def run_options(self, spec: LaunchSpec) -> list[str]:
        mode = self.network_mode(spec)
        published = [f"--publish={HOST_ADDRESS}:{port}:{port}" for port in spec.publish] if mode == "bridge" else []
        return ["--network", mode, *published]

    def available(self) -> tuple[bool, str]:
        if self.cli() is None:
            return False, "docker is not installed (apt-get install docker.io)"
        code, out = run_captured([*self.command(), "version", "--format", "{{.Server.Version}}"], GUEST_ENV, timeout_s=20)
        if code:
            return False, f"no isobench dockerd at {SOCKET}: {(out.strip().splitlines() or ['?'])[-1]} (make setup starts one)"
        return True, f"Docker {out.strip()} (isobench's own dockerd, netns isobench-docker)"

    def prepare(self, rootfs: str, image_digest: str, cache_dir: str) -> None:
        """The rootfs becomes the image isobench/rootfs:<digest> once (`docker import`)."""
        self.tag = f"isobench/rootfs:{image_digest}"
        cli = self.command()
        if run_quietly([*cli, "image", "inspect", self.tag], GUEST_ENV):
            code, out = run_captured(["/bin/sh", "-c", 'tar -C "$1" -c . | "$2" --host "$3" import - "$4"', "sh", rootfs,
                                      cli[0], cli[2], self.tag], GUEST_ENV, timeout_s=600)
            if code:
                raise OSError(f"docker import of the rootfs failed: {out.strip()[-300:]}")

    def config(self) -> dict:
        return {**super().config(), "spawn": f"{self.cli()} run --network {self.cfg.network}", "image": self.tag,
                "mem_peak": "not measured: " + self.cannot_measure["mem_peak_mib"],
                "network": self.cfg.network, "storage": self.cfg.storage, **daemon_settings(self.command())}

    def server_side(self) -> tuple[str | None, str]:
        """The daemon's namespace and its own address: the bridge's containers reach it through
        their gateway, and a published port is reached at it through Docker's DNAT rule."""
        if self.cfg.network == "none":
            raise NotImplementedError(f"{self.name} with network=none has no network path")
        return NETNS, HOST_ADDRESS

    def guest_address(self, instance: Instance) -> str:
        return "127.0.0.1" if self.cfg.network == "host" else HOST_ADDRESS

    def storage(self, spec: LaunchSpec) -> tuple[list[str], str | None, Path | None]:
        """(run options, where SCRATCH is inside, the volume's host dir) for a disk workload."""
        if not spec.scratch:
            return [], None, None
        if spec.scratch == "volume" or self.cfg.storage == "volume":
            host_dir = Path(self.cfg.state_dir) / spec.name / "volume"
            instance_dir(host_dir.parent)
            host_dir.mkdir()
            return [f"--volume={host_dir}:{VOLUME_AT}"], VOLUME_AT, host_dir
        return [f"--workdir={LAYER_SCRATCH}"], LAYER_SCRATCH, None

    def launch(self, spec: LaunchSpec) -> TaskInstance:
        cli = self.command()
        env = spec.envelope
        disk, at, host_dir = self.storage(spec)
        if at:
            spec = replace(spec, argv=spec.argv_with({SCRATCH: at}))
        argv = [*cli, "run", *self.run_options(spec), *disk, "--name", spec.name, "--hostname", spec.name[:63]]
        argv += ["--cpuset-cpus", cpuset] if env.cpus and (cpuset := env.cpuset_text()) else []
        argv += ["--cpus", str(env.cpus)] if env.quota_us() else []
        argv += ["--memory", f"{env.memory_mib}m"] if env.memory_mib else []
        argv += ["--pids-limit", str(env.pids)] if env.pids else []
        volume = host_dir.parent if host_dir else None
        instance = self.spawn(cli[0], [*argv, self.tag, *spec.argv], spec,
                              on_teardown=(lambda: shutil.rmtree(volume, ignore_errors=True)) if volume else None)
        instance.on_teardown = lambda: self._remove(spec.name, volume, killed=instance.killed)
        return instance

    def _remove(self, name: str, volume: Path | None = None, killed: bool = False) -> None:
        """Removal is teardown: without --rm the CLI returns when the workload exits, not after cleanup.
        A CLI killed mid-`run` (Ctrl-C) may already have sent its create request, and dockerd then
        makes the container after `rm` found none: so look again for a while."""
        cli = self.command()
        run_quietly([*cli, "rm", "--force", name], GUEST_ENV)
        deadline = time.monotonic() + (CREATE_GRACE_S if killed else 0)
        while time.monotonic() < deadline:
            _, listed = run_captured([*cli, "ps", "--all", "--quiet", "--filter", f"name=^/{name}$"], GUEST_ENV)
            if listed.strip():
                run_quietly([*cli, "rm", "--force", name], GUEST_ENV)
                break
            time.sleep(0.1)
        if volume:
            shutil.rmtree(volume, ignore_errors=True)


def daemon_settings(cli: list[str]) -> dict:
    """What a reader needs to know of the daemon's network, for meta.json: its userland-proxy,
    iptables and ip-masq settings (its command line, else Docker's defaults: all on) and the
    default bridge's MTU and subnet."""
    flags: dict[str, str] = {}
    try:
        pid = int(Path(DAEMON_PID).read_text())
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
        for arg, after in zip(argv, [*argv[1:], ""], strict=True):
            if arg.startswith("--"):
                key, _, value = arg[2:].partition("=")
                flags[key] = value or (after if after and not after.startswith("--") else "true")
    except (OSError, ValueError):
        pass
    found = {f"dockerd_{key.replace('-', '_')}": flags.get(key, "true (default)")
             for key in ("userland-proxy", "iptables", "ip-masq")}
    code, out = run_captured([*cli, "network", "inspect", "bridge", "--format", "{{json .}}"], GUEST_ENV)
    if code == 0:
        bridge = json.loads(out)
        found["bridge_mtu"] = bridge.get("Options", {}).get("com.docker.network.driver.mtu", "1500 (default)")
        found["bridge_subnet"] = ",".join(c.get("Subnet", "") for c in bridge.get("IPAM", {}).get("Config") or [])
    found["daemon"] = f"isobench's own dockerd ({SOCKET}), in netns {os.path.basename(NETNS)}"
    return found
