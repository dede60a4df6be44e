"""Summary statistics of stored samples (pandas does the arithmetic)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

BASELINE = "process"
KEYS = ["suite", "workload", "runner", "metric", "unit"]
# Already an amount on top of what a plain process needs (a process's own is about 0): compared to
# process as a difference, never as a ratio of two numbers near zero.
DIFFERENCE_METRICS = {"mem_overhead_mib", "mem_per_instance_mib"}


HOST_SEP = " @ "  # runs from several hosts: runners are labelled "container @ host-a"


def base_runner(label: str) -> str:
    return label.split(HOST_SEP)[0]


def median_interval(values) -> tuple[float, float]:
    """A distribution-free 95% interval of the median: the order statistics x(k) and x(n-k+1),
    k from the binomial(n, 1/2) quantile (coverage at least 95% from 6 samples on). Under 6
    samples no such pair exists: the range, whose coverage is 1 - 2**(1-n) (75% at 3)."""
    from scipy.stats import binom

    x = np.sort(np.asarray(values, dtype=float))
    n = len(x)
    if n == 0:
        return float("nan"), float("nan")
    k = max(1, int(binom.ppf(0.025, n, 0.5)))
    return float(x[k - 1]), float(x[n - k])


def interval_pct(values) -> float:
    """The 95% interval's half-width around the median, as a share of it: the wider side."""
    low, high = median_interval(values)
    median = float(np.median(values))
    if median == 0:
        return 0.0 if low == high else float("inf")
    return max(median - low, high - median) / abs(median)


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (suite, workload, runner, metric): n, failed, median, p5, p95, cv, ratio to process
    (of the same host, when the frame holds several: a `host` column)."""
    keys = KEYS + (["host"] if "host" in df.columns else [])
    ok = df[df["ok"]]
    grouped = ok.groupby(keys, sort=False)["value"]
    table = pd.DataFrame({
        "n": grouped.count(),
        "median": grouped.median(),
        "p5": grouped.quantile(0.05),
        "p95": grouped.quantile(0.95),
        "cv": grouped.std(ddof=1) / grouped.mean(),
        "ci_pct": grouped.agg(interval_pct),  # the median's 95% interval, ± share of the median
    })
    failed = df[~df["ok"]].groupby(keys, sort=False).size().rename("failed")
    appearance = df[keys].drop_duplicates()
    table = appearance.merge(table.join(failed, how="outer").reset_index(), on=keys, how="left")
    table["n"] = table["n"].fillna(0).astype(int)
    table["failed"] = table["failed"].fillna(0).astype(int)
    base = _baseline_medians(table)
    relative = table["metric"].isin(DIFFERENCE_METRICS)
    table["ratio"] = (table["median"] / base).where(~relative)
    table["diff"] = (table["median"] - base).where(relative)
    table["resolution"] = _resolutions(table, keys)
    return table


# A metric whose reading has a resolution measured beside it: within ± that, it is no measured cost.
RESOLVED_BY = {"mem_per_instance_mib": "mem_resolution_mib"}


def _resolutions(table: pd.DataFrame, keys: list[str]) -> pd.Series:
    """Per row of a RESOLVED_BY metric, the median resolution measured beside it (NaN elsewhere)."""
    others = [k for k in keys if k not in ("metric", "unit")]
    found = pd.Series(float("nan"), index=table.index)
    for metric, by in RESOLVED_BY.items():
        res = table[table["metric"] == by].set_index(others)["median"]
        rows = table["metric"] == metric
        if rows.any() and len(res):
            index = pd.MultiIndex.from_frame(table.loc[rows, others]) if len(others) > 1 else table.loc[rows, others[0]]
            found[rows] = res.reindex(index).to_numpy()
    return found


def below_resolution(value: float, resolution: float) -> str:
    """"below resolution (±X MiB)" for a reading within what its method resolves, else ""."""
    if math.isnan(resolution) or abs(value) > resolution:
        return ""
    return f"below resolution (±{resolution:.2g} MiB)"


def median_ratio(base, new, axis=-1):
    return np.median(new, axis=axis) / np.median(base, axis=axis)


def _difference(base, new, axis=-1):
    return np.median(new, axis=axis) - np.median(base, axis=axis)


def headline(df: pd.DataFrame) -> pd.DataFrame:
    """Felter et al.'s table: per metric and runner, its median against process's as a ratio (a
    difference for DIFFERENCE_METRICS), with a 95% bootstrap interval (percentile; none under 2 samples)."""
    from scipy import stats

    rows = []
    ok = df[df["ok"]]
    hosts = ["host"] if "host" in df.columns else []
    for (suite, workload, metric, unit, *_), part in ok.groupby(["suite", "workload", "metric", "unit", *hosts], sort=False):
        is_base = part["runner"].map(base_runner) == BASELINE
        base = part.loc[is_base, "value"].to_numpy()
        if not len(base):
            continue
        statistic = _difference if metric in DIFFERENCE_METRICS else median_ratio
        for runner, group in part[~is_base].groupby("runner", sort=False):
            new = group["value"].to_numpy()
            low = high = float("nan")
            if len(base) >= 2 and len(new) >= 2 and np.ptp(np.concatenate([base, new])) > 0:
                ci = stats.bootstrap((base, new), statistic, vectorized=True, n_resamples=2000,
                                     method="percentile", random_state=0).confidence_interval
                low, high = float(ci.low), float(ci.high)
            rows.append({"suite": suite, "workload": workload, "metric": metric, "unit": unit, "runner": runner,
                         "kind": "difference" if metric in DIFFERENCE_METRICS else "ratio",
                         "value": float(statistic(base, new)), "ci_low": low, "ci_high": high, "n": len(new)})
    return pd.DataFrame(rows, columns=["suite", "workload", "metric", "unit", "runner", "kind", "value",
                                       "ci_low", "ci_high", "n"])


def _baseline_medians(table: pd.DataFrame) -> pd.Series:
    match = ["suite", "workload", "metric"] + (["host"] if "host" in table.columns else [])
    base = table[table["runner"].map(base_runner) == BASELINE].set_index(match)["median"]
    index = pd.MultiIndex.from_frame(table[match])
    return pd.Series(base.reindex(index).to_numpy(), index=table.index)


# The report's families, cheapest isolation first (runners.base.FAMILIES; the report never imports
# a runner, so a run records each runner's family in meta.json).
FAMILIES = ("process-like", "containers", "sandboxes", "VMs")


def families(meta: dict | None) -> dict[str, str]:
    """runner label -> family, from a run's meta.json; a runner it does not name goes last."""
    found = {name: cfg.get("family", "other") for name, cfg in (meta or {}).get("runners", {}).items()}
    found.setdefault(BASELINE, "process-like")
    return found


