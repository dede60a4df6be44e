"""The pages say what their runs say: every table of medians or ratios in README.md and docs/ is
generated from a run kept under docs/runs/ (bench/analysis/docs.py), and a figure edited by hand
is found."""

import shutil

from bench.analysis import docs


def test_every_generated_table_is_what_its_kept_runs_make():
    assert docs.stale() == []


def test_every_run_the_pages_cite_is_kept():
    assert {run: pages for run, pages in docs.cited().items() if not (docs.RUNS / run).is_dir()} == {}


def test_the_pages_have_generated_tables_and_the_readme_its_headline_and_transcript():
    readme = (docs.ROOT / "README.md").read_text()
    kinds = [docs.parse_spec(m.group("spec"))[0] for m in docs.BLOCK.finditer(readme)]
    assert "headline" in kinds and "transcript" in kinds


def test_a_figure_edited_by_hand_is_found(tmp_path):
    shutil.copy(docs.ROOT / "README.md", tmp_path / "README.md")
    shutil.copytree(docs.ROOT / "docs", tmp_path / "docs", ignore=shutil.ignore_patterns("runs", "log"))
    assert docs.stale(tmp_path, docs.RUNS) == []
    text = (tmp_path / "README.md").read_text()
    block = next(b for b in docs.BLOCK.finditer(text) if docs.parse_spec(b.group("spec"))[0] == "headline")
    body = block.group("body")
    at = next(i for i, c in enumerate(body) if c.isdigit() and i > body.index("|", body.index("\n", body.index("---"))))
    edited = body[:at] + str((int(body[at]) + 1) % 10) + body[at + 1:]  # one digit of one number, changed
    (tmp_path / "README.md").write_text(text.replace(body, edited, 1))
    assert docs.stale(tmp_path, docs.RUNS) == [f"README.md: <!-- generated: {block.group('spec')} --> differs from its runs"]


def test_the_kept_runs_stay_under_5_mb():
    assert sum(f.stat().st_size for f in docs.RUNS.rglob("*") if f.is_file()) < 5 * 2**20


def test_a_kept_transcript_is_the_real_output_of_its_run():
    """Every row of a kept transcript's tables is what bench run prints from that run's samples
    (compared cell by cell: the terminal it was printed on may have had another width)."""
    import io

    from rich.console import Console

    from bench.analysis.views import print_summary

    transcripts = sorted(docs.RUNS.glob(f"*/{docs.TRANSCRIPT}"))
    assert transcripts
    for transcript in transcripts:
        out = io.StringIO()
        print_summary(transcript.parent, Console(file=out, width=160, color_system=None, highlight=False))
        text = transcript.read_text()
        printed = [line.split() for line in text[text.index("\n  metric "):].splitlines() if line.startswith("  ")]
        made = out.getvalue()
        rows = [line.split() for line in made[made.index("\n  metric "):].splitlines() if line.startswith("  ")]
        assert printed == rows[: len(printed)] and len(printed) == len(rows), transcript
