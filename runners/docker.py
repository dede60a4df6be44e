"""Docker as a peer, the name most users know: the guest rootfs imported as an image, each instance
a `docker run --network none` with the same envelope. Timed on our pipe like every runner."""

from __future__ import annotations

import os
import shutil
import time
from typing import ClassVar

from bench.host.tools import host_tool, run_captured
from bench.spec import LaunchSpec
from runners._child import run_quietly
from runners.base import GUEST_ENV, Residue
from runners.process import ProcessRunner, TaskInstance

# Debian's docker.io client matches its daemon; a newer client elsewhere on PATH may not.
CLIENTS = ("/usr/bin/docker", "/usr/local/bin/docker")
CREATE_GRACE_S = 3.0  # how long dockerd may still be creating the container of a killed `docker run`


def docker_cli() -> str | None:
    return next((c for c in CLIENTS if os.access(c, os.X_OK)), None) or shutil.which("docker")


class DockerRunner(ProcessRunner):
    """Also the base of podman's runner: the same CLI, another engine."""

    name = "docker"
    family = "containers"
    max_repeat = 10  # an expensive start: fewer rounds at most
    enforcement: ClassVar[dict[str, str]] = {"cpuset": "cpuset cgroup (--cpuset-cpus)", "cpu_quota": "cpu cgroup (--cpus)",
                                             "memory": "memory cgroup (--memory)"}
    kind = "peer"
    version_probes: ClassVar[dict[str, tuple[list[str], str]]] = {"docker": (["docker", "--version"], r"version ([\w.\-]+)")}
    description = "docker run --network none of the guest rootfs, imported as an image"
    cannot_measure: ClassVar[dict[str, str]] = {"mem_peak_mib": "the container's processes belong to containerd, not to the harness, "
                                                                "and its cgroup is gone before a probe's exit can be read"}

    def __init__(self) -> None:
        super().__init__()
        self.tag = ""  # isobench/rootfs:<digest>, once prepare() imported the rootfs

    @classmethod
    def cli(cls) -> str | None:
        return docker_cli()

    @classmethod
    def residues(cls, cache_dir: str) -> list[Residue]:
        """Its containers named bench-... that a killed run left (created, running or exited)."""
        cli = cls.cli()
        if cli is None:
            return []
        code, out = run_captured([cli, "ps", "-a", "--filter", "name=^bench-", "--format", "{{.Names}}"], GUEST_ENV)
        return [Residue(f"{cls.name} container", n) for n in out.split()] if code == 0 else []

    @classmethod
    def client(cls) -> str:
        """The CLI available() found; MeasurementError if it is gone."""
        return host_tool(cls.name, cls.cli())

    @classmethod
    def remove(cls, residue: Residue) -> None:
        run_quietly([cls.client(), "rm", "--force", residue.name], GUEST_ENV)

    def run_options(self) -> list[str]:
        return ["--network", "none"]

    def available(self) -> tuple[bool, str]:
        cli = self.cli()
        if cli is None:
            return False, "docker is not installed (apt-get install docker.io)"
        code, out = run_captured([cli, "version", "--format", "{{.Server.Version}}"], GUEST_ENV, timeout_s=20)
        if code:
            return False, f"no Docker daemon: {(out.strip().splitlines() or ['?'])[-1]} (make setup starts one)"
        return True, f"Docker {out.strip()}"

    def prepare(self, rootfs: str, image_digest: str, cache_dir: str) -> None:
        """The rootfs becomes the image isobench/rootfs:<digest> once (`docker import`)."""
        self.tag = f"isobench/rootfs:{image_digest}"
        cli = self.client()
        if run_quietly([cli, "image", "inspect", self.tag], GUEST_ENV):
            code, out = run_captured(["/bin/sh", "-c", 'tar -C "$1" -c . | "$2" import - "$3"', "sh", rootfs, cli,
                                      self.tag], GUEST_ENV, timeout_s=600)
            if code:
                raise OSError(f"docker import of the rootfs failed: {out.strip()[-300:]}")

    def config(self) -> dict:
        return {**super().config(), "spawn": f"{self.cli()} run {' '.join(self.run_options())}", "image": self.tag,
                "mem_peak": "not measured: " + self.cannot_measure["mem_peak_mib"]}

    def launch(self, spec: LaunchSpec) -> TaskInstance:
        cli = self.client()
        env = spec.envelope
        argv = [cli, "run", *self.run_options(), "--name", spec.name, "--hostname", spec.name[:63]]
        argv += ["--cpuset-cpus", cpuset] if env.cpus and (cpuset := env.cpuset_text()) else []
        argv += ["--cpus", str(env.cpus)] if env.quota_us() else []
        argv += ["--memory", f"{env.memory_mib}m"] if env.memory_mib else []
        argv += ["--pids-limit", str(env.pids)] if env.pids else []
        instance = self.spawn(cli, [*argv, self.tag, *spec.argv], spec)
        instance.on_teardown = lambda: self._remove(spec.name, killed=instance.killed)
        return instance

    def _remove(self, name: str, killed: bool = False) -> None:
        """Removal is teardown: without --rm the CLI returns when the workload exits, not after cleanup.
        A CLI killed mid-`run` (Ctrl-C) may already have sent its create request, and dockerd then
        makes the container after `rm` found none: so look again for a while."""
        run_quietly([self.client(), "rm", "--force", name], GUEST_ENV)
        deadline = time.monotonic() + (CREATE_GRACE_S if killed else 0)
        while time.monotonic() < deadline:
            _, listed = run_captured([self.client(), "ps", "--all", "--quiet", "--filter", f"name=^/{name}$"], GUEST_ENV)
            if listed.strip():
                run_quietly([self.client(), "rm", "--force", name], GUEST_ENV)
                return
            time.sleep(0.1)
