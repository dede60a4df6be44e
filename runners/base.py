"""The Runner interface: every environment (ours and peers) is started and measured through it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar

from bench.spec import LaunchSpec

# The same environment for a workload in every runner, so that none gets a different PATH or locale.
GUEST_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "HOME": "/", "LC_ALL": "C"}


NOT_ENFORCED = "not enforced"
# The families the report groups runners by, cheapest isolation first.
FAMILIES = ("process-like", "containers", "sandboxes", "VMs")


@dataclass(frozen=True)
class Check:
    """One line of `bench doctor`: what was checked, whether it is fine, and the fix to run if not."""

    name: str
    ok: bool
    detail: str
    fix: str = ""  # the command that would fix it; doctor prints it and runs nothing


def installed(tool: str, package: str) -> tuple[bool, str]:
    """available() of a runner that needs one tool on PATH: (True, its path), or how to install it."""
    import shutil

    path = shutil.which(tool)
    return (True, path) if path else (False, f"{tool} is not installed (apt-get install {package})")


def processes_of(program: str):
    """(pid, argv as bytes) of every process running program: what residues() scans for."""
    from pathlib import Path

    for proc in Path("/proc").glob("[0-9]*"):
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue  # gone meanwhile
        if argv[0] == program.encode():
            yield int(proc.name), argv


@dataclass(frozen=True)
class Tool:
    """The one program a peer runs: where apt finds it, how it tells its version (--version, and a
    regex whose group 1 is the version), and how the peer starts it (recorded in meta.json)."""

    command: str
    package: str
    version: str
    spawn: str = ""

    def probes(self) -> dict[str, tuple[list[str], str]]:
        return {self.command: ([self.command, "--version"], self.version)}


@dataclass(frozen=True)
class Residue:
    """Something of ours a killed run left on the host (named bench-...), as `bench clean` lists it."""

    kind: str  # "domain", "runc container", "qemu process": what it is, in words
    name: str  # what remove() needs to find it: a name, a pid, a path


@dataclass
class StateDir:
    """The options of a runner whose only one is where its per-instance files go."""

    state_dir: str = field(default="/tmp", metadata={"help": "where per-instance bundles and configs go"})


class Instance(ABC):
    """One running environment. Timestamps are host time.monotonic_ns() values."""

    t_ready: int | None = None
    t_exit: int | None = None
    exit_code: int | None = None
    pid: int | None = None  # the host process at the root of the instance (the memory suite reads its tree)

    @abstractmethod
    def wait_ready(self, timeout_s: float) -> int:
        """Block until the first byte of the READY marker arrives; return its arrival time."""

    @abstractmethod
    def wait_exit(self, timeout_s: float) -> int:
        """Block until the workload has exited; return its exit code."""

    @abstractmethod
    def teardown(self) -> None:
        """Undo everything launch() created. Idempotent: safe twice, after a crash or a timeout."""

    @property
    @abstractmethod
    def output(self) -> bytes:
        """What the workload wrote to stdout and stderr (as far as it has been read)."""

    def mem_peak_mib(self) -> float | None:
        """Host-side peak memory of the instance, once it has exited (None if unknown)."""
        return None

    # Optional capabilities: what an instance can say beyond its output. The defaults say "nothing".
    def oom_killed(self) -> bool:
        """Whether the memory envelope's OOM killer ended the workload."""
        return False

    def cpu_time_ms(self) -> float | None:
        """CPU time the instance used on the host, once it has exited (None if unknown)."""
        return None

    def pump(self) -> bool:
        """Read what output there is without waiting; True once it has exited (a service under load)."""
        return self.t_exit is not None

    def console_text(self, data: bytes) -> bytes:
        """What a person should see of raw output bytes (a VM's console carries protocol lines)."""
        return data

    def extra_metrics(self) -> dict[str, tuple[float, str]]:
        """Further measurements the instance has, as {metric: (value, unit)}."""
        return {}

    # Waiting on many at once (the scale suite's bursts), without a thread each: the fds whose
    # readiness means there is progress to take, and taking it without blocking. An instance that
    # offers no fds is waited for alone, after the others (bench.measure.wait_all_ready).
    def progress_fds(self) -> list[int]:
        return []

    def poll_ready(self) -> int | None:
        """Without blocking: take what has arrived, and return READY's arrival time once it has
        (None before). Raises MeasurementError when the workload ended without it."""
        raise NotImplementedError


