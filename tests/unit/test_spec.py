import pytest

from bench.errors import UsageError
from bench.spec import Envelope, parse_cpus, parse_size_mib, positive_int


@pytest.mark.parametrize("text, mib", [("512M", 512), ("1G", 1024), ("1g", 1024), ("65536K", 64),
                                       ("1GiB", 1024), ("2097152", 2), ("1.5G", 1536)])
def test_sizes(text, mib):
    assert parse_size_mib(text) == mib


@pytest.mark.parametrize("text", ["12XB", "", "M", "-1M", "100", "0M", "1 2M"])
def test_bad_sizes(text):
    with pytest.raises(UsageError):
        parse_size_mib(text)


@pytest.mark.parametrize("text", ["-1", "0", "nan", "inf", "two"])
def test_bad_cpus(text):
    with pytest.raises(UsageError):
        parse_cpus(text)


def test_cpus_and_counts():
    assert parse_cpus("0.5") == 0.5
    assert positive_int("3", "--repeat") == 3
    assert positive_int("0", "--warmup", minimum=0) == 0
    with pytest.raises(UsageError):
        positive_int("0", "--repeat")


def test_cpu_list_rounds_up_fractional_cpus():
    assert Envelope(cpus=0.5).cpu_list([0, 1]) == [0]
    assert Envelope(cpus=1.5).cpu_list([0, 1, 2]) == [0, 1]
    assert Envelope().cpu_list([0, 1]) is None
