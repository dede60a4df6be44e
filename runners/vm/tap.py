"""The guest's network: a tap of ours on the host, nothing routed beyond it."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

# The guest's eth0, fixed: the host knows it before the guest is up (a permanent neighbour entry),
# so that a connection tried while the guest boots is not held up by ARP's 1 s retries (first-response).
GUEST_MAC = "52:54:00:62:6e:02"


_TAPS = itertools.count()  # taps made by this process: each runner of a run has its own


def own_tap(subnet: str) -> Tap:
    """A tap of this process's own: the k-th one made here is named bench-t<pid>-k and takes the
    k-th /30 (or whatever size subnet has) after subnet, so that the vm, qemu and microvm runners
    of one run never meet on a name or an address."""
    import ipaddress

    k = next(_TAPS)
    net = ipaddress.ip_network(subnet)
    shifted = ipaddress.ip_network(f"{net.network_address + k * net.num_addresses}/{net.prefixlen}")
    return Tap(f"bench-t{os.getpid() % 100000}-{k % 100}", str(shifted))


class Tap:
    """A persistent tap on the host with the subnet's first address; QEMU attaches to it by name
    (libvirt's managed='no'). The guest gets the second address and no route beyond it, and the
    host forwards nothing that arrives on it."""

    TUNSETIFF, TUNSETPERSIST = 0x400454CA, 0x400454CB
    IFF_TAP, IFF_NO_PI = 0x0002, 0x1000

    def __init__(self, name: str, subnet: str) -> None:
        import fcntl
        import ipaddress
        import struct

        from bench.host.network import ip

        net = ipaddress.ip_network(subnet)
        if not net.is_private:
            raise ValueError(f"subnet {subnet} is not a private range")
        self.name = name
        self.host_address = str(net.network_address + 1)
        self.guest_address = f"{net.network_address + 2}/{net.prefixlen}"
        fd = os.open("/dev/net/tun", os.O_RDWR)
        try:
            fcntl.ioctl(fd, self.TUNSETIFF, struct.pack("16sH", name.encode(), self.IFF_TAP | self.IFF_NO_PI))
            fcntl.ioctl(fd, self.TUNSETPERSIST, 1)
        finally:
            os.close(fd)
        try:
            # The host may forward (ip_forward=1 here): a guest that routed through its tap would reach
            # beyond the host, where a container reaches only its bridge. Nothing it sends is forwarded.
            for knob, value in ((f"ipv4/conf/{name}/forwarding", "0"), (f"ipv6/conf/{name}/disable_ipv6", "1")):
                Path(f"/proc/sys/net/{knob}").write_text(value)
            ip("addr", "add", f"{self.host_address}/{net.prefixlen}", "dev", name)
            ip("link", "set", name, "up")
            ip("neigh", "replace", self.guest_address.split("/")[0], "lladdr", GUEST_MAC, "dev", name, "nud", "permanent")
        except OSError:
            self.remove()
            raise

    def remove(self) -> None:
        from bench.host.network import ip

        try:
            ip("link", "delete", self.name)
        except OSError:
            pass  # already gone
