"""The `bench` command line. Bad usage: one line on stderr and exit 2, never a traceback."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from bench.analysis.baseline import WINDOW
from bench.cache import cache_dir
from bench.errors import MeasurementError, UsageError
from bench.options import suite_flags, suite_values
from bench.spec import Envelope, parse_cpus, parse_cpuset, parse_size_mib, positive_int
from bench.suites import suites


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse prints usage over several lines; we print one
        raise UsageError(message)


def build_parser() -> Parser:
    from bench import __version__

    p = Parser(prog="bench", description="isobench: what does isolation cost?")
    p.add_argument("--version", action="version", version=f"isobench {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)
    for add in (add_run, add_exec, add_list, add_doctor, add_verify, add_report, add_compare, add_baseline, add_export,
                add_kernel, add_clean):
        add(sub)
    return p


def results_dir(parser, reports: bool = False, baselines: bool = False) -> None:
    """The folders a command reads or writes, the same flags everywhere."""
    parser.add_argument("--results-dir", default="results", type=Path)
    if reports:
        parser.add_argument("--reports-dir", default="reports", type=Path)
    if baselines:
        parser.add_argument("--baselines-dir", type=Path, help="default: <cache>/baselines")


def add_run(sub) -> None:
    r = sub.add_parser("run", help="measure suites in runners, store results, write a report")
    r.add_argument("--suite", help=f"{', '.join(suites())} or all (comma-separated); without it, the "
                                   "--workload-file ones")
    r.add_argument("--image", metavar="SRC", help="run in your image: a rootfs directory, a docker save or OCI "
                   "archive, or a local Docker image's name (our tools are added in a layer of their own)")
    r.add_argument("--workload-file", action="append", default=[], metavar="FILE", type=Path,
                   help="a workload of your own, as a TOML file (docs/workloads.md); repeatable")
    r.add_argument("--runners", help="comma-separated (default: every available runner)")
    r.add_argument("--workloads", help="comma-separated (default: every workload of the suite)")
    r.add_argument("--repeat", help="measured rounds per runner and workload, forced (default: until --precision)")
    r.add_argument("--precision", help="add rounds until every median's 95%% interval is within this many "
                                       "percent of it (default 5)")
    r.add_argument("--max-repeat", help="most rounds per runner with --precision (default: per suite and runner)")
    r.add_argument("--warmup", help="rounds run first and not stored (default: per suite)")
    r.add_argument("--cpus", help="CPUs per environment, e.g. 1 or 0.5 (a fractional N adds a CFS quota)")
    r.add_argument("--cpuset", help="the CPUs to take the first ceil(--cpus) from, e.g. 1 or 0-3 "
                                    "(default: every CPU, highest first); the same for every runner")
    r.add_argument("--memory", help="memory per environment, e.g. 512M")
    for flag in suite_flags(suites()):  # each suite's own options (Suite.Options)
        r.add_argument(flag["flag"], dest=flag["dest"], metavar=flag["field"].upper(),
                       help=f"{flag['suite']} suite: {flag['help']}")
    r.add_argument("--cache", default="warm", help="warm (default), or cold: sync and drop the page cache before "
                   "each sample of a startup-like suite")
    results_dir(r, reports=True)
    r.add_argument("--no-report", action="store_true")
    r.add_argument("--option", action="append", default=[], metavar="RUNNER.KEY=VALUE",
                   help="a runner option, e.g. container.network=none (repeatable)")


def add_exec(sub) -> None:
    x = sub.add_parser("exec", help="run one command in one fresh instance; its exit code is passed on")
    x.add_argument("--runner", required=True)
    for flag in ("--cpus", "--cpuset", "--memory", "--pids"):
        x.add_argument(flag)
    x.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="a runner option, e.g. network=none (repeatable)")
    x.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- CMD [ARG...]")


def add_list(sub) -> None:
    ls = sub.add_parser("list", help="suites, runners or workloads")
    ls.add_argument("what", nargs="?", default="all", choices=["suites", "runners", "workloads", "all"])
    ls.add_argument("--json", action="store_true")
    ls.add_argument("--workload-file", action="append", default=[], metavar="FILE", type=Path,
                    help="list the workloads of this file too (checks it); repeatable")


def add_doctor(sub) -> None:
    sub.add_parser("doctor", help="what this host can and cannot run, and why")


def add_verify(sub) -> None:
    v = sub.add_parser("verify", help="check the harness against independent tools here (exit 1 if off)")
    v.add_argument("--checks", help="comma-separated: startup, cpu, syscall, disk, net, container floor, bwrap")
    v.add_argument("--json", action="store_true")


def add_report(sub) -> None:
    rep = sub.add_parser("report", help="(re)build the HTML report of a stored run")
    rep.add_argument("runs", nargs="+", metavar="RUN")
    results_dir(rep)
    rep.add_argument("--baseline", metavar="RUN", help="compare the run against this one in its report")
    rep.add_argument("--out", type=Path, help="folder for the report (default: reports/<run_id>, "
                                              "or reports/history-<last run> for several runs)")


def add_compare(sub) -> None:
    cmp = sub.add_parser("compare", help="regressions between two stored runs (exit 1 if any)",
                         usage="bench compare BASE NEW | --baseline-of-host NEW [--threshold PCT] [--json]")
    cmp.add_argument("runs", nargs="+", metavar="RUN")
    cmp.add_argument("--baseline-of-host", action="store_true",
                     help="compare NEW against the baseline runs of the host it ran on (bench baseline)")
    cmp.add_argument("--threshold", default="5", help="smallest change that counts, in percent (default 5)")
    cmp.add_argument("--json", action="store_true")
    cmp.add_argument("--cross-host", action="store_true",
                     help="compare runs from different machines (refused without it, as pyperf does)")
    results_dir(cmp, baselines=True)


def add_baseline(sub) -> None:
    bl = sub.add_parser("baseline", help="rolling per-host baselines: the last good runs of each machine")
    blsub = bl.add_subparsers(dest="action", required=True, metavar="update|show")
    up = blsub.add_parser("update", help="add good runs to their host's baseline (the newest --window stay)")
    up.add_argument("runs", nargs="+", metavar="RUN")
    up.add_argument("--window", default=str(WINDOW), help=f"runs kept per host (default {WINDOW})")
    show = blsub.add_parser("show", help="the hosts with baselines and their runs")
    show.add_argument("--json", action="store_true")
    show.add_argument("--host-of", metavar="RUN", help="only the host this run came from (exit 1 if it has none)")
    for b in (up, show):
        results_dir(b, baselines=True)


def add_export(sub) -> None:
    ex = sub.add_parser("export", help="a stored run as csv, json or pytest-benchmark JSON")
    ex.add_argument("run", metavar="RUN")
    ex.add_argument("--format", required=True, choices=["csv", "json", "pytest-benchmark"])
    results_dir(ex)


def add_kernel(sub) -> None:
    k = sub.add_parser("kernel", help="the microvm guest kernel, built from Debian's source with our configuration")
    ksub = k.add_subparsers(dest="action", required=True, metavar="build")
    kb = ksub.add_parser("build", help="build it into the cache (once: again only when the source or config changes)")
    kb.add_argument("--force", action="store_true", help="build it again even if cached")


def add_clean(sub) -> None:
    c = sub.add_parser("clean", help="remove every leftover of ours from this host")
    c.add_argument("--dry-run", action="store_true")
    results_dir(c, reports=True)


def envelope_from(args) -> Envelope:
    """The envelope as given; its cpuset is --cpuset's candidates until the run resolves it."""
    pids, cpuset = getattr(args, "pids", None), getattr(args, "cpuset", None)
    return Envelope(cpus=parse_cpus(args.cpus) if args.cpus is not None else None,
                    memory_mib=parse_size_mib(args.memory) if args.memory is not None else None,
                    pids=positive_int(pids, "--pids") if pids is not None else None,
                    cpuset=tuple(parse_cpuset(cpuset)) if cpuset is not None else None)


