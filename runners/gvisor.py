"""gVisor as a peer: `runsc run` on the same OCI bundle the runc runner generates, in the foreground.
The workload's system calls go to gVisor's user-space kernel (the Sentry) instead of the host's;
the platform that intercepts them (KVM where a probe start works, ptrace otherwise) is recorded."""

from __future__ import annotations

import json
import re
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
    storage: str = field(default="layer", metadata={
        "help": "where a disk workload writes: layer (an overlay root) or volume (a host dir bound in)"})
    network: str = field(default="sandbox", metadata={
        "help": "with a network path: sandbox (gVisor's own netstack, its default) or host (the host kernel's "
                "stack in the CNI-wired netns)"})
    platform: str = field(default="auto", metadata={
        "help": "how runsc intercepts system calls: auto (KVM if a probe start works, else ptrace), ptrace or kvm"})

    def __post_init__(self) -> None:
        if self.platform not in PLATFORMS:
            raise ValueError(f"platform must be {', '.join(PLATFORMS)}, not {self.platform!r}")
        if self.network not in ("sandbox", "host"):
            raise ValueError(f"network must be sandbox or host, not {self.network!r}")


class GvisorRunner(OciRunner):
    paths = "disk: an overlay root (storage=volume: a host dir); network: the CNI-wired netns through gVisor's netstack (network=host: the host kernel's stack there)"
    name, kind, family = "gvisor", "peer", "sandboxes"
    description = "gVisor's runsc run on the runc runner's OCI bundle: a user-space kernel"
    runtime = "runsc"
    state_root = "/run/bench-runsc"  # runsc's --root: ours alone, so that clean finds only our sandboxes
    Options = GvisorOptions
    enforcement: ClassVar[dict[str, str]] = {"cpuset": "cpuset cgroup around the whole sandbox, Sentry and Gofer included (OCI linux.resources)",
                                             "cpu_quota": "cpu cgroup around the whole sandbox (OCI linux.resources.cpu.quota)",
                                             "memory": "memory cgroup around the whole sandbox (OCI linux.resources.memory)"}

    def __init__(self, state_dir: str = "/tmp", storage: str = "layer", network: str = "sandbox",
                 platform: str = "auto") -> None:
        super().__init__(state_dir, storage)
        options = GvisorOptions(state_dir, storage, network, platform)
        self.platform, self.network = options.platform, options.network
        self.platform_reason = "" if platform == "auto" else f"asked for with --option gvisor.platform={platform}"
        self.netstack = ""  # with network=sandbox: why runsc's netstack cannot take a netns of ours here, if it cannot

    def prepare(self, rootfs: str, image_digest: str, cache_dir: str) -> None:
        version = self.versions().get(self.runtime, "?")
        if self.platform == "auto":
            from bench.host.kvm import kvm_verdict

            self.platform, self.platform_reason = kvm_verdict(
                Path(cache_dir) / "runsc-kvm-probe.json", f"runsc {version}", lambda: self._probe_kvm(rootfs),
                fallback="ptrace")
        if self.network == "sandbox":
            verdict = self._netstack_verdict(Path(cache_dir) / "runsc-netstack-probe.json", version, rootfs)
            self.netstack = re.sub(r"/proc/\d+/", "/proc/PID/", verdict)  # the same words from run to run
            if self.netstack:
                self.provides = frozenset({"scratch"})
                self.lacks = {"server": f"runsc {version}'s netstack (--network=sandbox) refuses every netns of ours "
                                        f"here: {self.netstack!r}; gvisor:network=host has the network path"}

    def _netstack_verdict(self, record: Path, version: str, rootfs: str) -> str:
        """'' if a probe sandbox with --network=sandbox starts in a CNI-wired netns, else runsc's
        complaint; probed once per runsc version and kept in the cache."""
        try:
            kept = json.loads(record.read_text())
            if kept["runsc"] == version:
                return kept["refusal"]
        except (OSError, ValueError, KeyError):
            pass
        instance = None
        try:
            instance = self.launch(LaunchSpec(f"bench-gvisor-netprobe-{id(self)}", ("/bin/bench-probe",), rootfs,
                                              server="probe"))
            code = instance.wait_exit(KVM_PROBE_TIMEOUT_S)
            said = instance.output.decode(errors="replace").strip().splitlines()
            refusal = "" if code == 0 else (said[-1] if said else f"exit code {code}")[-200:]
        except MeasurementError as exc:
            refusal = str(exc).splitlines()[0][:200]
        finally:
            if instance is not None:
                instance.teardown()
            self.close_network()
        record.write_text(json.dumps({"runsc": version, "refusal": refusal}))
        return refusal

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

    def _delete(self, name: str, bundle: Path, killed: bool = False, cni=None, root: str | None = None) -> None:
        super()._delete(name, bundle, killed, cni, root)
        if killed:  # a sandbox that ran to its end leaves no files: no sweep on a timed teardown
            self._unlock(name)

    @classmethod
    def _unlock(cls, name: str) -> None:
        """`runsc delete` of a sandbox that never came up (a KVM probe that hung) leaves its .lock file."""
        for path in Path(cls.state_root).glob(f"{name}_sandbox:*"):
            path.unlink(missing_ok=True)

    def spawn_in(self, netns: str | None, runtime: str, argv: list[str], spec: LaunchSpec):
        """runsc itself in the CNI-wired namespace: started from the host's, its sandbox refused to
        copy the namespace's interfaces ("cannot run with network enabled in root network namespace")."""
        if netns is None:
            return super().spawn_in(netns, runtime, argv, spec)
        from bench.host.network import inside

        self._listener()  # the taskstats socket, opened in the host's namespace before the setns
        with inside(netns):
            return self.spawn(runtime, argv, spec)

    @classmethod
    def root_flags(cls) -> list[str]:
        return ["--root", cls.state_root]

    def global_flags(self, spec: LaunchSpec) -> list[str]:
        # --network none: the bundle gives the sandbox its own empty netns (loopback only), as runc's.
        # With a network path, runsc's default: its own netstack (sandbox) on the CNI-wired netns.
        return [*self.root_flags(), "--platform", self.platform, "--network", self.network if spec.server else "none"]

    def config(self) -> dict:
        return {**super().config(), "platform": self.platform, "platform_reason": self.platform_reason,
                "spawn": f"runsc --platform {self.platform} --network none run (foreground); --network sandbox "
                         "(gVisor's netstack) on the CNI-wired netns for a network path",
                "seccomp": "the Sentry's own filter; runsc does not apply the bundle's seccomp section",
                "network_path": self.network, **({"netstack_refused": self.netstack} if self.netstack else {})}
