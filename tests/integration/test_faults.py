"""Faults on purpose: signals, kills, hangs, crashes, a full disk, two runs at once. After each the
host must be as it was, and a run on disk must be whole (or marked incomplete), never half."""

import json
import os
import signal
import subprocess
import time

import pytest

from bench.analysis.store import load_run
from bench.workload import Workload
from tests.conftest import BENCH, ROOT, bench, domain_up, journalled, kill_run_then_clean, measure_in_process, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prepared_cache")]


def leftovers(results_dir) -> str:
    out = bench("clean", "--dry-run", "--results-dir", str(results_dir), timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def start_run(results_dir, runners, *extra):
    return subprocess.Popen([*BENCH, "run", "--suite", "startup", "--runners", runners, "--repeat", "500",
                             "--warmup", "0", "--results-dir", str(results_dir), "--no-report", *extra],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


@pytest.mark.parametrize("sig, runners", [
    (signal.SIGINT, "process,chroot,container"),  # Ctrl-C: the whole process group gets it
    (signal.SIGTERM, "process,container"),  # kill PID: bench alone
    (signal.SIGINT, "process,vm"),  # in the middle of a VM boot
    (signal.SIGINT, "process,bwrap,runc,docker"),  # peers
    (signal.SIGTERM, "process,gvisor"),  # a sandbox of runsc's: its Sentry and Gofer go too
    (signal.SIGINT, "process,uml"),  # a UML kernel and the guest processes it traces
    (signal.SIGINT, "process,microvm"),  # our kernel on the microvm machine
    (signal.SIGTERM, "process,vm-restore"),  # a restored QEMU, and the run's snapshot file
])
def test_a_signal_stops_the_run_keeps_its_samples_and_leaves_nothing(tmp_path, sig, runners):
    proc = start_run(tmp_path, runners)
    last = runners.split(",")[-1]
    wait_until(lambda: last in journalled(tmp_path) or proc.poll() is not None, f"a stored {last} sample")
    if last == "vm":  # its next boot
        wait_until(lambda: domain_up() or proc.poll() is not None, "the next VM to be up")
    assert proc.poll() is None, proc.communicate()
    sent = time.monotonic()
    if sig == signal.SIGINT:
        os.killpg(proc.pid, sig)
    else:
        proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    stopped_s = time.monotonic() - sent
    assert proc.returncode == 128 + sig, err
    assert stopped_s < 15, f"took {stopped_s:.1f} s to stop"
    df, meta = load_run((tmp_path / "latest").resolve())
    assert meta["incomplete"] is True and meta["interrupted_by"] == sig.name
    assert len(df) > 0 and df["ok"].all()
    assert set(df["runner"]) <= set(runners.split(","))
    assert leftovers(tmp_path) == "0 leftovers found"


def test_a_killed_worker_ends_the_run_in_one_line_and_keeps_its_samples(tmp_path):
    proc = start_run(tmp_path, "process,container")
    wait_until(lambda: "container" in journalled(tmp_path) or proc.poll() is not None, "a stored container sample")
    (worker,) = [int(c) for c in open(f"/proc/{proc.pid}/task/{proc.pid}/children").read().split()
                 if b"bench.worker" in open(f"/proc/{c}/cmdline", "rb").read()]
    os.kill(worker, signal.SIGKILL)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "Traceback" not in err, err
    assert "bench: the measuring worker died (killed by SIGKILL): " in out and "samples stored as an incomplete run" in out
    df, meta = load_run((tmp_path / "latest").resolve())
    assert meta["incomplete"] is True and meta["worker_died"] == "the measuring worker died (killed by SIGKILL)"
    assert len(df) > 0 and df["ok"].all()
    assert bench("clean", "--results-dir", str(tmp_path)).returncode == 0  # what the killed worker had up
    assert leftovers(tmp_path) == "0 leftovers found"


def test_sigkill_mid_throughput_in_a_container_and_a_vm_then_bench_clean(tmp_path):
    """Scratch dirs and disks, the bridge netns, the VM's tap, its domain: bench clean finds them all."""
    left = kill_run_then_clean(tmp_path, "container,vm", domain_up,
                               suite=("--suite", "throughput", "--workloads", "net,disk", "--repeat", "5"))
    assert left == "0 leftovers found"


def run_tool(factory, argv, timeout_s=30):
    return measure_in_process(factory, Workload(name="w", suite="throughput", argv=tuple(argv), description="",
                                                metrics=(("syscalls_s", "calls/s"),), parser="parse_bench_syscall",
                                                timeout_s=timeout_s))


def test_a_hanging_workload_is_killed_at_its_timeout(factory):
    started = time.monotonic()
    sample = run_tool(factory, ["/bin/sleep", "600"], timeout_s=2)
    assert not sample.ok and "still running after 2 s" in sample.error
    assert time.monotonic() - started < 10


def test_a_crashing_workload_is_ok_false_with_the_reason(factory):
    sample = run_tool(factory, ["/bin/sh", "-c", "echo about to crash; kill -SEGV $$"])
    assert not sample.ok and "exit code -11" in sample.error and "about to crash" in sample.error


def test_a_full_results_disk_is_a_clear_error_and_no_half_run(tmp_path):
    full = tmp_path / "full"
    full.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(full)], check=True)
    try:
        subprocess.run(["dd", "if=/dev/zero", f"of={full}/filler", "bs=4k"], capture_output=True)
        out = bench("run", "--suite", "startup", "--runners", "process", "--repeat", "3", "--results-dir",
                    str(full), "--no-report", timeout=120)
        assert out.returncode == 2  # the results dir is unusable: bad input, as a read-only one would be
        (line,) = out.stderr.strip().splitlines()
        assert line.startswith("bench: cannot write results to") and "No space left on device" in line
        assert sorted(p.name for p in full.iterdir()) == ["filler"]  # no run, no staging dir, no latest
    finally:
        subprocess.run(["umount", str(full)], check=True)


