"""The HTML report of a stored run: plots (PNG) and tables, rebuilt from results alone."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from jinja2 import Environment, FileSystemLoader, select_autoescape

from bench import atomic
from bench.analysis.stats import (
    BASELINE,
    FAMILIES,
    HOST_SEP,
    base_runner,
    below_resolution,
    families,
    headline,
    median_interval,
    one_at_a_time_ready,
    runner_order,
    startup_cost,
    summarize,
)
from bench.analysis.views import fmt_number, ordered, vs_process
from bench.suites import suites

HIGH_CV = 0.10
LABELS = {"ready_ms": "time to READY", "exit_ms": "time to exit", "teardown_ms": "teardown",
          "mem_peak_mib": "peak memory"}
FAMILY_COLORS = dict(zip(FAMILIES, ("tab:green", "tab:blue", "tab:orange", "tab:red"), strict=True))
CAPTIONS = {
    "ladder": "How much each layer costs to start: the median time from launch to READY per runner, on a log "
              "scale, with its 95% interval; the number at the end is the multiple of a plain process's.",
    "phases": "Where a start goes, in absolute time (log scale): launch to READY, READY to the workload's exit, "
              "and teardown, medians per runner.",
    "mem_peak": "Host-side peak memory of one instance (median), as each runner can measure it.",
    "distribution": "Every sample (dots) over a box of the middle half, per runner; a short box is a steady number.",
}


def family_of(family: dict[str, str], runner: str) -> str | None:
    return family.get(runner) or family.get(base_runner(runner))


def ladder_png(df: pd.DataFrame, order: list[str], family: dict[str, str], path: Path) -> None:
    """The startup ladder: each runner's median ready_ms with its 95% interval, log scale, coloured
    by family, the ratio to process written on each bar."""
    ready = one_at_a_time_ready(df)
    rows = [r for r in order if (ready["runner"] == r).any()]
    values = {r: ready.loc[ready["runner"] == r, "value"].to_numpy() for r in rows}
    medians = {r: float(pd.Series(v).median()) for r, v in values.items()}
    base = medians.get(BASELINE)
    fig, ax = plt.subplots(figsize=(8, 0.42 * len(rows) + 1.5), dpi=110)
    for i, r in enumerate(rows):
        low, high = median_interval(values[r])
        color = FAMILY_COLORS.get(family_of(family, r) or "", "tab:gray")
        ax.barh(i, medians[r], color=color, alpha=0.85)
        ax.errorbar(medians[r], i, xerr=[[medians[r] - low], [high - medians[r]]], color="black", capsize=3, lw=1)
        label = f"  {fmt_number(medians[r])} ms" + (f"  ·  {fmt_number(medians[r] / base)}x" if base else "")
        ax.text(max(high, medians[r]), i, label, va="center", fontsize=8)
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xscale("log")
    left, right = ax.get_xlim()
    ax.set_xlim(left, right * 8)  # room for the labels
    ax.set_xlabel("time from launch to READY (ms, log scale; median and 95% interval)")
    ax.set_title("What does isolation cost to start?", fontsize=11, pad=22)
    shown = [f for f in FAMILY_COLORS if f in {family_of(family, r) for r in rows}]
    ax.legend([plt.Rectangle((0, 0), 1, 1, color=FAMILY_COLORS[f]) for f in shown], shown, fontsize=8,
              ncol=len(shown), loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    ax.invert_yaxis()
    ax.grid(axis="x", alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def distribution_png(df: pd.DataFrame, metric: str, unit: str, path: Path, order: list[str] | None = None) -> None:
    """Box plot per runner with every sample drawn over it; log scale when runners differ >10x."""
    order = [r for r in (order or runner_order(df["runner"])) if (df["runner"] == r).any()]
    data = [df.loc[df["runner"] == r, "value"].to_numpy() for r in order]
    fig, ax = plt.subplots(figsize=(7, 0.55 * len(order) + 1.6), dpi=110)
    ax.boxplot(data, vert=False, tick_labels=order, showfliers=False, widths=0.6)
    for i, values in enumerate(data, start=1):
        jitter = (pd.Series(range(len(values))) % 7 - 3) * 0.04
        ax.scatter(values, i + jitter, s=9, alpha=0.55, color="tab:blue", zorder=3)
    medians = [pd.Series(v).median() for v in data if len(v)]
    if medians and min(medians) > 0 and max(medians) / min(medians) > 10:
        ax.set_xscale("log")
    else:
        ax.set_xlim(left=0)  # a zero-based axis doesn't turn a 1% difference into a visual gulf
    ax.set_xlabel(f"{LABELS.get(metric, metric)} ({unit})")
    ax.set_title(f"{metric}: distribution per runner (n per runner: {max(map(len, data))})", fontsize=10)
    ax.invert_yaxis()
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def phases_png(summary: pd.DataFrame, path: Path, order: list[str] | None = None) -> None:
    """Where each runner's start goes, in absolute time on a log scale: to READY, READY to exit,
    teardown (medians), one bar each, side by side."""
    med = summary.pivot_table(index="runner", columns="metric", values="median")
    have = {"ready_ms", "exit_ms", "teardown_ms"} <= set(med.columns)
    order = [r for r in (order or runner_order(summary["runner"])) if r in med.index] if have else []
    parts = pd.DataFrame({"to READY": med["ready_ms"], "READY to exit": med["exit_ms"] - med["ready_ms"],
                          "teardown": med["teardown_ms"]}).loc[order].clip(lower=1e-3) if have else pd.DataFrame()
    fig, ax = plt.subplots(figsize=(8, 0.6 * len(order) + 1.6), dpi=110)
    height = 0.26
    for k, (phase, color) in enumerate(zip(parts.columns, ("tab:blue", "tab:orange", "tab:gray"), strict=True)):
        ax.barh([i + (k - 1) * height for i in range(len(order))], parts[phase], height=height, color=color, label=phase)
    for i, runner in enumerate(order):
        row = parts.loc[runner].to_numpy(dtype=float)
        ax.text(row.max(), i, f"  {fmt_number(float(row.sum()))} ms in all", va="center", fontsize=7)
    ax.set_yticks(range(len(order)), order)
    if len(order):
        ax.set_xscale("log")
        left, right = ax.get_xlim()
        ax.set_xlim(left, right * 8)
    ax.set_xlabel("milliseconds (median, log scale)")
    ax.set_title("startup phases per runner", fontsize=10, pad=24)
    ax.invert_yaxis()
    ax.grid(axis="x", alpha=0.3, which="both")
    ax.legend(fontsize=8, ncol=3, loc="lower center", bbox_to_anchor=(0.45, 1.0), frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def memory_png(summary: pd.DataFrame, path: Path, order: list[str] | None = None) -> None:
    mem = summary[summary["metric"] == "mem_peak_mib"].set_index("runner")["median"].dropna()
    order = [r for r in (order or runner_order(mem.index)) if r in mem.index]
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(order) + 1.5), dpi=110)
    ax.barh(order, mem.loc[order], color="tab:purple")
    for i, runner in enumerate(order):
        ax.text(mem[runner], i, f" {fmt_number(mem[runner])}", va="center", fontsize=8)
    if mem.min() > 0 and mem.max() / mem.min() > 10:
        ax.set_xscale("log")
    ax.set_xlabel("host-side peak memory of one instance (MiB, median)")
    ax.set_title("memory per runner", fontsize=10)
    ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def warnings(df: pd.DataFrame, summary: pd.DataFrame, meta: dict) -> list[str]:
    found = list(meta.get("warnings", []))  # what the runners said of their own numbers (Runner.warnings)
    cache = meta.get("cache") or {}
    if cache.get("state") == "cold":
        found.append(f"cold starts: the page cache was synced and dropped before each sample of "
                     f"{', '.join(cache.get('dropped_before', [])) or 'no suite of this run'}, so those times include "
                     "reading every binary, kernel and image from disk (--cache cold)")
    if meta.get("incomplete"):
        found.append(f"this run is incomplete: {meta.get('interrupted_by', 'a signal')} stopped it; "
                     "only the samples completed before that are here")
    failed = df[~df["ok"]]
    if len(failed):
        first = failed.iloc[0]
        found.append(f"{len(failed)} failed samples, e.g. {first['runner']}/{first['metric']}: {first['error']}")
    noisy = summary[summary["cv"] > HIGH_CV]
    if len(noisy):  # the tables give each one's CV and interval; here only how many and the worst
        worst = noisy.sort_values("cv", ascending=False).head(3)
        found.append(f"{len(noisy)} of {len(summary)} metrics are noisy (coefficient of variation over {HIGH_CV:.0%}), "
                     f"worst {', '.join(f'{r.runner} {r.metric} {r.cv:.0%}' for r in worst.itertuples())}: "
                     "trust only differences beyond their intervals")
    for name, cfg in meta.get("runners", {}).items():
        missing = [part for part, how in cfg.get("envelope", {}).items() if how.startswith("not enforced")]
        if missing:
            found.append(f"{name} could not enforce the envelope's {', '.join(missing)}: its numbers are not on "
                         "equal terms (marked in the tables)")
    emulated = {name: cfg for name, cfg in meta.get("runners", {}).items() if cfg.get("accel") == "tcg"}
    if emulated:
        reason = next(iter(emulated.values())).get("accel_reason", "")
        found.append(f"{', '.join(emulated)} ran emulated (accel=tcg, no KVM): {reason}. "
                     "Their times are not what hardware virtualization costs")
    verdict = meta.get("verify")
    if verdict and not verdict.get("ok"):
        found.append(f"bench verify failed on this host ({verdict.get('when')}): {'; '.join(verdict.get('failed', []))}")
    host = meta.get("host", {})
    if host.get("virtualized"):
        found.append("this host is itself a virtual machine: absolute numbers include its hypervisor")
    if host.get("cpu_governor") not in (None, "n/a", "performance"):
        found.append(f"CPU governor is {host['cpu_governor']}, not performance")
    return found


def _staging(out_dir: Path) -> Path:
    staging = atomic.begin(out_dir)
    staging.mkdir()
    return staging


def _publish(staging: Path, out_dir: Path, template: str, **context) -> Path:
    env = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=select_autoescape())
    (staging / "index.html").write_text(env.get_template(template).render(**context))
    atomic.commit(staging, out_dir)
    return out_dir / "index.html"


# What a suite can ask its report section to draw (Suite.plots), beyond a distribution per metric.
PLOTS = {"phases": phases_png, "mem_peak": memory_png}


def suite_plots(name: str) -> tuple[str, ...]:
    """The plots the suite declares; none for a suite this isobench no longer has (an old run)."""
    suite = suites().get(name)
    return suite.plots if suite else ()


def render_report(run_dir: Path, out_dir: Path, baseline_dir: Path | None = None) -> Path:
    """Write out_dir/index.html and its PNGs (atomically: staged, then renamed)."""
    from bench.analysis.store import load_run

    df, meta = load_run(run_dir)
    return _render(df, meta, out_dir, baseline_dir)


def host_labels(metas: list[dict]) -> list[str]:
    """A label per run's host: its hostname, or its host key where two machines share a hostname."""
    from bench.analysis.baseline import host_key

    keys = [host_key(m.get("host", {})) for m in metas]
    names = {k: m.get("host", {}).get("hostname", "host") for k, m in zip(keys, metas, strict=True)}
    unique = len(set(names.values())) == len(names)
    return [names[k] if unique else k for k in keys]