def parse_options(items: list[str], scoped: bool) -> dict:
    """['container.network=none'] -> {'container': {'network': 'none'}} (scoped), or flat."""
    options: dict = {}
    for item in items:
        key, sep, value = item.partition("=")
        runner, dot, name = key.partition(".") if scoped else ("", ".", key)
        if not sep or not dot or not name:
            raise UsageError(f"bad --option {item!r}: use {'RUNNER.KEY' if scoped else 'KEY'}=VALUE")
        (options.setdefault(runner, {}) if scoped else options)[name] = value
    return options


def precision_from(args) -> dict:
    """--precision PCT and --max-repeat N as RunOptions fields; neither goes with --repeat."""
    found = {}
    if args.repeat is not None and (args.precision is not None or args.max_repeat is not None):
        raise UsageError("--repeat N forces N rounds: give it without --precision and --max-repeat")
    if args.precision is not None:
        try:
            pct = float(args.precision)
        except ValueError:
            raise UsageError(f"bad --precision {args.precision!r}: a percentage such as 5") from None
        if not 0 < pct < 100:
            raise UsageError(f"bad --precision {args.precision!r}: more than 0 and less than 100")
        found["precision"] = pct / 100
    if args.max_repeat is not None:
        found["max_repeat"] = positive_int(args.max_repeat, "--max-repeat")
    return found


