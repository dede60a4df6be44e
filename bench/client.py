"""The harness side of the worker protocol: one JSON line per request, one per reply."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from dataclasses import asdict

from bench.errors import MeasurementError, UsageError
from bench.spec import Envelope


class WorkerDied(MeasurementError):
    """The measuring worker ended without a reply: killed, or crashed."""


class WorkerClient:
    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "bench.worker"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, bufsize=1)

    def request(self, **msg) -> dict:
        assert self.proc.stdin is not None and self.proc.stdout is not None  # both PIPE
        self.proc.stdin.write(json.dumps(msg) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            code = self.proc.wait()
            how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
            raise WorkerDied(f"the measuring worker died ({how})")
        reply = json.loads(line)
        if reply["op"] == "interrupted":  # Ctrl-C reached the worker first: it stopped cleanly
            raise KeyboardInterrupt
        if reply["op"] == "error" and reply.get("kind") == "usage":
            raise UsageError(reply["message"])
        if reply["op"] == "error":
            raise RuntimeError(f"worker: {reply['message']}")
        return reply

    def init(self, runners: dict[str, str], image, envelope: Envelope, options: dict, cache_dir,
             workloads=None) -> dict:
        """runners: name -> "module:Class"; workloads: what may be measured (default: the built-in
        ones). Returns per runner: available, reason, config."""
        from bench.workload import builtin

        workloads = builtin().values() if workloads is None else workloads
        return self.request(op="init", runners=runners, rootfs=str(image.rootfs), host_paths=image.host_paths,
                            image_digest=image.digest, cache_dir=str(cache_dir), envelope=asdict(envelope),
                            options=options, workloads=[w.to_dict() for w in workloads])["runners"]

    def interrupt(self) -> None:
        """Ask the worker to stop: it tears down the instance it is measuring (its SIGTERM handler)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def close(self) -> None:
        if self.proc.poll() is None and self.proc.stdin is not None:
            try:
                self.proc.stdin.close()
            except BrokenPipeError:
                pass
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
