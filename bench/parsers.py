"""Pure parsers of workload tool output. Each is tested against real output under tests/data/."""

from __future__ import annotations

import re
from dataclasses import dataclass

_METRIC_ROW = re.compile(
    r"metrc:\s+\[\d+\]\s+(?P<stressor>[\w-]+)\s+(?P<ops>\d+)\s+(?P<real>[\d.]+)\s+(?P<usr>[\d.]+)\s+"
    r"(?P<sys>[\d.]+)\s+(?P<rate_real>[\d.]+)\s+(?P<rate_cpu>[\d.]+)")


@dataclass(frozen=True)
class StressNgMetrics:
    stressor: str
    bogo_ops: int
    real_s: float
    bogo_ops_per_s: float  # per second of wall-clock time: what a throughput ratio compares


def parse_stress_ng(text: str) -> list[StressNgMetrics]:
    """The per-stressor rows of `stress-ng --metrics-brief`; ValueError when there are none."""
    rows = [StressNgMetrics(m["stressor"], int(m["ops"]), float(m["real"]), float(m["rate_real"]))
            for m in _METRIC_ROW.finditer(text)]
    if not rows:
        raise ValueError("no stress-ng metrics in the output")
    return rows


_STREAM_RATE = re.compile(r"memory rate: ([\d.]+) MB read/sec, ([\d.]+) MB write/sec")
_SYSCALLS = re.compile(r"^syscalls_per_s (\d+)", re.MULTILINE)


def parse_stress_ng_rate(text: str) -> float:
    """bogo ops per second of wall-clock time, summed over the stressors of one run."""
    return sum(row.bogo_ops_per_s for row in parse_stress_ng(text))


def parse_stream(text: str) -> float:
    """stress-ng stream: read + write rate. stress-ng's "MB" is 2**20 bytes, so this is MiB/s."""
    rates = _STREAM_RATE.findall(text)
    if not rates:
        raise ValueError("no stream memory rate in the output (stress-ng reports none for runs under ~5 s)")
    return sum(float(read) + float(write) for read, write in rates)


def parse_bench_syscall(text: str) -> float:
    found = _SYSCALLS.search(text)
    if not found:
        raise ValueError("no syscalls_per_s line in the output")
    return float(found.group(1))


def _json_at(text: str, start: int):
    """The JSON document starting at start (a guest's console may print more after it)."""
    import json

    if start < 0:
        raise json.JSONDecodeError("no JSON document", text, 0)
    return json.JSONDecoder().raw_decode(text, start)[0]


def parse_fio(text: str) -> dict[str, float]:
    """fio --output-format=json of the randread, randwrite and seqread jobs -> the disk metrics."""
    import json

    try:
        jobs = {job["jobname"]: job for job in _json_at(text, text.find("{"))["jobs"]}
        failed = [name for name, job in jobs.items() if job.get("error")]
        if failed:
            raise ValueError(f"fio job {', '.join(failed)} failed")
        return {"disk_randread_iops": float(jobs["randread"]["read"]["iops"]),
                "disk_randwrite_iops": float(jobs["randwrite"]["write"]["iops"]),
                "disk_seq_read_mib_s": jobs["seqread"]["read"]["bw"] / 1024}  # fio's bw is KiB/s
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"no fio JSON with randread, randwrite and seqread jobs ({type(exc).__name__}: {exc})") from None


_RR = re.compile(r"^rr_us ([\d.]+) transactions (\d+) seconds [\d.]+ p50 ([\d.]+) p99 ([\d.]+) p999 ([\d.]+)",
                 re.MULTILINE)


def parse_rr(text: str) -> dict[str, float]:
    """bench-rr's line: the mean round trip (net_rr_us) and the percentiles of all of them."""
    found = _RR.search(text)
    if not found:
        raise ValueError("no rr_us line with percentiles from bench-rr in the output")
    mean, _, p50, p99, p999 = (float(g) for g in found.groups())
    return {"net_rr_us": mean, "net_rr_p50_us": p50, "net_rr_p99_us": p99, "net_rr_p999_us": p999}


def parse_net(text: str) -> dict[str, float]:
    """bench-rr's line, then iperf3 --json: parse_rr's round trips and net_gbit_s (received)."""
    import json

    rr = parse_rr(text)
    found = _RR.search(text)
    if found is None:  # parse_rr found its line, so this does not happen; said for the type
        raise ValueError("no bench-rr line")
    try:
        report = _json_at(text, text.find("{", found.end()))
        if "error" in report:
            raise ValueError(f"iperf3: {report['error']}")
        bits = report["end"]["sum_received"]["bits_per_second"]
    except (json.JSONDecodeError, KeyError) as exc:
        raise ValueError(f"no iperf3 JSON result after bench-rr's line ({type(exc).__name__}: {exc})") from None
    return {**rr, "net_gbit_s": bits / 1e9}


_SYSBENCH_TPS = re.compile(r"transactions:\s+\d+\s+\((?P<tps>[\d.]+) per sec\.\)")
_SYSBENCH_P95 = re.compile(r"95th percentile:\s+(?P<ms>[\d.]+)")
_SYSBENCH_BUCKET = re.compile(r"^\s*(?P<ms>[\d.]+) \|\**\s+(?P<count>\d+)\s*$", re.MULTILINE)


def parse_sysbench(text: str) -> dict[str, float]:
    """sysbench OLTP's `run` with --percentile=95 --histogram=on: transactions/s, and the 95th and
    99th percentile of a transaction's latency in us (the 99th from the histogram: the smallest
    bucket value at or below which 99% of the transactions fall)."""
    tps, p95 = _SYSBENCH_TPS.search(text), _SYSBENCH_P95.search(text)
    buckets = [(float(m["ms"]), int(m["count"])) for m in _SYSBENCH_BUCKET.finditer(text)]
    if not tps or not p95 or not buckets:
        raise ValueError("no sysbench transactions, 95th percentile or histogram in the output")
    total, seen, p99 = sum(c for _, c in buckets), 0, buckets[-1][0]
    for ms, count in sorted(buckets):
        seen += count
        if seen >= 0.99 * total:
            p99 = ms
            break
    return {"mariadb_tps": float(tps["tps"]), "mariadb_p95_us": float(p95["ms"]) * 1000, "mariadb_p99_us": p99 * 1000}
