"""The virtual machine: a transient libvirt/QEMU domain booting its own kernel; a small initramfs
mounts the guest rootfs from a read-only virtio disk and runs the workload in it. PVH boot of the
uncompressed vmlinux through qboot; KVM when a probe boot works,
TCG (emulation) otherwise. The READY marker arrives over the serial console, on a unix socket the
host listens on (QEMU connects to it at start), read as bytes arrive.
"""

from __future__ import annotations

import math
import os
import select
import shutil
import socket
import time
from pathlib import Path
from typing import Any, ClassVar

from bench.cache import instance_dir
from bench.errors import MeasurementError
from bench.interrupts import held
from bench.spec import SCRATCH, LaunchSpec
from runners._child import ChildInstance
from runners.base import Check, Instance, Residue, Runner
from runners.vm.accel import KVM_PROBE_TIMEOUT_S, cached_accel, choose_accel, host_tsc_khz, kvm_device_check
from runners.vm.boot import BootFiles, boot_files, scratch_disk
from runners.vm.console import GuestConsole, peak_rss_kib
from runners.vm.domain import (
    CMDLINE,
    MACHINE,
    QBOOT,
    QEMU,
    SCRATCH_AT,
    SCRATCH_SERIAL,
    VmConfig,
    cputune_xml,
    destroy,
    domain_xml,
    guest_cmdline,
    tiny_domain_xml,
)
from runners.vm.tap import Tap, own_tap

# libvirt's part of a domain start is ~0.15 s on a healthy host; ~10 s means it probes QEMU's
# capabilities again on every start (see kvm_device_check).
SLOW_LIBVIRT_START_MS = 1000.0


