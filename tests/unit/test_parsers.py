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


def test_fio_json(data_dir):
    from bench.parsers import parse_fio

    values = parse_fio((data_dir / "fio-randread-randwrite-seqread.json").read_text())
    assert values == pytest.approx({"disk_randread_iops": 15010.494753, "disk_randwrite_iops": 15332.833583,
                                    "disk_seq_read_mib_s": 1169847 / 1024}, rel=1e-6)


def test_fio_failures_are_errors(data_dir):
    import json

    from bench.parsers import parse_fio

    report = json.loads((data_dir / "fio-randread-randwrite-seqread.json").read_text())
    report["jobs"][1]["error"] = 22
    with pytest.raises(ValueError, match="fio job randwrite failed"):
        parse_fio(json.dumps(report))
    with pytest.raises(ValueError, match="no fio JSON"):
        parse_fio("fio: pid=12, err=22/file:filesetup.c:240, func=open, error=Invalid argument\n")


def test_net_rr_gives_the_mean_and_the_percentiles_then_iperf3s_rate(data_dir):
    from bench.parsers import parse_net

    values = parse_net((data_dir / "net-bench-rr-iperf3.txt").read_text())
    assert (values["net_rr_us"], values["net_rr_p50_us"], values["net_rr_p99_us"], values["net_rr_p999_us"]) == \
        (60.34, 66.29, 106.67, 170.29)
    assert values["net_gbit_s"] == pytest.approx(23863755819.035625 / 1e9)


def test_net_failures_are_errors(data_dir):
    from bench.parsers import parse_net

    refused = (data_dir / "iperf3-refused.json").read_text()
    with pytest.raises(ValueError, match="unable to connect"):
        parse_net("rr_us 60.34 transactions 16600 seconds 1.002 p50 66.29 p99 106.67 p999 170.29\n" + refused)
    with pytest.raises(ValueError, match="no rr_us line"):
        parse_net("connect: Connection refused\n")
    with pytest.raises(ValueError, match="no rr_us line with percentiles"):  # a bench-rr of before percentiles
        parse_net("rr_us 49.61 transactions 20200 seconds 1.002\n" + refused)


def test_sysbench_oltp_rate_and_percentiles(data_dir):
    """Real `sysbench oltp_read_write --percentile=95 --histogram=on run` output against MariaDB: the
    99th percentile is the histogram bucket where 99% of the 1,173 transactions are reached."""
    from bench.parsers import parse_sysbench

    found = parse_sysbench((data_dir / "sysbench-oltp-histogram.txt").read_text())
    assert found == {"mariadb_tps": 1169.17, "mariadb_p95_us": 5470.0, "mariadb_p99_us": 7430.0}
    with pytest.raises(ValueError, match="no sysbench"):
        parse_sysbench("FATAL: unable to connect to MySQL server")
