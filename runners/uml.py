"""User-mode Linux as a peer: Debian's `linux.uml`, a Linux kernel run as an ordinary process, booting
the vm runner's initramfs and root disk (the same ext4 image, as a read-only ubd device) with the same
init and console protocol. A kernel per instance without hardware virtualization: the row between a
container and a VM.

UML runs its guest's processes as host processes of its own (it traces them), all in the session
posix_spawn gave it, so teardown ends the whole process group. Its per-instance files (the umid dir
with its pid file and management socket) go under /tmp/bench-<instance>, which `bench clean` sweeps.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from bench.cache import instance_dir
from bench.errors import MeasurementError
from bench.spec import SCRATCH, LaunchSpec
from runners.base import Residue, Runner, Tool, processes_of

if TYPE_CHECKING:  # for annotations only: the vm runner's boot module is imported by prepare()
    from runners.vm.boot import BootFiles
from runners.process import ProcessRunner
from runners.qemu import QemuInstance
from runners.vm.boot import scratch_disk
from runners.vm.domain import SCRATCH_AT, packed_argv
from runners.vm.tap import GUEST_MAC, Tap, own_tap

UML = "/usr/bin/linux.uml"
UML_SUBNET = "10.218.0.0/30"  # its tap's: host end .1, the guest's eth0 .2
DEFAULT_MEMORY_MIB = 512  # as the vm runner's guest, when --memory is not given
# Quiet, as the vm runner's guest. Debian's UML kernel benchmarks its RAID6 and XOR routines at every
# boot for md and btrfs, which no workload here uses: 0.8 of its 1.3 s to READY (1,256-1,369 ms with
# them, 397-467 ms without, 5 boots each). The vm runner's command line skips initcalls the same way.
CMDLINE = ("quiet", "loglevel=0", "initcall_blacklist=raid6_select_algo,calibrate_xor_blocks")


class UmlInstance(QemuInstance):
    """Like QEMU's instance: the kernel is our child, its console our pipe, and its own end before
    the guest reported is a failure. Unlike it, the guest's processes are host processes of their
    own, so teardown ends the kernel's whole process group and reaps it."""

    def teardown(self) -> None:
        if self._torn_down:
            return
        self._torn_down = True
        try:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.child, signal.SIGKILL)  # the kernel and its traced guest processes
            if not getattr(self, "_qemu_gone", False):
                os.waitpid(self.child, 0)
            # Its guest processes were its children; killed, they come to us (the worker is a
            # subreaper): reaped here, with the teardown, so that none outlives it as a zombie.
            with contextlib.suppress(ChildProcessError):
                while True:
                    os.waitpid(-self.child, 0)
        finally:
            os.close(self.pidfd)
            os.close(self.out_fd)
            if self.on_teardown:
                self.on_teardown()


class UmlRunner(Runner):
    paths = "disk: a ubd disk (ubdb); network: a tap through the vector driver"
    name, kind, family = "uml", "peer", "sandboxes"
    description = "user-mode Linux: Debian's linux.uml kernel as a host process, the vm runner's initramfs and root disk"
    tool = Tool("linux.uml", "user-mode-linux", r"^(\S+)", f"{UML} mem=M ubd0r=ROOT initrd=INITRAMFS con0=null,fd:1")
    max_repeat = 10
    enforcement: ClassVar[dict[str, str]] = {"cpuset": "CPU affinity of the UML kernel and its guest processes (sched_setaffinity before posix_spawn)",
                                             "cpu_quota": "the process runner's cgroup around them, CFS quota",
                                             "memory": "guest RAM (mem=)"}

    provides = frozenset({"scratch", "server"})  # a ubd scratch disk; a tap through UML's vector driver
    listen_on = "0.0.0.0"  # the guest's own eth0 and loopback

    def __init__(self) -> None:
        self.spawner = ProcessRunner()
        self.boot: BootFiles | None = None
        self.tap: Tap | None = None

    def server_side(self) -> tuple[str | None, str]:
        """The host end of a tap of our own, as the VM runners': nothing but the guest behind it."""
        if self.tap is None:
            self.tap = own_tap(UML_SUBNET)
        return None, self.tap.host_address

    def guest_address(self, instance) -> str:
        if self.tap is None:
            raise MeasurementError("uml: no tap: the instance was launched without a network path")
        return self.tap.guest_address.split("/")[0]

    def available(self) -> tuple[bool, str]:
        if not os.access(UML, os.X_OK):
            return False, f"{UML} is not installed (apt-get install user-mode-linux)"
        return True, UML

    def prepare(self, rootfs: str, image_digest: str, cache_dir: str) -> None:
        from runners.vm.boot import boot_files

        self.boot = boot_files(None, rootfs, image_digest, Path(cache_dir))

    def config(self) -> dict:
        return {"kernel": f"{UML} {self.versions().get('linux.uml', '?')}", "root": "the vm runner's ext4 root disk, read-only ubd",
                "initramfs": str(self.boot.initrd) if self.boot else None, "default_memory_mib": DEFAULT_MEMORY_MIB,
                "cmdline": " ".join(CMDLINE)}

    def reserved_mib(self, envelope) -> int:
        return envelope.memory_mib or DEFAULT_MEMORY_MIB

    def launch(self, spec: LaunchSpec) -> UmlInstance:
        env = spec.envelope
        state = Path("/tmp") / spec.name
        instance_dir(state)
        if self.boot is None:
            raise MeasurementError("uml: prepare() makes the root disk and initramfs before the first launch")
        devices = []
        if spec.scratch:  # own or volume: its writable storage is a disk either way, as a VM's
            devices += [f"ubd1={scratch_disk(state / 'scratch.img')}", "bench.scratch=/dev/ubdb"]
            spec = replace(spec, argv=spec.argv_with({SCRATCH: SCRATCH_AT}))
        if spec.server is not None:
            self.server_side()
            assert self.tap is not None
            # The vector driver on our tap, with the MAC the tap has a permanent neighbour entry for (a random
            # one got no replies); the guest calls it vec0, and our init names it eth0.
            devices += [f"vec0:transport=tap,ifname={self.tap.name},mac={GUEST_MAC}", f"bench.net={self.tap.guest_address}"]
        argv = [UML, f"mem={env.memory_mib or DEFAULT_MEMORY_MIB}M", f"ubd0r={self.boot.root_disk}",
                f"initrd={self.boot.initrd}", "con=null", "con0=null,fd:1", f"umid={spec.name}", f"uml_dir={state}",
                *CMDLINE, "bench.root=/dev/ubda", "bench.poweroff", *devices, f"bench.argv={packed_argv(spec.argv)}"]
        # Guest RAM is the memory envelope: a memory cgroup around UML as well would count it twice.
        return self.spawner.spawn(UML, argv, replace(spec, envelope=replace(env, memory_mib=None)), UmlInstance,
                                  on_teardown=lambda: shutil.rmtree(state, ignore_errors=True))

    @classmethod
    def residues(cls, cache_dir: str) -> list[Residue]:
        """UML kernels it started (umid=bench-...) that outlived a killed worker: their process groups."""
        found = []
        for pid, argv in processes_of(UML):
            if any(a.startswith(b"umid=bench-") for a in argv):
                with contextlib.suppress(OSError):
                    if os.getpgid(pid) == pid:  # the kernel, not one of its guest processes
                        found.append(Residue("uml process group", str(pid)))
        return found

    @classmethod
    def remove(cls, residue: Residue) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(int(residue.name), signal.SIGKILL)

    def close(self) -> None:
        self.spawner.close()
        if self.tap is not None:
            self.tap.remove()
            self.tap = None
