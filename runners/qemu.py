"""Plain QEMU as a peer: the vm runner's kernel, initramfs, root disk, command line and accelerator, started
by qemu-system directly, without libvirt, to show what libvirt itself costs."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import ClassVar

from bench.cache import instance_dir
from bench.errors import MeasurementError
from bench.spec import SCRATCH, LaunchSpec
from runners.base import Residue, processes_of
from runners.process import ProcessRunner, TaskInstance
from runners.vm import VmRunner
from runners.vm.boot import scratch_disk
from runners.vm.console import GuestConsole, peak_rss_kib
from runners.vm.domain import (
    MACHINE,
    NET_SLOT,
    QBOOT,
    QEMU,
    ROOT_SERIAL,
    ROOT_SLOT,
    SCRATCH_AT,
    SCRATCH_SERIAL,
    SCRATCH_SLOT,
    guest_cmdline,
)
from runners.vm.tap import GUEST_MAC, Tap


class QemuInstance(GuestConsole, TaskInstance):
    """QEMU is our child and its console our pipe. The guest reports its exit and then idles, so
    teardown always ends QEMU itself."""

    def _reap(self) -> None:
        """QEMU ended on its own: a failure if the guest had not reported yet."""
        os.waitpid(self.child, 0)
        self._qemu_gone, self._eof = True, True
        if self.t_exit is None:
            self.t_exit, self.exit_code = time.monotonic_ns(), 255

    def mem_peak_mib(self) -> float | None:
        kib = peak_rss_kib(self.child)  # QEMU still runs: the guest idles after reporting
        return None if kib is None else kib / 1024

    def teardown(self) -> None:
        if self._torn_down:
            return
        self._torn_down = True
        try:
            if not getattr(self, "_qemu_gone", False):
                with contextlib.suppress(ProcessLookupError):
                    signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
                os.waitpid(self.child, 0)
        finally:
            os.close(self.pidfd)
            os.close(self.out_fd)
            if self.on_teardown:
                self.on_teardown()


class QemuRunner(VmRunner):
    paths = "disk: a virtio-blk disk; network: virtio-net on a tap of ours (one networked guest at a time)"
    name = "qemu"
    family = "VMs"
    max_repeat = 10  # an expensive start: fewer rounds at most
    kind = "peer"
    description = "the vm runner's guest started by qemu-system directly, without libvirt"
    provides = frozenset({"scratch", "server"})  # the vm runner's: a scratch disk, a virtio NIC on a tap

    def __init__(self, **options) -> None:
        super().__init__(**options)
        self.spawner = ProcessRunner()
        self.tap_user = ""  # the guest on the tap now, if one is

    def claimed_tap(self, name: str) -> tuple[Tap, Callable[[], None]]:
        """The runner's tap for the guest `name`, and what gives it back at its teardown. One guest
        with a network at a time: each takes the tap's one guest address and the fixed MAC, and a
        second QEMU cannot open a tap in use (it exited, and the run read "QEMU did not answer on its
        QMP socket"). Concurrent ones would need a network namespace each, which is not built."""
        if self.tap_user:
            raise MeasurementError(f"{self.name}: one guest with a network at a time here, and {self.tap_user} has "
                                   "the tap (each would take its one address and MAC; a namespace per guest is not built)")
        if self.tap is None:
            self.server_side()
        assert self.tap is not None
        self.tap_user = name

        def release() -> None:
            if self.tap_user == name:
                self.tap_user = ""

        return self.tap, release

    def config(self) -> dict:
        return {**super().config(), "launcher": f"{QEMU} directly (libvirt only for the shared KVM probe)"}

    enforcement: ClassVar[dict[str, str]] = {"cpuset": "CPU affinity of every QEMU thread (as taskset)",
                                             "cpu_quota": "a cgroup of its own around QEMU, CFS quota", "memory": "guest RAM"}

    def doctor_checks(self, cache_dir: str) -> list:
        return []  # no libvirt on its path; the KVM verdict is the vm runner's, shared

    @classmethod
    def warnings(cls, medians: dict[str, float]) -> list[str]:
        return []

    @classmethod
    def residues(cls, cache_dir: str) -> list[Residue]:
        """QEMUs it started (-name bench-...) that outlived a killed worker, and the KVM probe's domain."""
        found = [Residue("qemu process", str(pid)) for pid, argv in processes_of(QEMU)
                 if b"-name" in argv and argv[argv.index(b"-name") + 1].startswith(b"bench-")]
        return found + super().residues(cache_dir)

    @classmethod
    def remove(cls, residue: Residue) -> None:
        if residue.kind != "qemu process":
            return super().remove(residue)
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(residue.name), signal.SIGKILL)

    # The machine, and the devices on it; a subclass with another machine says its own.
    machine: tuple[str, ...] = ("-M", MACHINE, "-bios", QBOOT)
    root_device = f"virtio-blk-pci,drive=root,serial={ROOT_SERIAL},bus=pcie.0,addr={ROOT_SLOT}"
    scratch_device = f"virtio-blk-pci,drive=scratch,serial={SCRATCH_SERIAL},bus=pcie.0,addr={SCRATCH_SLOT}"
    net_device = f"virtio-net-pci,netdev=net,mac={GUEST_MAC},bus=pcie.0,addr={NET_SLOT}"
    extra_cmdline = ""

    def qemu_argv(self, spec: LaunchSpec, *extra_cmdline: str, disk: str | None = None, tap: Tap | None = None,
                  overlay: bool = False) -> list[str]:
        """disk: a scratch disk image (virtio-blk, the host's page cache bypassed, as the vm runner's);
        overlay: its writes go to a temporary overlay of QEMU's own (snapshot=on), the image stays as
        it was; tap: the tap its virtio NIC is on (the guest takes the tap's second address)."""
        env = spec.envelope
        vcpus = self.vcpus(env)
        modules = self.booted.modules(*(["virtio_net"] if tap else []))
        cmdline = " ".join([guest_cmdline(spec.argv, modules, SCRATCH_SERIAL if disk else None,
                                          tap.guest_address if tap else None, vcpus=vcpus, host=self.host_params),
                            *filter(None, [self.extra_cmdline, *extra_cmdline])])
        argv = [QEMU, *self.machine, "-accel", self.accel_chosen, "-m", str(env.memory_mib or self.cfg.default_memory_mib),
                "-smp", str(vcpus), "-nodefaults", "-no-user-config", "-display", "none",
                "-kernel", str(self.booted.kernel.vmlinux), "-initrd", str(self.booted.initrd),
                "-drive", f"file={self.booted.root_disk},if=none,id=root,format=raw,readonly=on",
                "-device", self.root_device, "-append", cmdline, "-serial", "stdio", "-no-reboot", "-name", spec.name]
        if disk:
            argv += ["-drive", f"file={disk},if=none,id=scratch,format=raw,cache=none,aio=native"
                     + (",snapshot=on" if overlay else ""),
                     "-device", self.scratch_device]
        if tap:
            argv += ["-netdev", f"tap,id=net,ifname={tap.name},script=no,downscript=no", "-device", self.net_device]
        return argv + (["-cpu", "host"] if self.accel == "kvm" else [])

    def spawn(self, spec: LaunchSpec, argv: list[str], instance_cls: type[QemuInstance] = QemuInstance, **kwargs) -> QemuInstance:
        # Guest RAM is the memory envelope: a memory cgroup on QEMU as well would count the guest twice.
        env = replace(spec.envelope, memory_mib=None)
        return self.spawner.spawn(QEMU, argv, replace(spec, envelope=env), instance_cls, **kwargs)

    def launch(self, spec: LaunchSpec) -> QemuInstance:
        """A disk and a network workload get what the vm runner gives them: a scratch disk of their
        own (own or volume: a VM's writable storage is a disk either way) and the runner's tap."""
        state = Path(self.cfg.state_dir) / spec.name
        disk = None
        if spec.scratch:
            instance_dir(state)
            disk = scratch_disk(state / "scratch.img")
            spec = replace(spec, argv=spec.argv_with({SCRATCH: SCRATCH_AT}))
        tap, release = self.claimed_tap(spec.name) if spec.server else (None, None)

        def cleanup() -> None:
            if release:
                release()
            if disk:
                shutil.rmtree(state, ignore_errors=True)

        try:
            argv = self.qemu_argv(spec, disk=disk, tap=tap)
        except BaseException:
            cleanup()
            raise
        return self.spawn(spec, argv, on_teardown=cleanup)

    def close(self) -> None:
        super().close()
        self.spawner.close()
