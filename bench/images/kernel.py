"""The guest kernel: a Debian kernel package extracted into the cache (never installed on the
host), or --kernel PATH; the uncompressed vmlinux is what PVH boots, and its modules go to the guest.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from bench.atomic import staged
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


def run_tool(argv: list[str], cwd: Path | None = None, data: bytes | None = None):
    """The one place this module runs host commands to fetch or unpack a kernel (unit tests replace
    it); subprocess is imported here, on that cold path only, never when the kernel is cached."""
    import subprocess

    return subprocess.run(argv, cwd=cwd, input=data, capture_output=True, check=False)


def package_name() -> str:
    """The kernel package apt would install for META_PACKAGE (asked on every VM run: lean)."""
    from bench.host.tools import run_captured

    _, out = run_captured(["apt-cache", "depends", META_PACKAGE])
    m = re.search(r"Depends: (linux-image-\S+)", out)
    if not m:
        raise UsageError(f"apt knows no {META_PACKAGE}: run `apt-get update`, or give --option vm.kernel=PATH")
    return m.group(1)


def fetch(cache_dir: Path) -> GuestKernel:
    """Download and unpack the package once; later calls only read the cache."""
    package = package_name()
    base = cache_dir / "kernels" / package
    if not (base / "vmlinux").exists():
        with staged(base) as staging:
            staging.mkdir()
            got = run_tool(["apt-get", "download", "-q", package], cwd=staging)
            debs = list(staging.glob("*.deb"))
            if not debs:
                raise UsageError(f"cannot download {package}: {got.stderr.decode().strip()[-200:]}")
            run_tool(["dpkg-deb", "-x", str(debs[0]), str(staging / "tree")])
            (staging / "vmlinux").write_bytes(vmlinux_of(next((staging / "tree/boot").glob("vmlinuz-*")).read_bytes()))
            debs[0].unlink()
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


def host_policy() -> dict[str, str]:
    """The host kernel's security modules and page zeroing, as guest kernel parameters (`lsm=`,
    `init_on_alloc=`): the process and container runners run under the host kernel's policy, and
    the guest kernel runs under the same, so that the vm row differs from the others by
    virtualisation and not by a distribution's kernel defaults. What cannot be read is left out
    (the guest keeps its own default)."""
    policy = {}
    lsm = _host_lsm()
    if lsm:
        policy["lsm"] = lsm
    try:
        cmdline = Path("/proc/cmdline").read_text()
    except OSError:
        cmdline = ""
    zeroing = init_on_alloc(cmdline, _host_config())
    if zeroing is not None:
        policy["init_on_alloc"] = zeroing
    return policy


@functools.cache  # a host fact: read once per process, not once per VM-like runner
def _host_lsm() -> str | None:
    """The active security modules, from securityfs; where nothing mounted it (no systemd), from a
    securityfs mounted in a mount namespace of our own, which ends with the child."""
    try:
        return Path("/sys/kernel/security/lsm").read_text().strip() or None
    except OSError:
        pass
    from bench.host.tools import run_captured

    code, text = run_captured(["unshare", "--mount", "sh", "-c",
                               "mount -t securityfs securityfs /sys/kernel/security && cat /sys/kernel/security/lsm"])
    text = text.strip()
    return text if code == 0 and re.fullmatch(r"[a-z0-9_,]+", text) else None


@functools.cache
def _host_config() -> str | None:
    """The running host kernel's build configuration, where it can be found."""
    import gzip

    try:
        return gzip.decompress(Path("/proc/config.gz").read_bytes()).decode(errors="replace")
    except OSError:
        pass
    try:
        return Path(f"/boot/config-{os.uname().release}").read_text(errors="replace")
    except OSError:
        return None


def init_on_alloc(cmdline: str, config: str | None) -> str | None:
    """Pure: "1" or "0", whether the kernel with this command line and build configuration zeroes
    every page it allocates; the last valid `init_on_alloc=` wins over the configured default (the
    kernel ignores a value it cannot read as a boolean)."""
    for value in reversed(re.findall(r"(?:^|\s)init_on_alloc=(\S*)", cmdline)):
        if value.lower() in ("1", "y", "yes", "on", "t", "true"):
            return "1"
        if value.lower() in ("0", "n", "no", "off", "f", "false"):
            return "0"
    if config is None:
        return None
    return "1" if re.search(r"^CONFIG_INIT_ON_ALLOC_DEFAULT_ON=y$", config, re.MULTILINE) else "0"


# --- the microvm kernel: built here from Debian's kernel source, with a configuration of ours ---

MICROVM_SOURCE = Path("/usr/src/linux-source-6.1.tar.xz")  # apt-get install linux-source-6.1
MICROVM_CONFIG = Path(__file__).parents[1] / "guest" / "microvm.config"
MICROVM = "microvm"  # --option vm.kernel=microvm: this kernel


def microvm_key(source: Path = MICROVM_SOURCE, config: Path = MICROVM_CONFIG) -> str:
    """What the built kernel depends on: our configuration's text and the source package's tarball
    (its name, size and time, which a new package version changes)."""
    st = source.stat()
    return hashlib.sha256(config.read_bytes() + f"{source.name} {st.st_size} {st.st_mtime_ns}".encode()).hexdigest()[:16]


