import json

import numpy as np
import pytest

from bench.cli import main
from bench.analysis.compare import compare, judge
from bench.spec import Sample
from bench.analysis.store import write_run

FAST = np.array([100.0, 101, 99, 100.5, 100.2])


def test_throughput_halved_is_a_regression():
    assert judge(FAST, FAST / 2, "ops/s", 0.05)[0] == "regression"
    assert judge(FAST, FAST * 2, "ops/s", 0.05)[0] == "improvement"


def test_slower_startup_is_a_regression():
    assert judge(FAST, FAST * 1.5, "ms", 0.05)[0] == "regression"
    assert judge(FAST, FAST * 0.5, "ms", 0.05)[0] == "improvement"


def test_same_distribution_is_no_change():
    assert judge(FAST, FAST[::-1] * 1.001, "ops/s", 0.05)[0] == "no change"


def test_run_to_run_drift_with_tight_runs_is_not_a_regression():
    # Real cpu_ops_s of one container, two runs with the same settings (20261126T155137Z, ...155158Z).
    base = np.array([1163.0, 1098, 1151, 1138, 1136])
    new = np.array([1105.0, 1077, 1000, 984, 956])
    verdict, p, low, high = judge(base, new, "ops/s", 0.05)
    assert p < 0.05 and verdict == "inconclusive"


def peaks(run, kib):
    import pandas as pd
    return pd.DataFrame([Sample("startup", "probe", "process", i, "mem_peak_mib", k / 1024, "MiB").to_dict() | {"run_id": run}
                         for i, k in enumerate(kib)])


def test_a_few_pages_of_peak_memory_are_not_a_regression_but_a_quarter_mib_is():
    # A whole run of the process probe at 576 KiB against its baseline's 548 KiB (CI, 2026-12-05):
    # every sample equal, so the interval has no width, and 5.1% cleared the 5% threshold.
    base = peaks("a", [548] * 20)
    (same,) = compare(base, peaks("b", [576] * 10), 0.05)
    assert same.verdict == "no change" and same.threshold == pytest.approx(128 / 548)
    (grown,) = compare(base, peaks("c", [548 + 256] * 10), 0.05)
    assert grown.verdict == "regression"
    big = lambda run, mib: peaks(run, [mib * 1024] * 10)  # noqa: E731
    (vm,) = compare(big("a", 200), big("b", 220), 0.05)  # a VM's 10% is far above a floor of 128 KiB
    assert vm.verdict == "regression" and vm.threshold == 0.05


def test_one_sample_is_inconclusive():
    assert judge(FAST[:1], FAST[:1] / 2, "ops/s", 0.05)[0] == "inconclusive"


def stored(tmp_path, name, values, unit="ops/s", host=None):
    samples = [Sample("throughput", "cpu", "container", i, "cpu_ops_s", v, unit).to_dict() for i, v in enumerate(values)]
    return write_run(tmp_path, name, samples, {"schema_version": 1, "run_id": name, "host": host or {}, "versions": {}})


def test_runs_from_two_hosts_are_refused_unless_cross_host(tmp_path, capsys):
    a = stored(tmp_path, "a", FAST, host={"hostname": "ci-1", "cpu_model": "Xeon", "cores": 2})
    b = stored(tmp_path, "b", FAST, host={"hostname": "laptop", "cpu_model": "Ryzen", "cores": 16})
    assert main(["compare", str(a), str(b)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "different hosts" in err and "--cross-host" in err
    assert main(["compare", str(a), str(b), "--cross-host"]) == 0


def test_compare_exits_1_on_a_regression_and_its_json_says_why(tmp_path, capsys):
    a, b = stored(tmp_path, "a", FAST), stored(tmp_path, "b", FAST / 2)
    assert main(["compare", str(a), str(b), "--json"]) == 1
    (verdict,) = json.loads(capsys.readouterr().out)
    assert verdict["verdict"] == "regression" and verdict["ratio"] == pytest.approx(0.5, rel=0.01)
    assert main(["compare", str(a), str(a)]) == 0


@pytest.mark.parametrize("break_it", ["missing", "corrupt", "threshold"])
def test_cli_bad_input_is_one_line_exit_2(tmp_path, capsys, break_it):
    a = stored(tmp_path, "a", FAST)
    other = str(tmp_path / "nope")
    args = ["compare", str(a), other]
    if break_it == "corrupt":
        b = stored(tmp_path, "b", FAST)
        (b / "samples.parquet").write_bytes(b"garbage")
        args = ["compare", str(a), str(b)]
    if break_it == "threshold":
        args = ["compare", str(a), str(a), "--threshold", "lots"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("bench: ")


def test_export_formats(tmp_path, capsys):
    a = stored(tmp_path, "a", FAST)
    assert main(["export", str(a), "--format", "csv"]) == 0
    csv = capsys.readouterr().out
    assert csv.splitlines()[0].startswith("run_id,suite,workload,runner") and len(csv.splitlines()) == 6
    assert main(["export", str(a), "--format", "json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["samples"]) == 5
    assert main(["export", str(a), "--format", "pytest-benchmark"]) == 0
    doc = json.loads(capsys.readouterr().out)
    (bench,) = doc["benchmarks"]
    assert bench["stats"]["rounds"] == 5 and bench["stats"]["median"] == pytest.approx(100.2)
    assert {"machine_info", "commit_info", "datetime", "version"} <= set(doc)


def test_the_pytest_benchmark_export_computes_every_field_and_its_compare_reads_it(tmp_path, capsys):
    import subprocess
    import sys
    from pathlib import Path

    values = [100.0, 101, 99, 100.5, 100.2, 130, 70, 100.1]  # two outliers beyond 1.5 IQR
    a, b = stored(tmp_path, "a", values), stored(tmp_path, "b", [v * 1.1 for v in values])
    for run in (a, b):
        main(["export", str(run), "--format", "pytest-benchmark"])
        (tmp_path / f"{run.name}.json").write_text(capsys.readouterr().out)
    stats = json.loads((tmp_path / "a.json").read_text())["benchmarks"][0]["stats"]
    assert stats["iqr_outliers"] == 2 and stats["outliers"] == f"{stats['stddev_outliers']};2"
    assert stats["ld15iqr"] == 99 and stats["hd15iqr"] == 101  # the extremes within 1.5 IQR, not min/max
    assert stats["q1"] < stats["median"] < stats["q3"] and stats["iqr"] == pytest.approx(stats["q3"] - stats["q1"])
    tool = Path(sys.executable).with_name("pytest-benchmark")
    out = subprocess.run([str(tool), "compare", str(tmp_path / "a.json"), str(tmp_path / "b.json")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "container[cpu_ops_s]" in out.stdout and "Traceback" not in out.stderr


def test_export_times_in_seconds_for_pytest_benchmark(tmp_path, capsys):
    a = stored(tmp_path, "a", [2.0, 4.0], unit="ms")
    main(["export", str(a), "--format", "pytest-benchmark"])
    stats = json.loads(capsys.readouterr().out)["benchmarks"][0]["stats"]
    assert stats["median"] == pytest.approx(0.003) and stats["data"] == pytest.approx([0.002, 0.004])
