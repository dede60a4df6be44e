"""Podman as a peer: Docker's runner with podman's CLI (daemonless; cgroupfs, runc, no network)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import ClassVar

from bench.host.tools import host_tool
from bench.spec import LaunchSpec
from runners.docker import DockerRunner
from runners.process import ProcessRunner

CAP_SYS_RESOURCE = 24
RUN_OPTIONS = ["--cgroup-manager", "cgroupfs", "--runtime", "runc", "--network", "none"]


def has_capability(cap: int) -> bool:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> cap & 1)
    return False


class PodmanRunner(DockerRunner):
    paths = "disk: the container's writable layer; network: none"
    name = "podman"
    family = "containers"
    max_repeat = 10  # an expensive start: fewer rounds at most
    version_probes: ClassVar[dict[str, tuple[list[str], str]]] = {"podman": (["podman", "--version"], r"version ([\w.\-]+)")}
    description = "podman run --network none of the guest rootfs, imported as an image"

    Options = None  # none of docker's: no daemon of ours to give it a network, so none

    def __init__(self) -> None:
        super().__init__(network="none")

    @classmethod
    def cli(cls) -> str | None:
        return shutil.which("podman")

    @classmethod
    def command(cls) -> list[str]:
        return [cls.client()]

    def run_options(self, spec: LaunchSpec) -> list[str]:
        return RUN_OPTIONS

    def config(self) -> dict:
        return {**ProcessRunner.config(self), "spawn": f"{self.cli()} run {' '.join(RUN_OPTIONS)}",
                "image": self.tag, "mem_peak": "not measured: " + self.cannot_measure["mem_peak_mib"]}

    def available(self) -> tuple[bool, str]:
        if self.cli() is None:
            return False, "podman is not installed (apt-get install podman)"
        if not has_capability(CAP_SYS_RESOURCE):
            # Measured here: runc, driven by podman, fails "error setting rlimits for ready process:
            # error setting rlimit type 6: operation not permitted", even with --ulimit at the hard limits.
            return False, ("this host's root lacks CAP_SYS_RESOURCE, and podman's runtime must raise "
                           "RLIMIT_NPROC/RLIMIT_NOFILE for the container (runc: 'error setting rlimits: "
                           "operation not permitted')")
        return True, host_tool("podman")