def render_hosts(run_dirs: list[Path], out_dir: Path) -> Path:
    """Runs from several machines side by side: every row is one runner on one host, each compared
    with process on that same host; no two hosts are ever merged into one row."""
    from bench.analysis.store import load_run

    runs = [load_run(d) for d in run_dirs]
    labels = host_labels([meta for _, meta in runs])
    frames, hosts, runners = [], {}, {}
    for (df, meta), label in zip(runs, labels, strict=True):
        frames.append(df.assign(host=label, runner=df["runner"] + HOST_SEP + label))
        h = meta.get("host", {})
        hosts[label] = (f"{h.get('cpu_model')}, {h.get('cores')} cores, {h.get('memory_gib')} GiB, kernel "
                        f"{h.get('kernel')}, cgroup {h.get('cgroup_version')}"
                        + (", itself a VM" if h.get("virtualized") else "") + f" (run {meta.get('run_id')})")
        runners.update({f"{n}{HOST_SEP}{label}": cfg for n, cfg in meta.get("runners", {}).items()})
    last = runs[-1][1]
    meta = {**last, "run_id": " + ".join(m.get("run_id", "?") for _, m in runs),
            "started": min(m.get("started", "") for _, m in runs), "host": {"hostname": ", ".join(hosts), **hosts},
            "runners": runners}
    return _render(pd.concat(frames, ignore_index=True), meta, out_dir, None)


