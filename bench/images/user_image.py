"""`bench run --image SRC`: a user's image as the rootfs every runner runs, with isobench's tools
added in a layer of their own.

SRC is a directory (a rootfs tree), a `docker save` or OCI image-layout tarball (bench.images.image_import),
or the name of an image in the local Docker engine (exported with `docker save`). The user's tree is
never changed: the run's rootfs is a copy of it with our layer on top, cached by the pair of digests
(the image's, and our own image's) under CACHE/images/user-KEY.

Our layer adds, and never replaces a file of the user's:
- the static probe, bench-syscall and bench-rr at /bin (names no image has), and a static busybox at
  /.bench/busybox (the VM's init configures its network with it); in an image that has no shell,
  busybox's applets where the image has nothing (/bin/sh, sleep...), as in our own image;
- stress-ng, fio and iperf3 at /.bench/bin with their own shared libraries and loader in
  /.bench/lib (patchelf points them there), linked from /usr/bin only where the image has none, so
  that the image's own libc is never touched and a shell-less or musl image runs them too;
- the mount points the runners need (/proc, /sys, /dev, /tmp, /run, /mnt) where they are missing, and
  the few device nodes a chroot needs (/dev/null, zero, random, urandom) where /dev lacks them.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from pathlib import Path, PurePosixPath

from bench.atomic import staged
from bench.errors import UsageError
from bench.images.image import GUEST_DEVICES, TOOLS, Image, build_image, run_tool, shared_libraries
from bench.workload import PROBE_GUEST_PATH, RR_GUEST_PATH, SYSCALL_GUEST_PATH

LAYER_VERSION = "2"  # bump when what our layer adds changes
OURS = "/.bench"
PATCHELF = "/usr/bin/patchelf"
DOCKER = ("/usr/local/bin/docker", "/usr/bin/docker")
MOUNT_POINTS = ("proc", "sys", "dev", "tmp", "run", "mnt")


def build_user_image(source: str, cache_dir: Path, known: tuple[str, str] | None = None, say=None) -> Image:
    """The run's image from --image SRC (UsageError, one line, when SRC is none of the three).
    known: (digest, description) of a directory whose digest is known (the app image's build key).
    say(text): progress of an import, a line at a time."""
    made: list[Path] = []
    if known:
        base, (digest, described) = Path(source), known
    else:
        base, digest, described = base_tree(source, cache_dir, say, made)  # a bad SRC is refused before anything is built
    ours = build_image(cache_dir)
    key = hashlib.sha256(f"isobench-user-image {LAYER_VERSION} {digest} {ours.digest}".encode()).hexdigest()[:16]
    final = cache_dir / "images" / f"user-{key}"
    if not (final / "rootfs").is_dir():
        try:
            with staged(final, replace=False) as staging:
                copy_tree(base, staging / "rootfs")
                add_our_layer(staging / "rootfs", ours)
        except BaseException:  # an image our layer cannot go on (a symlink loop): nothing of it is kept
            for path in made:
                shutil.rmtree(path, ignore_errors=True)
            raise
    return Image(final / "rootfs", key, ours.host_paths, source=described, base_digest=digest)


def base_tree(source: str, cache_dir: Path, say=None, made: list[Path] | None = None) -> tuple[Path, str, str]:
    """(the user's tree, its digest, what it is) for SRC; a tarball or Docker image is unpacked once
    per digest into CACHE/images/base-DIGEST (added to made when unpacked by this call)."""
    from bench.images.image_import import import_image, peek

    path = Path(source)
    if path.is_dir() and not (path / "index.json").exists():
        if not any(path.iterdir()):
            raise UsageError(f"--image {source}: an empty directory")
        return path.resolve(), tree_digest(path), f"directory {path.resolve()}"
    if path.exists():
        digest, tags = peek(path)
        described = f"archive {path.resolve()}" + (f" ({', '.join(tags)})" if tags else "")
    else:
        cli = docker_cli(source)
        digest, described = docker_image_id(cli, source), f"docker image {source}"
    base = cache_dir / "images" / f"base-{digest[:16]}"
    if not (base / "rootfs").is_dir():
        archive = path if path.exists() else docker_save(cli, source, cache_dir / "images" / f"save-{digest[:16]}.tar")
        try:
            with staged(base, replace=False) as staging:
                import_image(archive, staging / "rootfs", say and (lambda text: say(f"--image {source}: {text}")))
            if made is not None:
                made.append(base)
        finally:
            if archive != path:
                archive.unlink(missing_ok=True)  # the docker save archive: the unpacked tree is what is kept
    return base / "rootfs", digest, described


def docker_cli(name: str) -> str:
    cli = next((c for c in DOCKER if os.access(c, os.X_OK)), None)
    if cli is None:
        raise UsageError(f"--image {name}: no such directory or file, and Docker is not installed to look it up")
    return cli


def docker_image_id(cli: str, name: str) -> str:
    """The image id (sha256 of its config) of an image of the local Docker engine."""
    ran = run_tool([cli, "image", "inspect", "--format", "{{.Id}}", name])
    if ran.returncode:
        said = (ran.stdout.strip().splitlines() or ["docker image inspect failed"])[-1]
        raise UsageError(f"--image {name}: no such directory, file or Docker image ({said})")
    return ran.stdout.strip().removeprefix("sha256:")


def docker_save(cli: str, name: str, archive: Path) -> Path:
    """The image exported with `docker save`, once per digest (its tree is what is cached)."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    ran = run_tool([cli, "save", "--output", str(archive), name])
    if ran.returncode:
        archive.unlink(missing_ok=True)
        raise UsageError(f"--image {name}: docker save failed: {ran.stdout.strip()[-200:]}")
    return archive


def tree_digest(root: Path) -> str:
    """sha256 over every entry of a tree: its path, type, mode, owner, and content or link target."""
    h = hashlib.sha256(b"isobench-tree 1\n")
    for dirpath, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(dirs + files):
            path = Path(dirpath) / name
            st = path.lstat()
            h.update(f"{path.relative_to(root)} {st.st_mode:o} {st.st_uid}:{st.st_gid} ".encode())
            if stat.S_ISLNK(st.st_mode):
                h.update(os.readlink(path).encode())
            elif stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    h.update(hashlib.file_digest(f, "sha256").digest())
            h.update(b"\n")
    return h.hexdigest()


def copy_tree(src: Path, dst: Path) -> None:
    """The user's tree, owners, modes, links and all (cp -a: copytree drops owners)."""
    dst.mkdir(parents=True)
    ran = run_tool(["cp", "-a", "--reflink=auto", f"{src}/.", str(dst)])
    if ran.returncode:
        raise OSError(f"cp -a {src}: {ran.stdout.strip()[-300:]}")


def inside(root: Path, guest: str) -> Path:
    """The host path of a guest path, its symlinks resolved as the guest sees them (an absolute
    link is relative to root), so that nothing is ever written outside root."""
    parts, resolved, hops = list(PurePosixPath(guest).parts[1:]), root, 0
    while parts:
        part = parts.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            resolved = resolved.parent if resolved != root else root
            continue
        candidate = resolved / part
        if candidate.is_symlink():
            hops += 1
            if hops > 40:
                raise UsageError(f"--image: {guest} loops through symlinks in the image")
            target = PurePosixPath(os.readlink(candidate))
            if target.is_absolute():
                resolved = root
            parts = [*target.parts[1 if target.is_absolute() else 0:], *parts]
            continue
        resolved = candidate
    return resolved


def exists(root: Path, guest: str) -> bool:
    path = inside(root, guest)
    return path.exists() or path.is_symlink()


def put(root: Path, guest: str, host: str, mode: int = 0o755) -> Path:
    """Copy a host file to a guest path of our layer (its directory made as needed)."""
    target = inside(root, guest)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(os.path.realpath(host), target)
    target.chmod(mode)
    return target


def link_if_absent(root: Path, guest: str, to: str) -> None:
    if not exists(root, guest):
        target = inside(root, guest)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(to)


def add_our_layer(root: Path, ours: Image) -> None:
    for d in MOUNT_POINTS:
        if not exists(root, f"/{d}"):
            inside(root, f"/{d}").mkdir(parents=True)
    inside(root, "/tmp").chmod(0o1777)
    if os.geteuid() == 0:
        for rel, (major, minor) in GUEST_DEVICES.items():
            if not exists(root, f"/{rel}"):
                os.mknod(inside(root, f"/{rel}"), 0o666 | stat.S_IFCHR, os.makedev(major, minor))
                os.chmod(inside(root, f"/{rel}"), 0o666)
    for guest in (PROBE_GUEST_PATH, SYSCALL_GUEST_PATH, RR_GUEST_PATH):
        put(root, guest, ours.host_paths[guest])
    busybox = put(root, f"{OURS}/busybox", ours.host_paths["/bin/busybox"])
    if not exists(root, "/bin/sh"):  # a shell-less image: busybox's applets where it has nothing
        for applet in run_tool([str(busybox), "--list-full"]).stdout.split():
            link_if_absent(root, f"/{applet}", f"{OURS}/busybox")
    if not os.access(PATCHELF, os.X_OK):
        raise UsageError("--image needs patchelf to add our tools with their own libraries: run `make setup`")
    copied_libs: set[str] = set()
    for tool in TOOLS:
        host = ours.host_paths[f"/usr/bin/{tool}"]
        libs = shared_libraries(host)
        loader = next((Path(lib).name for lib in libs if Path(lib).name.startswith("ld-linux")), None)
        for lib in libs:
            if lib in copied_libs:  # libc and friends: every tool needs them, one copy serves all
                continue
            copied_libs.add(lib)
            copied = put(root, f"{OURS}/lib/{Path(lib).name}", lib)
            if Path(lib).name != loader and run_tool([PATCHELF, "--print-rpath", str(copied)]).stdout.strip():
                patch(copied, "--set-rpath", f"{OURS}/lib")  # its own RUNPATH would hide ours
        binary = put(root, f"{OURS}/bin/{tool}", host)
        patch(binary, "--force-rpath", "--set-rpath", f"{OURS}/lib",
              *(["--set-interpreter", f"{OURS}/lib/{loader}"] if loader else []))
        link_if_absent(root, f"/usr/bin/{tool}", f"{OURS}/bin/{tool}")


def patch(binary: Path, *args: str) -> None:
    ran = run_tool([PATCHELF, *args, str(binary)])
    if ran.returncode:
        raise OSError(f"patchelf {' '.join(args)} {binary.name}: {ran.stdout.strip()[-300:]}")
