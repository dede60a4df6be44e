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
    ("process", ProcessRunner, {"x": "1"}, "unknown option process.x: it takes none"),
])
def test_a_bad_option_is_one_usage_error(runner, cls, raw, message):
    with pytest.raises(UsageError, match="^" + message.replace("(", r"\(").replace(".", r"\.")):
        convert(runner, cls, raw)


def test_declared_options_carry_type_default_and_help():
    by_name = {o["name"]: o for o in declared(VmRunner)}
    assert by_name["default_cpus"]["type"] == "int" and by_name["default_cpus"]["default"] == 1
    assert by_name["kernel"]["type"] == "str or none" and by_name["kernel"]["help"]
    assert declared(ProcessRunner) == []
