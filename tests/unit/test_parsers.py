import pytest

from bench.parsers import parse_stress_ng


def test_stress_ng_metrics_brief(data_dir):
    (row,) = parse_stress_ng((data_dir / "stress-ng_cpu_metrics-brief.txt").read_text())
    assert row.stressor == "cpu" and row.bogo_ops == 3164
    assert row.real_s == 2.0 and row.bogo_ops_per_s == 1581.61


def test_stress_ng_garbage_is_an_error():
    with pytest.raises(ValueError, match="no stress-ng metrics"):
        parse_stress_ng("stress-ng: error: [1] No stress workers invoked\n")
