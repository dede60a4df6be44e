"""A runner in one module, registered as a plugin: the workload run under `nice -n 5`.

Built on the process runner, it inherits the envelope (CPU affinity, a cgroup for a quota or a
memory limit), READY timing and peak memory; what it adds is the whole contract's other half:
a doctor check, what a killed run leaves behind, and how to remove it.
"""

from __future__ import annotations

from pathlib import Path

from bench.spec import LaunchSpec
from runners.base import Check, Residue, Tool
from runners.process import ProcessRunner, TaskInstance, host_argv, host_path

MARKS = Path("/tmp/isobench-nice")  # one file per live instance: what a killed run leaves


class NiceRunner(ProcessRunner):
    name, kind, family = "nice", "peer", "process-like"
    description = "the workload under nice -n 5 (docs/extending.md)"
    tool = Tool("nice", "coreutils", r"\(GNU coreutils\) ([\d.]+)", spawn="nice -n 5")

    def launch(self, spec: LaunchSpec) -> TaskInstance:
        MARKS.mkdir(exist_ok=True)
        mark = MARKS / spec.name
        mark.touch()
        argv = ["nice", "-n", "5", host_path(spec, spec.argv[0]), *host_argv(spec, spec.argv)[1:]]
        return self.spawn("/usr/bin/nice", argv, spec, on_teardown=lambda: mark.unlink(missing_ok=True))

    def doctor_checks(self, cache_dir: str) -> list[Check]:
        return [Check("marks", MARKS.parent.is_dir(), f"instances are noted in {MARKS}")]

    @classmethod
    def residues(cls, cache_dir: str) -> list[Residue]:
        return [Residue("nice mark", str(p)) for p in sorted(MARKS.glob("bench-*"))]

    @classmethod
    def remove(cls, residue: Residue) -> None:
        Path(residue.name).unlink(missing_ok=True)