def _render(df: pd.DataFrame, meta: dict, out_dir: Path, baseline_dir: Path | None) -> Path:
    from bench.analysis.compare import compare
    from bench.analysis.store import load_run

    summary = summarize(df)
    baseline = None
    if baseline_dir is not None:
        base_df, base_meta = load_run(baseline_dir)
        baseline = {"run_id": base_meta.get("run_id", baseline_dir.name), "verdicts": compare(base_df, df, 0.05)}
    staging = _staging(out_dir)
    order = runner_order(df["runner"], meta, startup_cost(df))
    ladder = None
    if len(one_at_a_time_ready(df)):
        ladder = {"file": "ladder.png", "caption": CAPTIONS["ladder"]}
        ladder_png(df, order, families(meta), staging / ladder["file"])
    kinds = {name: cfg.get("kind", "ours") for name, cfg in meta.get("runners", {}).items()}
    sections: list[dict] = []
    for (suite, workload), part in df[df["ok"]].groupby(["suite", "workload"], sort=False):
        suite, workload = str(suite), str(workload)
        if suite not in {s["suite"] for s in sections}:
            sections += _overview(df[df["suite"] == suite], suite, order, staging)
        plots = []
        rows = summary[(summary["suite"] == suite) & (summary["workload"] == workload)]
        for kind in suite_plots(suite):
            if kind not in PLOTS:
                continue  # drawn once for the whole suite (_overview)
            plots.append({"file": f"{suite}-{workload}-{kind}.png", "metric": kind, "caption": CAPTIONS[kind]})
            PLOTS[kind](rows, staging / plots[-1]["file"], order)
        for (metric, unit), samples in part.groupby(["metric", "unit"], sort=False):
            metric, unit = str(metric), str(unit)
            name = f"{suite}-{workload}-{metric}.png"
            distribution_png(samples, metric, unit, staging / name, order)
            plots.append({"file": name, "metric": metric, "caption": f"{metric}: {CAPTIONS['distribution']}"})
        sections.append({"suite": suite, "workload": workload, "plots": plots, "rows": _table_rows(rows, kinds, order),
                         "rounds": _rounds_rows(meta, workload, order)})
    found = warnings(df, summary, meta)
    if baseline:
        regressed = [f"{v.runner} {v.metric} {fmt_number(v.ratio)}x" for v in baseline["verdicts"] if v.verdict == "regression"]
        if regressed:
            found.insert(0, f"regressions against baseline {baseline['run_id']}: {', '.join(regressed)}")
    return _publish(staging, out_dir, "report.html.j2", meta=meta, sections=sections, warnings=found,
                    baseline=baseline, headline=headline_table(df, meta, order, summary), ladder=ladder,
                    configuration=_configuration(meta, order))


