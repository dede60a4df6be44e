"""The lean-worker rule, checked on imports alone: the worker, every suite, the host plumbing and
every registered runner's modules load nothing that makes a fork expensive (see bench/worker.py).
The list is read from the folders and the bench.runners entry points, so a new suite, runner or
host module is held to the rule the day it is added."""

import importlib.metadata
import json
import pkgutil
import subprocess
import sys

from tests.conftest import FAT, ROOT


def loaded_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", f"{code}\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
                         cwd=ROOT, capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout))


def modules_in(folder: str) -> list[str]:
    """Every module of a package folder (bench/suites -> bench.suites.*), read from the tree."""
    package = folder.replace("/", ".")
    return [package] + [m.name for m in pkgutil.walk_packages([str(ROOT / folder)], f"{package}.")]


def registered_runner_modules() -> list[str]:
    """The module of every registered runner, and every module of a runner that is a package."""
    found = []
    for entry in importlib.metadata.entry_points(group="bench.runners"):
        module = entry.value.split(":")[0]
        path = ROOT / module.replace(".", "/")
        found += modules_in(module.replace(".", "/")) if path.is_dir() else [module]
    return sorted(set(found))


def test_the_lists_come_from_the_tree_and_the_registry():
    runners = registered_runner_modules()
    assert {"runners.gvisor", "runners.uml", "runners.oci", "runners.vm.console"} <= set(runners)
    assert "bench.suites.scale" in modules_in("bench/suites") and "bench.host.netlink" in modules_in("bench/host")


def test_the_worker_its_suites_the_host_plumbing_and_every_registered_runner_import_nothing_fat():
    modules = ["bench.worker", *modules_in("bench/suites"), *modules_in("bench/host"), *registered_runner_modules()]
    loaded = loaded_after("".join(f"import {m}\n" for m in modules))
    assert sorted(loaded & set(FAT)) == []


def test_the_parent_side_is_not_held_to_it():
    """The check above would see a fat import: the report's modules are fat."""
    assert {"pandas", "matplotlib"} <= loaded_after("import bench.analysis.report")
