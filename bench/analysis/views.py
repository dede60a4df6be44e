"""Terminal views (rich tables) of listings, checks and run summaries."""

from __future__ import annotations

import math
from pathlib import Path

from rich import box
from rich.console import Console
from rich.table import Table

from bench.options import declared, suite_flags
from bench.registry import availability, registered
from bench.suites import suites


def listing(what: str, cache_dir: str, files=()) -> dict:
    from bench.workload import catalogue

    data, every = {}, catalogue(files)
    if what in ("suites", "all"):
        flags = suite_flags(suites())
        data["suites"] = [{"name": s.name, **s.defaults(), "workloads": [w.name for w in every.values() if w.suite == s.name],
                           "description": s.description,
                           "options": [{"name": f["flag"], "default": f["default"], "help": f["help"]}
                                       for f in flags if f["suite"] == s.name]} for s in suites().values()]
    if what in ("workloads", "all"):
        data["workloads"] = [{"suite": w.suite, "name": w.name, "description": w.description,
                              "metrics": [m for m, _ in w.metrics], "origin": w.origin}
                             for s in suites().values() for w in every.values() if w.suite == s.name]
    if what in ("runners", "all"):
        data["runners"] = []
        for name, info in registered().items():
            ok, reason = availability(info, cache_dir)
            data["runners"].append({"name": name, "kind": info.cls.kind if info.cls else "?",
                                    "family": info.cls.family if info.cls else "?",
                                    "available": ok, "reason": reason,
                                    "description": info.cls.description if info.cls else "",
                                    "envelope": unenforced(info.cls.enforcement) if info.cls else "?",
                                    "disk and network": info.cls.paths or "none" if info.cls else "?",
                                    "options": declared(info.cls) if info.cls else []})
    return data


def unenforced(enforcement: dict[str, str]) -> str:
    """What of the envelope a runner cannot enforce, in a word: "all enforced" or "not: memory (why)"."""
    from runners.base import NOT_ENFORCED

    missing = [f"{part} ({how})" for part, how in enforcement.items() if how.startswith(NOT_ENFORCED)]
    return "not: " + ", ".join(missing) if missing else "all enforced"


def print_listing(data: dict, console: Console) -> None:
    for section, rows in data.items():
        table = Table(title=section, title_justify="left")
        for column in rows[0] if rows else ():
            table.add_column(column)
        for row in rows:
            table.add_row(*(_cell(v) for v in row.values()))
        console.print(table)


def _cell(value) -> str:
    if isinstance(value, bool):
        return "[green]yes[/]" if value else "[red]no[/]"
    if isinstance(value, list):  # option dicts: name=default (`bench list --json` has type and help)
        return ", ".join(f"{v['name']}={_default(v['default'])}" if isinstance(v, dict) else str(v) for v in value)
    return str(value)


def _default(value) -> str:
    """An option's default as typed on the command line: 1,2,4 for a tuple; auto where the host decides."""
    if value is None:
        return "auto"
    return ",".join(map(str, value)) if isinstance(value, (tuple, list)) else str(value)


def print_checks(checks, console: Console) -> None:
    table = Table(title="bench doctor", title_justify="left")
    for column in ("check", "ok", "detail"):
        table.add_column(column)
    for c in checks:
        table.add_row(c.name, _cell(c.ok), c.detail)
    console.print(table)
    fixes = [c for c in checks if c.fix]
    if fixes:
        console.print("To make numbers steadier (bench doctor changes nothing itself):")
        for c in fixes:
            console.print(f"  {c.name}: {c.fix}", soft_wrap=True, markup=False)


def print_summary(run_dir: Path, console: Console) -> None:
    """One table per suite/workload: medians, spread and the ratio to process, per metric and runner."""
    from bench.analysis.stats import below_resolution, runner_order, startup_cost, summarize
    from bench.analysis.store import load_run

    df, meta = load_run(run_dir)
    summary = summarize(df)
    order = runner_order(df["runner"], meta, startup_cost(df))
    for (suite, workload), part in ordered(summary, order).groupby(["suite", "workload"], sort=False):
        table = Table(title=f"{suite}/{workload}  (run {run_dir.name})", title_justify="left",
                      box=box.SIMPLE_HEAD)
        failures = bool(part["failed"].any())
        columns = ("metric", "runner", "median", "±95%", "p5", "p95", "CV", "n") + (("fail",) if failures else ()) + ("×proc",)
        for column in columns:
            left = column in ("metric", "runner")
            table.add_column(column, justify="left" if left else "right", no_wrap=True,
                             min_width=None if left else len(column))
        for r in part.itertuples():
            below = below_resolution(r.median, getattr(r, "resolution", float("nan")))
            cells = [r.metric, r.runner, below or fmt_number(r.median),
                     "" if r.ci_pct != r.ci_pct else f"±{fmt_number(100 * r.ci_pct, '', 2)}%",
                     fmt_number(r.p5), fmt_number(r.p95),
                     "" if r.cv != r.cv else f"{r.cv:.1%}", str(r.n)]
            cells += [f"[red]{r.failed}[/]" if r.failed else "0"] if failures else []
            table.add_row(*cells, "" if below else vs_process(r.ratio, r.diff, r.unit))
        console.print(table)
    print_left_out(df, meta, console)


