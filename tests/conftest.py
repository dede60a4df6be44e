import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).parent / "data"
BENCH = [sys.executable, "-m", "bench.cli"]
# Where a failing test leaves its evidence (Evidence.save); artifacts/ is git-ignored.
ARTIFACTS = Path(os.environ.get("ISOBENCH_ARTIFACTS", ROOT / "artifacts"))
# What the lean worker must never import: each makes every fork from it dearer (bench/worker.py).
FAT = ("pandas", "numpy", "matplotlib", "rich", "scipy", "jinja2", "psutil", "pyarrow", "subprocess",
       "threading", "importlib.metadata")


class Evidence:
    """What a failing test leaves for a person to read, as Firecracker's fixtures save a failed
    microVM's logs: every bench command it ran with its output, every instance's output (a VM's
    console), and the journal and meta.json of every results dir a command wrote to. Saved under
    artifacts/<test>/ only when the test failed."""

    def __init__(self) -> None:
        self.commands: list[tuple[list[str], int | None, str, str]] = []
        self.instances: list[tuple[str, object]] = []
        self.results_dirs: list[Path] = []

    def command(self, argv: list[str], code: int | None, out: str, err: str) -> None:
        self.commands.append((argv, code, out, err))
        if "--results-dir" in argv[:-1]:
            self.results_dirs.append(Path(argv[argv.index("--results-dir") + 1]))

    def save(self, where: Path) -> Path:
        shutil.rmtree(where, ignore_errors=True)
        where.mkdir(parents=True)
        if self.commands:
            (where / "commands.log").write_text("".join(
                f"$ bench {' '.join(argv)}\nexit code {code}\n--- stdout\n{out}\n--- stderr\n{err}\n\n"
                for argv, code, out, err in self.commands))
        for i, (name, instance) in enumerate(self.instances, 1):
            text = instance.console_text(instance.output).decode(errors="replace")
            (where / f"instance-{i}-{name}.log").write_text(text)
        for results in dict.fromkeys(self.results_dirs):
            for found in [*results.glob(".bench-tmp-*/samples.jsonl"), *results.glob(".bench-tmp-*/meta.head.json"),
                          *results.glob("*/meta.json")]:
                if found.parent.is_symlink():  # results/latest: the same run again
                    continue
                target = where / "results" / found.relative_to(results)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(found, target)
        return where


_evidence: Evidence | None = None  # the running test's (the evidence fixture), None outside a test
FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.failed:
        item.stash[FAILED] = True
    return report


@pytest.fixture(autouse=True)
def evidence(request):
    """Every test's Evidence; a failed test's is saved to artifacts/<test id>/ and named in its output."""
    global _evidence
    _evidence = Evidence()
    try:
        yield _evidence
    finally:
        kept, _evidence = _evidence, None
        if request.node.stash.get(FAILED, False):
            where = kept.save(ARTIFACTS / re.sub(r"[^\w.-]+", "_", request.node.nodeid).strip("_"))
            print(f"\nevidence of the failure: {where}")


def bench(*args, cwd=ROOT, timeout: float = 600, check: bool = False, **kw) -> subprocess.CompletedProcess:
    """`bench ARGS...` as a user runs it, from the checkout, its output captured as text (and kept as
    the test's evidence). The one way tests run the CLI; env=, input= pass through to subprocess.run."""
    argv = list(map(str, args))
    out = subprocess.run([*BENCH, *argv], cwd=cwd, capture_output=True, text=True, timeout=timeout, **kw)
    if _evidence is not None:
        _evidence.command(argv, out.returncode, out.stdout, out.stderr)
    if check:
        out.check_returncode()
    return out


@pytest.fixture
def data_dir() -> Path:
    return DATA


def pytest_collection_modifyitems(config, items):
    """Integration tests need root; without it they are skipped, with the reason printed (-ra)."""
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="integration test: needs root (namespaces, chroot, taskstats)")
    for item in items:
        if "integration" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def image(tmp_path_factory):
    """The real guest image, built once per test session into a private cache."""
    if shutil.which("busybox") is None or shutil.which("stress-ng") is None:
        pytest.fail("setup is incomplete: run `make setup` (busybox-static, stress-ng, fio, iperf3, gcc)")
    from bench.images.image import build_image

    return build_image(tmp_path_factory.mktemp("cache"))