def _overview(df: pd.DataFrame, suite: str, order: list[str], staging: Path) -> list[dict]:
    """A suite's figures drawn from all its samples at once (the scale suite's CDFs and curves, its
    interference table), as a section before its per-workload ones; none for other suites."""
    plots, table = [], None
    for kind in suite_plots(suite):
        if kind in SUITE_PLOTS and SUITE_PLOTS[kind](df, staging / f"{suite}-{kind}.png", order):
            plots.append({"file": f"{suite}-{kind}.png", "metric": kind, "caption": SUITE_CAPTIONS[kind]})
        if kind == "interference":
            table = interference_table(df, order)
    if not plots and not table:
        return []
    return [{"suite": suite, "workload": "overview", "plots": plots, "rows": [], "rounds": [], "interference": table}]


def _rounds_rows(meta: dict, workload: str, order: list[str]) -> list[dict]:
    """Per runner: how many rounds it got and why they stopped (meta.json's rounds)."""
    rounds = meta.get("rounds", {}).get(workload, {})
    if not isinstance(rounds, dict) or not all(isinstance(v, dict) for v in rounds.values()):
        return []  # a run stored before rounds were recorded per runner
    return [{"runner": r, **rounds[r]} for r in order if r in rounds]


def _configuration(meta: dict, order: list[str]) -> list[dict]:
    """The runners' configuration rows, in report order, each with its family and kind first."""
    runners = meta.get("runners", {})
    return [{"name": r, "family": runners[r].get("family", ""), "kind": runners[r].get("kind", ""),
             "envelope": runners[r].get("envelope", {}),
             "config": {k: v for k, v in runners[r].items() if k not in ("family", "kind", "envelope")}}
            for r in order if r in runners]