class Runner(ABC):
    """An isolation technology. Built-ins and plugins register in the `bench.runners` entry points."""

    name: ClassVar[str]
    kind: ClassVar[str] = "ours"  # "ours" or "peer"
    description: ClassVar[str] = ""
    cannot_measure: ClassVar[dict[str, str]] = {}  # metric -> why this runner can never measure it
    # What disk and network workloads need (Workload.needs): "scratch", a directory for SCRATCH
    # (LaunchSpec.scratch: "own" or "volume"); "server", host-side servers it can reach (server_side).
    # Never inherited: it depends on how a class launches, so a subclass that launches its own way
    # (every peer built on ProcessRunner or VmRunner) provides nothing unless it says so.
    provides: frozenset[str] = frozenset()  # a runner whose variants differ sets its own per instance
    # Why it lacks one of those on this host, where it would provide it elsewhere ({"server": why}):
    # the reason a workload that needs it is not run, in meta.json's not_run.
    paths: ClassVar[str] = ""  # what a disk and a network workload get in it, in words (`bench list runners`)
    lacks: dict[str, str] = {}  # noqa: RUF012 -- read only; an instance that lacks something sets its own
    family: ClassVar[str] = "containers"  # one of FAMILIES: where the report puts it
    # The most rounds --precision adds for this runner (a VM's start costs seconds, a process's a ms).
    max_repeat: ClassVar[int] = 30
    # How it enforces each part of the envelope (recorded per run in meta.json, listed by `bench list
    # runners`); a part it cannot enforce starts with NOT_ENFORCED and says why.
    enforcement: ClassVar[dict[str, str]] = {"cpuset": NOT_ENFORCED, "cpu_quota": NOT_ENFORCED,
                                                                       "memory": NOT_ENFORCED}
    # Its options, as a dataclass whose fields are typed and defaulted (help in metadata): given as
    # `--option NAME.KEY=VALUE`, converted and checked by bench.options, passed to __init__ as keywords.
    Options: ClassVar[type | None] = None
    # The tools it runs, as {tool: (argv that prints the version, regex whose group 1 is the version)}.
    version_probes: ClassVar[dict[str, tuple[list[str], str]]] = {}
    tool: ClassVar[Tool | None] = None  # a peer's one program: its version, and available() if it says so

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if "provides" not in cls.__dict__:
            cls.provides = frozenset()

    @abstractmethod
    def available(self) -> tuple[bool, str]:
        """Whether this host can run it, and why (not)."""

    def prepare(self, rootfs: str, image_digest: str, cache_dir: str) -> None:  # noqa: B027 -- optional: most runners have nothing to do here
        """Heavy one-time work before the first launch (a VM's kernel and initramfs); not timed."""

    def prepare_envelope(self, envelope, needs=()) -> None:  # noqa: B027 -- optional: most runners have nothing to do here
        """One-time work that depends on the run's envelope (a VM snapshot of that size), after
        prepare() and before config(); not timed. needs: what the run's workloads need, one
        frozenset of Workload.needs() per kind of workload (a snapshot with a disk and a NIC)."""

    def config(self) -> dict:
        """The resolved configuration recorded in meta.json."""
        return {}

    @abstractmethod
    def launch(self, spec: LaunchSpec) -> Instance:
        """Create the environment and start the workload in it."""

    def image_root(self, rootfs: str) -> str:
        """What @IMAGE@ is in a workload's argv: "" in every environment that runs in the image's tree."""
        return ""

    def server_side(self) -> tuple[str | None, str]:
        """Where a network workload's host-side servers run: (network namespace path or None for the
        host's, the address they listen on and the environment connects to). Needs "server"."""
        raise NotImplementedError(f"{self.name} provides no host-side servers")

    # Where a service the workload runs (the app suite's nginx, redis) listens inside the environment:
    # the host's loopback for a runner that shares the host's network, every address of its own where
    # it has one (a container's veth, a VM's eth0). Needs "server".
    listen_on: ClassVar[str] = "127.0.0.1"

    def guest_address(self, instance: Instance) -> str:
        """The address the host side (server_side's namespace) reaches a running instance's service
        at: the host's loopback, for a runner sharing the host's network."""
        return self.server_side()[1]

    def close(self) -> None:  # noqa: B027 -- optional: most runners have nothing to do here
        """Release what the runner holds across instances."""

    def reserved_mib(self, envelope) -> int | None:
        """Memory one instance claims up front whether it touches it or not (a VM's guest RAM), for
        the scale suite's memory budget; None when an instance claims only what it uses."""
        return None

    def enforced(self, envelope) -> dict[str, str]:
        """The mechanism behind each part of this envelope that is set (cpuset, cpu_quota, memory)."""
        given = {"cpuset": envelope.cpuset is not None, "cpu_quota": envelope.quota_us() is not None,
                 "memory": envelope.memory_mib is not None}
        return {part: how for part, how in self.enforcement.items() if given[part]}

    def doctor_checks(self, cache_dir: str) -> list[Check]:
        """What `bench doctor` should check for this runner beyond available(); changes nothing."""
        return []

    def cached_state(self, cache_dir: str) -> str:
        """What it would run as, read from its cache without probing (`bench list runners`)."""
        return ""

    @classmethod
    def versions(cls) -> dict[str, str]:
        """{tool: version} of what it runs (version_probes), recorded in meta.json; missing tools left out."""
        from bench.host.tools import versions_of

        return versions_of({**cls.version_probes, **(cls.tool.probes() if cls.tool else {})})

    @classmethod
    def residues(cls, cache_dir: str) -> list[Residue]:
        """What a killed run of this runner can leave behind that the host plumbing's own sweep
        (cgroups, netns, links, mounts, /tmp/bench-*) does not find: listed by `bench clean`."""
        return []

    @classmethod
    def remove(cls, residue: Residue) -> None:
        """Remove one of its residues(); one gone meanwhile is fine."""
        raise NotImplementedError(f"{cls.name} lists residues it cannot remove")

    @classmethod
    def warnings(cls, medians: dict[str, float]) -> list[str]:
        """What a reader must know about this runner's numbers in a run, from its metric medians;
        recorded in meta.json and shown first in the report."""
        return []
