"""The lean-worker rule, checked on imports alone: the worker, every suite and every built-in runner
module load nothing that makes a fork expensive (see bench/worker.py)."""

import json
import subprocess
import sys

from tests.conftest import FAT, ROOT


def loaded_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", f"{code}\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
                         cwd=ROOT, capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout))


def test_the_worker_its_suites_and_the_built_in_runners_import_nothing_fat():
    runners = ("process", "chroot", "container", "vm", "qemu", "microvm", "restore", "bwrap", "oci", "docker", "podman", "lxc",
               "nspawn")
    loaded = loaded_after("import bench.worker\nfrom bench.suites import suites\nsuites()\n"
                          + "".join(f"import runners.{r}\n" for r in runners))
    assert sorted(loaded & set(FAT)) == []


def test_the_parent_side_is_not_held_to_it():
    """The check above would see a fat import: the report's modules are fat."""
    assert {"pandas", "matplotlib"} <= loaded_after("import bench.report")
