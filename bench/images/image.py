"""The guest image: one rootfs tree (busybox-static, the probe, the workload tools and their
shared libraries), cached by a content hash of everything that goes into it.

Shared libraries are resolved with ldd and copied to the paths the loader asks for, as
initramfs-tools' copy_exec does.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from bench.atomic import staged
from bench.errors import UsageError
from bench.host.tools import run_captured
from bench.workload import PROBE_GUEST_PATH, RR_GUEST_PATH, SYSCALL_GUEST_PATH

BUILDER_VERSION = "2"  # bump when the layout of the tree changes
BUSYBOX = "/bin/busybox"
TOOLS = ("stress-ng", "fio", "iperf3")
GUEST_SOURCES = Path(__file__).parents[1] / "guest"
STATIC_TOOLS = {PROBE_GUEST_PATH: "probe.c", SYSCALL_GUEST_PATH: "syscalls.c", RR_GUEST_PATH: "rr.c"}  # built here, static
GUEST_DIRS = ("proc", "sys", "dev", "tmp", "run", "root", "etc", "var/tmp", "mnt")
GUEST_ETC = {
    "etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    "etc/group": "root:x:0:\nnogroup:x:65534:\n",
    "etc/hostname": "bench\n",
    "etc/hosts": "127.0.0.1 localhost\n",
}

# Device nodes a bare chroot jail needs (iperf3 reads /dev/urandom); the container mounts its own
# /dev over them, the VM a devtmpfs. Made only when building as root, as debootstrap does.
GUEST_DEVICES = {"dev/null": (1, 3), "dev/zero": (1, 5), "dev/random": (1, 8), "dev/urandom": (1, 9)}

_LDD_LINE = re.compile(r"^\s*(?:(\S+)\s+=>\s+)?(/\S+)\s+\(0x[0-9a-f]+\)\s*$")


@dataclass(frozen=True)
class Image:
    rootfs: Path
    digest: str
    host_paths: dict[str, str]  # guest path -> the host file it is a copy of
    source: str = "isobench's own (busybox and the workload tools)"  # or what --image named
    base_digest: str | None = None  # --image: the user's image's own digest (docker's image id)


@dataclass(frozen=True)
class Ran:
    """What run_tool returns: subprocess.CompletedProcess's fields, with stdout and stderr as one."""

    args: list[str]
    returncode: int
    stdout: str
    stderr: str


def run_tool(argv: list[str]) -> Ran:
    """The one place this module runs host commands (unit tests replace it). Lean (no subprocess):
    the worker builds the VM's and the container's helpers through here."""
    code, out = run_captured(argv, timeout_s=600)
    return Ran(argv, code, out, out)


def parse_ldd(text: str) -> list[str]:
    """Pure: the library paths in ldd's output (the interpreter included, the vDSO and misses not)."""
    paths = []
    for line in text.splitlines():
        m = _LDD_LINE.match(line)
        if m:
            paths.append(m.group(2))
    return paths


def shared_libraries(binary: str) -> list[str]:
    result = run_tool(["ldd", binary])
    if "not found" in result.stdout:
        missing = [ln.split()[0] for ln in result.stdout.splitlines() if "not found" in ln]
        raise UsageError(f"{binary} needs libraries this host lacks: {', '.join(missing)}")
    return parse_ldd(result.stdout)  # a static binary: ldd exits 1 and lists nothing


def find_tool(name: str) -> str:
    path = shutil.which(name, path="/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
    if path is None:
        raise UsageError(f"{name} is not installed: run `make setup` (or apt-get install {name})")
    return path


def image_inputs(built: dict[str, str]) -> dict[str, str]:
    """guest path -> host path for every file copied into the tree."""
    busybox = BUSYBOX if os.path.exists(BUSYBOX) else find_tool("busybox")
    inputs = {"/bin/busybox": busybox, **built}
    for tool in TOOLS:
        host = find_tool(tool)
        inputs[f"/usr/bin/{tool}"] = host
        for lib in shared_libraries(host):
            inputs[lib] = lib
    return inputs


def file_digest(path: str | Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def content_digest(inputs: dict[str, str]) -> str:
    h = hashlib.sha256(f"isobench-image {BUILDER_VERSION}\n".encode())
    for guest in sorted(inputs):
        h.update(f"{guest} {file_digest(inputs[guest])}\n".encode())
    return h.hexdigest()[:16]


def compiler() -> tuple[str, str]:
    """(path, version text) of the C compiler our static guest tools are built with."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise UsageError("a C compiler is needed to build the probe: run `make setup` (or apt-get install gcc libc6-dev)")
    return cc, run_tool([cc, "--version"]).stdout


def build_static(cache_dir: Path, source: Path, cc: tuple[str, str], libs: tuple[str, ...] = ()) -> str:
    """Compile one of our small static guest tools once per source text, compiler and libraries."""
    compiler, version = cc
    key = hashlib.sha256(source.read_bytes() + version.encode() + " ".join(libs).encode()).hexdigest()[:16]
    binary = cache_dir / "probe" / key / f"bench-{source.stem}"
    if not binary.exists():
        with staged(binary) as tmp:
            result = run_tool([compiler, "-static", "-O2", "-o", str(tmp), str(source), *libs])
            if result.returncode != 0:
                raise UsageError(f"cannot build {source.name}: {result.stderr.strip().splitlines()[-1:]} (is libc6-dev installed?)")
    return str(binary)


def build_image(cache_dir: Path) -> Image:
    """The guest image for this host, built unless the cache already holds the same content."""
    cc = compiler()
    inputs = image_inputs({guest: build_static(cache_dir, GUEST_SOURCES / src, cc) for guest, src in STATIC_TOOLS.items()})
    digest = content_digest(inputs)
    final = cache_dir / "images" / digest
    if not (final / "rootfs").is_dir():
        with staged(final, replace=False) as staging:  # another build may finish first: the same content
            populate_tree(staging / "rootfs", inputs)
    return Image(final / "rootfs", digest, inputs)


def populate_tree(root: Path, inputs: dict[str, str]) -> None:
    for d in GUEST_DIRS:
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "tmp").chmod(0o1777)
    if os.geteuid() == 0:
        for rel, (major, minor) in GUEST_DEVICES.items():
            os.mknod(root / rel, 0o666 | stat.S_IFCHR, os.makedev(major, minor))
            os.chmod(root / rel, 0o666)
    for rel, text in GUEST_ETC.items():
        (root / rel).write_text(text)
    for guest, host in inputs.items():
        target = root / guest.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(os.path.realpath(host), target)
    install_busybox_links(root)


def install_busybox_links(root: Path) -> None:
    """A symlink per busybox applet (bin/sh, usr/bin/awk...), never over a real tool."""
    applets = run_tool([str(root / "bin" / "busybox"), "--list-full"]).stdout.split()
    for rel in applets:
        link = root / rel
        if not link.exists() and not link.is_symlink():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to("/bin/busybox")
