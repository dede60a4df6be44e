"""The microvm runner: Firecracker's design with the tools Debian has. A guest kernel built for the
job (bench/guest/microvm.config: no modules, no ACPI, virtio-mmio), booted by QEMU's `microvm`
machine (no PCI, no firmware tables, no option ROMs, no legacy PIC), started directly as the qemu
peer starts q35, with the vm runner's initramfs protocol, root disk and READY marker.

The VM rows then differ one thing at a time (`--runners vm,qemu,qemu:kernel=microvm,microvm`): vm
against qemu is libvirt; qemu against qemu:kernel=microvm is the kernel; that against microvm is
the machine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bench.images import kernel as kernels
from runners.qemu import QemuRunner
from runners.vm.domain import QEMU, ROOT_SERIAL, SCRATCH_SERIAL, VmConfig
from runners.vm.tap import GUEST_MAC

# x-option-roms=off: no ROM scan; isa-serial: the console; acpi=off: the devices are named on the
# kernel command line instead (auto-kernel-cmdline). The PIT stays: with one vCPU it is the guest's
# timer, as the HPET is on q35 (noapictimer). So does the 8259: with pic=off no PIT interrupt reached
# the guest (no timer line in /proc/interrupts, the clocksource stuck at tsc-early), so a `sleep 1`
# never returned and fio hung; it booted 17 ms faster that way (331 against 348 ms median, 6 boots
# each), on a guest whose timers did not work. And the RTC: without it the kernel waits 1 s for a
# CMOS clock that never ticks.
MACHINE = "microvm,x-option-roms=off,isa-serial=on,acpi=off"


@dataclass
class MicrovmConfig(VmConfig):
    kernel: str | None = field(default=kernels.MICROVM, metadata={
        "help": "microvm (ours, built by `bench kernel build`), or a vmlinux that boots on virtio-mmio"})


class MicrovmRunner(QemuRunner):
    paths = "disk: a virtio-blk disk (virtio-mmio); network: virtio-net (virtio-mmio) on a tap of ours (one networked guest at a time)"
    name = "microvm"
    kind = "ours"
    description = "our microvm kernel (built from Debian's source) on QEMU's microvm machine, started directly"
    Options = MicrovmConfig
    machine = ("-M", MACHINE)
    root_device = f"virtio-blk-device,drive=root,serial={ROOT_SERIAL}"
    scratch_device = f"virtio-blk-device,drive=scratch,serial={SCRATCH_SERIAL}"
    net_device = f"virtio-net-device,netdev=net,mac={GUEST_MAC}"
    provides = frozenset({"scratch", "server"})  # on virtio-mmio: a scratch disk, a NIC on a tap
    extra_cmdline = "pci=off"  # there is no PCI bus to probe

    probe_record = "kvm-probe-microvm.json"  # its own kernel: its own KVM verdict

    def __init__(self, **options) -> None:
        super().__init__(**options)  # self.cfg: a MicrovmConfig, from Options
        self.built: dict | None = None  # how the kernel was built (bench kernel build's record)

    def available(self) -> tuple[bool, str]:
        missing = kernels.microvm_build_needs() if self.cfg.kernel == kernels.MICROVM else []
        if missing:
            return False, f"its kernel is built from Debian's source, which needs {', '.join(missing)} (make setup installs them)"
        return super().available()

    def prepare(self, rootfs: str, image_digest: str, cache_dir: str) -> None:
        super().prepare(rootfs, image_digest, cache_dir)
        if self.cfg.kernel == kernels.MICROVM:
            self.built = kernels.microvm_build_info(Path(cache_dir))

    def config(self) -> dict:
        built = self.built
        return {**super().config(), "machine": MACHINE, "boot": "PVH vmlinux, QEMU's microvm firmware",
                "kernel_build_s": built and built["seconds"], "vmlinux_mib": built and built["vmlinux_mib"],
                "launcher": f"{QEMU} directly"}

