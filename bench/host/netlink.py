"""Netlink message packing shared by taskstats (generic netlink) and rtnetlink (links, addresses).

Written here rather than taken from pyroute2 because the measuring worker forks every instance:
importing pyroute2 brings threading in and made a fork from it cost 2.0 ms instead of 0.56 ms."""

from __future__ import annotations

import os
import socket
import struct

NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE = 0x1, 0x4, 0x200, 0x400
NLMSG_ERROR = 2
NLA_F_NESTED = 0x8000


def attr(kind: int, payload: bytes) -> bytes:
    raw = struct.pack("HH", 4 + len(payload), kind) + payload
    return raw + b"\0" * (-len(raw) % 4)


def attr_u32(kind: int, value: int) -> bytes:
    return attr(kind, struct.pack("I", value))


def attr_str(kind: int, value: str) -> bytes:
    return attr(kind, value.encode() + b"\0")


def nested(kind: int, *children: bytes) -> bytes:
    return attr(kind | NLA_F_NESTED, b"".join(children))


def parse_attrs(data: bytes) -> dict[int, bytes]:
    found, off = {}, 0
    while off + 4 <= len(data):
        length, kind = struct.unpack_from("HH", data, off)
        if length < 4:
            break
        found[kind & 0x3FFF] = data[off + 4 : off + length]
        off += (length + 3) & ~3
    return found


def messages(data: bytes):
    """(type, body) of every message in one datagram."""
    off = 0
    while off + 16 <= len(data):
        length, kind, _flags, _seq, _pid = struct.unpack_from("IHHII", data, off)
        if length < 16:
            return
        yield kind, data[off + 16 : off + length]
        off += (length + 3) & ~3


class NetlinkSocket:
    """One netlink socket; request() sends a message and raises OSError on a negative ack."""

    def __init__(self, protocol: int) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, protocol)
        self.sock.bind((0, 0))
        self.seq = 0

    def send(self, kind: int, flags: int, body: bytes) -> int:
        self.seq += 1
        self.sock.send(struct.pack("IHHII", 16 + len(body), kind, flags, self.seq, 0) + body)
        return self.seq

    def request(self, kind: int, body: bytes, flags: int = 0) -> None:
        seq = self.send(kind, NLM_F_REQUEST | NLM_F_ACK | flags, body)
        while True:
            data = self.sock.recv(65536)
            for mtype, mbody in messages(data):
                if mtype == NLMSG_ERROR:
                    (code,) = struct.unpack_from("i", mbody)
                    (ack_seq,) = struct.unpack_from("I", mbody, 12)
                    if ack_seq != seq:
                        continue
                    if code:
                        raise OSError(-code, f"netlink: {os.strerror(-code)}")
                    return

    def close(self) -> None:
        self.sock.close()

