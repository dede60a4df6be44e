"""The virtual machine: a transient libvirt/QEMU domain booting its own kernel; a small initramfs
mounts the guest rootfs from a read-only virtio disk and runs the workload in it. PVH boot of the
uncompressed vmlinux through qboot; KVM when a probe boot works,
TCG (emulation) otherwise. The READY marker arrives over the serial console, on a unix socket the
host listens on (QEMU connects to it at start), read as bytes arrive.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import inspect
import json
import math
import os
import re
import select
import shutil
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

from bench.errors import MeasurementError
from bench.interrupts import held
from bench.spec import CFS_PERIOD_US, SCRATCH, LaunchSpec
from runners._child import ChildInstance, run_quietly
from runners.base import GUEST_ENV, Check, Runner

QBOOT = "/usr/share/qemu/qboot.rom"
QEMU = "/usr/bin/qemu-system-x86_64"
KVM_PROBE_TIMEOUT_S = 10.0
# libvirt's part of a domain start is ~0.15 s on a healthy host; ~10 s means it probes QEMU's
# capabilities again on every start (see kvm_device_check).
SLOW_LIBVIRT_START_MS = 1000.0
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
ROOT_MODULES = ("virtio_pci", "virtio_blk")  # what the init needs to reach the root disk
ROOT_SERIAL, SCRATCH_SERIAL = "bench-root", "bench-scratch"  # how the init tells the disks apart
SCRATCH_MIB = 256  # the virtio-blk scratch disk of a disk workload (fio uses 64 MiB of it)
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
MKFS = "/usr/sbin/mkfs.ext4"
_EXIT = re.compile(rb"BENCH-EXIT (\d+)")
_MEM = re.compile(rb"BENCH-MEM (\d+) (\d+)")


@dataclass
class VmConfig:
    kernel: str | None = field(default=None, metadata={
        "help": "a vmlinux or bzImage (default: Debian's cloud kernel, extracted)"})
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
        extra += (f"<interface type='ethernet'><target dev='{escape(tap)}' managed='no'/>"
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
    packed = base64.b64encode(b"\0".join(os.fsencode(a) for a in argv)).decode()
    params = "".join(f" {key}={value}" for key, value in (host or {}).items())
    return (f"{CMDLINE}{' noapictimer' if vcpus == 1 else ''}{params} bench.argv={packed}"
            + (f" bench.modules={','.join(modules)}" if modules else "")
            + (f" bench.scratch={scratch}" if scratch else "") + (f" bench.net={net}" if net else ""))


@functools.cache  # measured once per process: the vm runner and the qemu peer both ask
def host_tsc_khz(cache_dir: Path) -> str | None:
    """The host's TSC rate in kHz (runners/tsc_khz.c), for a TCG guest, whose TSC is the host's.
    The guest kernel still times its CPU against the emulated PIT, but that fast calibration failed
    in 4 of 16 boots here; told the TSC rate (tsc_early_khz), the kernel then no longer falls back
    to its slow calibration, three rounds of 10 to 50 ms against PIT and HPET. None when it cannot
    be measured: the guest calibrates as usual."""
    import subprocess

    from bench.image import build_static, compiler

    tool = build_static(cache_dir, Path(__file__).with_name("tsc_khz.c"), compiler())
    try:
        out = subprocess.run([tool], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out if out.isdigit() and int(out) > 0 else None


def cached_accel(cache_dir: str) -> str:
    """What the last KVM probe on this boot decided, for `bench doctor` and `bench list runners`."""
    try:
        record = json.loads((Path(cache_dir) / "kvm-probe.json").read_text())
        boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except (OSError, ValueError):
        return "accel: decided by a KVM probe boot before the first VM of a run"
    if not record.get("key", "").startswith(boot_id):
        return "accel: probed on an earlier boot; probed again before the next VM"
    return f"accel: {record['accel']} ({record['reason']})"


def kvm_device_check(path: str = "/dev/kvm") -> Check:
    """/dev/kvm as udev leaves it (root:kvm 0660). Otherwise libvirt finds KVM unusable for its QEMU
    user, which disagrees with its cached QEMU capabilities, and it probes QEMU again at every start."""
    import grp
    import stat

    try:
        st = os.stat(path)
    except OSError:
        return Check("kvm device", True, f"{path} missing: VMs run emulated (TCG)")
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    mode = stat.S_IMODE(st.st_mode)
    ok = group == "kvm" and mode & 0o060 == 0o060
    return Check("kvm device", ok, f"{path} {group} {mode:04o}" + ("" if ok else ": libvirt re-probes QEMU on every domain start"),
                 "" if ok else f"chgrp kvm {path} && chmod 0660 {path}   (what udev does; `make setup` does it)")


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


class VmRunner(Runner):
    name = "vm"
    family = "VMs"
    max_repeat = 10  # an expensive start: fewer rounds at most
    description = "libvirt/QEMU domain: own kernel (PVH, qboot), rootfs on a read-only virtio disk; KVM or TCG"
    provides = frozenset({"scratch", "server"})

    Options = VmConfig
    enforcement = {"cpuset": "every vCPU pinned, emulator and I/O threads on the set (libvirt cputune)",
                   "cpu_quota": "CFS quota on the guest's vCPUs (libvirt global_quota)",
                   "memory": "guest RAM"}

    def __init__(self, **options) -> None:
        self.cfg = VmConfig(**options)
        self.tap: Tap | None = None
        self.conn = None
        self.kernel = None
        self.initrd: Path | None = None
        self.root_disk: Path | None = None
        self.accel, self.accel_reason = None, ""
        self.host_params: dict[str, str] = {}  # guest kernel parameters taken from the host

    def available(self) -> tuple[bool, str]:
        try:
            import libvirt  # noqa: F401  optional: the `vm` extra
        except ImportError:
            return False, "libvirt-python is not installed (pip install 'isobench[vm]')"
        if not (os.path.exists(QEMU) and os.path.exists(QBOOT)):
            return False, f"{QEMU} or {QBOOT} missing (apt-get install qemu-system-x86)"
        try:
            self._connect()
        except Exception as exc:  # libvirt.libvirtError: the daemon is not running
            return False, f"cannot reach libvirt at {self.cfg.uri}: {str(exc).splitlines()[0]}"
        return True, f"libvirt {self.conn.getLibVersion() // 1_000_000}.{self.conn.getLibVersion() // 1000 % 1000}"

    def _connect(self):
        if self.conn is None:
            import libvirt

            libvirt.registerErrorHandler(lambda *_: None, None)  # errors arrive as exceptions
            self.conn = libvirt.open(self.cfg.uri)
        return self.conn

    def prepare(self, rootfs: str, image_digest: str, cache_dir: str) -> None:
        from bench import initramfs
        from bench import kernel as kernels
        from bench.image import build_static, compiler, file_digest

        self.kernel = kernels.from_path(self.cfg.kernel) if self.cfg.kernel else kernels.fetch(Path(cache_dir))
        init = Path(build_static(Path(cache_dir), initramfs.INIT_SOURCE, compiler()))
        key = hashlib.sha256(f"{self.kernel.release} {file_digest(init)} ".encode()
                             + Path(initramfs.__file__).read_bytes()).hexdigest()[:16]
        self.initrd = Path(cache_dir) / "initramfs" / f"{key}.cpio"
        # The root disk holds the image and nothing of the init or the kernel: keyed by what makes it.
        disk_key = hashlib.sha256(inspect.getsource(initramfs.build_root_disk).encode()).hexdigest()[:8]
        self.root_disk = Path(cache_dir) / "initramfs" / f"root-{image_digest}-{disk_key}.ext4"
        self.initrd.parent.mkdir(parents=True, exist_ok=True)
        if not self.initrd.exists():
            initramfs.build_initramfs(init, self.kernel.modules, self.initrd)
        if not self.root_disk.exists():
            initramfs.build_root_disk(Path(rootfs), self.root_disk, MKFS)
        self.host_params = kernels.host_policy()
        self.accel, self.accel_reason = self._choose_accel(Path(cache_dir), rootfs)
        if self.accel == "tcg":  # the guest's TSC is the host's: its rate is known, not calibrated
            khz = host_tsc_khz(Path(cache_dir))
            if khz:
                self.host_params["tsc_early_khz"] = khz

    def _choose_accel(self, cache_dir: Path, rootfs: str) -> tuple[str, str]:
        if self.cfg.accel != "auto":
            return self.cfg.accel, f"asked for with --option vm.accel={self.cfg.accel}"
        if not os.access("/dev/kvm", os.R_OK | os.W_OK):
            return "tcg", "/dev/kvm is missing or not usable"
        boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        record = cache_dir / "kvm-probe.json"  # probed once per host boot, kernel and QEMU
        key = f"{boot_id} {self.kernel.release} {self.conn.getVersion()}"
        try:
            cached = json.loads(record.read_text())
            if cached["key"] == key:
                return cached["accel"], cached["reason"] + " (probed earlier this boot)"
        except (OSError, ValueError, KeyError):
            pass
        accel, reason = self._probe_kvm(rootfs)
        record.write_text(json.dumps({"key": key, "accel": accel, "reason": reason}))
        return accel, reason

    def _probe_kvm(self, rootfs: str) -> tuple[str, str]:
        spec = LaunchSpec(f"bench-kvmprobe-{os.getpid()}", ("/bin/bench-probe",), rootfs)
        started = time.monotonic()
        try:
            with held():  # a Ctrl-C here must not lose the probe's domain
                inst = self._start(spec, "kvm")
        except Exception as exc:
            return "tcg", f"KVM guest failed to start: {str(exc).splitlines()[0]}"
        try:
            inst.wait_ready(KVM_PROBE_TIMEOUT_S)
            return "kvm", f"a KVM probe boot reached READY in {time.monotonic() - started:.2f} s"
        except MeasurementError:
            return "tcg", f"a KVM probe boot did not reach READY within {KVM_PROBE_TIMEOUT_S:g} s (KVM hangs here)"
        finally:
            inst.teardown()

    def config(self) -> dict:
        return {"accel": self.accel, "accel_reason": self.accel_reason,
                "kernel": self.kernel.release if self.kernel else None, "boot": "PVH vmlinux via qboot",
                "machine": MACHINE, "cpu_readback": self.cfg.cpu_readback,
                "initramfs_mib": round(self.initrd.stat().st_size / 2**20, 1) if self.initrd else None,
                "root": "the guest rootfs, ext4 on a read-only virtio disk",
                "cmdline": CMDLINE, "from_host": " ".join(f"{k}={v}" for k, v in self.host_params.items()),
                "default_vcpus": self.cfg.default_cpus,
                "default_memory_mib": self.cfg.default_memory_mib}

    def launch(self, spec: LaunchSpec) -> "VmInstance":
        return self._start(spec, self.accel)

    def doctor_checks(self, cache_dir: str) -> list[Check]:
        accel = cached_accel(cache_dir)
        return [kvm_device_check(), self.libvirt_start_check(),
                Check("kvm", "accel: tcg" not in accel, accel)]

    def libvirt_start_check(self, starts: int = 2) -> Check:
        """Time libvirt's part of a start on a tiny paused domain, twice: the first may probe QEMU
        once (after an upgrade); a second as slow means it probes on every start."""
        import libvirt

        times = []
        for i in range(starts):
            name = f"bench-doctor-{os.getpid()}-{i}"
            started = time.monotonic()
            try:
                with held():
                    domain = self._connect().createXML(tiny_domain_xml(name), libvirt.VIR_DOMAIN_START_PAUSED)
            except libvirt.libvirtError as exc:
                return Check("libvirt start", False, f"a tiny domain did not start: {str(exc).splitlines()[0]}")
            times.append((time.monotonic() - started) * 1000)
            _destroy(domain)
        ok = times[-1] < SLOW_LIBVIRT_START_MS
        return Check("libvirt start", ok, f"createXML of a tiny paused domain: {', '.join(f'{t:.0f}' for t in times)} ms"
                     + ("" if ok else " (libvirt probes QEMU's capabilities at every start)"),
                     "" if ok else "chgrp kvm /dev/kvm && chmod 0660 /dev/kvm, then start a domain once")

    @classmethod
    def warnings(cls, medians: dict[str, float]) -> list[str]:
        start = medians.get("libvirt_start_ms")
        if start is None or start <= SLOW_LIBVIRT_START_MS:
            return []
        return [f"{cls.name}: libvirt took {start:,.0f} ms (median) to start each domain, over "
                f"{SLOW_LIBVIRT_START_MS / 1000:g} s: it probes QEMU's capabilities at every start, so ready_ms "
                "measures libvirt, not the VM. Usually /dev/kvm is not root:kvm 0660 (no udev): run `make setup` "
                "or see `bench doctor`"]

    def vcpus(self, envelope) -> int:
        """One vCPU per CPU of the envelope's set (ceil(--cpus)); default_cpus without --cpus."""
        return max(1, math.ceil(envelope.cpus)) if envelope.cpus else self.cfg.default_cpus

    def boot_modules(self, *extra: str) -> list[str]:
        """The modules the init loads: the root disk's, extra ones, and their dependencies first."""
        from bench.kernel import load_order

        return list(load_order(self.kernel.modules, dict.fromkeys((*ROOT_MODULES, *extra))))

    def server_side(self) -> tuple[str | None, str]:
        """The host end of our own tap: traffic crosses virtio-net and the tap, nothing else."""
        if self.tap is None:
            self.tap = Tap(f"bench-tap{os.getpid() % 100000}", self.cfg.subnet)
        return None, self.tap.host_address

    def _start(self, spec: LaunchSpec, accel: str) -> "VmInstance":
        import libvirt

        env = spec.envelope
        state = Path(self.cfg.state_dir) / spec.name
        state.mkdir(parents=True, exist_ok=True)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            argv, disk = spec.argv, None
            if spec.scratch:  # own or volume: a VM's writable storage is a disk either way
                disk = scratch_disk(state / "scratch.img")
                argv = spec.argv_with({SCRATCH: SCRATCH_AT})
            tap = self.tap if spec.server else None
            modules = self.boot_modules(*(["virtio_net"] if tap else []))
            listener.bind(str(state / "console.sock"))
            listener.listen(1)
            vcpus = self.vcpus(env)
            cmdline = guest_cmdline(argv, modules, SCRATCH_SERIAL if disk else None,
                                    tap.guest_address if tap else None, vcpus, self.host_params)
            xml = domain_xml(spec.name, accel, vcpus,
                             env.memory_mib or self.cfg.default_memory_mib, str(self.kernel.vmlinux),
                             str(self.initrd), str(self.root_disk), cmdline, str(state / "console.sock"), disk,
                             tap.name if tap else None, self.cfg.cpu_readback,
                             cputune_xml(vcpus, env.cpu_list(), env.quota_us()))
            started = time.monotonic_ns()
            try:
                domain = self.conn.createXML(xml, 0)  # transient: gone once destroyed; QEMU runs the guest
            except libvirt.libvirtError as exc:  # QEMU refused: KVM asked for where it does not work, ...
                raise MeasurementError(f"libvirt could not start {spec.name}: {str(exc).splitlines()[0]}") from None
            start_ms = (time.monotonic_ns() - started) / 1e6
            try:
                if not select.select([listener], [], [], 10)[0]:
                    raise MeasurementError("QEMU did not connect to the console socket")
                console, _ = listener.accept()
                pid = int(Path(f"/run/libvirt/qemu/{spec.name}.pid").read_text())
            except BaseException:
                _destroy(domain)
                raise
        except BaseException:
            shutil.rmtree(state, ignore_errors=True)
            raise
        finally:
            listener.close()
        return VmInstance(pid, console, spec.marker, domain, state, start_ms)

    def close(self) -> None:
        if self.tap is not None:
            self.tap.remove()
            self.tap = None
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def scratch_disk(path: Path) -> str:
    """A sparse raw file with an ext4 on it, for the guest's scratch disk."""
    with open(path, "wb") as f:
        f.truncate(SCRATCH_MIB << 20)
    if run_quietly([MKFS, "-q", "-F", "-E", "nodiscard", str(path)], GUEST_ENV) != 0:
        raise MeasurementError(f"{MKFS} failed on {path} (is e2fsprogs installed?)")
    return str(path)


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

        from runners.network import ip

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
        except OSError:
            self.remove()
            raise

    def remove(self) -> None:
        from runners.network import ip

        try:
            ip("link", "delete", self.name)
        except OSError:
            pass  # already gone


