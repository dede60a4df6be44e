"""`bench export RUN --format csv|json|pytest-benchmark`: a stored run in other tools' formats."""

from __future__ import annotations

import json

import pandas as pd

from bench.analysis.stats import KEYS

SECONDS_PER = {"ms": 1e-3, "us": 1e-6, "s": 1.0}


def to_csv(df: pd.DataFrame) -> str:
    return df.to_csv(index=False)


def to_json(df: pd.DataFrame, meta: dict) -> str:
    return json.dumps({"meta": meta, "samples": json.loads(df.to_json(orient="records"))}, indent=1)


def to_pytest_benchmark(df: pd.DataFrame, meta: dict) -> str:
    """pytest-benchmark's JSON layout, which its `compare` reads, every statistic computed by its own
    Stats class (quartiles, outliers, ld15iqr/hd15iqr as it defines them). Times go in seconds, as it
    expects; other units keep their values, named in extra_info."""
    import pytest_benchmark
    from pytest_benchmark.stats import Stats

    benchmarks = []
    for (suite, workload, runner, metric, unit), group in df[df["ok"]].groupby(KEYS, sort=False):
        stats = Stats()
        for value in group["value"] * SECONDS_PER.get(str(unit), 1.0):
            stats.update(float(value))
        benchmarks.append({
            "group": f"{suite}/{workload}/{metric}", "name": f"{runner}[{metric}]",
            "fullname": f"isobench::{suite}/{workload}::{runner}[{metric}]", "params": None, "param": None,
            "extra_info": {"unit": "s" if unit in SECONDS_PER else unit, "runner": runner},
            "options": {"disable_gc": False, "timer": "time.monotonic_ns", "min_rounds": stats.rounds,
                        "max_time": None, "min_time": None, "warmup": None},
            "stats": {**stats.as_dict(), "data": stats.data, "iterations": 1},
        })
    host = meta.get("host", {})
    return json.dumps({
        "machine_info": {"node": host.get("hostname"), "processor": host.get("arch"), "machine": host.get("arch"),
                         "python_version": meta.get("versions", {}).get("python"), "release": host.get("kernel"),
                         "system": "Linux", "cpu": {"brand_raw": host.get("cpu_model")}},
        "commit_info": {"id": meta.get("run_id")}, "benchmarks": benchmarks,
        "datetime": meta.get("started"), "version": pytest_benchmark.__version__,
    }, indent=1, default=float)


FORMATS = {"csv": lambda df, meta: to_csv(df), "json": to_json, "pytest-benchmark": to_pytest_benchmark}
