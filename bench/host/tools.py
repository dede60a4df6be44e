"""The host's tools: run them (lean: no subprocess, which the worker must not import) and ask
their versions."""

from __future__ import annotations

import os
import re
import select
import shutil
import signal
import time


def host_tool(name: str, path: str | None = None) -> str:
    """The path of a host tool a runner's available() found (path, or looked up on PATH);
    MeasurementError if it is not there now."""
    from bench.errors import MeasurementError

    found = path or shutil.which(name)
    if found is None:
        raise MeasurementError(f"{name}: not on this host's PATH")
    return found


def run_captured(argv: list[str], env: dict[str, str] | None = None, timeout_s: float = 30.0) -> tuple[int, str]:
    """Run a host command to its end and return (exit code, stdout and stderr); killed after
    timeout_s (code -9). posix_spawn and a pipe, not subprocess: the worker must stay lean, and
    subprocess's import brings threading's at-fork hook into every later spawn."""
    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    try:
        pid = os.posix_spawn(shutil.which(argv[0]) or argv[0], argv, os.environ if env is None else env, file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0), (os.POSIX_SPAWN_DUP2, write_fd, 1),
            (os.POSIX_SPAWN_DUP2, write_fd, 2)])
    finally:
        os.close(write_fd)
    chunks, deadline = [], time.monotonic() + timeout_s
    try:
        while select.select([read_fd], [], [], max(0.0, deadline - time.monotonic()))[0]:
            chunk = os.read(read_fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
        else:
            os.kill(pid, signal.SIGKILL)
    finally:
        os.close(read_fd)
    code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    return code, b"".join(chunks).decode(errors="replace")


def tool_version(argv: list[str], pattern: str) -> str | None:
    """The first group of pattern in what `argv` prints (stdout and stderr); None if it is not there."""
    if shutil.which(argv[0]) is None:
        return None
    try:
        _, out = run_captured(argv, timeout_s=5)
    except OSError:
        return None
    m = re.search(pattern, out, re.MULTILINE)
    return m.group(1) if m else None


def versions_of(probes: dict[str, tuple[list[str], str]]) -> dict[str, str]:
    """{tool: version} of those probes ({tool: (argv, pattern)}) whose tool answers."""
    found = {tool: tool_version(argv, pattern) for tool, (argv, pattern) in probes.items()}
    return {tool: version for tool, version in found.items() if version}
