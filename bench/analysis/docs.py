"""The tables of README.md and docs/*.md, generated from the runs kept under docs/runs/, so that a page
says what its runs say and two pages cannot disagree.

A generated block sits between two comments that name what it is made of:

    <!-- generated: headline runs=RUN_ID,RUN_ID [runners=a,b] [rows=suite/workload:metric,...] -->
    ... the table ...
    <!-- /generated -->

Kinds: `headline` (medians as multiples of a plain process, the report's "Against a plain process"
table, without its intervals), `summary run=RUN_ID workload=SUITE/WORKLOAD [metrics=a,b]` (bench run's
own table: median, ±95%, p5, p95, CV, n, ×proc; [runners=a,b] keeps their rows), `compare base=RUN_ID new=RUN_ID` (bench compare's
verdicts) and `transcript run=RUN_ID [keep=TEXT,TEXT]` (the
output a command printed, kept as docs/runs/RUN_ID/transcript.txt, the summary rows cut to the
metrics named by keep). `python -m bench.analysis.docs` rewrites every block; `--check` only says
which differ (exit 1), as the docs test does.
"""

from __future__ import annotations

import argparse
import io
import re
import sys
from pathlib import Path

from bench.errors import UsageError

ROOT = Path(__file__).resolve().parents[2]
RUNS = ROOT / "docs" / "runs"
BLOCK = re.compile(r"(<!-- generated: (?P<spec>[^>]*?) -->\n)(?P<body>.*?)(<!-- /generated -->)", re.DOTALL)
RUN_ID = re.compile(r"\b\d{8}T\d{6}Z-[0-9a-f]{6}\b")
TRANSCRIPT = "transcript.txt"
INTERVAL = re.compile(r" \([-+\d.,]+(–| to )[-+\d.,]+\)$")  # a cell's 95% interval, left to the report
REASON = re.compile(r" \(stopped by ([^:)]+)(:[^)]*)?\)$")  # why a count stopped, its first words (the report has it all)