def headline_table(df: pd.DataFrame, meta: dict, order: list[str] | None = None,
                   summary: pd.DataFrame | None = None) -> dict:
    """Rows: suite/workload metric; columns: runners by family and cost; cells: "0.97x (0.95–0.99)"
    to three significant figures, and accel=tcg beside every number of a VM that ran emulated."""
    known = suites()
    own = {s: hook for s in df["suite"].unique() if s in known and (hook := known[s].headline)}  # rows of their own
    table = headline(df[~df["suite"].isin(list(own))])
    extra = [{**row, "section": known[s].title} for s, hook in own.items() for row in hook(df[df["suite"] == s], meta)]
    runners = [r for r in (order or runner_order(df["runner"]))
               if r in set(table["runner"]) or any(r in row["cells"] for row in extra)]
    emulated = {n for n, cfg in meta.get("runners", {}).items() if cfg.get("accel") == "tcg"}
    unenforced = {n: ", ".join(part for part, how in cfg.get("envelope", {}).items() if how.startswith("not enforced"))
                  for n, cfg in meta.get("runners", {}).items()}
    rows: dict[tuple, dict] = {}
    below = _below_resolution(summarize(df) if summary is None else summary)
    for r in table.to_dict("records"):
        row = rows.setdefault((r["suite"], r["workload"], r["metric"]),
                              {"label": f"{r['suite']}/{r['workload']}", "metric": f"{r['metric']} ({r['unit']})",
                               "section": known[r["suite"]].title if r["suite"] in known else r["suite"], "cells": {}})
        value = vs_process(r["value"], float("nan"), "") if r["kind"] == "ratio" else vs_process(float("nan"), r["value"], r["unit"])
        spread = "" if pd.isna(r["ci_low"]) else (f" ({fmt_number(r['ci_low'])}–{fmt_number(r['ci_high'])})"
                                                   if r["kind"] == "ratio"
                                                   else f" ({r['ci_low']:+.1f} to {r['ci_high']:+.1f})")
        unresolved = below.get((r["suite"], r["workload"], r["metric"], r["runner"]))
        row["cells"][r["runner"]] = {"text": unresolved or value + spread, "value": unresolved or value,
                                     "spread": "" if unresolved else spread.strip(), "tcg": r["runner"] in emulated,
                                     "unenforced": unenforced.get(r["runner"], "")}
    for row in extra:
        for runner, cell in row["cells"].items():
            cell.update(tcg=runner in emulated, unenforced=unenforced.get(runner, ""))
    every = list(rows.values()) + extra
    return {"runners": runners, "rows": every, "groups": family_groups(runners, meta, every)}


def family_groups(runners: list[str], meta: dict, rows: list[dict]) -> list[dict]:
    """The headline cut into one table per family (process-like, containers, sandboxes, VMs), each
    with its own runners as columns and only the rows where one of them has a number: fourteen
    runners side by side fell off a 1280-pixel window, a family's few do not."""
    from bench.analysis.stats import families
    from bench.registry import runner_name

    family = families(meta)
    groups: dict[str, list[str]] = {}
    for r in runners:
        groups.setdefault(family.get(runner_name(r), family.get(r)) or "other", []).append(r)
    return [{"family": name, "runners": members,
             "rows": [row for row in rows if any(m in row["cells"] for m in members)]}
            for name, members in groups.items()]


def _below_resolution(summary: pd.DataFrame) -> dict[tuple, str]:
    """{(suite, workload, metric, runner): "below resolution (±X MiB)"} for readings within what
    their method resolves; a difference from such a reading is no measured cost either."""
    found = {}
    for r in summary[summary["resolution"].notna()].to_dict("records"):
        text = below_resolution(r["median"], r["resolution"])
        if text:
            found[(r["suite"], r["workload"], r["metric"], r["runner"])] = text
    return found


