"""The console protocol of bench/guest/init.c, read from a guest's serial console."""

from __future__ import annotations

import re
from pathlib import Path

_EXIT = re.compile(rb"BENCH-EXIT (\d+)")
_MEM = re.compile(rb"BENCH-MEM (\d+) (\d+)")


def peak_rss_kib(pid: int) -> int | None:
    """VmHWM of a live process (its peak resident set so far)."""
    try:
        found = re.search(r"VmHWM:\s+(\d+)", Path(f"/proc/{pid}/status").read_text())
    except OSError:
        return None
    return int(found.group(1)) if found else None


class GuestConsole:
    """The guest side of the console protocol (bench/guest/init.c), for any instance whose output
    is a guest's console: "BENCH-EXIT n" is the workload's exit (t_exit is when it arrived),
    "BENCH-MEM total available" the guest's own view of its memory."""

    DRAIN_S = 0.0  # the guest idles after reporting: take what has arrived, wait for nothing more
    EXIT_TIMEOUT = "the guest did not report its exit within {:g} s"

    def _note_exit(self) -> None:
        found = _EXIT.search(self.output)
        if found and self.t_exit is None:
            self.t_exit = self._chunk_time_at(found.start())
            self.exit_code = int(found.group(1))

    def _read_once(self, timeout_s: float | None) -> bool:
        progressed = super()._read_once(timeout_s)
        self._note_exit()
        return progressed

    def extra_metrics(self) -> dict[str, tuple[float, str]]:
        found = _MEM.search(self.output)
        if not found:
            return {}
        total, available = (int(v) / 1024 for v in found.groups())
        return {"guest_mem_total_mib": (total, "MiB"), "guest_mem_available_mib": (available, "MiB")}

    def console_text(self, data: bytes) -> bytes:
        """What a person should see of console bytes: no CRs, no BENCH- protocol lines but the init's
        warnings, as what they say ("cannot exec /nonexistent: No such file or directory")."""
        self._partial = getattr(self, "_partial", b"") + data.replace(b"\r", b"")
        *lines, self._partial = self._partial.split(b"\n")
        shown = (line.removeprefix(b"BENCH-WARN ") for line in lines
                 if line.startswith(b"BENCH-WARN ") or not line.startswith(b"BENCH-"))
        return b"".join(line + b"\n" for line in shown)
