"""A container's network the way containerd, nerdctl and CRI-O wire it: a network namespace of its
own, handed to the real CNI plugins (Debian's containernetworking-plugins: bridge, with host-local
addresses), which run inside a namespace of ours (the peers' bridge namespace), so that their bridge
and the veths' host ends live there and the host's own namespace is left as it was. Masquerading is
off: nothing is routed anywhere but between our namespaces.

ADD before the runtime starts the container (part of its start, as for containerd's users), DEL
at teardown, then the namespace goes. The plugins' address leases go in /tmp/bench-cni-<pid>, which
`bench clean` sweeps with every /tmp/bench-* it finds.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from bench.errors import MeasurementError
from bench.host.network import NETNS_DIR, NETNS_PREFIX, ip

PLUGIN_DIRS = ("/usr/lib/cni", "/opt/cni/bin")
CNI_SUBNET = "10.217.0.0/16"
CNI_BRIDGE = "bench-cni0"
CNI_VERSION = "1.0.0"


def plugin_dir() -> str | None:
    return next((d for d in PLUGIN_DIRS if os.access(f"{d}/bridge", os.X_OK) and os.access(f"{d}/host-local", os.X_OK)), None)


def network_config() -> dict:
    """The CNI network: bridge with host-local addresses, the bridge the gateway, no masquerade."""
    return {"cniVersion": CNI_VERSION, "name": "bench", "type": "bridge", "bridge": CNI_BRIDGE, "isGateway": True,
            "ipMasq": False, "hairpinMode": False,
            "ipam": {"type": "host-local", "ranges": [[{"subnet": CNI_SUBNET}]], "routes": [{"dst": "0.0.0.0/0"}],
                     "dataDir": lease_dir()}}


def lease_dir() -> str:
    """Where host-local keeps this process's address leases."""
    return f"/tmp/bench-cni-{os.getpid()}"


def gateway() -> str:
    """The bridge's address (host-local gives the subnet's first one to the gateway)."""
    import ipaddress

    return str(ipaddress.ip_network(CNI_SUBNET).network_address + 1)


class CniNetwork:
    """One container's namespace and its CNI attachment; `ours`: the namespace the plugins run in."""

    def __init__(self, name: str, ours: str) -> None:
        self.name, self.ours = name, ours
        self.netns = f"{NETNS_PREFIX}-{name}"  # bench-net-...: `bench clean` finds a killed run's
        self.path = str(NETNS_DIR / self.netns)
        self.address: str | None = None
        self.added = False

    def add(self) -> str:
        """Make the namespace and wire it; the container's address."""
        ip("netns", "add", self.netns)
        result = self._plugin("ADD")
        self.added = True
        try:
            self.address = json.loads(result)["ips"][0]["address"].split("/")[0]
        except (ValueError, KeyError, IndexError):
            raise MeasurementError(f"CNI bridge gave no address: {result[:200]}") from None
        return self.address

    def remove(self) -> None:
        """DEL, then the namespace. Idempotent."""
        if self.added:
            self.added = False
            try:
                self._plugin("DEL")
            except MeasurementError:
                pass  # the namespace's removal takes its veth with it; the lease file is swept with the dir
        if Path(self.path).exists():
            try:
                ip("netns", "delete", self.netns)
            except OSError:
                pass

    def _plugin(self, command: str) -> str:
        from bench.host.tools import run_captured

        plugins = plugin_dir()
        if plugins is None:
            raise MeasurementError("no CNI plugins (apt-get install containernetworking-plugins)")
        env = {"CNI_COMMAND": command, "CNI_CONTAINERID": self.name, "CNI_NETNS": self.path, "CNI_IFNAME": "eth0",
               "CNI_PATH": plugins, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
        config = json.dumps(network_config())
        # The plugin reads its config on stdin: a shell hands it over, inside our namespace.
        code, out = run_captured(["/usr/bin/nsenter", f"--net={self.ours}", "--", "/bin/sh", "-c",
                                  'printf %s "$1" | "$2"', "sh", config, f"{plugins}/bridge"], env, timeout_s=30)
        if code:
            raise MeasurementError(f"CNI bridge {command} failed ({code}): {out.strip()[-300:]}")
        return out