def print_left_out(df, meta: dict, console: Console) -> None:
    """What the tables do not show: each failed sample's reason (once per runner, workload and
    reason) and each step the run left out, with why (meta.json's not_run)."""
    failed = df[~df["ok"]]
    for (runner, workload, error), n in failed.groupby(["runner", "workload", "error"], sort=False).size().items():
        console.print(f"[red]failed[/]: {runner}/{workload}: {error}" + (f" ({n} samples)" if n > 1 else ""),
                      soft_wrap=True)
    for step, why in meta.get("not_run", {}).items():
        console.print(f"left out: {step}: {why}", soft_wrap=True)


def vs_process(ratio: float, diff: float, unit: str) -> str:
    """The ×proc cell: a ratio, or for DIFFERENCE_METRICS the amount above process."""
    if not math.isnan(ratio):
        return f"{fmt_number(ratio)}x"
    return "" if math.isnan(diff) else f"{diff:+.1f} {unit}"


def ordered(summary, order: list[str] | None = None):
    """Metrics in the order the workload defines them, runners in `order` within each (default: the
    baseline first, then as they come)."""
    from bench.analysis.stats import runner_order

    runners = {r: i for i, r in enumerate(order or runner_order(summary["runner"]))}
    metrics = {m: i for i, m in enumerate(dict.fromkeys(summary["metric"]))}
    keys = summary.assign(_m=summary["metric"].map(metrics), _r=summary["runner"].map(runners))
    return keys.sort_values(["_m", "_r"], kind="stable").drop(columns=["_m", "_r"])


def fmt_number(value: float, missing: str = "-", digits: int = 3) -> str:
    """digits significant figures, thousands separated, never an exponent: 0.0892, 1.37, 1,400."""
    if math.isnan(value):
        return missing
    if value == 0 or math.isinf(value):
        return f"{value:g}"
    scale = digits - 1 - math.floor(math.log10(abs(value)))
    rounded = round(value, scale)
    if rounded and math.floor(math.log10(abs(rounded))) != math.floor(math.log10(abs(value))):
        scale -= 1  # 99.96 rounds up to 100: three figures of the new magnitude
    return f"{round(value, scale):,.{max(0, scale)}f}"


VERDICT_STYLE = {"regression": "bold red", "improvement": "green", "no change": "", "inconclusive": "yellow"}


def print_verdicts(verdicts, console: Console) -> None:
    table = Table(title="bench compare", title_justify="left", box=box.SIMPLE_HEAD)
    for column in ("suite/workload", "runner", "metric", "base", "new", "ratio", "95% CI", "p", "counts", "verdict"):
        table.add_column(column, justify="left" if column in ("suite/workload", "runner", "metric", "verdict") else "right",
                         no_wrap=True)
    for v in verdicts:
        ci = "" if v.ci_low != v.ci_low else f"{v.ci_low:.2f}-{v.ci_high:.2f}"
        table.add_row(f"{v.suite}/{v.workload}", v.runner, v.metric, fmt_number(v.base_median), fmt_number(v.new_median),
                      f"{v.ratio:.2f}x", ci, "" if v.p_value != v.p_value else f"{v.p_value:.3f}",
                      "" if v.threshold != v.threshold else f"±{v.threshold:.0%}",
                      f"[{VERDICT_STYLE[v.verdict]}]{v.verdict}[/]" if VERDICT_STYLE[v.verdict] else v.verdict)
    console.print(table)


def print_verify(verdicts, console: Console) -> None:
    table = Table(title="bench verify: the harness against independent tools", title_justify="left",
                  box=box.SIMPLE_HEAD)
    for column in ("check", "isobench", "median", "direct", "median ", "ratio", "tolerance", "verdict"):
        table.add_column(column, justify="right" if "median" in column or column in ("ratio", "tolerance") else "left")
    for v in verdicts:
        tolerance = (f"≥{1 - v.tolerance:.2f}x" if v.lower_bound else f"±{v.tolerance:.0%}") + (
            f" +{fmt_number(v.slack)} {v.unit}" if v.slack else "")
        table.add_row(v.check, v.ours, f"{fmt_number(v.ours_median)} {v.unit}", v.direct,
                      f"{fmt_number(v.direct_median)} {v.unit}", f"{v.ratio:.3f}", tolerance,
                      "[green]ok[/]" if v.ok else "[bold red]off[/]")
    console.print(table)
