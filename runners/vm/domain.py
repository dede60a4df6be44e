"""The domain: its libvirt XML and the guest kernel's command line, written as pure functions."""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

from bench.spec import CFS_PERIOD_US
from runners.vm.tap import GUEST_MAC

QBOOT = "/usr/share/qemu/qboot.rom"
QEMU = "/usr/bin/qemu-system-x86_64"
# Every option here cuts boot time under emulation; see README "Where a VM's boot goes".
# initcall_blacklist: the kdf108 self-test alone took 565 ms of a TCG boot, kprobe tracing 73 ms;
# two of tracing's bookkeeping passes, which no workload uses, 3 and 1% of a boot: ftrace's check
# of every traceable function's symbol (a kallsyms lookup each, for tracing weak functions) and
# the rewrite of every trace event's format with enum names.
# noreplace-smp: with one CPU the kernel would rewrite every LOCK prefix in its text, one text_poke
# each, about 250 ms emulated; with more CPUs it does not patch them anyway.
CMDLINE = ("console=ttyS0 quiet loglevel=0 reboot=t panic=-1 noreplace-smp i8042.noaux i8042.nokbd i8042.nopnp "
           "mitigations=off tsc=reliable no_timer_check 8250.nr_uarts=1 cryptomgr.notests random.trust_cpu=on "
           "initcall_blacklist=crypto_kdf108_init,init_kprobe_trace,ftrace_check_for_weak_functions,trace_eval_init")
ROOT_SERIAL, SCRATCH_SERIAL = "bench-root", "bench-scratch"  # how the init tells the disks apart
SCRATCH_AT = "/mnt/scratch"
# q35, not pc: on pc the first PCI device's interrupt goes through an ACPI link device (LNKx), whose
# _SRS took about 110 ms emulated; q35 routes it to a fixed GSI. Devices sit on pcie.0 itself: a
# pcie-root-port per device (libvirt's default) would add ports to enumerate and hotplug to set up.
MACHINE = "q35"
# libvirt 9.0 reads the started guest's CPU back before it lets the guest run: with QEMU's
# "unavailable-features" property (cpu-unavailable-features) one qom-get per CPU feature, about 400
# QMP round trips and 0.35 s here; without it, libvirt's x86 way: two reads (feature-words,
# filtered-features). Deleting that capability for our domain keeps the guest as it is (the same
# QEMU command line) and takes the readback out of the start. vm.cpu_readback=stock keeps libvirt's.
CPU_READBACK = {"words": "<qemu:capabilities><qemu:del capability='cpu-unavailable-features'/></qemu:capabilities>",
                "stock": ""}
ROOT_SLOT, SCRATCH_SLOT, NET_SLOT = 2, 3, 4


@dataclass
class VmConfig:
    kernel: str | None = field(default=None, metadata={
        "help": "a vmlinux or bzImage, or microvm: ours, built by `bench kernel build` "
                "(default: Debian's cloud kernel, extracted)"})
    accel: str = field(default="auto", metadata={"help": "auto (probe KVM, fall back to TCG), kvm or tcg"})
    uri: str = field(default="qemu:///system", metadata={"help": "libvirt's URI"})
    state_dir: str = field(default="/tmp", metadata={"help": "where per-instance consoles and disks go"})
    default_cpus: int = field(default=1, metadata={"help": "vCPUs when --cpus is not given"})
    default_memory_mib: int = field(default=512, metadata={"help": "guest RAM in MiB when --memory is not given"})
    subnet: str = field(default="10.214.0.0/30", metadata={"help": "the tap's: host end .1, the guest's eth0 .2"})
    cpu_readback: str = field(default="words", metadata={
        "help": "how libvirt reads the guest CPU back at start: words (2 reads) or stock"})

    def __post_init__(self) -> None:
        if self.accel not in ("auto", "kvm", "tcg"):
            raise ValueError(f"accel must be auto, kvm or tcg, not {self.accel!r}")
        if self.cpu_readback not in CPU_READBACK:
            raise ValueError(f"cpu_readback must be {' or '.join(CPU_READBACK)}, not {self.cpu_readback!r}")


def _pci(slot: int) -> str:
    return f"<address type='pci' domain='0' bus='0' slot='{slot}' function='0'/>"


def cputune_xml(vcpus: int, cpuset: list[int] | None, quota_us: int | None) -> str:
    """Pure: every vCPU pinned to a CPU of the run's set, QEMU's emulator and I/O threads to the set,
    and a fractional --cpus as a quota on the whole guest (libvirt's global_quota)."""
    if not cpuset:
        return ""
    pins = "".join(f"<vcpupin vcpu='{i}' cpuset='{cpuset[i % len(cpuset)]}'/>" for i in range(vcpus))
    every = ",".join(map(str, cpuset))
    quota = (f"<global_period>{CFS_PERIOD_US}</global_period><global_quota>{quota_us}</global_quota>"
             if quota_us else "")
    return f"<cputune>{pins}<emulatorpin cpuset='{every}'/>{quota}</cputune>"


