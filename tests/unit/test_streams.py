"""Every stream isobench parses as it arrives gives the same values however its bytes are split
into reads: a guest's console (READY, BENCH-MEM, BENCH-EXIT), the worker's JSON lines, a host-side
server's readiness. The console transcript is a real one (the qemu peer, `exit 127`)."""

import fcntl
import io
import json
import os
import random
import termios
import threading

import pytest

from runners._child import ChildInstance, Lines
from runners.vm.console import GuestConsole
from tests.conftest import DATA

TRANSCRIPT = (DATA / "console-qemu-exit127.bin").read_bytes()
MEM_KIB = (481424, 453224)


class Replayed(GuestConsole, ChildInstance):
    """A guest console instance whose output pipe is fed recorded bytes, read through the same
    _read_once as a live QEMU's console: one write, then one read of exactly that chunk."""

    def __init__(self, pidfd: int) -> None:  # pidfd: a live child's, so that only output is ever ready
        self.marker, self._chunks, self._eof, self.pidfd, self.echo = b"READY", [], False, pidfd, None
        self.out_fd, self._write_fd = os.pipe()

    def feed(self, data: bytes) -> int:
        """data as one read; its arrival time."""
        os.write(self._write_fd, data)
        assert self._read_once(5)
        return self._chunks[-1][0]

    def close(self) -> None:
        os.close(self.out_fd)
        os.close(self._write_fd)


@pytest.fixture(scope="module")
def pidfd():
    pid = os.posix_spawn("/bin/sleep", ["sleep", "600"], {})
    fd = os.pidfd_open(pid)
    yield fd
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    os.close(fd)


def replay(pidfd: int, chunks: list[bytes]) -> tuple[Replayed, list[int], list[int]]:
    """(the instance, where each chunk starts, when each arrived)."""
    inst, starts, times, at = Replayed(pidfd), [], [], 0
    try:
        for chunk in chunks:
            starts.append(at)
            times.append(inst.feed(chunk))
            at += len(chunk)
    finally:
        inst.close()
    return inst, starts, times


def splits(data: bytes, cuts) -> list[bytes]:
    edges = [0, *sorted(set(cuts)), len(data)]
    return [data[a:b] for a, b in zip(edges, edges[1:]) if b > a]


def every_chunking(data: bytes):
    """Every cut at one offset, every pair of offsets, and 300 random chunkings."""
    n, rng = len(data), random.Random(27)
    yield [data]
    for i in range(1, n):
        yield splits(data, [i])
        for j in range(i + 1, n):
            yield splits(data, [i, j])
    for _ in range(300):
        yield splits(data, rng.sample(range(1, n), rng.randint(1, n - 1)))


def line_starts(data: bytes) -> list[int]:
    return [0] + [i + 1 for i, b in enumerate(data[:-1]) if b == ord("\n")]


def test_the_transcript_holds_what_the_test_looks_for():
    assert TRANSCRIPT.startswith(b"READY\r\n") and TRANSCRIPT.endswith(b"BENCH-EXIT 127\r\n")


def test_a_console_split_anywhere_gives_the_same_exit_and_memory_and_keeps_first_byte_times(pidfd):
    tried = 0
    for chunks in every_chunking(TRANSCRIPT):
        inst, starts, times = replay(pidfd, chunks)

        def read_holding(pos: int) -> int:  # the arrival of the read that brought byte pos
            return times[max(i for i, start in enumerate(starts) if start <= pos)]

        assert inst.exit_code == 127, chunks
        assert inst.extra_metrics() == {"guest_mem_total_mib": (MEM_KIB[0] / 1024, "MiB"),
                                        "guest_mem_available_mib": (MEM_KIB[1] / 1024, "MiB")}, chunks
        assert inst._marker_time() == read_holding(TRANSCRIPT.index(b"READY")), chunks
        assert inst.t_exit == read_holding(TRANSCRIPT.index(b"BENCH-EXIT")), chunks
        assert inst.output == TRANSCRIPT
        tried += 1
    assert tried > 2000


