"""The vm-restore runner: warm starts. The qemu peer's guest (q35, Debian's kernel, our initramfs and
root disk) is booted once per run and envelope to where its init waits for a command (bench.wait),
and saved there with QEMU's migration to a file. Each instance is a new QEMU restoring that file
(-incoming), which is handed the workload's argv over the serial console once it runs again, and
the READY marker comes back as from a cold boot. ready_ms is from the restore's start to READY.

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
from bench.spec import LaunchSpec
from runners.qemu import QemuInstance, QemuRunner
from runners.vm.domain import packed_argv
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


class VmRestoreRunner(QemuRunner):
    name = "vm-restore"
    kind = "ours"
    description = "the qemu peer's guest restored from a snapshot taken once per run (QEMU migration to a file)"

    def __init__(self, **options) -> None:
        super().__init__(**options)
        self.snapshots: dict[tuple[int, int], Snapshot] = {}
        self.rootfs, self.dir = "", Path(f"/tmp/bench-restore-{os.getpid()}")

    def prepare(self, rootfs: str, image_digest: str, cache_dir: str) -> None:
        super().prepare(rootfs, image_digest, cache_dir)
        self.rootfs = rootfs

    def prepare_envelope(self, envelope) -> None:
        self._snapshot(envelope)

    def config(self) -> dict:
        return {**super().config(), "launcher": "qemu-system -incoming fd: (the snapshot file), argv over the serial console",
                "snapshots": {f"{mib}M-{vcpus}cpu": {"boot_ms": round(s.boot_ms, 1), "save_ms": round(s.save_ms, 1),
                                                      "size_mib": round(s.size_mib, 1)}
                              for (mib, vcpus), s in self.snapshots.items()}}

    def _qemu(self, spec: LaunchSpec, *extra: str, fds: dict[int, int], **kwargs) -> tuple[QemuInstance, Qmp]:
        """QEMU for the waiting guest (the same command line for the boot and for every restore), with
        QMP on a socket pair: the instance and a QMP session on it."""
        ours, theirs = socket.socketpair()
        with ours, theirs:
            argv = self.qemu_argv(replace(spec, argv=()), WAIT) + [
                "-chardev", f"socket,id=qmp,fd={QMP_FD}", "-mon", "chardev=qmp,mode=control", *extra]
            instance = self.spawn(spec, argv, fds={**fds, QMP_FD: theirs.fileno()}, **kwargs)
            session = ours.dup()
            try:
                return instance, Qmp(session)
            except BaseException:
                session.close()
                instance.teardown()
                raise

    def _snapshot(self, envelope) -> Snapshot:
        """The snapshot for this envelope's guest (RAM, vCPUs): made on the first need, kept for the run."""
        key = (envelope.memory_mib or self.cfg.default_memory_mib, self.vcpus(envelope))
        if key in self.snapshots:
            return self.snapshots[key]
        instance_dir(self.dir)  # the snapshot holds the guest's RAM
        path = self.dir / f"{key[0]}M-{key[1]}cpu.snapshot"
        spec = LaunchSpec(f"bench-snapshot-{os.getpid()}", (), self.rootfs, envelope=envelope, marker=b"BENCH-WAIT")
        started = time.monotonic()
        instance, qmp = self._qemu(spec, fds={})
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
        snapshot = Snapshot(path, (booted - started) * 1000, (time.monotonic() - booted) * 1000, path.stat().st_size / 2**20)
        self.snapshots[key] = snapshot
        return snapshot

    def launch(self, spec: LaunchSpec) -> QemuInstance:
        snapshot = self._snapshot(spec.envelope)  # made by prepare_envelope for a run's envelope
        file = os.open(snapshot.path, os.O_RDONLY | os.O_CLOEXEC)
        console_in, console = os.pipe2(os.O_CLOEXEC)  # QEMU's stdin: the serial port's input
        closed: list[bool] = []

        def close_console() -> None:  # once: by the instance's teardown, or here if there is none
            if not closed:
                closed.append(True)
                os.close(console)

        try:
            instance, qmp = self._qemu(spec, "-incoming", f"fd:{SNAPSHOT_FD}", fds={0: console_in, SNAPSHOT_FD: file},
                                       on_teardown=close_console)
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
