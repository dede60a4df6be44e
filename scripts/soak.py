"""`make soak`: SIGKILL at random moments, and nothing lost or left behind.

For --minutes (20), again and again: `bench run --suite scale --workloads burst --concurrency 16` in
every available runner, killed with SIGKILL after a random while, the measuring worker and the
`bench run` parent in turn, then `bench clean`. After each kill:
- no residue: `bench clean --dry-run` finds nothing, and the host holds no cgroup, mount, netns,
  link or libvirt domain named bench-...;
- no half-written run: every entry of the results dir is a whole run (or `latest`);
- nothing completed is lost: the run stored (worker killed: by `bench run` itself; parent killed:
  recovered by `bench clean`) holds every sample its journal held.
Counts go to stdout and to RESULTS/soak.json; exit 1 if any check failed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = [sys.executable, "-m", "bench.cli"]


def bench(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([*BENCH, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def worker_of(parent: int) -> int | None:
    for child in Path(f"/proc/{parent}/task/{parent}/children").read_text().split():
        if b"bench.worker" in Path(f"/proc/{child}/cmdline").read_bytes():
            return int(child)
    return None


def gone(pid: int, timeout_s: float) -> bool:
    """Whether pid has ended (it is not our child: polled) within timeout_s."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
                return True
        except OSError:
            return True
        time.sleep(0.05)
    return False


def journal_lines(results: Path) -> int:
    """Complete samples in the journals of runs in progress under results."""
    return sum(p.read_text().count("\n") for p in results.glob(".bench-tmp-*/samples.jsonl"))


def host_residue() -> list[str]:
    """Anything named bench-... left on the host, found without isobench's own code."""
    found = [str(p) for p in Path("/sys/fs/cgroup").glob("*/bench*")] + [str(p) for p in Path("/sys/fs/cgroup").glob("bench*")]
    found += [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
              if "bench-" in line.split()[1] and not line.startswith("cgroup")]
    found += [p.name for p in Path("/run/netns").glob("bench*")] if Path("/run/netns").exists() else []
    found += [p.name for p in Path("/sys/class/net").glob("bench*")]
    virsh = subprocess.run(["virsh", "-c", "qemu:///system", "list", "--all", "--name"], capture_output=True, text=True)
    found += [name for name in virsh.stdout.split() if name.startswith("bench")]
    return found


def stored_runs(results: Path) -> tuple[list[dict], list[str]]:
    """(each whole run's run_id, samples and state; every entry that is no whole run)."""
    import pandas as pd

    runs, broken = [], []
    for entry in sorted(results.iterdir()):
        if entry.name in ("latest", "soak.json", "soak.log"):
            continue
        try:
            meta = json.loads((entry / "meta.json").read_text())
            samples = len(pd.read_parquet(entry / "samples.parquet"))
        except (OSError, ValueError) as exc:
            broken.append(f"{entry.name}: {exc}")
            continue
        runs.append({"run_id": meta["run_id"], "samples": samples, "incomplete": meta.get("incomplete"),
                     "how": meta.get("recovered_by") or meta.get("worker_died") or meta.get("interrupted_by")})
    return runs, broken


def one_kill(results: Path, target: str, delay_s: float, log) -> dict:
    proc = subprocess.Popen([*BENCH, "run", "--suite", "scale", "--workloads", "burst", "--concurrency", "16",
                             "--repeat", "1000", "--results-dir", str(results), "--no-report"], cwd=ROOT,
                            stdout=log, stderr=log, start_new_session=True)
    deadline = time.monotonic() + delay_s
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    if proc.poll() is not None:
        return {"target": target, "delay_s": round(delay_s, 1), "error": f"the run ended by itself ({proc.returncode})"}
    worker = worker_of(proc.pid)
    victim = worker if target == "worker" and worker else proc.pid
    os.kill(victim, signal.SIGKILL)
    code = proc.wait(timeout=300)
    if worker and not gone(worker, 120):  # a killed parent's worker tears down on its SIGTERM, then ends
        os.kill(worker, signal.SIGKILL)
    journaled = journal_lines(results)  # a parent killed: what its journal holds; a worker: already stored
    cleaned = bench("clean", "--results-dir", str(results))
    after = bench("clean", "--dry-run", "--results-dir", str(results))
    return {"target": "worker" if victim == worker else "parent", "delay_s": round(delay_s, 1), "run_exit": code,
            "journaled": journaled, "clean": cleaned.stdout.strip().splitlines()[-1:],
            "clean_after": after.stdout.strip(), "host_residue": host_residue()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=20)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--results-dir", type=Path, default=ROOT / "results" / f"soak-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("soak: needs root, as bench run does for its runners", file=sys.stderr)
        return 2
    rng, results = random.Random(args.seed), args.results_dir
    results.mkdir(parents=True, exist_ok=True)
    end, kills = time.monotonic() + 60 * args.minutes, []
    with open(results / "soak.log", "a") as log:
        while time.monotonic() < end:
            target = ("worker", "parent")[len(kills) % 2]
            before, _ = stored_runs(results)
            kill = one_kill(results, target, rng.uniform(1, 90), log)
            after, broken = stored_runs(results)
            new = [r for r in after if r["run_id"] not in {b["run_id"] for b in before}]
            kill.update(stored=sum(r["samples"] for r in new), broken=broken,
                        lost=max(0, kill.get("journaled", 0) - sum(r["samples"] for r in new)) if kill["target"] == "parent" else 0)
            kills.append(kill)
            print(json.dumps(kill), flush=True)
    runs, broken = stored_runs(results)
    summary = {"seed": args.seed, "minutes": args.minutes, "kills": len(kills),
               "worker_kills": sum(k["target"] == "worker" for k in kills),
               "parent_kills": sum(k["target"] == "parent" for k in kills),
               "runs_stored": len(runs), "samples_kept": sum(r["samples"] for r in runs),
               "samples_lost": sum(k.get("lost", 0) for k in kills),
               "residue_found": sum(bool(k.get("host_residue")) or k.get("clean_after") != "0 leftovers found"
                                    for k in kills if "error" not in k),
               "half_written_runs": len(broken), "runs_that_ended_by_themselves": sum("error" in k for k in kills)}
    (results / "soak.json").write_text(json.dumps({"summary": summary, "kills": kills}, indent=1))
    print(json.dumps(summary, indent=1))
    bad = summary["residue_found"] or summary["half_written_runs"] or summary["samples_lost"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
