"""A real `bench run` as root, and the chroot's view of the filesystem."""

import os
import subprocess
from pathlib import Path

import pytest

from bench.analysis.store import COLUMNS, load_run
from runners.chroot import ChrootRunner
from runners.process import ProcessRunner
from tests.conftest import BENCH, ROOT, bench

pytestmark = pytest.mark.integration


def test_bench_run_startup_process_chroot(tmp_path):
    out = bench("run", "--suite", "startup", "--runners", "process,chroot", "--repeat", "3", "--results-dir",
                str(tmp_path / "results"), "--reports-dir", str(tmp_path / "reports"), timeout=300)
    assert out.returncode == 0, out.stderr
    run_dir = (tmp_path / "results" / "latest").resolve()
    df, meta = load_run(run_dir)
    assert list(df.columns) == COLUMNS and df["ok"].all()
    counts = df.groupby(["runner", "metric"])["iteration"].nunique()
    assert len(counts) == 8 and (counts == 3).all()
    medians = df.groupby(["runner", "metric"])["value"].median()
    assert 0 < medians["process", "ready_ms"] <= medians["process", "exit_ms"] < 1000
    assert 0.05 < medians["process", "mem_peak_mib"] < 5  # the probe's own pages, not the launcher's
    assert meta["runners"]["process"]["mem_peak"].startswith("taskstats" if own_pid_ns_is_first() else "memory cgroup peak")
    assert meta["host"]["cores"] >= 1 and meta["versions"]["stress-ng"]
    report = tmp_path / "reports" / run_dir.name
    assert str(report / "index.html") in out.stdout
    images = sorted(p.name for p in report.glob("*.png"))
    expected = {f"startup-probe-{m}.png" for m in ("ready_ms", "exit_ms", "teardown_ms", "mem_peak_mib", "phases", "mem_peak")}
    assert set(images) == expected | {"ladder.png"}
    html = (report / "index.html").read_text()
    assert all(name in html for name in images)
    assert html.index("ladder.png") < html.index("<table")  # the first thing after the warnings
    assert html.count("<figcaption>") == len(images)  # every figure says how to read it


def own_pid_ns_is_first() -> bool:
    """Whether this test runs in the host's first pid namespace (taskstats works only there). Its
    pid 1 is then the host's init, not a namespace's own: a pid namespace's pid 1 has ppid 0 and so
    has the host's; the difference is the kernel threads, which only the first namespace sees."""
    return os.path.exists("/proc/2/comm") and open("/proc/2/comm").read().strip() == "kthreadd"


def test_a_startup_run_inside_a_pid_namespace_exits_0_and_says_how_it_read_mem_peak(tmp_path):
    """A CI job in a container: the kernel refuses taskstats there, so the peak comes from a memory
    cgroup the workload starts in."""
    out = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", *BENCH, "run", "--suite", "startup",
                          "--runners", "process,chroot,container", "--repeat", "3",
                          "--results-dir", str(tmp_path), "--no-report"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr + out.stdout
    df, meta = load_run((tmp_path / "latest").resolve())
    assert df["ok"].all() and set(df["runner"]) == {"process", "chroot", "container"}
    assert meta["runners"]["process"]["mem_peak"].startswith("memory cgroup peak (taskstats unavailable here")
    peak = df[(df["runner"] == "process") & (df["metric"] == "mem_peak_mib")]["value"].median()
    assert 0.05 < peak < 5  # the probe's own pages, not the worker's


