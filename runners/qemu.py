"""Plain QEMU as a peer: the vm runner's kernel, initramfs, root disk, command line and accelerator, started
by qemu-system directly, without libvirt, to show what libvirt itself costs."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import replace
from typing import ClassVar

from bench.spec import LaunchSpec
from runners.base import Residue, processes_of
from runners.process import ProcessRunner, TaskInstance
from runners.vm import VmRunner
from runners.vm.console import GuestConsole, peak_rss_kib
from runners.vm.domain import MACHINE, QBOOT, QEMU, ROOT_SERIAL, ROOT_SLOT, guest_cmdline


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
    name = "qemu"
    family = "VMs"
    max_repeat = 10  # an expensive start: fewer rounds at most
    kind = "peer"
    description = "the vm runner's guest started by qemu-system directly, without libvirt"

    def __init__(self, **options) -> None:
        super().__init__(**options)
        self.spawner = ProcessRunner()

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

    # The machine, and the root disk on it; a subclass with another machine says its own.
    machine: tuple[str, ...] = ("-M", MACHINE, "-bios", QBOOT)
    root_device = f"virtio-blk-pci,drive=root,serial={ROOT_SERIAL},bus=pcie.0,addr={ROOT_SLOT}"
    extra_cmdline = ""

    def qemu_argv(self, spec: LaunchSpec, *extra_cmdline: str) -> list[str]:
        env = spec.envelope
        vcpus = self.vcpus(env)
        cmdline = " ".join([guest_cmdline(spec.argv, self.booted.modules(), vcpus=vcpus, host=self.host_params),
                            *filter(None, [self.extra_cmdline, *extra_cmdline])])
        argv = [QEMU, *self.machine, "-accel", self.accel_chosen, "-m", str(env.memory_mib or self.cfg.default_memory_mib),
                "-smp", str(vcpus), "-nodefaults", "-no-user-config", "-display", "none",
                "-kernel", str(self.booted.kernel.vmlinux), "-initrd", str(self.booted.initrd),
                "-drive", f"file={self.booted.root_disk},if=none,id=root,format=raw,readonly=on",
                "-device", self.root_device, "-append", cmdline, "-serial", "stdio", "-no-reboot", "-name", spec.name]
        return argv + (["-cpu", "host"] if self.accel == "kvm" else [])

    def spawn(self, spec: LaunchSpec, argv: list[str], instance_cls: type[QemuInstance] = QemuInstance, **kwargs) -> QemuInstance:
        # Guest RAM is the memory envelope: a memory cgroup on QEMU as well would count the guest twice.
        env = replace(spec.envelope, memory_mib=None)
        return self.spawner.spawn(QEMU, argv, replace(spec, envelope=env), instance_cls, **kwargs)

    def launch(self, spec: LaunchSpec) -> QemuInstance:
        return self.spawn(spec, self.qemu_argv(spec))

    def close(self) -> None:
        super().close()
        self.spawner.close()