def test_two_runs_at_once_do_not_clobber_each_other_and_clean_waits(tmp_path):
    args = ("--suite", "startup", "--runners", "process,container", "--repeat", "150", "--results-dir", str(tmp_path),
            "--no-report")
    procs = [subprocess.Popen([*BENCH, "run", *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    wait_until(lambda: len(list(tmp_path.glob(".bench-tmp-*/samples.jsonl"))) == 2 or any(p.poll() is not None
                                                                                      for p in procs),
               "both runs to store a sample")
    assert all(p.poll() is None for p in procs), "the runs ended before bench clean could meet them"
    clean = bench("clean", timeout=60)
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs  # stdout has the failed samples' errors
    assert clean.returncode == 2 and "a bench run is in progress" in clean.stderr
    runs = sorted(p for p in tmp_path.iterdir() if p.is_dir() and not p.is_symlink())
    assert len(runs) == 2
    for run in runs:
        df, meta = load_run(run)
        assert df["ok"].all() and len(df) == 150 * 2 * 4 and not meta["incomplete"]
    assert leftovers(tmp_path) == "0 leftovers found"


def truncate(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])


def edit_meta(run, change):
    meta = json.loads((run / "meta.json").read_text())
    change(meta)
    (run / "meta.json").write_text(json.dumps(meta))


CORRUPT = {  # what a stored run can have suffered: how, and what the one line says
    "meta not json": (lambda run: (run / "meta.json").write_text("{not json"), "cannot read run"),
    "samples garbage": (lambda run: (run / "samples.parquet").write_bytes(b"PAR1 garbage"), "cannot read run"),
    "samples truncated": (lambda run: truncate(run / "samples.parquet"), "cannot read run"),
    "meta truncated": (lambda run: truncate(run / "meta.json"), "cannot read run"),
    "meta of another tool": (lambda run: (run / "meta.json").write_text(json.dumps({"hello": 1})), "not an isobench run"),
    "meta without host": (lambda run: edit_meta(run, lambda m: m.pop("host")), "meta.json lacks host"),
    "schema not a number": (lambda run: edit_meta(run, lambda m: m.update(schema_version="1")), "has schema '1';"),
    "newer schema": (lambda run: edit_meta(run, lambda m: m.update(schema_version=99)), "has schema 99; this isobench reads up to"),
}


@pytest.fixture(scope="module")
def good_runs(tmp_path_factory):
    results = tmp_path_factory.mktemp("good")
    for _ in range(2):
        out = bench("run", "--suite", "startup", "--runners", "process", "--repeat", "2", "--results-dir", str(results),
                    "--no-report")
        assert out.returncode == 0, out.stderr
    return sorted(p for p in results.iterdir() if p.is_dir() and not p.is_symlink())


def commands(run, other, tmp_path):
    """Every command that reads stored runs, each told to write only under tmp_path."""
    return {"report": ["report", run, "--out", tmp_path / "rep"], "compare": ["compare", other, run],
            "compare new": ["compare", run, other], "export": ["export", run, "--format", "csv"],
            "baseline": ["baseline", "update", run, "--baselines-dir", tmp_path / "baselines"]}


@pytest.mark.parametrize("case", list(CORRUPT))
def test_a_corrupt_run_given_to_any_command_is_one_line_exit_2_and_writes_nothing(tmp_path, good_runs, case):
    import shutil

    make_bad, message = CORRUPT[case]
    run = tmp_path / good_runs[0].name
    shutil.copytree(good_runs[0], run)
    make_bad(run)
    for name, argv in commands(run, good_runs[1], tmp_path).items():
        out = bench(*argv)
        assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, (name, out.stderr)
        assert message in out.stderr and out.stdout == "", (name, out.stdout, out.stderr)
    assert not (tmp_path / "rep").exists() and not (tmp_path / "baselines").exists()


def test_a_run_on_a_read_only_file_system_is_read_by_every_command(tmp_path, good_runs):
    """Root ignores file modes: only a read-only mount makes the run truly read-only."""
    import shutil

    ro = tmp_path / "ro"
    shutil.copytree(good_runs[0].parent, ro, symlinks=True)
    subprocess.run(["mount", "--bind", "-o", "ro", str(ro), str(ro)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(ro)], check=True)
        run = ro / good_runs[0].name
        assert subprocess.run(["touch", str(run / "x")], capture_output=True).returncode != 0
        for name, argv in commands(run, good_runs[1], tmp_path).items():
            out = bench(*argv)
            assert out.returncode in (0, 1) and out.stderr == "", (name, out.stderr)  # compare: 1 = a regression
    finally:
        subprocess.run(["umount", str(ro)], check=True)


@pytest.mark.parametrize("argv, message", [
    (["--option", "vm.kernel=/etc/passwd"], "is not a Linux kernel"),
    (["--option", "vm.kernal=/boot/vmlinuz"], "unknown option vm.kernal: it takes kernel, accel"),
    (["--option", "vm.default_cpus=two"], "bad --option vm.default_cpus='two': a whole number"),
    (["--results-dir", "/etc/passwd/results"], "is not a directory"),
])
def test_bad_input_found_late_is_still_one_line_exit_2_and_writes_nothing(tmp_path, argv, message):
    argv = [*argv] if "--results-dir" in argv else [*argv, "--results-dir", str(tmp_path / "r")]
    out = bench("run", "--suite", "startup", "--runners", "vm", "--repeat", "1", "--no-report", *argv, timeout=120)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert message in out.stderr
    assert not (tmp_path / "r").exists()


def test_a_metric_regex_that_never_matches_is_a_failed_sample_the_terminal_names(tmp_path):
    never = tmp_path / "never.toml"
    never.write_text('suite = "throughput"\nargv = ["/bin/sh", "-c", "echo hello"]\n'
                     'metrics = [{ name = "speed", unit = "1/s", regex = "speed (?P<value>[0-9]+)" }]\n')
    out = bench("run", "--workload-file", never, "--runners", "process", "--repeat", "2", "--warmup", "0",
                "--results-dir", tmp_path / "r", "--no-report")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "failed: process/never: speed: no match for /speed (?P<value>[0-9]+)/ in the output" in out.stdout
    df, _ = load_run((tmp_path / "r" / "latest").resolve())
    assert len(df) == 2 and not df["ok"].any() and df["error"].str.contains("no match").all()
