import pytest

from bench.parsers import parse_stress_ng


def test_stress_ng_metrics_brief(data_dir):
    (row,) = parse_stress_ng((data_dir / "stress-ng_cpu_metrics-brief.txt").read_text())
    assert row.stressor == "cpu" and row.bogo_ops == 3164
    assert row.real_s == 2.0 and row.bogo_ops_per_s == 1581.61


def test_stress_ng_garbage_is_an_error():
    with pytest.raises(ValueError, match="no stress-ng metrics"):
        parse_stress_ng("stress-ng: error: [1] No stress workers invoked\n")


def test_stream_rate_is_read_plus_write(data_dir):
    from bench.parsers import parse_stream

    text = (data_dir / "stress-ng_stream_metrics-brief.txt").read_text()
    assert parse_stream(text) == pytest.approx(8972.63 + 5981.75)
    with pytest.raises(ValueError, match="no stream memory rate"):
        parse_stream("stress-ng: info: [1] stream: run duration too short to determine memory rate\n")


def test_fork_rate(data_dir):
    from bench.parsers import parse_stress_ng_rate

    rate = parse_stress_ng_rate((data_dir / "stress-ng_fork_metrics-brief.txt").read_text())
    assert 100 < rate < 1_000_000


def test_bench_syscall(data_dir):
    from bench.parsers import parse_bench_syscall

    assert parse_bench_syscall((data_dir / "bench-syscall_output.txt").read_text()) == 5811570
    with pytest.raises(ValueError):
        parse_bench_syscall("Segmentation fault\n")


def test_vm_console_output_parses_too():
    """A guest's console turns \\n into \\r\\n; the parsers must not care."""
    from bench.parsers import parse_bench_syscall, parse_stress_ng_rate

    line = "stress-ng: metrc: [7] cpu                3164      2.00      2.00      0.00      1581.61        1581.60\r\n"
    assert parse_stress_ng_rate(line) == 1581.61
    assert parse_bench_syscall("syscalls_per_s 123\r\n") == 123
