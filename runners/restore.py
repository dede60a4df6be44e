"""The vm-restore runner: warm starts. The qemu peer's guest (q35, Debian's kernel, our initramfs and
root disk) is booted once per run and envelope to where its init waits for a command (bench.wait),
and saved there with QEMU's migration to a file. Each instance is a new QEMU restoring that file
(-incoming), which is handed the workload's argv over the serial console once it runs again, and
the READY marker comes back as from a cold boot. ready_ms is from the restore's start to READY.

A disk or network workload gets a snapshot of its own, booted with a scratch disk and a NIC (the
devices must match at restore): the guest had mounted the disk and configured eth0 before it was
saved, so each restore gets its network back (the same MAC, which the tap's permanent neighbour
entry names, and the same address) and the scratch disk as the snapshot saw it, under a temporary
overlay of its own (snapshot=on), so that no restore's writes reach another. One restored guest at
a time has the tap (QemuRunner.claimed_tap): two at once would share its IP and MAC, and a second is
refused in one line; each would need a network namespace of its own, which is not built.

QEMU directly, not libvirt's virDomainRestore: libvirt's share of a start is measured already (vm
against qemu), and its restore pipes the file through a helper process of its own. Firecracker's
snapshots and Kata's VM templates serve the same end: start from a booted guest's memory.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from dataclasses import dataclass, replace
from pathlib import Path

from bench.cache import instance_dir
from bench.errors import MeasurementError
from bench.spec import SCRATCH, LaunchSpec
from runners.qemu import QemuInstance, QemuRunner
from runners.vm.boot import scratch_disk
from runners.vm.domain import SCRATCH_AT, packed_argv
from runners.vm.qmp import Qmp

QMP_FD, SNAPSHOT_FD = 3, 4  # in QEMU
BOOT_TIMEOUT_S = 60.0  # the one cold boot, to the init's wait
SAVE_TIMEOUT_S = 120.0
WAIT = "bench.wait"  # the init's command line word: mount everything, then read the argv


@dataclass(frozen=True)
class Snapshot:
    path: Path
    boot_ms: float  # the cold boot to the init's wait
    save_ms: float  # the migration to the file
    size_mib: float
    disk: str | None = None  # the scratch disk it saw (restores put an overlay on it), if it had one
    net: bool = False  # whether it had a NIC on the runner's tap


class VmRestoreRunner(QemuRunner):
    paths = "disk: the snapshot's virtio-blk disk under an overlay per restore; network: the snapshot's NIC on a tap (one restore at a time)"
    name = "vm-restore"
    kind = "ours"
    description = "the qemu peer's guest restored from a snapshot taken once per run (QEMU migration to a file)"

    def __init__(self, **options) -> None:
        super().__init__(**options)
        self.snapshots: dict[tuple[int, int, bool, bool], Snapshot] = {}
        self.rootfs, self.dir = "", Path(f"/tmp/bench-restore-{os.getpid()}")

    def prepare(self, rootfs: str, image_digest: str, cache_dir: str) -> None:
        super().prepare(rootfs, image_digest, cache_dir)
        self.rootfs = rootfs

    provides = frozenset({"scratch", "server"})  # from a snapshot that had a scratch disk and a NIC

    def prepare_envelope(self, envelope, needs=()) -> None:
        """The snapshot for a plain start, and one for each kind of disk or network workload the run has."""
        self._snapshot(envelope)
        for need in needs:
            if need:
                self._snapshot(envelope, "scratch" in need, "server" in need)

    def config(self) -> dict:
        return {**super().config(), "launcher": "qemu-system -incoming fd: (the snapshot file), argv over the serial console",
                "snapshots": {snapshot_name(key): {"boot_ms": round(s.boot_ms, 1), "save_ms": round(s.save_ms, 1),
                                                   "size_mib": round(s.size_mib, 1)}
                              for key, s in self.snapshots.items()}}

    def _qemu(self, spec: LaunchSpec, *extra: str, fds: dict[int, int], snapshot: Snapshot | None = None,
              disk: str | None = None, net: bool = False, **kwargs) -> tuple[QemuInstance, Qmp]:
        """QEMU for the waiting guest (the same command line for the boot and for every restore), with
        QMP on a socket pair: the instance and a QMP session on it. A restore (snapshot) gets the
        snapshot's disk under an overlay and its NIC."""
        if snapshot is not None:
            disk, net = snapshot.disk, snapshot.net
        tap = None
        if net:
            tap, release = self.claimed_tap(spec.name)
            then = kwargs.pop("on_teardown", None)

            def given_back() -> None:
                release()
                if then:
                    then()

            kwargs["on_teardown"] = given_back
        ours, theirs = socket.socketpair()
        with ours, theirs:
            try:
                argv = self.qemu_argv(replace(spec, argv=()), WAIT, disk=disk, tap=tap, overlay=snapshot is not None) + [
                    "-chardev", f"socket,id=qmp,fd={QMP_FD}", "-mon", "chardev=qmp,mode=control", *extra]
            except BaseException:
                if kwargs.get("on_teardown"):
                    kwargs["on_teardown"]()
                raise
            instance = self.spawn(spec, argv, fds={**fds, QMP_FD: theirs.fileno()}, **kwargs)
            session = ours.dup()
            try:
                return instance, Qmp(session)
            except BaseException:
                session.close()
                instance.teardown()
                raise

    def _snapshot(self, envelope, scratch: bool = False, net: bool = False) -> Snapshot:
        """The snapshot for this envelope's guest (RAM, vCPUs) with or without a scratch disk and a
        NIC: made on the first need (prepare_envelope), kept for the run."""
        key = (envelope.memory_mib or self.cfg.default_memory_mib, self.vcpus(envelope), scratch, net)
        if key in self.snapshots:
            return self.snapshots[key]
        instance_dir(self.dir)  # the snapshot holds the guest's RAM
        path = self.dir / f"{snapshot_name(key)}.snapshot"
        disk = scratch_disk(self.dir / f"{snapshot_name(key)}.scratch.img") if scratch else None
        spec = LaunchSpec(f"bench-snapshot-{os.getpid()}", (), self.rootfs, envelope=envelope, marker=b"BENCH-WAIT")
        started = time.monotonic()
        instance, qmp = self._qemu(spec, fds={}, disk=disk, net=net)
        try:
            instance.wait_ready(BOOT_TIMEOUT_S)
            booted = time.monotonic()
            with open(path, "wb") as f:
                qmp.execute("migrate-set-capabilities", {"capabilities": [{"capability": "events", "state": True}]})
                qmp.execute("getfd", {"fdname": "snapshot"}, fds=[f.fileno()])
                qmp.execute("migrate", {"uri": "fd:snapshot"})
                done = qmp.wait_event("MIGRATION", SAVE_TIMEOUT_S, lambda d: d.get("status") in ("completed", "failed"))
            if done["data"]["status"] != "completed":
                raise MeasurementError(f"QEMU could not save the guest to {path}")
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        finally:
            qmp.sock.close()
            instance.teardown()
        snapshot = Snapshot(path, (booted - started) * 1000, (time.monotonic() - booted) * 1000, path.stat().st_size / 2**20,
                            disk, net)
        self.snapshots[key] = snapshot
        return snapshot

    def launch(self, spec: LaunchSpec) -> QemuInstance:
        # made by prepare_envelope for a run's envelope and workloads
        snapshot = self._snapshot(spec.envelope, bool(spec.scratch), spec.server is not None)
        if spec.scratch:
            spec = replace(spec, argv=spec.argv_with({SCRATCH: SCRATCH_AT}))
        file = os.open(snapshot.path, os.O_RDONLY | os.O_CLOEXEC)
        console_in, console = os.pipe2(os.O_CLOEXEC)  # QEMU's stdin: the serial port's input
        closed: list[bool] = []

        def close_console() -> None:  # once: by the instance's teardown, or here if there is none
            if not closed:
                closed.append(True)
                os.close(console)

        try:
            instance, qmp = self._qemu(spec, "-incoming", f"fd:{SNAPSHOT_FD}", fds={0: console_in, SNAPSHOT_FD: file},
                                       snapshot=snapshot, on_teardown=close_console)
        except BaseException:
            close_console()
            raise
        finally:
            os.close(file)
            os.close(console_in)
        try:
            with qmp.sock:
                # Running again once the file is read (the guest was saved running). Bytes sent to the
                # serial port before that would be overwritten by its restored state.
                if qmp.execute("query-status")["status"] != "running":
                    qmp.wait_event("RESUME", spec.timeout_s)
            os.write(console, f"{packed_argv(spec.argv)}\n".encode())
        except BaseException:
            instance.teardown()
            raise
        return instance

    def close(self) -> None:
        super().close()
        shutil.rmtree(self.dir, ignore_errors=True)
        self.snapshots.clear()


def snapshot_name(key: tuple[int, int, bool, bool]) -> str:
    """512M-1cpu, and -disk and -net for a snapshot with a scratch disk and a NIC."""
    mib, vcpus, scratch, net = key
    return f"{mib}M-{vcpus}cpu" + ("-disk" if scratch else "") + ("-net" if net else "")
