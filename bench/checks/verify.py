"""`bench verify`: the harness checked against independent tools on this host. Each check times the
same thing twice, once through isobench (the lean worker, as `bench run` drives it) and once
directly, in alternating batches so that drift hits both alike, and compares the medians."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench import parsers
from bench.client import WorkerClient
from bench.errors import MeasurementError, UsageError
from bench.images.image import Image, build_image
from bench.registry import registered
from bench.spec import IPERF_PORT, SCRATCH, Envelope
from bench.workload import PROBE_GUEST_PATH, SYSCALL_GUEST_PATH
from runners.bwrap import bwrap_argv

BATCHES = 3  # alternating batches of each side
IPERF3 = "iperf3"  # the network check's reference, looked up on PATH like the other tools


@dataclass
class Verdict:
    check: str
    ours: str  # what isobench measured, e.g. "process exit_ms"
    direct: str  # what it was checked against
    ours_median: float
    direct_median: float
    tolerance: float  # the ratio may be off 1.0 by this much (or, for a lower bound, fall below 1 by it)
    lower_bound: bool = False  # direct is a floor ours may not go under, not a value to equal
    unit: str = ""
    slack: float = 0.0  # beside the tolerance, an absolute difference allowed (the harness's own cost)
    ratio: float = field(init=False)
    ok: bool = field(init=False)

    def __post_init__(self) -> None:
        self.ratio = self.ours_median / self.direct_median if self.direct_median else float("nan")
        allowed = self.tolerance * abs(self.direct_median) + self.slack
        if self.lower_bound:
            self.ok = self.ours_median >= self.direct_median - allowed
        else:
            self.ok = abs(self.ours_median - self.direct_median) <= allowed


@dataclass
class Check:
    name: str
    ours: str
    direct: str
    metric: str  # isobench's metric for the ours side
    measure_ours: Callable[[], list[float]]  # one batch
    measure_direct: Callable[[], list[float]]
    tolerance: float
    unit: str
    lower_bound: bool = False
    slack: float = 0.0
    batches: int = BATCHES

    def run(self) -> Verdict:
        ours, direct = [], []
        try:
            for _ in range(self.batches):
                ours += self.measure_ours()
                direct += self.measure_direct()
        except (ValueError, OSError, subprocess.SubprocessError) as exc:
            raise MeasurementError(f"bench verify: {self.name}: {type(exc).__name__}: {exc}") from None
        return Verdict(self.name, self.ours, self.direct, statistics.median(ours), statistics.median(direct),
                       self.tolerance, self.lower_bound, self.unit, self.slack)


class Harness:
    """isobench's side: the lean worker with the runners a check needs, as `bench run` starts it."""

    def __init__(self, image: Image, cache_dir: Path, envelope: Envelope, runners: list[str]) -> None:
        self.client = WorkerClient()
        targets = {name: registered()[name].target for name in runners}
        status = self.client.init(targets, image, envelope, {}, cache_dir)
        missing = [f"{n} ({s['reason']})" for n, s in status.items() if not s["available"]]
        if missing:
            self.client.close()
            raise UsageError(f"bench verify needs {', '.join(missing)}")
        self.n = 0

    def values(self, suite: str, workload: str, runner: str, metric: str, rounds: int) -> list[float]:
        found = []
        for _ in range(rounds):
            self.n += 1
            reply = self.client.request(op="measure", suite=suite, workload=workload, runner=runner,
                                        iteration=self.n, name=f"bench-verify-{os.getpid()}-{self.n}",
                                        params={})
            for s in reply["samples"]:
                if s["metric"] == metric:
                    if not s["ok"]:
                        raise MeasurementError(f"bench verify: {runner} {metric} failed: {s['error']}")
                    found.append(s["value"])
        return found

    def close(self) -> None:
        self.client.close()


def workload(name: str):
    from bench.workload import builtin

    return builtin()[name]


def pinned_run(argv: list[str], cpu: int, timeout_s: float = 120, cwd: str | None = None) -> str:
    """A tool run directly on the host, on the same CPU as the envelope gives isobench's process."""
    out = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout_s,
                         cwd=cwd, preexec_fn=lambda: os.sched_setaffinity(0, {cpu}), check=False)
    if out.returncode:
        raise MeasurementError(f"bench verify: {argv[0]} failed: {out.stdout.strip()[-200:]}")
    return out.stdout  # stdout and stderr, as isobench's instances give them


def hyperfine_ms(argv: list[str], cpu: int, runs: int) -> list[float]:
    """Wall time of a command as hyperfine measures it (-N: no shell), in ms, one value per run,
    on the envelope's CPU as isobench's instance runs, its output into a pipe as isobench reads it
    (into /dev/null instead, a bwrap start reads 1 ms shorter here)."""
    import shlex

    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        subprocess.run(["hyperfine", "-N", "--style", "none", "--output", "pipe", "--warmup", "3", "--runs", str(runs),
                        "--export-json", f.name, shlex.join(argv)], capture_output=True, check=True, timeout=300,
                       preexec_fn=lambda: os.sched_setaffinity(0, {cpu}))
        return [t * 1000 for t in json.load(f)["results"][0]["times"]]