def domain_xml(name: str, accel: str, vcpus: int, memory_mib: int, kernel: str, initrd: str, root: str,
               cmdline: str, console: str, disk: str | None = None, tap: str | None = None,
               cpu_readback: str = "words", cputune: str = "") -> str:
    """Pure: the smallest domain that boots: no USB, no balloon, no display, one serial port; the
    read-only root disk; a virtio-blk scratch disk (host page cache bypassed) and a virtio NIC on our
    own tap when asked; libvirt's CPU readback as CPU_READBACK says."""
    cpu = "<cpu mode='host-passthrough'/>" if accel == "kvm" else ""
    extra = ""
    if disk:
        extra += (f"<disk type='file' device='disk'><driver name='qemu' type='raw' cache='none' io='native'/>"
                  f"<source file='{escape(disk)}'/><target dev='vdb' bus='virtio'/><serial>{SCRATCH_SERIAL}</serial>"
                  f"{_pci(SCRATCH_SLOT)}</disk>\n    ")
    if tap:
        extra += (f"<interface type='ethernet'><mac address='{GUEST_MAC}'/><target dev='{escape(tap)}' managed='no'/>"
                  f"<model type='virtio'/>{_pci(NET_SLOT)}</interface>\n    ")
    return f"""<domain type='{'kvm' if accel == 'kvm' else 'qemu'}' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>{escape(name)}</name>
  <memory unit='MiB'>{memory_mib}</memory>
  <vcpu>{vcpus}</vcpu>
  {cputune}
  <os>
    <type arch='x86_64' machine='{MACHINE}'>hvm</type>
    <loader type='rom' readonly='yes'>{QBOOT}</loader>
    <kernel>{escape(kernel)}</kernel>
    <initrd>{escape(initrd)}</initrd>
    <cmdline>{escape(cmdline)}</cmdline>
  </os>
  {cpu}
  <features><acpi/></features>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>{QEMU}</emulator>
    <disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='{escape(root)}'/>
      <target dev='vda' bus='virtio'/><serial>{ROOT_SERIAL}</serial><readonly/>{_pci(ROOT_SLOT)}</disk>
    {extra}<serial type='unix'><source mode='connect' path='{escape(console)}'/><target port='0'/></serial>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
  </devices>
  <seclabel type='static' model='dac' relabel='no'><label>+0:+0</label></seclabel>
  {CPU_READBACK[cpu_readback]}
</domain>"""


def guest_cmdline(argv: tuple[str, ...], modules: list[str], scratch: str | None = None, net: str | None = None,
                  vcpus: int = 1, host: dict[str, str] | None = None) -> str:
    """The kernel command line carrying the workload (base64 of its NUL-separated argv), the modules
    to load, the scratch disk's serial (mounted at SCRATCH_AT) and eth0's address; host: kernel
    parameters taken from the host (its kernel's policy, its TSC rate).

    With one vCPU the local APIC timer is left off (noapictimer): calibrating it counts 100 ms of
    emulated time against the PIT (about 120 ms of a TCG boot here), and a lone CPU needs no
    per-CPU timer; the HPET ticks instead. With more vCPUs each needs its own, so it stays on."""
    packed = packed_argv(argv)
    params = "".join(f" {key}={value}" for key, value in (host or {}).items())
    return (f"{CMDLINE}{' noapictimer' if vcpus == 1 else ''}{params} bench.argv={packed}"
            + (f" bench.modules={','.join(modules)}" if modules else "")
            + (f" bench.scratch={scratch}" if scratch else "") + (f" bench.net={net}" if net else ""))



def packed_argv(argv: tuple[str, ...]) -> str:
    """bench.argv's value: base64 of the NUL-separated argv (bench/guest/init.c decodes it)."""
    return base64.b64encode(b"\0".join(os.fsencode(a) for a in argv)).decode()


def tiny_domain_xml(name: str) -> str:
    """Pure: the least a libvirt start needs (qboot, no disks, no kernel), started paused: it times
    libvirt's own part of a start, not a boot."""
    return f"""<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>{escape(name)}</name><memory unit='MiB'>16</memory><vcpu>1</vcpu>
  <os><type arch='x86_64' machine='{MACHINE}'>hvm</type><loader type='rom' readonly='yes'>{QBOOT}</loader></os>
  <devices><emulator>{QEMU}</emulator><controller type='usb' model='none'/><memballoon model='none'/></devices>
  <seclabel type='static' model='dac' relabel='no'><label>+0:+0</label></seclabel>
  {CPU_READBACK["words"]}
</domain>"""


def destroy(domain) -> None:
    import libvirt

    try:
        domain.destroy()
    except libvirt.libvirtError:
        pass  # already gone
