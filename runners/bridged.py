"""What lxc and nspawn share: a writable layer or a volume for a disk workload, and for a network
workload their own veth on the peers' bridge (bench.host.network.shared_bridge), which lives in a
namespace of ours; each instance's address is kept for the clients until its teardown."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from runners.layer import check_storage, unmount
from runners.process import ProcessRunner, TaskInstance

if TYPE_CHECKING:  # for annotations only: the network module is imported on the first network workload
    from bench.host.network import BridgeNetwork

T = TypeVar("T", bound=TaskInstance)


class OnPeersBridge(ProcessRunner):
    def __init__(self, state_dir: str = "/tmp", storage: str = "layer") -> None:
        super().__init__()
        self.state_dir = Path(state_dir)
        self.storage = check_storage(storage)
        self.net: BridgeNetwork | None = None
        self.addresses: dict[int, str] = {}

    def server_side(self) -> tuple[str | None, str]:
        """The peers' bridge namespace and the bridge's own address (the containers' gateway)."""
        if self.net is None:
            from bench.host.network import shared_bridge

            self.net = shared_bridge()
            self.net.ensure()
        return self.net.path, str(self.net.gateway)

    def guest_address(self, instance) -> str:
        return self.addresses[id(instance)]

    def next_on_bridge(self) -> tuple[str, str]:
        """(address/prefix, gateway) for the next container's end of a veth on the bridge."""
        _, gateway = self.server_side()
        assert self.net is not None
        return self.net.next_address(), gateway

    def kept(self, instance: T, address: str | None, root: str | None, state: Path) -> T:
        """instance, its address kept for the clients, and a teardown that forgets it and removes its
        overlay root and state."""
        if address:
            self.addresses[id(instance)] = address.split("/")[0]

        def teardown() -> None:
            self.addresses.pop(id(instance), None)
            unmount(root)
            shutil.rmtree(state, ignore_errors=True)

        instance.on_teardown = teardown
        return instance

    def close(self) -> None:
        try:
            if self.net is not None:
                self.net.release()
                self.net = None
        finally:
            super().close()
