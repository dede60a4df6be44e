"""A container's writable layer, as the runtimes' own users get one: an overlay of the image (lower,
read-only, shared) with an upper dir of the instance's own, mounted before the runtime starts (as
containerd's snapshotter mounts a bundle's rootfs), and a host dir bound in as the volume variant."""

from __future__ import annotations

from pathlib import Path

MNT_DETACH = 2
LAYER_SCRATCH = "/scratch"  # the workload's directory in the writable layer (made in the upper dir)
VOLUME_AT = "/mnt/volume"
STORAGES = ("layer", "volume")


def check_storage(storage: str) -> str:
    if storage not in STORAGES:
        raise ValueError(f"storage must be {' or '.join(STORAGES)}, not {storage!r}")
    return storage


def overlay_root(rootfs: str, base: Path) -> str:
    """The image with a writable layer of its own under base (upper, work), mounted at base/rootfs,
    with LAYER_SCRATCH made in the upper dir."""
    from bench.host import linux

    upper, work, root = base / "upper", base / "work", base / "rootfs"
    for d in (upper, work, root):
        d.mkdir()
    (upper / LAYER_SCRATCH.strip("/")).mkdir()
    linux.mount("overlay", str(root), "overlay", 0, f"lowerdir={rootfs},upperdir={upper},workdir={work}")
    return str(root)


def unmount(root: str | None) -> None:
    """Lazily unmount an overlay_root (gone already: fine)."""
    if root:
        from bench.host import linux

        try:
            linux.umount(root, MNT_DETACH)
        except OSError:
            pass


def volume_dir(base: Path) -> str:
    volume = base / "volume"
    volume.mkdir()
    return str(volume)