def microvm(cache_dir: Path, say=None, force: bool = False) -> GuestKernel:
    """The kernel built from our configuration, from the cache; built first where it is missing, or
    where the configuration or the source changed (a new key)."""
    if not MICROVM_SOURCE.exists():
        raise UsageError(f"the microvm kernel is built from {MICROVM_SOURCE}: apt-get install linux-source-6.1 "
                         "(make setup does)")
    key = microvm_key()
    base = cache_dir / "kernels" / f"microvm-{key}"
    if force or not (base / "vmlinux").exists():
        missing = microvm_build_needs()
        if missing:
            raise UsageError(f"building the microvm kernel needs {', '.join(missing)}: apt-get install them "
                             "(make setup does)")
        build_microvm(base, say or (lambda text: None))
    return GuestKernel(base / "vmlinux", f"microvm-{key}", {})


# What the build needs beyond the source: the package that brings each (apt-get install ...).
BUILD_TOOLS = {"make": "make", "gcc": "gcc", "flex": "flex", "bison": "bison", "bc": "bc"}
LIBELF_HEADER = Path("/usr/include/libelf.h")  # objtool's, from libelf-dev


def microvm_build_needs() -> list[str]:
    """The packages missing for a build (the source is also what keys a cached kernel)."""
    import shutil

    missing = [] if MICROVM_SOURCE.exists() else ["linux-source-6.1"]
    missing += [package for tool, package in BUILD_TOOLS.items() if shutil.which(tool) is None]
    return missing + ([] if LIBELF_HEADER.exists() else ["libelf-dev"])


def microvm_build_info(cache_dir: Path) -> dict | None:
    """How the cached microvm kernel was built (build.json), or None when it is not built yet."""
    import json

    try:
        return json.loads((cache_dir / "kernels" / f"microvm-{microvm_key()}" / "build.json").read_text())
    except (OSError, ValueError):
        return None


def not_taken(fragment: str, config: str) -> list[str]:
    """Pure: the options the fragment sets that the resulting .config does not have as set (an
    option whose dependencies are off is silently dropped by kconfig)."""
    have = dict(re.findall(r"^(CONFIG_\w+)=(.*)$", config, re.MULTILINE))
    return [f"{name}={value}" for name, value in re.findall(r"^(CONFIG_\w+)=(.*)$", fragment, re.MULTILINE)
            if have.get(name) != value]


def build_microvm(base: Path, say) -> float:
    """Unpack the source, `make allnoconfig` with our fragment, check that every option took, build
    vmlinux with a job per CPU and one more; only vmlinux, its .config and build.json are kept.
    Staged: an interrupted build leaves nothing but a staging folder `bench clean` removes."""
    import json
    import shutil
    import subprocess
    import time

    started = time.monotonic()
    jobs = len(os.sched_getaffinity(0)) + 1
    with staged(base) as staging:
        staging.mkdir()
        say(f"microvm kernel: unpacking {MICROVM_SOURCE}")
        got = run_tool(["tar", "-xf", str(MICROVM_SOURCE), "-C", str(staging)])
        trees = [p for p in staging.iterdir() if p.is_dir()]
        if got.returncode != 0 or len(trees) != 1:
            raise UsageError(f"cannot unpack {MICROVM_SOURCE}: {got.stderr.decode().strip()[-200:]}")
        tree, out = trees[0], staging / "build"
        got = run_tool(["make", "-C", str(tree), f"O={out}", f"KCONFIG_ALLCONFIG={MICROVM_CONFIG}", "allnoconfig"])
        if got.returncode != 0:
            raise UsageError(f"make allnoconfig failed: {got.stderr.decode().strip()[-300:]}")
        missing = not_taken(MICROVM_CONFIG.read_text(), (out / ".config").read_text())
        if missing:
            raise UsageError(f"{MICROVM_CONFIG}: {missing[0]} did not take (an option it depends on is off)")
        say(f"microvm kernel: building vmlinux with {jobs} jobs (about 4 min on 2 cores)")
        compiled, last = 0, time.monotonic()
        with subprocess.Popen(["make", "-C", str(tree), f"O={out}", f"-j{jobs}", "vmlinux"], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT) as make:
            tail: list[bytes] = []
            assert make.stdout is not None  # PIPE
            for line in make.stdout:
                compiled += line.lstrip().startswith(b"CC ")
                tail = (tail + [line])[-20:]
                if time.monotonic() - last > 20:
                    last = time.monotonic()
                    say(f"microvm kernel: {compiled:,} files compiled, {last - started:.0f} s")
        if make.returncode != 0:
            raise UsageError(f"the microvm kernel build failed: {b''.join(tail).decode(errors='replace').strip()[-400:]}")
        os.replace(out / "vmlinux", staging / "vmlinux")
        os.replace(out / ".config", staging / "config")
        seconds = time.monotonic() - started
        (staging / "build.json").write_text(json.dumps(
            {"seconds": round(seconds, 1), "source": str(MICROVM_SOURCE), "jobs": jobs, "compiled": compiled,
             "vmlinux_mib": round((staging / "vmlinux").stat().st_size / 2**20, 1)}))
        shutil.rmtree(tree)
        shutil.rmtree(out)
    say(f"microvm kernel: built in {seconds // 60:.0f}m{seconds % 60:02.0f}s: {base / 'vmlinux'}")
    return seconds
