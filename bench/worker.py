"""The lean measuring process. `bench run` keeps pandas, rich and plotting in the parent and sends
jobs here as JSON lines; forking from this small process keeps launches cheap. Measured here: a
fork costs 0.6 ms from a bare Python, 1.2 ms once importlib.metadata is loaded, 1.4 ms with
subprocess (threading's at-fork hook), and several ms with pandas. So none of those are imported here,
not even by a runner's prepare(): host commands go through bench.host.tools.run_captured
(tests/integration/test_worker_lean.py asks a real worker what it has loaded, after measuring).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from typing import TYPE_CHECKING

from bench import interrupts
from bench.errors import UsageError
from bench.host import linux
from bench.measure import Found
from bench.spec import IMAGE, Envelope, LaunchSpec
from bench.suites import suites

if TYPE_CHECKING:  # for annotations only: the worker loads runner classes by name
    from runners.base import Runner


class Worker:
    """The worker side: runners live here for the whole run."""

    def __init__(self) -> None:
        self.runners: dict[str, Runner] = {}
        self.base: dict = {}
        self.workloads: dict = {}  # name -> Workload: the run's, as the harness loaded them

    def handle(self, msg: dict) -> dict:
        if msg["op"] == "init":
            return self.init(msg)
        if msg["op"] == "measure":
            return self.measure(msg)
        if msg["op"] == "modules":  # what this process has imported: the lean rule, checked by a test
            return {"op": "modules", "modules": sorted(sys.modules)}
        raise ValueError(f"unknown op {msg['op']!r}")

    def init(self, msg: dict) -> dict:
        from bench.registry import load_target
        from bench.workload import Workload

        report = {}
        needs = {frozenset(Workload.from_dict(w).needs()) for w in msg["workloads"]}
        for name, target in msg["runners"].items():
            try:
                runner = load_target(target)(**msg.get("options", {}).get(name, {}))
            except (TypeError, ValueError) as exc:  # an unknown or bad --option
                raise UsageError(f"--option for {name}: {exc}") from None
            ok, reason = runner.available()
            if ok:
                runner.prepare(msg["rootfs"], msg["image_digest"], msg["cache_dir"])
                runner.prepare_envelope(Envelope.from_dict(msg["envelope"]), needs)
            report[name] = {"available": ok, "reason": reason, "config": runner.config() if ok else {},
                            "provides": sorted(runner.provides), "lacks": runner.lacks,
                            "reserved_mib": runner.reserved_mib(Envelope.from_dict(msg["envelope"])) if ok else None,
                            "enforced": runner.enforced(Envelope.from_dict(msg["envelope"]))}
            if ok:
                self.runners[name] = runner
        self.workloads = {w["name"]: Workload.from_dict(w) for w in msg["workloads"]}
        self.base = {"rootfs": msg["rootfs"], "host_paths": msg["host_paths"],
                     "envelope": Envelope.from_dict(msg["envelope"])}
        return {"op": "init", "runners": report}

    def measure(self, msg: dict) -> dict:
        suite = suites()[msg["suite"]]
        workload = self.workloads[msg["workload"]]
        runner = self.runners[msg["runner"]]
        argv = tuple(arg.replace(IMAGE, runner.image_root(self.base["rootfs"])) for arg in workload.argv)
        spec = LaunchSpec(name=msg["name"], argv=argv, marker=workload.marker.encode() if workload.marker else None,
                          timeout_s=workload.timeout_s, scratch=workload.scratch, **self.base)
        params = dict(msg.get("params", {}))
        if params.pop("cache", "warm") == "cold" and suite.cold_start:
            linux.drop_page_cache()  # untimed: before the sample's clock starts
        found = Found.of(suite.measure(runner, spec, workload, msg["iteration"], **params))
        reap_orphans()
        # labelled as the run knows the runner: a variant (container:seccomp=none) is a runner of its own
        return {"op": "samples", "samples": [{**s.to_dict(), "runner": msg["runner"]} for s in found],
                "note": found.note}

    def close(self) -> None:
        """Close every runner, even after one of them failed to (its error is raised at the end)."""
        failed: BaseException | None = None
        for runner in self.runners.values():
            try:
                runner.close()
            except Exception as exc:  # noqa: BLE001 -- the others still close; the first error is raised after
                failed = failed or exc
        if failed:
            raise failed


def main() -> None:
    # Keep the protocol on private fds so that no workload can write into it by accident.
    commands = os.fdopen(os.dup(0), "r")
    replies = os.fdopen(os.dup(1), "w")
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    os.dup2(2, 1)
    linux.prctl(linux.PR_SET_PDEATHSIG, signal.SIGTERM)  # never outlive `bench`
    linux.prctl(linux.PR_SET_CHILD_SUBREAPER, 1)  # orphans stay ours: reaped, and counted in the tree
    signal.signal(signal.SIGTERM, interrupts.handler)  # tear the current instance down, as on Ctrl-C
    signal.signal(signal.SIGINT, interrupts.handler)
    worker = Worker()
    try:
        for line in commands:
            try:
                reply = worker.handle(json.loads(line))
            except UsageError as exc:  # bad input found here (a --kernel that is no kernel): exit 2 upstairs
                reply = {"op": "error", "kind": "usage", "message": str(exc)}
            except (KeyError, ValueError, StopIteration) as exc:
                reply = {"op": "error", "message": f"{type(exc).__name__}: {exc}"}
            replies.write(json.dumps(reply) + "\n")
            replies.flush()
    except KeyboardInterrupt:
        try:  # `bench` may be waiting for a reply: tell it why there is none
            replies.write(json.dumps({"op": "interrupted"}) + "\n")
            replies.flush()
        except OSError:
            pass
    finally:
        worker.close()


def reap_orphans() -> None:
    """Reap what reparented to us (we are a subreaper) once every instance has been torn down."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


if __name__ == "__main__":
    main()