def cache_state(text: str) -> str:
    """--cache warm|cold; cold needs root (it writes /proc/sys/vm/drop_caches)."""
    from bench.host.linux import DROP_CACHES

    if text not in ("warm", "cold"):
        raise UsageError(f"--cache {text!r}: warm or cold")
    if text == "cold" and not os.access(DROP_CACHES, os.W_OK):
        raise UsageError(f"--cache cold drops the page cache through {DROP_CACHES}, which needs root")
    return text


def cmd_run(args, console) -> int:
    from bench.run import RunOptions, run

    opts = RunOptions(
        suite=args.suite, runners=args.runners, workloads=args.workloads, workload_files=tuple(args.workload_file), image=args.image,
        repeat=positive_int(args.repeat, "--repeat") if args.repeat is not None else None,
        warmup=positive_int(args.warmup, "--warmup", minimum=0) if args.warmup is not None else None,
        envelope=envelope_from(args), results_dir=args.results_dir, reports_dir=args.reports_dir,
        report=not args.no_report, cache_dir=cache_dir(), options=parse_options(args.option, scoped=True),
        suite_options=suite_values(suites(), vars(args)), cache=cache_state(args.cache), **precision_from(args))
    started = time.monotonic()
    code, run_dir = run(opts, console)
    if run_dir is None:
        return code
    from bench.analysis.views import print_summary

    print_summary(run_dir, console)
    console.print(f"results: {run_dir.resolve()}", soft_wrap=True)
    if code >= 128:  # interrupted: stop now; `bench report RUN` makes its report later
        return code
    if opts.report:
        from bench.analysis.report import render_report

        console.print(f"report:  {render_report(run_dir, args.reports_dir.resolve() / run_dir.name)}", soft_wrap=True)
    console.print(f"took:    {time.monotonic() - started:.0f} s")
    return code


def cmd_exec(args, console) -> int:
    from bench.execute import execute

    command = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    return execute(args.runner, command, envelope_from(args).resolved(), parse_options(args.option, scoped=False),
                   cache_dir())


def cmd_list(args, console) -> int:
    from bench.analysis.views import listing

    data = listing(args.what, str(cache_dir()), args.workload_file)
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        from bench.analysis.views import print_listing

        print_listing(data, console)
    return 0


def cmd_doctor(args, console) -> int:
    from bench.analysis.views import print_checks
    from bench.checks.doctor import checks

    print_checks(checks(str(cache_dir())), console)
    return 0


def cmd_verify(args, console) -> int:
    from bench.analysis.views import print_verify
    from bench.checks.verify import record, verify

    only = [c.strip() for c in args.checks.split(",")] if args.checks else None
    verdicts = verify(cache_dir(), only)
    record(cache_dir(), verdicts)
    if args.json:
        from dataclasses import asdict

        print(json.dumps([asdict(v) for v in verdicts], indent=1))
    else:
        print_verify(verdicts, console)
    return 0 if all(v.ok for v in verdicts) else 1


def cmd_report(args, console) -> int:
    from bench.analysis.report import render_report
    from bench.analysis.store import resolve_run

    run_dirs = [resolve_run(arg, args.results_dir) for arg in args.runs]
    if len(run_dirs) > 1 and several_hosts(run_dirs):
        from bench.analysis.report import render_hosts

        out = args.out or Path("reports") / f"hosts-{run_dirs[-1].name}"
        console.print(f"report: {render_hosts(run_dirs, out)}", soft_wrap=True)
        return 0
    if len(run_dirs) > 1:
        from bench.analysis.report import render_history

        out = args.out or Path("reports") / f"history-{run_dirs[-1].name}"
        console.print(f"history: {render_history(run_dirs, out)}", soft_wrap=True)
        return 0
    baseline = resolve_run(args.baseline, args.results_dir) if args.baseline else None
    out = args.out or Path("reports") / run_dirs[0].name
    console.print(f"report: {render_report(run_dirs[0], out, baseline)}", soft_wrap=True)
    return 0


def several_hosts(run_dirs: list[Path]) -> bool:
    from bench.analysis.baseline import host_key
    from bench.analysis.store import load_meta

    return len({host_key(load_meta(d).get("host", {})) for d in run_dirs}) > 1