def _destroy(domain) -> None:
    import libvirt

    try:
        domain.destroy()
    except libvirt.libvirtError:
        pass  # already gone


def peak_rss_kib(pid: int) -> int | None:
    """VmHWM of a live process (its peak resident set so far)."""
    try:
        found = re.search(r"VmHWM:\s+(\d+)", Path(f"/proc/{pid}/status").read_text())
    except OSError:
        return None
    return int(found.group(1)) if found else None


class GuestConsole:
    """The guest side of the console protocol (bench/guest/init.c), for any instance whose output
    is a guest's console: "BENCH-EXIT n" is the workload's exit (t_exit is when it arrived),
    "BENCH-MEM total available" the guest's own view of its memory."""

    DRAIN_S = 0.0  # the guest idles after reporting: take what has arrived, wait for nothing more
    EXIT_TIMEOUT = "the guest did not report its exit within {:g} s"

    def _note_exit(self) -> None:
        found = _EXIT.search(self.output)
        if found and self.t_exit is None:
            self.t_exit = self._chunk_time_at(found.start())
            self.exit_code = int(found.group(1))

    def _read_once(self, timeout_s: float | None) -> bool:
        progressed = super()._read_once(timeout_s)
        self._note_exit()
        return progressed

    def extra_metrics(self) -> dict[str, tuple[float, str]]:
        found = _MEM.search(self.output)
        if not found:
            return {}
        total, available = (int(v) / 1024 for v in found.groups())
        return {"guest_mem_total_mib": (total, "MiB"), "guest_mem_available_mib": (available, "MiB")}

    def console_text(self, data: bytes) -> bytes:
        """What a person should see of console bytes: no CRs, no BENCH- protocol lines but the init's
        warnings, as what they say ("cannot exec /nonexistent: No such file or directory")."""
        self._partial = getattr(self, "_partial", b"") + data.replace(b"\r", b"")
        *lines, self._partial = self._partial.split(b"\n")
        shown = (line.removeprefix(b"BENCH-WARN ") for line in lines
                 if line.startswith(b"BENCH-WARN ") or not line.startswith(b"BENCH-"))
        return b"".join(line + b"\n" for line in shown)