class VmRunner(Runner):
    paths = "disk: a virtio-blk disk; network: virtio-net on a tap of ours"
    name = "vm"
    family = "VMs"
    max_repeat = 10  # an expensive start: fewer rounds at most
    description = "libvirt/QEMU domain: own kernel (PVH, qboot), rootfs on a read-only virtio disk; KVM or TCG"
    provides = frozenset({"scratch", "server"})

    Options = VmConfig
    probe_record = "kvm-probe.json"  # in the cache: the KVM verdict, per host boot and kernel
    version_probes: ClassVar[dict[str, tuple[list[str], str]]] = {"qemu": ([QEMU, "--version"], r"version ([\w.\-]+)"),
                      "libvirt": (["libvirtd", "--version"], r"([\d.]+)\s*$")}
    enforcement: ClassVar[dict[str, str]] = {"cpuset": "every vCPU pinned, emulator and I/O threads on the set (libvirt cputune)",
                                             "cpu_quota": "CFS quota on the guest's vCPUs (libvirt global_quota)",
                                             "memory": "guest RAM"}

    def __init__(self, **options) -> None:
        self.cfg = self.Options(**options)  # a subclass may declare its own defaults
        self.tap: Tap | None = None
        self.conn: Any = None  # a libvirt.virConnect (the binding has no types)
        self.boot: BootFiles | None = None
        self.accel: str | None = None
        self.accel_reason = ""
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
        except Exception as exc:  # noqa: BLE001 -- libvirtError (the daemon is not running) or whatever the binding raises: not available, said why
            return False, f"cannot reach libvirt at {self.cfg.uri}: {str(exc).splitlines()[0]}"
        version = self._connect().getLibVersion()
        return True, f"libvirt {version // 1_000_000}.{version // 1000 % 1000}"

    @property
    def booted(self) -> BootFiles:
        """The kernel, initramfs and root disk that prepare() made."""
        if self.boot is None:
            raise MeasurementError(f"{self.name}: prepare() makes the boot files before the first launch")
        return self.boot

    @property
    def accel_chosen(self) -> str:
        """kvm or tcg, as prepare() chose."""
        if self.accel is None:
            raise MeasurementError(f"{self.name}: prepare() chooses KVM or TCG before the first launch")
        return self.accel

    def _connect(self) -> Any:
        if self.conn is None:
            import libvirt

            libvirt.registerErrorHandler(lambda *_: None, None)  # errors arrive as exceptions
            self.conn = libvirt.open(self.cfg.uri)
        return self.conn

    def prepare(self, rootfs: str, image_digest: str, cache_dir: str) -> None:
        from bench.images import kernel as kernels

        self.boot = boot_files(self.cfg.kernel, rootfs, image_digest, Path(cache_dir))
        self.host_params = kernels.host_policy()
        self.accel, self.accel_reason = self._choose_accel(Path(cache_dir), rootfs)
        if self.accel == "tcg":  # the guest's TSC is the host's: its rate is known, not calibrated
            khz = host_tsc_khz(Path(cache_dir))
            if khz:
                self.host_params["tsc_early_khz"] = khz

    def _choose_accel(self, cache_dir: Path, rootfs: str) -> tuple[str, str]:
        if self.cfg.accel != "auto":
            return self.cfg.accel, f"asked for with --option {self.name}.accel={self.cfg.accel}"
        return choose_accel(cache_dir, f"{self.booted.kernel.release} {self._connect().getVersion()}",
                            lambda: self._probe_kvm(rootfs), self.probe_record)

    def _probe_kvm(self, rootfs: str) -> tuple[str, str]:
        spec = LaunchSpec(f"bench-kvmprobe-{os.getpid()}", ("/bin/bench-probe",), rootfs)
        started = time.monotonic()
        try:
            with held():  # a Ctrl-C here must not lose the probe's domain
                inst = self._start(spec, "kvm")
        except Exception as exc:  # noqa: BLE001 -- whatever fails a KVM guest's start (libvirtError, MeasurementError, OSError): TCG
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
                "kernel": self.boot.kernel.release if self.boot else None, "boot": "PVH vmlinux via qboot",
                "machine": MACHINE, "cpu_readback": self.cfg.cpu_readback,
                "initramfs_mib": round(self.boot.initrd.stat().st_size / 2**20, 1) if self.boot else None,
                "root": "the guest rootfs, ext4 on a read-only virtio disk",
                "cmdline": CMDLINE, "from_host": " ".join(f"{k}={v}" for k, v in self.host_params.items()),
                "default_vcpus": self.cfg.default_cpus,
                "default_memory_mib": self.cfg.default_memory_mib}

    def reserved_mib(self, envelope) -> int:
        """The guest's RAM: QEMU maps all of it at start and the guest may touch all of it."""
        return envelope.memory_mib or self.cfg.default_memory_mib

    def launch(self, spec: LaunchSpec) -> GuestConsole:
        return self._start(spec, self.accel_chosen)

    def doctor_checks(self, cache_dir: str) -> list[Check]:
        accel = cached_accel(cache_dir)
        return [kvm_device_check(), self.libvirt_start_check(),
                Check("kvm", "accel: tcg" not in accel, accel)]

    def cached_state(self, cache_dir: str) -> str:
        return cached_accel(cache_dir)

    @classmethod
    def residues(cls, cache_dir: str) -> list[Residue]:
        """libvirt domains named bench-... (running or defined); their QEMU goes with them."""
        try:
            import libvirt

            libvirt.registerErrorHandler(lambda *_: None, None)
            conn = libvirt.open("qemu:///system")
        except Exception:  # noqa: BLE001 -- ImportError or libvirtError (no binding, no daemon): nothing of ours there either
            return []
        try:
            return [Residue("domain", d.name()) for d in conn.listAllDomains() if d.name().startswith("bench-")]
        finally:
            conn.close()

    @classmethod
    def remove(cls, residue: Residue) -> None:
        import libvirt

        conn = libvirt.open("qemu:///system")
        try:
            domain = conn.lookupByName(residue.name)
            if domain.isActive():
                domain.destroy()
            if domain.isPersistent():
                domain.undefine()
        except libvirt.libvirtError:
            pass  # gone meanwhile
        finally:
            conn.close()

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
            destroy(domain)
        ok = times[-1] < SLOW_LIBVIRT_START_MS
        return Check("libvirt start", ok, f"createXML of a tiny paused domain: {', '.join(f'{t:.0f}' for t in times)} ms"
                     + ("" if ok else " (libvirt probes QEMU's capabilities at every start)"),
                     "" if ok else "chgrp kvm /dev/kvm && chmod 0660 /dev/kvm, then start a domain once")

    @classmethod
    def warnings(cls, medians: dict[str, float]) -> list[str]:
        start = medians.get("libvirt_start_ms")
        if start is None or start <= SLOW_LIBVIRT_START_MS:
            return []
        return [(f"{cls.name}: libvirt took {start:,.0f} ms (median) to start each domain, over "
                f"{SLOW_LIBVIRT_START_MS / 1000:g} s: it probes QEMU's capabilities at every start, so ready_ms "
                "measures libvirt, not the VM. Usually /dev/kvm is not root:kvm 0660 (no udev): run `make setup` "
                "or see `bench doctor`")]

    def vcpus(self, envelope) -> int:
        """One vCPU per CPU of the envelope's set (ceil(--cpus)); default_cpus without --cpus."""
        return max(1, math.ceil(envelope.cpus)) if envelope.cpus else self.cfg.default_cpus

    def server_side(self) -> tuple[str | None, str]:
        """The host end of our own tap: traffic crosses virtio-net and the tap, nothing else."""
        if self.tap is None:
            self.tap = own_tap(self.cfg.subnet)
        return None, self.tap.host_address

    listen_on = "0.0.0.0"  # the guest's own eth0 and loopback

    def guest_address(self, instance: Instance) -> str:
        if self.tap is None:
            raise MeasurementError(f"{self.name}: no tap: the instance was launched without a network path")
        return self.tap.guest_address.split("/")[0]

    def _start(self, spec: LaunchSpec, accel: str) -> VmInstance:
        import libvirt

        env = spec.envelope
        state = Path(self.cfg.state_dir) / spec.name
        instance_dir(state)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            argv, disk = spec.argv, None
            if spec.scratch:  # own or volume: a VM's writable storage is a disk either way
                disk = scratch_disk(state / "scratch.img")
                argv = spec.argv_with({SCRATCH: SCRATCH_AT})
            tap = self.tap if spec.server else None
            modules = self.booted.modules(*(["virtio_net"] if tap else []))
            listener.bind(str(state / "console.sock"))
            listener.listen(1)
            vcpus = self.vcpus(env)
            cmdline = guest_cmdline(argv, modules, SCRATCH_SERIAL if disk else None,
                                    tap.guest_address if tap else None, vcpus, self.host_params)
            xml = domain_xml(spec.name, accel, vcpus,
                             env.memory_mib or self.cfg.default_memory_mib, str(self.booted.kernel.vmlinux),
                             str(self.booted.initrd), str(self.booted.root_disk), cmdline, str(state / "console.sock"), disk,
                             tap.name if tap else None, self.cfg.cpu_readback,
                             cputune_xml(vcpus, env.cpu_list(), env.quota_us()))
            started = time.monotonic_ns()
            try:
                domain = self._connect().createXML(xml, 0)  # transient: gone once destroyed; QEMU runs the guest
            except libvirt.libvirtError as exc:  # QEMU refused: KVM asked for where it does not work, ...
                raise MeasurementError(f"libvirt could not start {spec.name}: {str(exc).splitlines()[0]}") from None
            start_ms = (time.monotonic_ns() - started) / 1e6
            try:
                if not select.select([listener], [], [], 10)[0]:
                    raise MeasurementError("QEMU did not connect to the console socket")
                console, _ = listener.accept()
                pid = int(Path(f"/run/libvirt/qemu/{spec.name}.pid").read_text())
            except BaseException:
                destroy(domain)
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
        self.hwm_kib = max(self.hwm_kib, peak_rss_kib(self.child) or 0)

    def mem_peak_mib(self) -> float | None:
        return self.hwm_kib / 1024 if self.hwm_kib else None

    def teardown(self) -> None:
        if self._torn_down:
            return
        self._torn_down = True
        try:
            destroy(self.domain)
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
