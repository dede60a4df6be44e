"""Summary statistics of stored samples (pandas does the arithmetic)."""

from __future__ import annotations

import pandas as pd

BASELINE = "process"
KEYS = ["suite", "workload", "runner", "metric", "unit"]


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (suite, workload, runner, metric): n, failed, median, p5, p95, cv, ratio to process."""
    ok = df[df["ok"]]
    grouped = ok.groupby(KEYS, sort=False)["value"]
    table = pd.DataFrame({
        "n": grouped.count(),
        "median": grouped.median(),
        "p5": grouped.quantile(0.05),
        "p95": grouped.quantile(0.95),
        "cv": grouped.std(ddof=1) / grouped.mean(),
    })
    failed = df[~df["ok"]].groupby(KEYS, sort=False).size().rename("failed")
    appearance = df[KEYS].drop_duplicates()
    table = appearance.merge(table.join(failed, how="outer").reset_index(), on=KEYS, how="left")
    table["n"] = table["n"].fillna(0).astype(int)
    table["failed"] = table["failed"].fillna(0).astype(int)
    table["ratio"] = table["median"] / _baseline_medians(table)
    return table


def _baseline_medians(table: pd.DataFrame) -> pd.Series:
    base = table[table["runner"] == BASELINE].set_index(["suite", "workload", "metric"])["median"]
    index = pd.MultiIndex.from_frame(table[["suite", "workload", "metric"]])
    return pd.Series(base.reindex(index).to_numpy(), index=table.index)


def runner_order(runners) -> list[str]:
    """The baseline first, then the others in the order given."""
    runners = list(dict.fromkeys(runners))
    return sorted(runners, key=lambda r: r != BASELINE)