def test_chroot_cannot_see_host_files(factory, image, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("token-4f9c2a")
    code, out, _ = factory.run(factory.runner(ChrootRunner),
                               f"ls /; cat {secret} /etc/os-release; cd ../../..; ls; echo END")
    assert out.strip().endswith("END")
    listing = sorted(p.name for p in image.rootfs.iterdir())
    shown = out.split()
    assert all(name in shown for name in listing)
    assert "home" not in shown and "boot" not in shown
    assert f"can't open '{secret}'" in out and "token-4f9c2a" not in out
    assert "PRETTY_NAME" not in out  # the host's /etc/os-release is not the jail's


def test_process_tree_peak_memory_includes_grandchildren(factory):
    instance = factory.launch(factory.runner(ProcessRunner), ["/usr/bin/stress-ng", "--vm", "1", "--vm-bytes", "64M",
                                                              "--vm-keep", "--timeout", "1s", "--quiet"])
    assert instance.wait_exit(60) == 0, instance.output
    peak = instance.mem_peak_mib()
    assert 60 < peak < 200  # the vm stressor is a grandchild of the spawned stress-ng


def test_affinity_envelope_applies_to_process_and_chroot(factory):
    from bench.spec import Envelope

    for cls in (ProcessRunner, ChrootRunner):
        runner = factory.runner(cls)
        code, text, _ = factory.run(runner, "grep Cpus_allowed_list /proc/self/status || taskset -p $$", Envelope(cpus=1))
        assert "Cpus_allowed_list:\t0\n" in text or "mask: 1" in text, (runner.name, text)


def test_bench_verify_prints_its_table_and_records_its_verdict(tmp_path):
    """Whether the checks pass is the benchmark's word on this host (shared machines are noisy);
    the test checks that they ran, said so, and left the verdict for the next run's meta.json."""
    import json

    out = bench("verify", "--checks", "cpu,syscall", "--json", timeout=300)
    assert out.returncode in (0, 1), out.stderr
    verdicts = json.loads(out.stdout)
    assert [v["check"] for v in verdicts] == ["cpu", "syscall"]
    assert all(v["ours_median"] > 0 and v["direct_median"] > 0 for v in verdicts)
    assert out.returncode == (0 if all(v["ok"] for v in verdicts) else 1)
    run = bench("run", "--suite", "startup", "--runners", "process", "--repeat", "2", "--results-dir",
                str(tmp_path), "--no-report")
    assert run.returncode == 0, run.stderr
    _, meta = load_run((tmp_path / "latest").resolve())
    assert meta["verify"]["ok"] == (out.returncode == 0)


def test_the_real_image_is_complete_and_built_once(image):
    from bench.images.image import build_image

    root = image.rootfs
    for rel in ("bin/busybox", "bin/sh", "bin/bench-probe", "usr/bin/stress-ng", "usr/bin/fio",
                "usr/bin/iperf3", "lib64/ld-linux-x86-64.so.2", "lib/x86_64-linux-gnu/libc.so.6"):
        assert (root / rel).exists(), rel
    again = build_image(root.parent.parent.parent)
    assert again.rootfs == root and again.digest == image.digest


def test_doctor_checks_the_host_and_every_runner(capsys):
    from bench.cli import main

    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "cgroups" in out and "runner process" in out and "vm: libvirt start" in out


def test_cold_starts_drop_the_page_cache_before_each_sample_and_say_so(tmp_path):
    """--cache cold: every sample of the startup suite begins with a dropped page cache; meta.json and
    the report's first lines say so. The drop is seen on a file read into the cache before the run
    (on disk, in /var/tmp): fincore finds none of its pages cached afterwards."""
    import tempfile

    fd, sentinel = tempfile.mkstemp(prefix="isobench-sentinel-", dir="/var/tmp")
    try:
        os.write(fd, os.urandom(4 << 20))
        os.close(fd)
        cached = lambda: int(subprocess.run(["fincore", "--bytes", "--noheadings", "--output", "RES", sentinel],  # noqa: E731
                                            capture_output=True, text=True, check=True).stdout)
        Path(sentinel).read_bytes()
        assert cached() == 4 << 20
        out = bench("run", "--suite", "startup", "--runners", "process,container", "--repeat", "2", "--cache", "cold",
                    "--results-dir", tmp_path / "r", "--reports-dir", tmp_path / "reports", timeout=300)
        assert out.returncode == 0, out.stderr
        assert cached() == 0
    finally:
        os.unlink(sentinel)
    df, meta = load_run((tmp_path / "r" / "latest").resolve())
    assert df["ok"].all()
    assert meta["cache"] == {"state": "cold", "dropped_before": ["startup"]}
    html = (tmp_path / "reports" / meta["run_id"] / "index.html").read_text()
    assert "cold starts: the page cache was synced and dropped" in html
