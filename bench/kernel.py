"""The guest kernel: a Debian kernel package extracted into the cache (never installed on the
host), or --kernel PATH; the uncompressed vmlinux is what PVH boots, and its modules go to the guest.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from bench.errors import UsageError

META_PACKAGE = "linux-image-cloud-amd64"  # small, virtio-first: what a cloud guest runs
# The modules a guest may need; each is loaded on demand by the init, dependencies first.
GUEST_MODULES = ("virtio_pci", "virtio_blk", "virtio_net", "virtio_console", "vmw_vsock_virtio_transport")
_COMPRESSED = ((b"\x02\x21\x4c\x18", ["lz4", "-dc"]), (b"\xfd7zXZ\x00", ["xz", "-dc"]),
               (b"(\xb5/\xfd", ["zstd", "-dc"]), (b"\x1f\x8b\x08", ["gzip", "-dc"]))


@dataclass(frozen=True)
class GuestKernel:
    vmlinux: Path
    release: str
    modules: dict[str, Path]  # module name -> .ko, GUEST_MODULES and their dependencies


def run_tool(argv: list[str], cwd: Path | None = None, data: bytes | None = None) -> subprocess.CompletedProcess:
    """The one place this module runs host commands (unit tests replace it)."""
    return subprocess.run(argv, cwd=cwd, input=data, capture_output=True, check=False)


def package_name() -> str:
    out = run_tool(["apt-cache", "depends", META_PACKAGE]).stdout.decode()
    m = re.search(r"Depends: (linux-image-\S+)", out)
    if not m:
        raise UsageError(f"apt knows no {META_PACKAGE}: run `apt-get update`, or give --option vm.kernel=PATH")
    return m.group(1)


def fetch(cache_dir: Path) -> GuestKernel:
    """Download and unpack the package once; later calls only read the cache."""
    package = package_name()
    base = cache_dir / "kernels" / package
    if not (base / "vmlinux").exists():
        staging = base.with_name(f".bench-tmp-{package}-{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        got = run_tool(["apt-get", "download", "-q", package], cwd=staging)
        debs = list(staging.glob("*.deb"))
        if not debs:
            raise UsageError(f"cannot download {package}: {got.stderr.decode().strip()[-200:]}")
        run_tool(["dpkg-deb", "-x", str(debs[0]), str(staging / "tree")])
        (staging / "vmlinux").write_bytes(vmlinux_of(next((staging / "tree/boot").glob("vmlinuz-*")).read_bytes()))
        debs[0].unlink()
        shutil.rmtree(base, ignore_errors=True)
        os.rename(staging, base)
    release = next((base / "tree/lib/modules").iterdir()).name
    return GuestKernel(base / "vmlinux", release, module_closure(base / "tree/lib/modules" / release))


def from_path(path: str) -> GuestKernel:
    """--kernel PATH: an uncompressed vmlinux (ELF) or a bzImage; UsageError for anything else."""
    try:
        head = Path(path).read_bytes()[:0x210]
    except OSError as exc:
        raise UsageError(f"--kernel {path}: {exc.strerror}") from None
    if not (head[:4] == b"\x7fELF" or head[0x202:0x206] == b"HdrS"):
        raise UsageError(f"--kernel {path} is not a Linux kernel (neither an ELF vmlinux nor a bzImage)")
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]
    return GuestKernel(Path(path), f"custom-{digest}", {})


def vmlinux_of(bzimage: bytes) -> bytes:
    """The ELF inside a bzImage (as the kernel's scripts/extract-vmlinux finds it)."""
    for magic, argv in _COMPRESSED:
        pos = bzimage.find(magic)
        while pos >= 0:
            out = run_tool(argv, data=bzimage[pos:]).stdout  # trailing bytes make it exit 1: fine
            if out[:4] == b"\x7fELF":
                return out
            pos = bzimage.find(magic, pos + 1)
    raise UsageError("no vmlinux found inside the kernel image (is lz4 installed?)")


def modinfo_depends(ko: bytes) -> list[str]:
    """Pure: the `depends=` of a module's .modinfo section."""
    m = re.search(rb"\0depends=([^\0]*)\0", ko)
    return [d for d in m.group(1).decode().split(",") if d] if m else []


def module_closure(moddir: Path, wanted=GUEST_MODULES) -> dict[str, Path]:
    """GUEST_MODULES and what they depend on, in load order (dependencies first)."""
    index = {p.name.removesuffix(".ko").replace("-", "_"): p for p in moddir.rglob("*.ko")}
    return load_order(index, wanted)


def load_order(index: dict[str, Path], wanted) -> dict[str, Path]:
    """The modules in wanted that index holds, dependencies first (absent ones are built in)."""
    ordered: dict[str, Path] = {}

    def visit(name: str) -> None:
        if name in ordered or name not in index:  # absent: built in
            return
        for dep in modinfo_depends(index[name].read_bytes()):
            visit(dep)
        ordered[name] = index[name]

    for name in wanted:
        visit(name)
    return ordered