def test_a_guest_writing_line_by_line_gets_the_same_times_however_the_reads_fall(pidfd, monkeypatch):
    """Each line arrives at a moment of its own (the guest writes a line at once); reads cut it
    anywhere more: READY and the exit keep their lines' moments, in every chunking."""
    import runners._child

    starts = line_starts(TRANSCRIPT)
    moment = {start: 1000 * (k + 1) for k, start in enumerate(starts)}
    exit_line = max(s for s in starts if s <= TRANSCRIPT.index(b"BENCH-EXIT"))
    rng = random.Random(32)
    for _ in range(500):
        cuts = starts[1:] + rng.sample(range(1, len(TRANSCRIPT)), rng.randint(0, 20))
        chunks, at, clock = splits(TRANSCRIPT, cuts), 0, []
        for chunk in chunks:  # a read's clock: the moment of the line its first byte belongs to
            clock.append(moment[max(s for s in starts if s <= at)])
            at += len(chunk)
        monkeypatch.setattr(runners._child.time, "monotonic_ns", iter(clock).__next__)
        inst, _, _ = replay(pidfd, chunks)
        monkeypatch.undo()
        assert (inst._marker_time(), inst.t_exit, inst.exit_code) == (moment[0], moment[exit_line], 127), chunks


def test_lines_keep_the_arrival_of_their_first_byte_and_wait_for_their_newline():
    lines = Lines()
    assert lines.feed(b"BENCH-EXIT 12", 1) == []
    assert lines.feed(b"7\r\nBENCH", 2) == [(1, b"BENCH-EXIT 127\r")]
    assert lines.feed(b"-MEM 1 2\nx\n", 3) == [(2, b"BENCH-MEM 1 2"), (3, b"x")]


def test_a_kernel_message_before_the_token_on_its_line_is_no_exit_of_another_value(pidfd):
    inst, _, times = replay(pidfd, [b"[    1.2] random: crng init done BENCH-EXIT 3\r\n"])
    assert (inst.exit_code, inst.t_exit) == (3, times[0])
    other, _, _ = replay(pidfd, [b"BENCH-EXIT 3 and more\n"])
    assert other.exit_code is None


class Chunky(io.RawIOBase):
    """A pipe's read end that hands out data in the given chunks, one per read."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = list(chunks)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if not self.chunks:
            return 0
        chunk = self.chunks.pop(0)
        buffer[:len(chunk)] = chunk
        return len(chunk)


def test_the_workers_reply_split_anywhere_is_read_whole():
    from bench.client import WorkerClient

    reply = (json.dumps({"op": "samples", "samples": [{"metric": "ready_ms", "value": 1.25}], "note": "é"}) + "\n").encode()
    for chunks in [splits(reply, [i]) for i in range(1, len(reply))] + [splits(reply, range(1, len(reply)))]:
        client = WorkerClient.__new__(WorkerClient)  # its protocol, without a worker process

        class Proc:
            stdin = io.StringIO()
            stdout = io.TextIOWrapper(io.BufferedReader(Chunky(chunks), buffer_size=1), encoding="utf-8")

        client.proc = Proc()
        assert client.request(op="measure")["samples"] == [{"metric": "ready_ms", "value": 1.25}]


def drip(chunks: list[bytes]) -> int:
    """A pipe whose reader meets each chunk in a read of its own: the next is written once the
    last has been read (the pipe empty again). Returns the read end."""
    read_fd, write_fd = os.pipe()

    def unread() -> int:
        return int.from_bytes(fcntl.ioctl(read_fd, termios.FIONREAD, b"\0\0\0\0"), "little")

    def feed() -> None:
        try:
            for chunk in chunks:
                os.write(write_fd, chunk)
                while unread():
                    os.sched_yield()
        except OSError:
            pass  # the reader had what it waited for and closed its end
        finally:
            os.close(write_fd)

    threading.Thread(target=feed, daemon=True).start()
    return read_fd


@pytest.mark.parametrize("cuts", [[], [3], [7, 8], list(range(1, 28))])
def test_a_host_side_servers_readiness_split_anywhere_is_seen(cuts):
    from bench.servers import HostServers

    said = b"-----\nServer listening on 5201\n"
    fd = drip(splits(said, cuts))
    try:
        HostServers(None, "127.0.0.1", [], "/")._await_ready(fd, b"Server listening")
    finally:
        os.close(fd)
