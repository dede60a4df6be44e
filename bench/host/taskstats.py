"""Per-task peak RSS at exit, from the kernel's taskstats netlink interface.

wait4()'s ru_maxrss is useless for a tiny child: the kernel folds the pre-exec address space
into it, which is the parent's whole heap for a vfork/posix_spawn child and the fork copy for a
fork child (measured here: 14 MiB and 10 MiB for a probe whose own peak is under 1 MiB).
taskstats reports hiwater_rss of the mm a task had when it exited: the workload's own.
"""

from __future__ import annotations

import os
import select
import socket
import struct
from dataclasses import dataclass

from bench.host.netlink import attr, messages, parse_attrs

NETLINK_GENERIC = 16
GENL_ID_CTRL = 0x10
CTRL_CMD_GETFAMILY = 3
CTRL_ATTR_FAMILY_ID = 1
CTRL_ATTR_FAMILY_NAME = 2
TASKSTATS_CMD_GET = 1
TASKSTATS_CMD_ATTR_REGISTER_CPUMASK = 3
TASKSTATS_TYPE_STATS = 3
TASKSTATS_TYPE_AGGR_PID = 4
NLM_F_REQUEST = 1
NLM_F_ACK = 4
NLMSG_ERROR = 2

# Offsets into struct taskstats (linux/taskstats.h, stable since version 1 as fields only get appended).
_OFF_PID, _OFF_PPID, _OFF_HIWATER_RSS_KB = 128, 132, 200


@dataclass(frozen=True)
class TaskExit:
    pid: int
    ppid: int
    hiwater_rss_kib: int


def parse_task_exits(datagram: bytes, family: int) -> list[TaskExit]:
    """Pure parser: the per-thread exit records in one netlink datagram."""
    exits = []
    for kind, body in messages(datagram):
        if kind != family:
            continue
        aggr = parse_attrs(body[4:]).get(TASKSTATS_TYPE_AGGR_PID)
        stats = parse_attrs(aggr).get(TASKSTATS_TYPE_STATS) if aggr else None
        if stats and len(stats) >= _OFF_HIWATER_RSS_KB + 8:
            pid, ppid = struct.unpack_from("II", stats, _OFF_PID)
            (rss,) = struct.unpack_from("Q", stats, _OFF_HIWATER_RSS_KB)
            exits.append(TaskExit(pid, ppid, rss))
    return exits


class TaskstatsListener:
    """Listens for exits on every online CPU; open once per worker, query per instance."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_GENERIC)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind((0, 0))
        self.family = self._resolve_family()
        cpus = ",".join(str(c) for c in sorted(os.sched_getaffinity(0) | _online_cpus()))
        # Acknowledged, so that a refusal shows here: the kernel refuses the registration to any
        # pid or user namespace but the first (EINVAL), and then sends no exit records at all.
        self._request(self.family, TASKSTATS_CMD_GET,
                      attr(TASKSTATS_CMD_ATTR_REGISTER_CPUMASK, cpus.encode() + b"\0"), NLM_F_ACK)
        self._expect_ack()
        self.exits: dict[int, TaskExit] = {}

    def _request(self, family: int, cmd: int, attrs: bytes, flags: int = 0) -> None:
        body = struct.pack("BBH", cmd, 1, 0) + attrs
        self.sock.send(struct.pack("IHHII", 16 + len(body), family, NLM_F_REQUEST | flags, 1, 0) + body)

    def _expect_ack(self, timeout_s: float = 1.0) -> None:
        try:
            if not select.select([self.sock], [], [], timeout_s)[0]:
                raise OSError("taskstats: no answer to the registration")
            for kind, body in messages(self.sock.recv(65536)):
                if kind == NLMSG_ERROR:
                    (code,) = struct.unpack_from("i", body)
                    if code:
                        raise OSError(-code, f"taskstats registration refused: {os.strerror(-code)}")
                    return
        except BaseException:
            self.sock.close()
            raise

    def _resolve_family(self) -> int:
        self._request(GENL_ID_CTRL, CTRL_CMD_GETFAMILY, attr(CTRL_ATTR_FAMILY_NAME, b"TASKSTATS\0"))
        for kind, body in messages(self.sock.recv(65536)):
            if kind == NLMSG_ERROR:
                raise OSError("taskstats: the kernel has no TASKSTATS family")
            return struct.unpack("H", parse_attrs(body[4:])[CTRL_ATTR_FAMILY_ID][:2])[0]
        raise OSError("taskstats: no answer from the generic netlink controller")

    def drain(self, timeout_s: float = 0.0) -> None:
        """Read every pending exit record (waiting up to timeout_s for the first)."""
        while select.select([self.sock], [], [], timeout_s)[0]:
            try:
                data = self.sock.recv(1 << 16)
            except OSError:  # ENOBUFS: records were dropped on a busy host; keep what we have
                continue
            for rec in parse_task_exits(data, self.family):
                self.exits[rec.pid] = rec
            timeout_s = 0.0

    def reset(self) -> None:
        """Forget every exit seen so far (call before launching the instance to measure)."""
        self.drain()
        self.exits.clear()

    def tree_peak_kib(self, root_pid: int, wait_s: float = 0.05) -> int | None:
        """The largest hiwater RSS in the exited process tree rooted at root_pid."""
        self.drain()
        if root_pid not in self.exits:
            self.drain(wait_s)
        tree = tree_pids(self.exits.values(), root_pid)
        peaks = [self.exits[pid].hiwater_rss_kib for pid in tree if pid in self.exits]
        self.exits.clear()
        return max(peaks) if peaks else None

    def close(self) -> None:
        self.sock.close()


def tree_pids(exits, root_pid: int) -> set[int]:
    """root_pid and every exited task that descends from it (by ac_ppid), in any order."""
    tree, grew = {root_pid}, True
    while grew:
        found = {r.pid for r in exits if r.ppid in tree} - tree
        grew = bool(found)
        tree |= found
    return tree


def _online_cpus() -> set[int]:
    return set(range(os.cpu_count() or 1))