def pages(root: Path = ROOT) -> list[Path]:
    """The pages whose tables are generated: README.md and docs/*.md (docs/log/ is history, left as written)."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def parse_spec(spec: str) -> tuple[str, dict[str, str]]:
    kind, *pairs = spec.split()
    fields = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise UsageError(f"generated block {spec!r}: {pair!r} is not KEY=VALUE")
        fields[key] = value
    return kind, fields


def kept(run_id: str, runs: Path) -> Path:
    """The folder of a kept run; UsageError for a run the page cites but docs/runs/ lacks."""
    if not (runs / run_id).is_dir():
        raise UsageError(f"run {run_id} is cited but not kept under {runs}")
    return runs / run_id


def load(run_id: str, runs: Path):
    from bench.analysis.store import load_run

    return load_run(kept(run_id, runs))


def render(spec: str, runs: Path = RUNS) -> str:
    kind, fields = parse_spec(spec)
    makers = {"headline": headline_block, "summary": summary_block, "transcript": transcript_block,
              "compare": compare_block}
    if kind not in makers:
        raise UsageError(f"generated block {spec!r}: unknown kind {kind!r} (one of {', '.join(makers)})")
    return makers[kind](fields, runs)


def headline_block(fields: dict[str, str], runs: Path) -> str:
    """The headline table of one or more runs (different suites), runners as columns."""
    import pandas as pd

    from bench.analysis.report import headline_table
    from bench.analysis.stats import runner_order, startup_cost

    loaded = [load(run_id, runs) for run_id in fields["runs"].split(",")]
    df = pd.concat([d for d, _ in loaded], ignore_index=True)
    meta = {**loaded[0][1], "runners": {n: c for _, m in loaded for n, c in m.get("runners", {}).items()},
            "rounds": {k: v for _, m in loaded for k, v in m.get("rounds", {}).items()}}
    order = runner_order(df["runner"], meta, startup_cost(df))
    table = headline_table(df, meta, order)
    runners = [r for r in dict.fromkeys(fields["runners"].split(",") if "runners" in fields else ["process", *table["runners"]])
               if r in table["runners"] or r == "process"]
    rows = table["rows"]
    if "rows" in fields:  # suite/workload:metric, or suite/workload[-nN] for a suite's own row (scale/fill)
        wanted = fields["rows"].split(",")

        def key(row: dict) -> str:
            full = f"{row['label']}:{row['metric'].split(' (')[0]}"
            if full in wanted:
                return full
            return next((w for w in wanted if ":" not in w and (row["label"] == w or row["label"].startswith(f"{w}-n"))), "")

        rows = sorted((r for r in rows if key(r) in wanted), key=lambda r: wanted.index(key(r)))
    base = process_cells(df)
    emulated = {r for row in rows for r, cell in row["cells"].items() if cell.get("tcg")}
    not_run = {k: why for _, m in loaded for k, why in m.get("not_run", {}).items()}
    lines = ["| | " + " | ".join(f"{r} (tcg)" if r in emulated else r for r in runners) + " |",
             "| --- |" + " --- |" * len(runners)]
    reasons: dict[str, list[str]] = {}  # why, in a note under the table: the runner/workload pairs it covers
    for row in rows:
        at = (row["label"], row["metric"].split(" (")[0])
        cells = []
        for r in runners:
            text = row["cells"].get(r, {}).get("text") or (base.get(at, "") if r == "process" else "")
            workload = row["label"].split("/", 1)[1]
            why, said = (not_run.get(f"{r}/{workload}"), "not run") if not text else (None, "")
            if not text and not why:  # it ran and failed: its first error, in a line
                errors = df[(df["runner"] == r) & (df["workload"] == workload) & ~df["ok"]]["error"]
                why, said = (" ".join(str(errors.iloc[0]).split()) if len(errors) else None), "failed"
            if why:
                pairs = reasons.setdefault(why, [])
                pairs.append(f"{r}/{workload}")
                text = f"{said} ({chr(ord('a') + list(reasons).index(why))})"
            cells.append(text)
        lines.append(f"| {row['label']} {row['metric']} | " + " | ".join(REASON.sub(r" (\1)", INTERVAL.sub("", c)) for c in cells) + " |")
    notes = [f"({chr(ord('a') + i)}) {', '.join(dict.fromkeys(pairs))}: {clipped(why)}"
             for i, (why, pairs) in enumerate(reasons.items())]
    return "\n".join(lines) + "\n" + ("\n" + "\n".join(notes) + "\n" if notes else "")


def clipped(text: str, most: int = 150) -> str:
    """A reason as a note under a table: its first `most` characters (the run's meta.json has it all)."""
    return text if len(text) <= most else text[:most].rstrip() + "…"


def process_cells(df) -> dict[tuple[str, str], str]:
    """The plain process's own median per (suite/workload, metric), in its unit: the ratios' base."""
    from bench.analysis.views import fmt_number

    found = {}
    ok = df[df["ok"] & (df["runner"] == "process")]
    for (suite, workload, metric, unit), part in ok.groupby(["suite", "workload", "metric", "unit"], sort=False):
        found[(f"{suite}/{workload}", str(metric))] = f"{fmt_number(float(part['value'].median()))} {unit}"
    return found


def summary_block(fields: dict[str, str], runs: Path) -> str:
    """bench run's own summary table of one workload, as a fenced block."""
    from rich.console import Console

    from bench.analysis.views import print_summary

    run_id = fields["run"]
    kept(run_id, runs)  # print_summary and the transcript read the run themselves
    out = io.StringIO()
    print_summary(runs / run_id, Console(file=out, width=160, color_system=None, highlight=False))
    lines = cut(out.getvalue(), fields.get("workload"), fields.get("metrics"), fields.get("runners"))
    return "```\n" + "\n".join(lines) + "\n```\n"


def cut(text: str, workload: str | None, metrics: str | None, runners: str | None = None) -> list[str]:
    """The tables of one workload (all without it), and of them only the rows of the metrics and
    runners named; where rows of other metrics were cut, one line says which."""
    lines, keep, wanted, left_out = [], workload is None, set(metrics.split(",")) if metrics else None, []
    among = set(runners.split(",")) if runners else None
    for line in [*text.rstrip().splitlines(), ""]:
        row = re.match(r"^  (?!metric )([a-z]\w+) +(\S+)", line)
        if re.match(r"^\S+/\S+ {2}\(run ", line):
            keep = workload is None or line.startswith(f"{workload}  ")
        elif keep and wanted and row and row.group(1) not in wanted:
            left_out.append(row.group(1))
            continue
        elif keep and among and row and row.group(2) not in among:
            continue
        if left_out and not row:
            lines.append(f"  ... ({', '.join(dict.fromkeys(left_out))}: cut here, in the run)")
            left_out = []
        if keep:
            lines.append(line.rstrip())
    while lines and not lines[-1]:
        lines.pop()
    return lines


def compare_block(fields: dict[str, str], runs: Path) -> str:
    """`bench compare BASE NEW`'s table of verdicts (threshold 5%), as a fenced block."""
    from rich.console import Console

    from bench.analysis.compare import compare
    from bench.analysis.views import print_verdicts

    (base, _), (new, _) = load(fields["base"], runs), load(fields["new"], runs)
    out = io.StringIO()
    print_verdicts(compare(base, new, 0.05), Console(file=out, width=160, color_system=None, highlight=False))
    lines = [line.rstrip() for line in out.getvalue().rstrip().splitlines()]
    return "```\n$ bench compare " + f"{fields['base']} {fields['new']}\n" + "\n".join(lines) + "\n```\n"


def transcript_block(fields: dict[str, str], runs: Path) -> str:
    """A command's real output, kept beside its run, with the summary rows cut to the metrics kept."""
    run_id = fields["run"]
    kept(run_id, runs)  # print_summary and the transcript read the run themselves
    text = (runs / run_id / TRANSCRIPT).read_text()
    lines = cut(text, None, fields.get("keep"))
    return "```\n" + "\n".join(lines) + "\n```\n"


def regenerate(text: str, runs: Path = RUNS) -> str:
    return BLOCK.sub(lambda m: m.group(1) + render(m.group("spec"), runs) + m.group(4), text)


def stale(root: Path = ROOT, runs: Path = RUNS) -> list[str]:
    """The pages whose generated blocks differ from what their runs make now, each with the first block."""
    found = []
    for page in pages(root):
        text = page.read_text()
        for m in BLOCK.finditer(text):
            if m.group("body") != render(m.group("spec"), runs):
                found.append(f"{page.relative_to(root)}: <!-- generated: {m.group('spec')} --> differs from its runs")
                break
    return found


def cited(root: Path = ROOT) -> dict[str, list[str]]:
    """Every run id the pages name, with the pages naming it."""
    found: dict[str, list[str]] = {}
    for page in pages(root):
        for run_id in dict.fromkeys(RUN_ID.findall(page.read_text())):
            found.setdefault(run_id, []).append(str(page.relative_to(root)))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.analysis.docs", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a page differs from its runs")
    args = parser.parse_args(argv)
    try:
        if args.check:
            problems = stale() + [f"run {r} is cited by {', '.join(p)} but not kept under docs/runs/"
                                  for r, p in cited().items() if not (RUNS / r).is_dir()]
            for problem in problems:
                print(problem)
            return 1 if problems else 0
        for page in pages():
            text = page.read_text()
            new = regenerate(text)
            if new != text:
                page.write_text(new)
                print(f"rewrote {page.relative_to(ROOT)}")
        return 0
    except UsageError as exc:
        print(f"bench docs: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
