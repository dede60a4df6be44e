"""Rolling baselines per host: the last good runs of one machine, kept without hand-edited bounds.

`bench baseline update RUN` copies a good run (every sample ok) into the store under its host's key;
only the newest WINDOW runs per host stay. `bench compare --baseline-of-host NEW` pools their samples,
so run-to-run drift on that host is part of what a new run is judged against.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from bench.analysis.store import load_run
from bench.atomic import STAGING_PREFIX, staged
from bench.errors import UsageError

WINDOW = 5
# What identifies a machine. Not the kernel or the tunables (a change there is what a nightly should
# flag), and not what jitters from boot to boot: the measured clock (cpu_mhz), the exact memory total.
IDENTITY = ("hostname", "arch", "cpu_model", "cores", "memory_gib", "cgroup_version", "virtualized")


def host_key(host: dict) -> str:
    ident = {k: host.get(k) for k in IDENTITY}
    if isinstance(ident["memory_gib"], (int, float)):
        ident["memory_gib"] = round(ident["memory_gib"])  # 23.4 and 23.5 GiB are the same machine
    digest = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:12]
    return f"{host.get('hostname', 'host')}-{digest}"


def update(store: Path, run_dir: Path, window: int = WINDOW) -> tuple[str, list[str]]:
    """Add a good run to its host's baseline; returns (host key, run ids now in the window)."""
    df, meta = load_run(run_dir)
    if meta.get("incomplete"):
        raise UsageError(f"run {run_dir.name} is incomplete: it cannot be a baseline")
    failed = int((~df["ok"]).sum())
    if failed:
        raise UsageError(f"run {run_dir.name} has {failed} failed samples: only good runs become baselines")
    key = host_key(meta.get("host", {}))
    host_dir = store / key
    host_dir.mkdir(parents=True, exist_ok=True)
    target = host_dir / meta.get("run_id", run_dir.name)
    if not target.exists():
        with staged(target) as staging:
            staging.mkdir()
            for name in ("samples.parquet", "meta.json"):
                shutil.copy2(run_dir / name, staging / name)
    runs = runs_of(host_dir)
    for old in runs[:-window]:
        shutil.rmtree(old)
    return key, [r.name for r in runs[-window:]]


def runs_of(host_dir: Path) -> list[Path]:
    """A host's baseline runs, oldest first (by start time)."""
    runs = [p for p in host_dir.iterdir() if p.is_dir() and not p.name.startswith(STAGING_PREFIX)]
    return sorted(runs, key=lambda p: (json.loads((p / "meta.json").read_text()).get("started", ""), p.name))


def hosts(store: Path) -> dict[str, list[Path]]:
    if not store.is_dir():
        return {}
    return {d.name: runs_of(d) for d in sorted(store.iterdir()) if d.is_dir()}


def tolerances(frames) -> dict:
    """Per (suite, workload, runner, metric, unit), how much this host's numbers move by themselves,
    learned from its baseline runs: the larger of the typical within-run coefficient of variation
    and twice the largest distance of one run's median from the pooled median. Measured here: a
    process's ready_ms varies 12% within a run and its median 15% between runs minutes apart, a
    container's teardown_ms 31%, stress-ng's cpu rate 1-3%. A fixed 5% would flag that noise."""
    import pandas as pd

    from bench.analysis.stats import KEYS, summarize

    per_run = pd.concat([summarize(f) for f in frames])  # each run's median and cv per metric
    pooled = pd.concat(frames)
    pooled = pooled[pooled["ok"]].groupby(KEYS)["value"].median().rename("pooled").reset_index()
    per_run = per_run.merge(pooled, on=KEYS)
    per_run["drift"] = (per_run["median"] / per_run["pooled"] - 1).abs()
    learned = per_run.groupby(KEYS).agg(cv=("cv", "median"), drift=("drift", "max"))
    tolerance = pd.concat([learned["cv"].abs(), 2 * learned["drift"]], axis=1).max(axis=1).fillna(0.0)
    return {key: float(v) for key, v in tolerance.items()}


def baseline_of(store: Path, meta: dict):
    """(host key, the pooled samples of the baseline runs of the host a run came from, their
    learned tolerances)."""
    import pandas as pd

    key = host_key(meta.get("host", {}))
    runs = runs_of(store / key) if (store / key).is_dir() else []
    if not runs:
        raise UsageError(f"no baseline for host {key} in {store}: run `bench baseline update RUN` first")
    frames = [load_run(r)[0] for r in runs]
    return key, pd.concat(frames, ignore_index=True), tolerances(frames)
