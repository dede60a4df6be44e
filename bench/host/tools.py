"""The host's tools: where they are and which version they say they are."""

from __future__ import annotations

import re
import shutil
import subprocess


def tool_version(argv: list[str], pattern: str) -> str | None:
    """The first group of pattern in what `argv` prints (stdout and stderr); None if it is not there."""
    if shutil.which(argv[0]) is None:
        return None
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(pattern, out.stdout + out.stderr, re.MULTILINE)
    return m.group(1) if m else None


def versions_of(probes: dict[str, tuple[list[str], str]]) -> dict[str, str]:
    """{tool: version} of those probes ({tool: (argv, pattern)}) whose tool answers."""
    found = {tool: tool_version(argv, pattern) for tool, (argv, pattern) in probes.items()}
    return {tool: version for tool, version in found.items() if version}
