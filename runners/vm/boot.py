"""The files a guest boots from: the kernel, our initramfs, the root disk built from the image, and
scratch disks."""

from __future__ import annotations

import hashlib
import inspect
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bench.errors import MeasurementError
from runners._child import run_quietly
from runners.base import GUEST_ENV

if TYPE_CHECKING:  # for annotations only: the kernel module is imported when a VM boots
    from bench.images.kernel import GuestKernel

ROOT_MODULES = ("virtio_pci", "virtio_blk")  # what the init needs to reach the root disk
SCRATCH_MIB = 256  # the virtio-blk scratch disk of a disk workload (fio uses 64 MiB of it)
MKFS = "/usr/sbin/mkfs.ext4"


@dataclass(frozen=True)
class BootFiles:
    kernel: GuestKernel
    initrd: Path
    root_disk: Path

    def modules(self, *extra: str) -> list[str]:
        """The modules the init loads: the root disk's, extra ones, and their dependencies first."""
        from bench.images.kernel import load_order

        return list(load_order(self.kernel.modules, dict.fromkeys((*ROOT_MODULES, *extra))))


def boot_files(kernel_path: str | None, rootfs: str, image_digest: str, cache_dir: Path) -> BootFiles:
    """The kernel (the given one, or Debian's extracted into the cache), our initramfs keyed by the
    kernel, the init and its builder, and the root disk keyed by the image and its builder: each
    built once into the cache."""
    from bench.images import initramfs
    from bench.images import kernel as kernels
    from bench.images.image import build_static, compiler, file_digest

    if kernel_path == kernels.MICROVM:  # ours, built from Debian's source on first use
        kernel = kernels.microvm(cache_dir, say=lambda text: print(text, file=sys.stderr, flush=True))
    else:
        kernel = kernels.from_path(kernel_path) if kernel_path else kernels.fetch(cache_dir)
    init = Path(build_static(cache_dir, initramfs.INIT_SOURCE, compiler()))
    key = hashlib.sha256(f"{kernel.release} {file_digest(init)} ".encode()
                         + Path(initramfs.__file__).read_bytes()).hexdigest()[:16]
    initrd = cache_dir / "initramfs" / f"{key}.cpio"
    # The root disk holds the image and nothing of the init or the kernel: keyed by what makes it.
    disk_key = hashlib.sha256(inspect.getsource(initramfs.build_root_disk).encode()).hexdigest()[:8]
    root_disk = cache_dir / "initramfs" / f"root-{image_digest}-{disk_key}.ext4"
    initrd.parent.mkdir(parents=True, exist_ok=True)
    if not initrd.exists():
        initramfs.build_initramfs(init, kernel.modules, initrd)
    if not root_disk.exists():
        initramfs.build_root_disk(Path(rootfs), root_disk, MKFS)
    return BootFiles(kernel, initrd, root_disk)


def scratch_disk(path: Path) -> str:
    """A sparse raw file with an ext4 on it, for the guest's scratch disk."""
    with open(path, "wb") as f:
        f.truncate(SCRATCH_MIB << 20)
    if run_quietly([MKFS, "-q", "-F", "-E", "nodiscard", str(path)], GUEST_ENV) != 0:
        raise MeasurementError(f"{MKFS} failed on {path} (is e2fsprogs installed?)")
    return str(path)
