"""Container networking: a bridge inside a network namespace the harness owns (bench-net-<pid>), and a
veth pair per instance, its host end on the bridge and its peer `eth0` in the container.

bench-net has no uplink and the container gets no default route, so traffic can only reach the
bridge and the other instances: it never leaves namespaces isobench created. The bridge is set up
once with iproute2; per-instance links go straight through rtnetlink (an `ip` exec costs ms).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import struct
from collections.abc import Callable
from pathlib import Path

from bench.host.linux import CLONE_NEWNET, setns
from bench.host.netlink import NLM_F_CREATE, NLM_F_EXCL, NetlinkSocket, attr, attr_str, attr_u32, nested

NETNS_PREFIX = "bench-net"
BRIDGE = "bench-br0"
DEFAULT_SUBNET = "10.213.0.0/16"
NETNS_DIR = Path("/run/netns")

RTM_NEWLINK, RTM_DELLINK = 16, 17
IFLA_IFNAME, IFLA_MASTER, IFLA_LINKINFO, IFLA_NET_NS_PID = 3, 10, 18, 19
IFLA_INFO_KIND, IFLA_INFO_DATA, VETH_INFO_PEER = 1, 2, 1
IFF_UP = 0x1


def ifinfomsg(index: int = 0, up: bool = False) -> bytes:
    flags = IFF_UP if up else 0
    return struct.pack("BxHiII", socket.AF_UNSPEC, 0, index, flags, IFF_UP if up else 0)


def ip(*args: str) -> None:
    """iproute2, for the one-time bridge setup and removal only; lean, as the worker runs it."""
    from bench.host.tools import run_captured

    code, said = run_captured(["ip", *args])
    if code:
        raise OSError(f"ip {' '.join(args)}: {said.strip()}")


class BridgeNetwork:
    """The harness side: owns bench-net and its bridge; attaches and detaches instances."""

    def __init__(self, subnet: str = DEFAULT_SUBNET, suffix: str = "") -> None:
        # One per measuring process: concurrent runs never share (or delete) each other's bridge.
        self.netns = f"{NETNS_PREFIX}-{os.getpid()}{suffix}"
        self.subnet = ipaddress.ip_network(subnet)
        if not self.subnet.is_private:
            raise ValueError(f"subnet {subnet} is not a private range")
        self.gateway = self.subnet.network_address + 1
        self.rtnl: NetlinkSocket | None = None
        self.bridge_index = 0
        self.users = 0  # the peer runners sharing it (shared_bridge); the last one's release closes it
        self.on_close: dict[str, Callable[[], None]] = {}  # what goes with it, by name (the CNI leases)
        self.handed = 0  # addresses handed out by next_address()

    def ensure(self) -> None:
        """Create bench-net and its bridge unless they exist; open a netlink socket inside it."""
        if not (NETNS_DIR / self.netns).exists():
            ip("netns", "add", self.netns)
        if self.rtnl is None:
            self.rtnl, self.bridge_index = self._inside(self.netns, self._bridge)

    def _bridge(self) -> tuple[NetlinkSocket, int]:
        ip_in = ("-n", self.netns)
        try:
            index = socket.if_nametoindex(BRIDGE)
        except OSError:
            ip(*ip_in, "link", "add", BRIDGE, "type", "bridge")
            ip(*ip_in, "addr", "add", f"{self.gateway}/{self.subnet.prefixlen}", "dev", BRIDGE)
            ip(*ip_in, "link", "set", BRIDGE, "up")
            ip(*ip_in, "link", "set", "lo", "up")
            index = socket.if_nametoindex(BRIDGE)
        return NetlinkSocket(socket.NETLINK_ROUTE), index

    @staticmethod
    def _inside(netns: str, fn):
        """Run fn with this process in netns (sockets it opens stay there), then come back."""
        home = os.open("/proc/self/ns/net", os.O_RDONLY)
        target = os.open(NETNS_DIR / netns, os.O_RDONLY)
        try:
            setns(target, CLONE_NEWNET)
            return fn()
        finally:
            setns(home, CLONE_NEWNET)
            os.close(home)
            os.close(target)

    def address(self, n: int) -> str:
        """The n-th instance address: .2 upwards, wrapping inside the subnet."""
        hosts = self.subnet.num_addresses - 3
        return f"{self.subnet.network_address + 2 + n % hosts}/{self.subnet.prefixlen}"

    def next_address(self) -> str:
        """The next instance address, for runners that share this bridge."""
        self.handed += 1
        return self.address(self.handed)

    @property
    def path(self) -> str:
        return str(NETNS_DIR / self.netns)

    def release(self) -> None:
        """A runner sharing it (shared_bridge) is done; the last one closes it."""
        self.users -= 1
        if self.users <= 0:
            self.close()
            _SHARED.pop(self.netns, None)
            for then in self.on_close.values():
                then()

    def attach(self, pid: int, host_end: str) -> None:
        """A veth pair: host_end (up, on the bridge) in bench-net, its peer eth0 in pid's netns.

        The peer cannot be brought up here (veth says ENOTCONN until both ends exist): the
        container does that itself."""
        peer = ifinfomsg() + attr_str(IFLA_IFNAME, "eth0") + attr_u32(IFLA_NET_NS_PID, pid)
        linkinfo = nested(IFLA_LINKINFO, attr_str(IFLA_INFO_KIND, "veth"),
                          nested(IFLA_INFO_DATA, attr(VETH_INFO_PEER, peer)))
        body = (ifinfomsg(up=True) + attr_str(IFLA_IFNAME, host_end)
                + attr_u32(IFLA_MASTER, self.bridge_index) + linkinfo)
        assert self.rtnl is not None, "attach() after open()"
        self.rtnl.request(RTM_NEWLINK, body, NLM_F_CREATE | NLM_F_EXCL)

    def detach(self, host_end: str) -> None:
        """Delete the pair (usually already gone with the container's netns). Idempotent."""
        if self.rtnl is None:  # never opened: nothing of ours to delete
            return
        try:
            self.rtnl.request(RTM_DELLINK, ifinfomsg() + attr_str(IFLA_IFNAME, host_end))
        except OSError:
            pass

    def close(self) -> None:
        """Remove the netns (the bridge and any host end go with it)."""
        if self.rtnl:
            self.rtnl.close()
            self.rtnl = None
        if (NETNS_DIR / self.netns).exists():
            ip("netns", "delete", self.netns)


PEER_SUBNET = "10.216.0.0/16"
_SHARED: dict[str, BridgeNetwork] = {}


def shared_bridge() -> BridgeNetwork:
    """The bridge the peer runtimes of this process share (lxc, nspawn, runc, crun, gvisor, bwrap):
    bench-net-<pid>-peers with its bench-br0 on PEER_SUBNET, made on the first need. Each runner
    that takes it calls release() once."""
    net = BridgeNetwork(PEER_SUBNET, "-peers")
    net = _SHARED.setdefault(net.netns, net)
    net.users += 1
    return net


@contextlib.contextmanager
def inside(netns_path: str):
    """This thread in the network namespace at netns_path meanwhile: a child spawned here is born there."""
    home = os.open("/proc/self/ns/net", os.O_RDONLY)
    target = os.open(netns_path, os.O_RDONLY)
    try:
        setns(target, CLONE_NEWNET)
        yield
    finally:
        setns(home, CLONE_NEWNET)
        os.close(home)
        os.close(target)


def leftover_netns() -> list[str]:
    return sorted(p.name for p in NETNS_DIR.glob(f"{NETNS_PREFIX}*")) if NETNS_DIR.is_dir() else []
