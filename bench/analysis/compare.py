"""`bench compare BASE NEW`: a verdict per (suite, workload, runner, metric), from the raw samples of
two stored runs. Nothing is re-run."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import stats

from bench.analysis.stats import median_ratio

ALPHA = 0.05
HIGHER_IS_BETTER_UNITS = ("/s",)  # ops/s, MiB/s, calls/s, forks/s, Gbit/s: more is better
# The smallest change that counts in absolute terms, per unit. A process's peak RSS counts the file
# pages fault-around maps, and it moves by whole runs with host state no run controls: the static
# probe read 548 KiB in one run and 576 or 584 KiB in every sample of another with nothing changed,
# and by hand 548, 584 or 648 KiB depending on how its page cache was filled
# (docs/log/2026-12-05-the-night-and-the-page-cache.md). 5% of half a MiB would call that a regression.
ABSOLUTE_FLOOR = {"MiB": 0.125}


@dataclass(frozen=True)
class Verdict:
    suite: str
    workload: str
    runner: str
    metric: str
    unit: str
    base_median: float
    new_median: float
    ratio: float  # new / base
    ci_low: float  # 95% bootstrap interval of the ratio of medians
    ci_high: float
    p_value: float  # Mann-Whitney U, two-sided
    n_base: int
    n_new: int
    verdict: str  # regression, improvement, no change, inconclusive
    threshold: float = float("nan")  # the smallest change that counted for this metric


def higher_is_better(unit: str) -> bool:
    return unit.endswith(HIGHER_IS_BETTER_UNITS)


def judge(base: np.ndarray, new: np.ndarray, unit: str, threshold: float) -> tuple[str, float, float, float]:
    """(verdict, p, ci_low, ci_high). A change counts only when it is significant (Mann-Whitney) and the
    whole 95% interval of the ratio lies beyond the threshold: on a shared host, runs drift by several
    percent between each other while samples within a run agree closely, so significance alone would
    call that drift a regression (measured here: the same cpu run twice, 0.88x with p = 0.016)."""
    if len(base) < 2 or len(new) < 2:
        return "inconclusive", float("nan"), float("nan"), float("nan")
    p = stats.mannwhitneyu(base, new, alternative="two-sided").pvalue
    ci = stats.bootstrap((base, new), median_ratio, vectorized=True, n_resamples=2000, method="percentile",
                         random_state=0).confidence_interval
    below, above = ci.high < 1 - threshold, ci.low > 1 + threshold
    worse, better = (below, above) if higher_is_better(unit) else (above, below)
    if p < ALPHA and worse:
        verdict = "regression"
    elif p < ALPHA and better:
        verdict = "improvement"
    elif 1 - threshold <= ci.low and ci.high <= 1 + threshold:
        verdict = "no change"
    else:
        verdict = "inconclusive"
    return verdict, float(p), float(ci.low), float(ci.high)


def floor(unit: str, base_median: float) -> float:
    """ABSOLUTE_FLOOR of this unit as a fraction of the base median (0 where the unit has none)."""
    least = ABSOLUTE_FLOOR.get(unit, 0.0)
    return least / abs(base_median) if least and base_median else 0.0


def compare(base: pd.DataFrame, new: pd.DataFrame, threshold: float,
            tolerances: dict | None = None) -> list[Verdict]:
    """tolerances: per (suite, workload, runner, metric, unit), a larger threshold learned from a
    baseline window (see bench.analysis.baseline.tolerances)."""
    keys = ["suite", "workload", "runner", "metric", "unit"]
    verdicts = []
    groups_new = {k: g["value"].to_numpy() for k, g in new[new["ok"]].groupby(keys, sort=False)}
    for key, group in base[base["ok"]].groupby(keys, sort=False):
        if key not in groups_new:
            continue
        a, b = group["value"].to_numpy(), groups_new[key]
        suite, workload, runner, metric, unit = map(str, key)
        base_median, new_median = np.median(a), np.median(b)  # numpy's: a zero base gives inf, not an error
        limit = max(threshold, (tolerances or {}).get(key, 0.0), floor(unit, float(base_median)))
        verdict, p, low, high = judge(a, b, unit, limit)
        verdicts.append(Verdict(suite, workload, runner, metric, unit, float(base_median), float(new_median), float(new_median / base_median),
                                low, high, p, len(a), len(b), verdict, limit))
    return verdicts


def as_json(verdicts: list[Verdict]) -> list[dict]:
    return [{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in asdict(x).items()} for x in verdicts]
