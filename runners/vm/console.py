"""The console protocol of bench/guest/init.c, read from a guest's serial console."""

from __future__ import annotations

import re
from pathlib import Path

from runners._child import ChildInstance, Lines

# Read from whole lines only (bench/guest/init.c ends each with a newline), to their end: a console
# may put a CR before the newline, and a kernel message before the token.
_EXIT = re.compile(rb"BENCH-EXIT (\d+)\r?$")
_MEM = re.compile(rb"BENCH-MEM (\d+) (\d+)\r?$")


def peak_rss_kib(pid: int) -> int | None:
    """VmHWM of a live process (its peak resident set so far)."""
    try:
        found = re.search(r"VmHWM:\s+(\d+)", Path(f"/proc/{pid}/status").read_text())
    except OSError:
        return None
    return int(found.group(1)) if found else None


class GuestConsole(ChildInstance):
    """The guest side of the console protocol (bench/guest/init.c), for any instance whose output
    is a guest's console: "BENCH-EXIT n" is the workload's exit (t_exit is when it arrived),
    "BENCH-MEM total available" the guest's own view of its memory."""

    DRAIN_S = 0.0  # the guest idles after reporting: take what has arrived, wait for nothing more
    EXIT_TIMEOUT = "the guest did not report its exit within {:g} s"

    _lines: Lines | None = None
    _shown: bytes = b""  # the part of a line console_text has not shown yet
    _mem_kib: tuple[int, int] | None = None

    def _arrived(self, data: bytes, now: int) -> None:
        super()._arrived(data, now)
        if self._lines is None:
            self._lines = Lines()
        for arrived, line in self._lines.feed(data, now):
            self._note(arrived, line)

    def _note(self, arrived: int, line: bytes) -> None:
        """One complete console line: the exit (t_exit: when the line's first byte arrived), the
        guest's memory; anything else is the guest's own output."""
        if (found := _EXIT.search(line)) and self.t_exit is None:
            self.t_exit, self.exit_code = arrived, int(found.group(1))
        elif (found := _MEM.search(line)) and self._mem_kib is None:
            self._mem_kib = (int(found.group(1)), int(found.group(2)))

    def extra_metrics(self) -> dict[str, tuple[float, str]]:
        if self._mem_kib is None:
            return {}
        total, available = (v / 1024 for v in self._mem_kib)
        return {"guest_mem_total_mib": (total, "MiB"), "guest_mem_available_mib": (available, "MiB")}

    def console_text(self, data: bytes) -> bytes:
        """What a person should see of console bytes: no CRs, no BENCH- protocol lines but the init's
        warnings, as what they say ("cannot exec /nonexistent: No such file or directory")."""
        *lines, self._shown = (self._shown + data.replace(b"\r", b"")).split(b"\n")
        shown = (line.removeprefix(b"BENCH-WARN ") for line in lines
                 if line.startswith(b"BENCH-WARN ") or not line.startswith(b"BENCH-"))
        return b"".join(line + b"\n" for line in shown)