def runner_order(runners, meta: dict | None = None, cost: dict[str, float] | None = None) -> list[str]:
    """The baseline first, then family by family (FAMILIES order), each by cost (cheapest first,
    e.g. median ready_ms) where it is known, else in the order given."""
    runners = list(dict.fromkeys(runners))
    family = families(meta) if meta is not None else {}
    rank = {f: i for i, f in enumerate(FAMILIES)}

    def key(item: tuple[int, str]) -> tuple:
        i, r = item
        own = family.get(base_runner(r), family.get(r)) or ""
        return (base_runner(r) != BASELINE, rank.get(own, len(FAMILIES)) if meta is not None else 0,
                (cost or {}).get(r, float("inf")) if cost else 0, i)

    return [r for _, r in sorted(enumerate(runners), key=key)]


def startup_cost(df: pd.DataFrame) -> dict[str, float]:
    """Each runner's median ready_ms, the cost the report orders runners by (empty without it)."""
    return {str(r): float(v) for r, v in one_at_a_time_ready(df).groupby("runner")["value"].median().items()}


def one_at_a_time_ready(df: pd.DataFrame) -> pd.DataFrame:
    """The ok ready_ms samples of one instance started alone, from the suite of the run that ranks
    runners (Suite.start_rank: startup's, else a scale run's burst-n1), never a burst's, nor a
    workload's own start (app's python-import)."""
    from bench.suites import suites

    ready = df[df["ok"] & (df["metric"] == "ready_ms") & (df["n"] == 1 if "n" in df.columns else True)]
    ranked = sorted((s.start_rank, s.name) for s in suites().values() if s.start_rank and (ready["suite"] == s.name).any())
    return ready[ready["suite"] == ranked[0][1]] if ranked else ready.iloc[:0]
