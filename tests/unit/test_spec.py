import pytest

from bench.errors import UsageError
from bench.spec import Envelope, parse_cpus, parse_size_mib, positive_int


@pytest.mark.parametrize("text, mib", [("512M", 512), ("1G", 1024), ("1g", 1024), ("65536K", 64),
                                       ("1GiB", 1024), ("2097152", 2), ("1.5G", 1536)])
def test_sizes_in_k_m_g_t_become_mib(text, mib):
    assert parse_size_mib(text) == mib


@pytest.mark.parametrize("text", ["12XB", "", "M", "-1M", "100", "0M", "1 2M"])
def test_a_bad_size_is_a_usage_error(text):
    with pytest.raises(UsageError):
        parse_size_mib(text)


@pytest.mark.parametrize("text", ["-1", "0", "nan", "inf", "two"])
def test_bad_cpus(text):
    with pytest.raises(UsageError):
        parse_cpus(text)


def test_cpus_and_counts_are_parsed_and_checked():
    assert parse_cpus("0.5") == 0.5
    assert positive_int("3", "--repeat") == 3
    assert positive_int("0", "--warmup", minimum=0) == 0
    with pytest.raises(UsageError):
        positive_int("0", "--repeat")


def test_cpu_list_rounds_up_fractional_cpus():
    assert Envelope(cpus=0.5).cpu_list([0, 1]) == [0]
    assert Envelope(cpus=1.5).cpu_list([0, 1, 2]) == [0, 1]
    assert Envelope().cpu_list([0, 1]) is None


def test_the_envelope_takes_the_first_cpus_of_the_cpuset_and_a_quota_only_when_fractional(monkeypatch):
    import os

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    half = Envelope(cpus=0.5).resolved()
    assert half.cpuset == (3,) and half.quota_us() == 50_000 and half.cpuset_text() == "3"  # highest first
    two = Envelope(cpus=2, cpuset=(0, 2, 3)).resolved()
    assert two.cpuset == (0, 2) and two.quota_us() is None
    assert Envelope(cpuset=(1, 2)).resolved().cpus == 2  # --cpuset alone: all of them
    assert Envelope().resolved() == Envelope()
    with pytest.raises(UsageError, match="needs 3 CPUs; --cpuset gives 2"):
        Envelope(cpus=2.5, cpuset=(0, 1)).resolved()
    assert Envelope.from_dict({"cpus": 1.0, "memory_mib": None, "pids": None, "cpuset": [3]}) == Envelope(1.0, cpuset=(3,))


def test_a_cpuset_names_cpus_this_host_gives(monkeypatch):
    import os

    from bench.spec import parse_cpuset

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    assert parse_cpuset("3,0-1") == [3, 0, 1]
    for bad in ("7", "x", "1-", ""):
        with pytest.raises(UsageError, match="--cpuset"):
            parse_cpuset(bad)
