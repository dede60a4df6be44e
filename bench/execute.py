"""`bench exec`: one fresh instance of a runner, running a command from the guest image."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from bench.errors import UsageError
from bench.images.image import build_image
from bench.registry import registered
from bench.spec import Envelope, LaunchSpec

GUEST_PATH = ("/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin")


def resolve_command(rootfs: Path, command: str) -> str:
    """CMD as the guest would find it on its PATH; UsageError when the image has no such thing."""
    if "/" in command:
        return command
    for d in GUEST_PATH:
        if os.path.lexists(rootfs / d.lstrip("/") / command):
            return f"{d}/{command}"
    raise UsageError(f"{command}: not in the guest image (it has busybox applets, stress-ng, fio, iperf3)")


def make_runner(name: str, options: dict):
    infos = registered()
    if name not in infos:
        raise UsageError(f"unknown runner {name!r}; choose from: {', '.join(infos)}")
    info = infos[name]
    if info.cls is None:
        raise UsageError(f"runner {name} cannot be loaded: {info.load_error}")
    from bench.options import convert

    try:
        runner = info.cls(**convert(name, info.cls, options))
    except (TypeError, ValueError) as exc:
        raise UsageError(f"bad option for runner {name}: {exc}") from None
    ok, reason = runner.available()
    if not ok:
        raise UsageError(f"runner {name} is not available here: {reason}")
    return runner


def execute(runner_name: str, argv: list[str], envelope: Envelope, options: dict, cache_dir: Path) -> int:
    """Run argv in a fresh instance, stream its output, and return its exit code (128+N for signal N)."""
    if not argv:
        raise UsageError("nothing to run: bench exec --runner R -- CMD [ARG...]")
    from bench.checks.clean import run_lock

    runner = make_runner(runner_name, options)
    lock = run_lock(exclusive=False)  # what this instance creates is not a leftover for `bench clean`
    try:
        return _execute(runner, argv, envelope, cache_dir)
    finally:
        os.close(lock)


def _execute(runner, argv: list[str], envelope: Envelope, cache_dir: Path) -> int:
    image = build_image(cache_dir)
    runner.prepare(str(image.rootfs), image.digest, str(cache_dir))
    runner.prepare_envelope(envelope)
    command = (resolve_command(image.rootfs, argv[0]), *argv[1:])
    spec = LaunchSpec(name=f"bench-exec-{os.getpid()}", argv=command, rootfs=str(image.rootfs),
                      host_paths=image.host_paths, envelope=envelope, marker=None)
    out = sys.stdout.buffer
    instance = runner.launch(spec)
    try:
        instance.echo = lambda data: (out.write(instance.console_text(data)), out.flush())
        code = instance.wait_exit(None)
        oom = instance.oom_killed()
    finally:
        instance.teardown()
        runner.close()
    if oom:
        print(f"killed: out of memory, limit {envelope.memory_mib} MiB", file=sys.stderr)
        return 137
    return 128 - code if code < 0 else code