def cmd_compare(args, console) -> int:
    from bench.analysis.compare import as_json, compare
    from bench.analysis.store import load_run, resolve_run
    from bench.analysis.views import print_verdicts

    try:
        threshold = float(args.threshold) / 100
    except ValueError:
        raise UsageError(f"bad --threshold {args.threshold!r}: a percentage such as 5") from None
    if not 0 <= threshold < 1:
        raise UsageError(f"bad --threshold {args.threshold!r}: from 0 to 100")
    if args.baseline_of_host:
        from bench.analysis.baseline import baseline_of

        if len(args.runs) != 1:
            raise UsageError("--baseline-of-host takes one run: the new one")
        new, meta = load_run(resolve_run(args.runs[0], args.results_dir))
        key, base, learned = baseline_of(baselines_dir(args), meta)
        what = f"the baseline of host {key}"
    else:
        if len(args.runs) != 2:
            raise UsageError("compare takes two runs, BASE and NEW (or --baseline-of-host NEW)")
        base, base_meta = load_run(resolve_run(args.runs[0], args.results_dir))
        new, new_meta = load_run(resolve_run(args.runs[1], args.results_dir))
        what, learned = "the two runs", None
        if not args.cross_host:
            refuse_other_hosts(base_meta, new_meta)
    verdicts = compare(base, new, threshold, learned)
    if not verdicts:
        raise UsageError(f"{what} and the new run have no (suite, workload, runner, metric) in common")
    if args.json:
        print(json.dumps(as_json(verdicts), indent=1))
    else:
        print_verdicts(verdicts, console)
    return 1 if any(v.verdict == "regression" for v in verdicts) else 0


def refuse_other_hosts(base_meta: dict, new_meta: dict) -> None:
    """Two machines differ in more than isolation: their ratios say nothing about a change."""
    from bench.analysis.baseline import host_key

    keys = [host_key(m.get("host", {})) for m in (base_meta, new_meta)]
    if keys[0] != keys[1]:
        raise UsageError(f"the runs come from different hosts ({keys[0]} and {keys[1]}): "
                         "give --cross-host to compare them anyway")


def baselines_dir(args) -> Path:
    return args.baselines_dir or cache_dir() / "baselines"


def cmd_baseline(args, console) -> int:
    from bench.analysis import baseline
    from bench.analysis.store import resolve_run

    store = baselines_dir(args)
    if args.action == "update":
        window = positive_int(args.window, "--window")
        run_dirs = [resolve_run(arg, args.results_dir) for arg in args.runs]  # all checked before any is added
        for run_dir in run_dirs:
            key, kept = baseline.update(store, run_dir, window)
            console.print(f"baseline of {key}: {', '.join(kept)}", soft_wrap=True)
        return 0
    found = {key: [r.name for r in runs] for key, runs in baseline.hosts(store).items()}
    if args.host_of:
        from bench.analysis.store import load_meta

        key = baseline.host_key(load_meta(resolve_run(args.host_of, args.results_dir)).get("host", {}))
        found = {key: found[key]} if found.get(key) else {}
        if not found:
            console.print(f"no baseline for host {key} in {store}")
            return 1
    if args.json:
        print(json.dumps(found, indent=1))
    elif not found:
        console.print(f"no baselines in {store}")
    for key, runs in ([] if args.json else found.items()):
        console.print(f"{key}: {len(runs)} run{'s' if len(runs) != 1 else ''}: {', '.join(runs)}", soft_wrap=True)
    return 0


def cmd_export(args, console) -> int:
    from bench.analysis.export import FORMATS
    from bench.analysis.store import load_run, resolve_run

    df, meta = load_run(resolve_run(args.run, args.results_dir))
    sys.stdout.write(FORMATS[args.format](df, meta))
    return 0


def cmd_kernel(args, console) -> int:
    from bench.images import kernel as kernels

    cached = kernels.microvm_build_info(cache_dir()) if kernels.MICROVM_SOURCE.exists() else None
    if cached and not args.force:
        console.print(f"microvm kernel: cached (built in {cached['seconds']:.0f} s, vmlinux {cached['vmlinux_mib']} MiB): "
                      f"{kernels.microvm(cache_dir()).vmlinux}  (--force builds it again)", soft_wrap=True)
        return 0
    kernels.microvm(cache_dir(), say=lambda text: console.print(text, soft_wrap=True), force=args.force)
    return 0


def cmd_clean(args, console) -> int:
    from bench.checks.clean import residues, run_lock

    lock = run_lock(exclusive=True)  # never while a run is going: its resources are not leftovers
    try:
        found = residues(args.results_dir, args.reports_dir, cache_dir())
    except BaseException:
        os.close(lock)
        raise
    for residue in found:
        console.print(f"{'would remove' if args.dry_run else 'removing'} {residue.kind} {residue.name}")
        if not args.dry_run:
            residue.remove()
    os.close(lock)
    console.print(f"{len(found)} leftovers {'found' if args.dry_run else 'removed'}")
    return 0


COMMANDS = {"run": cmd_run, "exec": cmd_exec, "verify": cmd_verify, "compare": cmd_compare, "baseline": cmd_baseline, "export": cmd_export, "list": cmd_list, "doctor": cmd_doctor, "report": cmd_report, "clean": cmd_clean,
            "kernel": cmd_kernel}


def main(argv: list[str] | None = None) -> int:
    from rich.console import Console

    # A pipe or a log file gets 120 columns rather than rich's 80, so that tables are not cut.
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 120)
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args, console)
    except UsageError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    except MeasurementError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `bench list --json | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