def render_history(run_dirs: list[Path], out_dir: Path) -> Path:
    """The nightly view: per metric, a trend line per runner over the runs, change points marked
    where `bench compare` of consecutive runs says regression (red) or improvement (green)."""
    from bench.analysis.compare import compare
    from bench.analysis.store import load_run

    runs = sorted((load_run(d) for d in run_dirs), key=lambda r: r[1].get("started", ""))
    ids = [meta.get("run_id", "?") for _, meta in runs]
    medians = pd.concat([summarize(df).assign(run=i) for i, (df, _) in enumerate(runs)])
    changes = [(i, v) for i in range(1, len(runs)) for v in compare(runs[i - 1][0], runs[i][0], 0.05)
               if v.verdict in ("regression", "improvement")]
    staging = _staging(out_dir)
    plots = []
    for (suite, workload, metric, unit), part in medians.groupby(["suite", "workload", "metric", "unit"], sort=False):
        name = f"history-{suite}-{workload}-{metric}.png"
        trend_png(part, [(i, v) for i, v in changes if (v.suite, v.workload, v.metric) == (suite, workload, metric)],
                  ids, f"{suite}/{workload} {metric} ({unit})", staging / name)
        plots.append({"file": name, "metric": metric})
    return _publish(staging, out_dir, "history.html.j2", ids=ids, plots=plots, changes=changes,
                    hosts=sorted({meta.get("host", {}).get("hostname", "?") for _, meta in runs}))


def trend_png(part: pd.DataFrame, changes, ids: list[str], title: str, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(8, 3.2), dpi=110)
    for runner in runner_order(part["runner"]):
        line = part[part["runner"] == runner].sort_values("run")
        ax.plot(line["run"], line["median"], marker="o", ms=3, label=runner)
        for i, v in changes:
            if v.runner == runner:
                ax.scatter([i], line.loc[line["run"] == i, "median"], s=90, facecolors="none", linewidths=2,
                           edgecolors="red" if v.verdict == "regression" else "green", zorder=4)
    values = part["median"].dropna()
    if len(values) and values.min() > 0 and values.max() / values.min() > 10:
        ax.set_yscale("log")
    ax.set_xticks(range(len(ids)), [i[:15] for i in ids], rotation=30, ha="right", fontsize=7)
    ax.set_title(f"{title}: median per run (circles: red regression, green improvement)", fontsize=9)
    ax.legend(fontsize=7, ncol=4)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _table_rows(rows: pd.DataFrame, kinds: dict[str, str], order: list[str] | None = None) -> list[dict]:
    found = []
    for r in ordered(rows, order).to_dict("records"):
        below = below_resolution(r["median"], r.get("resolution", float("nan")))
        found.append({**r, "label": r["runner"] + (" (peer)" if kinds.get(r["runner"]) == "peer" else ""),
                      "fmt": {k: fmt_number(r[k], "") for k in ("median", "p5", "p95")} | ({"median": below} if below else {}),
                      "cv_fmt": "" if pd.isna(r["cv"]) else f"{r['cv']:.1%}",
                      "ci_fmt": "" if pd.isna(r["ci_pct"]) else f"±{fmt_number(100 * r['ci_pct'], '', 2)}%",
                      "ratio_fmt": "" if below else vs_process(r["ratio"], r["diff"], r["unit"])})
    return found


# The scale suite's figures: each drawn once per suite from all of its samples (Suite.plots).
def _burst(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["ok"] & df["workload"].str.match(r"burst-n\d+$")]


