"""Runner options are declared once (Runner.Options), converted and checked in one place."""

import pytest

from bench.errors import UsageError
from bench.options import convert, declared
from runners.container import ContainerRunner
from runners.process import ProcessRunner
from runners.vm import VmRunner


def test_values_arrive_typed():
    assert convert("vm", VmRunner, {"default_cpus": "2", "kernel": "none", "accel": "tcg"}) == \
        {"default_cpus": 2, "kernel": None, "accel": "tcg"}
    assert convert("container", ContainerRunner, {"userns": "yes", "upper_size": "64M"}) == \
        {"userns": True, "upper_size": "64M"}


@pytest.mark.parametrize("runner, cls, raw, message", [
    ("vm", VmRunner, {"default_cpus": "two"}, "bad --option vm.default_cpus='two': a whole number"),
    ("vm", VmRunner, {"kernal": "/boot/vmlinuz"}, "unknown option vm.kernal: it takes kernel, accel,"),
    ("vm", VmRunner, {"accel": "hvf"}, "bad option for vm: accel must be auto, kvm or tcg"),
    ("container", ContainerRunner, {"userns": "maybe"}, "bad --option container.userns='maybe': true or false"),
    ("container", ContainerRunner, {"upper_size": "12XB"}, "bad option for container: bad size"),
    ("process", ProcessRunner, {"x": "1"}, "unknown option process.x: it takes cgroup"),
])
def test_a_bad_option_is_one_usage_error(runner, cls, raw, message):
    with pytest.raises(UsageError, match="^" + message.replace("(", r"\(").replace(".", r"\.")):
        convert(runner, cls, raw)


def test_declared_options_carry_type_default_and_help():
    by_name = {o["name"]: o for o in declared(VmRunner)}
    assert by_name["default_cpus"]["type"] == "int" and by_name["default_cpus"]["default"] == 1
    assert by_name["kernel"]["type"] == "str or none" and by_name["kernel"]["help"]
    assert [o["name"] for o in declared(ProcessRunner)] == ["cgroup"]
    from runners.bwrap import BwrapRunner
    from runners.docker import DockerRunner

    assert declared(BwrapRunner) == []  # a peer built on the process runner takes none of its options
    assert [o["name"] for o in declared(DockerRunner)] == ["network", "storage", "state_dir"]  # but its own


def test_a_variant_is_a_runner_with_options_of_its_own_beside_the_plain_one():
    from bench.run import choose_runners, runner_name, runner_options

    labels = choose_runners("process,container,container:seccomp=none:userns=true")
    assert labels == ["process", "container", "container:seccomp=none:userns=true"]
    assert runner_name(labels[2]) == "container"
    options = runner_options(labels, {"container": {"network": "none"}})
    assert options == {"container": {"network": "none"},
                       labels[2]: {"network": "none", "seccomp": "none", "userns": True}}


@pytest.mark.parametrize("arg, message", [
    ("container:seccomp", "bad runner variant 'container:seccomp'"),
    ("nope:x=1", "unknown runner 'nope:x=1'"),
])
def test_a_bad_variant_is_bad_usage(arg, message):
    from bench.run import choose_runners

    with pytest.raises(UsageError, match=message):
        choose_runners(arg)


def test_a_variant_option_is_checked_like_any_other():
    from bench.run import runner_options

    with pytest.raises(UsageError, match="bad option for container: seccomp must be default or none"):
        runner_options(["container:seccomp=strict"], {})


def test_a_runner_that_cannot_enforce_part_of_the_envelope_says_so():
    from bench.spec import Envelope
    from bench.analysis.views import unenforced
    from runners.base import Runner

    class Plain(Runner):  # a plugin that declares nothing
        name = "plain"

    assert unenforced(Plain.enforcement) == "not: cpuset (not enforced), cpu_quota (not enforced), memory (not enforced)"
    assert unenforced(ContainerRunner.enforcement) == "all enforced"
    assert ProcessRunner().enforced(Envelope(cpus=0.5, cpuset=(1,))) == {
        "cpuset": "CPU affinity (sched_setaffinity before posix_spawn)",
        "cpu_quota": "a cgroup of its own, CFS quota (no namespaces)"}


def test_docker_takes_the_bridge_only_where_a_workload_has_a_network_path():
    """auto: a start stays --network none (startup and scale figures stay comparable); a workload
    with host-side servers or a service gets the default bridge, its port published on the daemon
    namespace's own address, never 0.0.0.0."""
    from bench.spec import LaunchSpec
    from runners.docker import HOST_ADDRESS, DockerRunner

    plain = LaunchSpec("bench-x", ("/bin/true",), "/r")
    service = LaunchSpec("bench-x", ("/bin/true",), "/r", server=HOST_ADDRESS, publish=(10001,))
    auto, host, none = DockerRunner(), DockerRunner(network="host"), DockerRunner(network="none")
    assert auto.run_options(plain) == ["--network", "none"]
    assert auto.run_options(service) == ["--network", "bridge", f"--publish={HOST_ADDRESS}:10001:10001"]
    assert host.run_options(service) == ["--network", "host"]
    assert "server" in auto.provides and "server" not in none.provides
    assert (auto.listen_on, host.listen_on) == ("0.0.0.0", "127.0.0.1")
    with pytest.raises(ValueError, match="network must be"):
        DockerRunner(network="nat")
