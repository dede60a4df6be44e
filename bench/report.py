"""The HTML report of a stored run: plots (PNG) and tables, rebuilt from results alone."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from jinja2 import Environment, FileSystemLoader, select_autoescape  # noqa: E402

from bench.stats import runner_order, summarize  # noqa: E402
from bench.store import STAGING_PREFIX  # noqa: E402
from bench.views import ordered  # noqa: E402

HIGH_CV = 0.10
LABELS = {"ready_ms": "time to READY", "exit_ms": "time to exit", "teardown_ms": "teardown",
          "mem_peak_mib": "peak memory"}


def distribution_png(df: pd.DataFrame, metric: str, unit: str, path: Path) -> None:
    """Box plot per runner with every sample drawn over it; log scale when runners differ >10x."""
    order = runner_order(df["runner"])
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


def warnings(df: pd.DataFrame, summary: pd.DataFrame, meta: dict) -> list[str]:
    found = []
    failed = df[~df["ok"]]
    if len(failed):
        first = failed.iloc[0]
        found.append(f"{len(failed)} failed samples, e.g. {first['runner']}/{first['metric']}: {first['error']}")
    noisy = [f"{r.runner} {r.metric} {r.cv:.0%}" for r in summary[summary["cv"] > HIGH_CV].itertuples()]
    if noisy:
        found.append(f"noisy (coefficient of variation over {HIGH_CV:.0%}): {', '.join(noisy)}")
    for name, cfg in meta.get("runners", {}).items():
        if cfg.get("accel") == "tcg":
            found.append(f"{name} ran emulated (accel=tcg, no KVM): {cfg.get('accel_reason', '')}. "
                         "Its times are not what hardware virtualization costs")
    host = meta.get("host", {})
    if host.get("virtualized"):
        found.append("this host is itself a virtual machine: absolute numbers include its hypervisor")
    if host.get("cpu_governor") not in (None, "n/a", "performance"):
        found.append(f"CPU governor is {host['cpu_governor']}, not performance")
    return found


def render_report(run_dir: Path, out_dir: Path) -> Path:
    """Write out_dir/index.html and its PNGs (atomically: staged, then renamed)."""
    from bench.store import load_run

    df, meta = load_run(run_dir)
    summary = summarize(df)
    staging = out_dir.parent / f"{STAGING_PREFIX}{out_dir.name}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    sections = []
    for (suite, workload), part in df[df["ok"]].groupby(["suite", "workload"], sort=False):
        plots = []
        for (metric, unit), samples in part.groupby(["metric", "unit"], sort=False):
            name = f"{suite}-{workload}-{metric}.png"
            distribution_png(samples, metric, unit, staging / name)
            plots.append({"file": name, "metric": metric})
        rows = summary[(summary["suite"] == suite) & (summary["workload"] == workload)]
        kinds = {name: cfg.get("kind", "ours") for name, cfg in meta.get("runners", {}).items()}
        sections.append({"suite": suite, "workload": workload, "plots": plots, "rows": _table_rows(rows, kinds)})
    env = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                      autoescape=select_autoescape())
    html = env.get_template("report.html.j2").render(meta=meta, sections=sections,
                                                      warnings=warnings(df, summary, meta))
    (staging / "index.html").write_text(html)
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    os.rename(staging, out_dir)
    return out_dir / "index.html"


def _table_rows(rows: pd.DataFrame, kinds: dict[str, str]) -> list[dict]:
    return [{**r, "label": r["runner"] + (" (peer)" if kinds.get(r["runner"]) == "peer" else ""), "fmt": {k: _fmt(r[k]) for k in ("median", "p5", "p95")},
             "cv_fmt": "" if pd.isna(r["cv"]) else f"{r['cv']:.1%}",
             "ratio_fmt": "" if pd.isna(r["ratio"]) else f"{r['ratio']:.2f}x"}
            for r in ordered(rows).to_dict("records")]


def _fmt(value: float) -> str:
    if pd.isna(value):
        return ""
    return f"{value:.3g}" if abs(value) < 100 else f"{value:,.0f}"