class RunnerFactory:
    """Runners and their instances for one test (Firecracker's MicroVMFactory): every instance it
    launched and every runner it made is torn down when the test ends, failed or not. Teardown and
    close are idempotent, so a test may tear an instance down itself to look at what is left."""

    def __init__(self, image) -> None:
        self.image, self.runners, self.instances = image, [], []

    def runner(self, cls, **options):
        """cls(**options), prepared as `bench run` prepares it (into the image's cache)."""
        runner = cls(**options)
        self.runners.append(runner)
        runner.prepare(str(self.image.rootfs), self.image.digest, str(self.image.rootfs.parents[2]))
        return runner

    def launch(self, runner, argv, envelope=None, name="bench-test-c", marker=None, **spec):
        from bench.spec import Envelope, LaunchSpec

        instance = runner.launch(LaunchSpec(name, tuple(argv), str(self.image.rootfs), self.image.host_paths,
                                            envelope or Envelope(), marker=marker, **spec))
        self.instances.append(instance)
        if _evidence is not None:
            _evidence.instances.append((name, instance))
        return instance

    def run(self, runner, script: str, envelope=None, timeout_s: float = 60, **spec):
        """`sh -c script` to its end: (exit code, output as text, the instance, already torn down)."""
        instance = self.launch(runner, ["/bin/sh", "-c", script], envelope, **spec)
        code = instance.wait_exit(timeout_s)
        instance.teardown()
        return code, instance.output.decode(), instance

    def close(self) -> None:
        for instance in reversed(self.instances):
            instance.teardown()
        for runner in reversed(self.runners):
            runner.close()


@pytest.fixture
def factory(image):
    made = RunnerFactory(image)
    try:
        yield made
    finally:
        made.close()


def measure_in_process(factory, workload):
    """One throughput sample of workload as a plain process, through the suite's own measure."""
    from bench.spec import Envelope, LaunchSpec
    from bench.suites.throughput import measure
    from runners.process import ProcessRunner

    spec = LaunchSpec(f"bench-test-{workload.name}", workload.argv, str(factory.image.rootfs),
                      factory.image.host_paths, Envelope(), None, timeout_s=workload.timeout_s)
    (sample,) = measure(factory.runner(ProcessRunner), spec, workload, 0)
    return sample


@pytest.fixture(scope="session", autouse=True)
def host_left_clean():
    """After the whole suite, nothing of ours may remain on the host: cgroups, netns, links, mounts, dirs."""
    yield
    if os.geteuid() != 0:
        return
    from bench.checks.clean import host_residues, runner_residues
    from bench.cache import cache_dir

    left = [r.residue for r in [*runner_residues(cache_dir()), *host_residues()]]
    assert not left, f"the test suite left residue on the host: {left}"


@pytest.fixture(scope="session")
def prepared_cache(tmp_path_factory):
    """Everything `bench run` prepares once per host, prepared before the tests that time or interrupt
    runs: the VM's kernel, initramfs and root disk, the KVM probe, the Docker image import. On a fresh
    machine that takes minutes, which no test should mistake for a hang."""
    import json

    listing = json.loads(bench("list", "runners", "--json", check=True).stdout)
    runners = ",".join(r["name"] for r in listing["runners"] if r["available"])
    out = bench("run", "--suite", "startup", "--runners", runners, "--repeat", "1", "--warmup", "0", "--no-report",
                "--results-dir", str(tmp_path_factory.mktemp("prepare")), timeout=1800)
    assert out.returncode == 0, out.stderr + out.stdout


def wait_until(predicate, what: str, timeout_s: float = 600, step_s: float = 0.05) -> None:
    """Poll for the progress a test expects (never a fixed sleep); fail after a generous bound."""
    import time

    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(step_s)


def journalled(results_dir: Path) -> set[str]:
    """The runners with a stored sample in a run in progress under results_dir (bench.analysis.store.Journal)."""
    import json

    found = set()
    for journal in Path(results_dir).glob(".bench-tmp-*/samples.jsonl"):
        for line in journal.read_text().splitlines():
            try:
                found.add(json.loads(line)["runner"])
            except ValueError:
                pass  # a line being written
    return found


def sampled(results_dir: Path, runner: str):
    """A predicate for wait_until: runner has a stored sample in the run in progress."""
    return lambda: runner in journalled(results_dir)


def domain_up() -> bool:
    """A guest of ours is running in libvirt (a predicate for wait_until)."""
    import libvirt

    conn = libvirt.open("qemu:///system")
    try:
        return any(d.name().startswith("bench-") and d.isActive() for d in conn.listAllDomains())
    finally:
        conn.close()


def kill_run_then_clean(results_dir: Path, runners: str, when,
                        suite: tuple[str, ...] = ("--suite", "startup", "--repeat", "500", "--warmup", "0")) -> str:
    """SIGKILL a whole `bench run` (worker included) once when() holds, run `bench clean`, and return
    what a second `bench clean --dry-run` still finds."""
    import signal
    import subprocess

    if _evidence is not None:
        _evidence.results_dirs.append(Path(results_dir))
    proc = subprocess.Popen([*BENCH, "run", *suite, "--runners", runners,
                             "--results-dir", str(results_dir), "--no-report"], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_until(lambda: when() or proc.poll() is not None, "the run to reach the point to kill it at")
        assert proc.poll() is None, "the run ended before it could be killed"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    bench("clean", "--results-dir", str(results_dir), check=True)
    return bench("clean", "--dry-run", "--results-dir", str(results_dir), check=True).stdout.strip()