def cdf_png(df: pd.DataFrame, path: Path, order: list[str]) -> bool:
    """Per runner, the distribution of every instance's ready_ms at each N, as a CDF (log time)."""
    ready = _burst(df)[lambda d: d["metric"] == "ready_ms"]
    runners = [r for r in order if (ready["runner"] == r).any()]
    if not runners:
        return False
    cols = min(3, len(runners))
    rows = -(-len(runners) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), dpi=110, squeeze=False, sharex=True)
    for ax, runner in zip(axes.flat, runners, strict=False):  # the grid may have a spare cell
        mine = ready[ready["runner"] == runner]
        for n, part in sorted(mine.groupby("n"), key=lambda item: item[0]):
            values = np.sort(part["value"].to_numpy())
            ax.step(values, np.arange(1, len(values) + 1) / len(values), where="post", label=f"N={n}")
        ax.set_xscale("log")
        ax.set_title(runner, fontsize=9)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    for ax in axes.flat[len(runners):]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("ready_ms from the burst's start (log)")
    fig.suptitle("time to READY of every instance in bursts of N: share ready by then", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def scaling_png(df: pd.DataFrame, path: Path, order: list[str]) -> bool:
    """ready_ms p50 (solid) and p99 (dashed) against N per runner, log-log."""
    ready = _burst(df)[lambda d: d["metric"] == "ready_ms"]
    runners = [r for r in order if (ready["runner"] == r).any()]
    if not runners:
        return False
    fig, ax = plt.subplots(figsize=(9, 4.2), dpi=110)
    for i, runner in enumerate(runners):
        q = ready[ready["runner"] == runner].groupby("n")["value"].quantile([0.5, 0.99]).unstack()
        color = f"C{i}"
        ax.plot(q.index, q[0.5], marker="o", color=color, label=f"{runner} p50")
        ax.plot(q.index, q[0.99], marker="^", ls="--", color=color, label=f"{runner} p99")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    steps = sorted(ready["n"].unique())
    ax.set_xticks(steps, [str(n) for n in steps])
    ax.set_xlabel("instances launched at once (N, log)")
    ax.set_ylabel("ready_ms (log)")
    ax.set_title("time to READY against N: median (solid) and p99 (dashed)", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def fill_png(df: pd.DataFrame, path: Path, order: list[str]) -> bool:
    """Host memory per instance against the count (the band: what the reading can resolve), and each
    instance's start time, per runner, from the fill workload."""
    fill = df[df["ok"] & (df["workload"] == "fill")]
    runners = [r for r in order if (fill["runner"] == r).any()]
    if not runners:
        return False
    fig, (mem, start) = plt.subplots(1, 2, figsize=(11, 4), dpi=110)
    for i, runner in enumerate(runners):
        mine = fill[fill["runner"] == runner]
        per = mine[mine["metric"] == "mem_per_instance_mib"].groupby("n")["value"].median()
        res = mine[mine["metric"] == "mem_resolution_mib"].groupby("n")["value"].median().reindex(per.index)
        mem.plot(per.index, per, color=f"C{i}", label=runner)
        mem.fill_between(per.index, per - res, per + res, color=f"C{i}", alpha=0.15)
        times = mine[mine["metric"] == "start_ms"].groupby("n")["value"].median()
        start.plot(times.index, times, color=f"C{i}", label=runner)
    mem.set_yscale("symlog", linthresh=1)  # a VM's 150 MiB and a container's fraction of one, both readable
    mem.set_xlabel("instances up")
    mem.set_ylabel("host memory in use per instance (MiB, symlog)")
    mem.set_title("MiB per instance (band: ± what the reading resolves)", fontsize=9)
    start.set_xlabel("instances up")
    start.set_ylabel("start_ms of that instance")
    start.set_yscale("log")
    start.set_title("each start, as the host fills", fontsize=9)
    for ax in (mem, start):
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def interference_table(df: pd.DataFrame, order: list[str]) -> dict | None:
    """Per runner and metric, the median interference ratio with its 95% interval."""
    found = df[df["ok"] & (df["workload"] == "neighbours") & df["metric"].str.startswith("interference_")]
    if found.empty:
        return None
    metrics = list(dict.fromkeys(found["metric"]))
    rows = []
    for runner in [r for r in order if (found["runner"] == r).any()]:
        cells = []
        for metric in metrics:
            values = found[(found["runner"] == runner) & (found["metric"] == metric)]["value"].to_numpy()
            if not len(values):
                cells.append("")
                continue
            low, high = median_interval(values)
            cells.append(f"{fmt_number(float(np.median(values)))}x ({fmt_number(low)}–{fmt_number(high)})")
        rows.append({"runner": runner, "cells": cells, "n": int(found[found["runner"] == runner]["n"].max())})
    return {"metrics": [m.removeprefix("interference_") for m in metrics], "rows": rows}


SUITE_PLOTS = {"cdf": cdf_png, "scaling": scaling_png, "fill": fill_png}
SUITE_CAPTIONS = {
    "cdf": "Each runner's bursts: for every N, the share of instances READY by a given time after the burst's "
           "start. A curve that moves right as N grows is a launch path that serialises.",
    "scaling": "The median and the 99th percentile time to READY against N, log-log: flat is free concurrency, "
               "a slope of 1 is one-at-a-time.",
    "fill": "Idle instances started one after another: the host memory in use per instance (left; the band is what "
            "the reading can resolve) and each start's time (right), against the count.",
}
