"""gVisor as a peer: `runsc run` on the same OCI bundle the runc runner generates, in the foreground.
The workload's system calls go to gVisor's user-space kernel (the Sentry) instead of the host's;
the platform that intercepts them (KVM where a probe start works, ptrace otherwise) is recorded."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from bench.errors import MeasurementError
from bench.spec import LaunchSpec
from runners.base import Residue
from runners.oci import OciRunner

PLATFORMS = ("auto", "ptrace", "kvm")
KVM_PROBE_TIMEOUT_S = 10.0


@dataclass
class GvisorOptions:
    state_dir: str = field(default="/tmp", metadata={"help": "where per-instance bundles go"})
    platform: str = field(default="auto", metadata={
        "help": "how runsc intercepts system calls: auto (KVM if a probe start works, else ptrace), ptrace or kvm"})

    def __post_init__(self) -> None:
        if self.platform not in PLATFORMS:
            raise ValueError(f"platform must be {', '.join(PLATFORMS)}, not {self.platform!r}")


class GvisorRunner(OciRunner):
    name, kind, family = "gvisor", "peer", "sandboxes"
    description = "gVisor's runsc run on the runc runner's OCI bundle: a user-space kernel"
    runtime = "runsc"
    state_root = "/run/bench-runsc"  # runsc's --root: ours alone, so that clean finds only our sandboxes
    Options = GvisorOptions
    enforcement: ClassVar[dict[str, str]] = {"cpuset": "cpuset cgroup around the whole sandbox, Sentry and Gofer included (OCI linux.resources)",
                                             "cpu_quota": "cpu cgroup around the whole sandbox (OCI linux.resources.cpu.quota)",
                                             "memory": "memory cgroup around the whole sandbox (OCI linux.resources.memory)"}

    def __init__(self, state_dir: str = "/tmp", platform: str = "auto") -> None:
        super().__init__(state_dir)
        self.platform = GvisorOptions(state_dir, platform).platform
        self.platform_reason = "" if platform == "auto" else f"asked for with --option gvisor.platform={platform}"

    def prepare(self, rootfs: str, image_digest: str, cache_dir: str) -> None:
        if self.platform == "auto":
            from bench.host.kvm import kvm_verdict

            version = self.versions().get(self.runtime, "?")
            self.platform, self.platform_reason = kvm_verdict(
                Path(cache_dir) / "runsc-kvm-probe.json", f"runsc {version}", lambda: self._probe_kvm(rootfs),
                fallback="ptrace")

    def cached_state(self, cache_dir: str) -> str:
        if self.platform != "auto":
            return f"platform: {self.platform} (asked for)"
        try:
            record = json.loads((Path(cache_dir) / "runsc-kvm-probe.json").read_text())
        except (OSError, ValueError):
            return "platform: decided by a KVM probe start before the first sandbox of a run"
        return f"platform: {record['accel']} ({record['reason']}; probed once per boot)"

    def _probe_kvm(self, rootfs: str) -> tuple[str, str]:
        """One probe start on the KVM platform: READY within the timeout, or ptrace."""
        self.platform = "kvm"
        instance = None
        try:
            instance = self.launch(LaunchSpec(f"bench-gvisor-kvmprobe-{id(self)}", ("/bin/bench-probe",), rootfs))
            instance.wait_ready(KVM_PROBE_TIMEOUT_S)
            return "kvm", "a probe start on runsc's KVM platform reached READY"
        except (MeasurementError, OSError) as exc:
            return "ptrace", f"a probe start on runsc's KVM platform failed: {str(exc).splitlines()[0][:160]}"
        finally:
            if instance is not None:
                instance.teardown()

    @classmethod
    def state_names(cls) -> list[str]:
        """runsc keeps `<id>_sandbox:<sandbox id>.state` (and .lock) files, not a directory per id."""
        return sorted({p.name.split("_sandbox:")[0] for p in Path(cls.state_root).glob("bench-*_sandbox:*")})

    @classmethod
    def remove(cls, residue: Residue) -> None:
        super().remove(residue)
        cls._unlock(residue.name)

    def _delete(self, name: str, bundle: Path, killed: bool = False) -> None:
        super()._delete(name, bundle, killed)
        if killed:  # a sandbox that ran to its end leaves no files: no sweep on a timed teardown
            self._unlock(name)

    @classmethod
    def _unlock(cls, name: str) -> None:
        """`runsc delete` of a sandbox that never came up (a KVM probe that hung) leaves its .lock file."""
        for path in Path(cls.state_root).glob(f"{name}_sandbox:*"):
            path.unlink(missing_ok=True)

    @classmethod
    def root_flags(cls) -> list[str]:
        return ["--root", cls.state_root]

    def global_flags(self) -> list[str]:
        # --network none: the bundle gives the sandbox its own empty netns (loopback only), as runc's
        return [*self.root_flags(), "--platform", self.platform, "--network", "none"]

    def config(self) -> dict:
        return {**super().config(), "platform": self.platform, "platform_reason": self.platform_reason,
                "spawn": f"runsc --platform {self.platform} --network none run (foreground)",
                "seccomp": "the Sentry's own filter; runsc does not apply the bundle's seccomp section"}