def checks(harness: Harness, image: Image, envelope: Envelope, scratch: str) -> list[Check]:
    assert envelope.cpuset, "verify resolves its envelope (one CPU) before the checks"
    cpu = envelope.cpuset[0]
    host, rootfs = image.host_paths, str(image.rootfs)
    stress_cpu = [*workload("cpu").argv]
    syscall = [host[SYSCALL_GUEST_PATH], *workload("syscall").argv[1:]]
    # the floor of any container start: new namespaces and a chroot, then the probe
    floor = ["unshare", "--fork", "--pid", "--mount", "--uts", "--ipc", "--net", "chroot", rootfs, PROBE_GUEST_PATH]
    bwrap = bwrap_argv(rootfs, "bench-verify", [PROBE_GUEST_PATH])

    def fio_direct() -> list[float]:
        argv = [a.replace(SCRATCH, scratch) for a in workload("disk").argv]
        return [parsers.parse_fio(pinned_run(argv, cpu))["disk_randread_iops"]]

    def iperf_direct() -> list[float]:
        from bench.servers import HostServers

        # the iperf3 server the net workload declares, started and awaited as its samples start it
        # (ready once it prints "listening", on the CPUs the envelope leaves free), and killed after;
        # a fixed port and a /proc/net/tcp poll once let the client run before it listened
        (iperf,) = [s for s in workload("net").servers if s.argv[0].endswith("/iperf3")]
        servers = HostServers(None, "127.0.0.1", [iperf], rootfs, [cpu])
        servers.start()
        try:
            port = servers.placeholders()[IPERF_PORT]
            out = pinned_run([IPERF3, "--client", "127.0.0.1", "--port", port, "--time", "3", "--json"], cpu)
            return [json.loads(out)["end"]["sum_received"]["bits_per_second"] / 1e9]
        finally:
            servers.stop()

    return [
        Check("startup", "process exit_ms", "hyperfine -N on the probe", "exit_ms",
              lambda: harness.values("startup", "probe", "process", "exit_ms", 10),
              # the harness's own part of a start (posix_spawn from Python, the pipe and pidfd loop)
              # measured here at 0.1 to 0.2 ms: allowed up to 0.3 ms beside 10%
              lambda: hyperfine_ms([host[PROBE_GUEST_PATH]], cpu, 10), 0.10, "ms", slack=0.3),
        Check("cpu", "process cpu_ops_s", "stress-ng run directly, same CPU", "cpu_ops_s",
              lambda: harness.values("throughput", "cpu", "process", "cpu_ops_s", 1),
              lambda: [parsers.parse_stress_ng_rate(pinned_run(stress_cpu, cpu))], 0.05, "ops/s"),
        Check("syscall", "process syscalls_s", "bench-syscall run directly, same CPU", "syscalls_s",
              lambda: harness.values("throughput", "syscall", "process", "syscalls_s", 1),
              lambda: [parsers.parse_bench_syscall(pinned_run(syscall, cpu))], 0.05, "calls/s"),
        Check("disk", "process disk_randread_iops", "fio run directly, same CPU and file system",
              "disk_randread_iops", lambda: harness.values("throughput", "disk", "process", "disk_randread_iops", 1),
              fio_direct, 0.10, "IOPS"),
        Check("net", "process net_gbit_s", "iperf3 on loopback, run directly", "net_gbit_s",
              # loopback iperf3 moves by 10 to 20% from one 3 s run to the next here, on both sides alike
              lambda: harness.values("throughput", "net", "process", "net_gbit_s", 1), iperf_direct, 0.15, "Gbit/s",
              batches=6),
        Check("container floor", "container ready_ms", "hyperfine -N: unshare + chroot + probe (a floor)",
              "ready_ms", lambda: harness.values("startup", "probe", "container", "ready_ms", 10),
              lambda: hyperfine_ms(floor, cpu, 10), 0.10, "ms", lower_bound=True),
        Check("bwrap", "bwrap exit_ms", "hyperfine -N: the same bwrap command", "exit_ms",
              lambda: harness.values("startup", "probe", "bwrap", "exit_ms", 10),
              lambda: hyperfine_ms(bwrap, cpu, 10), 0.10, "ms", slack=0.3),
    ]


def verify(cache_dir: Path, only: list[str] | None = None) -> list[Verdict]:
    for tool in ("hyperfine", "unshare", "stress-ng", "fio", IPERF3):
        if shutil.which(tool) is None:
            raise UsageError(f"bench verify needs {tool}: run `make setup`")
    image = build_image(cache_dir)
    envelope = Envelope(cpus=1.0).resolved()
    harness = Harness(image, cache_dir, envelope, ["process", "container", "bwrap"])
    scratch = tempfile.mkdtemp(prefix="bench-verify-")
    try:
        chosen = [c for c in checks(harness, image, envelope, scratch) if not only or c.name in only]
        return [c.run() for c in chosen]
    finally:
        harness.close()
        shutil.rmtree(scratch, ignore_errors=True)


VERDICT_FILE = "verify.json"  # in the cache: the last verdict on this host, for `bench run`'s meta.json


def record(cache_dir: Path, verdicts: list[Verdict]) -> dict:
    """Keep the verdict where the next `bench run` finds it (meta.json, the report)."""
    from dataclasses import asdict

    from bench.atomic import staged
    from bench.checks import hostinfo

    summary = {"ok": all(v.ok for v in verdicts), "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "boot_id": Path("/proc/sys/kernel/random/boot_id").read_text().strip(),
               "host": hostinfo.fingerprint().get("hostname"), "checks": [asdict(v) for v in verdicts]}
    with staged(cache_dir / VERDICT_FILE) as tmp:
        tmp.write_text(json.dumps(summary, indent=1))
    return summary


def last_verdict(cache_dir: Path) -> dict | None:
    """The last `bench verify` on this host since it booted, for meta.json (None: never)."""
    try:
        summary = json.loads((cache_dir / VERDICT_FILE).read_text())
        boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except (OSError, ValueError):
        return None
    if summary.get("boot_id") != boot_id:
        return None
    return {"ok": summary["ok"], "when": summary["when"],
            "failed": [f"{c['check']}: {c['ours']} {c['ratio']:.3f}x {c['direct']}" for c in summary["checks"] if not c["ok"]]}