class VmInstance(GuestConsole, ChildInstance):
    """A libvirt domain: teardown destroys it as soon as the workload has reported its exit. Waiting
    for the guest to end the domain itself costs 1.6 to 2 s here, spent in libvirt's own shutdown
    handling, not in the guest."""

    POLL_S = 0.05  # how often QEMU's VmHWM is sampled while waiting

    def __init__(self, qemu_pid: int, console: socket.socket, marker, domain, state: Path,
                 libvirt_start_ms: float) -> None:
        self.console, self.domain, self.state = console, domain, state
        self.hwm_kib, self.libvirt_start_ms = 0, libvirt_start_ms
        super().__init__(qemu_pid, console.fileno(), marker)

    def extra_metrics(self) -> dict[str, tuple[float, str]]:
        """Beside the guest's memory: how much of ready_ms libvirt's createXML took (QEMU started
        paused, libvirt's queries, then `cont`), so that a nightly run shows libvirt's share apart."""
        return {**super().extra_metrics(), "libvirt_start_ms": (self.libvirt_start_ms, "ms")}

    def _reap(self) -> None:
        """QEMU itself ended (it is libvirt's child, not ours): the guest crashed or reset early."""
        self._eof = True
        if self.t_exit is None:
            self.t_exit = time.monotonic_ns()
            self.exit_code = 255

    def _read_once(self, timeout_s: float | None) -> bool:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            self._sample_hwm()
            left = None if deadline is None else deadline - time.monotonic()
            step = self.POLL_S if left is None else max(0.0, min(self.POLL_S, left))
            if super()._read_once(step):
                return True
            if left is not None and left <= self.POLL_S:
                return False

    def _sample_hwm(self) -> None:
        self.hwm_kib = max(self.hwm_kib, peak_rss_kib(self.pid) or 0)

    def mem_peak_mib(self) -> float | None:
        return self.hwm_kib / 1024 if self.hwm_kib else None

    def teardown(self) -> None:
        if self._torn_down:
            return
        self._torn_down = True
        try:
            _destroy(self.domain)
            deadline = time.monotonic() + 10
            while self._domain_exists() and time.monotonic() < deadline:
                time.sleep(0.005)
        finally:
            os.close(self.pidfd)
            self.console.close()
            shutil.rmtree(self.state, ignore_errors=True)

    def _domain_exists(self) -> bool:
        import libvirt

        try:
            self.domain.ID()
            return self.domain.isActive()
        except libvirt.libvirtError:
            return False
