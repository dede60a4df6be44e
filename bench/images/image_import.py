"""A user's image as a rootfs: a `docker save` tarball or an OCI image layout (a directory or a
tarball of one), its layers applied in order with whiteouts honoured, refusing any entry that would
land outside the rootfs. `bench run --image` (bench.images.user_image) builds on this.

The layer rules are the OCI image spec's ("Applying changesets"): `.wh.NAME` deletes NAME from the
layers below, `.wh..wh..opq` empties its directory of what the layers below put there. Nothing is
ever written through a symlink: an entry whose parent path meets a symlink is refused, as is an
absolute or `..` path, or a hard link to one. Device nodes are skipped (every runner mounts its own
/dev).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from bench.errors import UsageError

WHITEOUT, OPAQUE = ".wh.", ".wh..wh..opq"
ROOT = PurePosixPath(".")  # the rootfs itself: already there


@dataclass(frozen=True)
class ImportedImage:
    source: str
    digest: str  # sha256 of the image's config (docker save) or manifest (OCI)
    layers: int
    tags: tuple[str, ...]
    skipped_devices: int


class _Source:
    """Files of an image archive by name, whether a tarball or a directory."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tar = None
        if path.is_dir():
            return
        try:
            self.tar = tarfile.open(path)  # noqa: SIM115  closed by close()
            self.tar.getmembers()  # the whole index now: a truncated archive fails here, not midway
        except (tarfile.TarError, OSError, EOFError) as exc:
            if self.tar is not None:
                self.tar.close()
            raise UsageError(f"--image {path}: not a readable tarball ({_first_line(exc)})") from None

    def read(self, name: str) -> bytes:
        name = name.removeprefix("./")
        try:
            if self.tar is None:
                return (self.path / name).read_bytes()
            member = self.tar.extractfile(name)
            if member is None:
                raise KeyError(name)
            return member.read()
        except (KeyError, OSError, tarfile.TarError):
            raise UsageError(f"--image {self.path}: {name} is missing or unreadable") from None

    def has(self, name: str) -> bool:
        if self.tar is None:
            return (self.path / name).exists()
        try:
            self.tar.getmember(name)
            return True
        except KeyError:
            return False

    def close(self) -> None:
        if self.tar is not None:
            self.tar.close()


def _layers(src: _Source) -> tuple[list[str], str, tuple[str, ...]]:
    """(layer file names in order, digest, tags) from a docker save manifest.json or an OCI index.json."""
    where = src.path
    try:
        if src.has("manifest.json"):
            manifest = json.loads(src.read("manifest.json"))[0]
            config = src.read(manifest["Config"])
            return list(manifest["Layers"]), hashlib.sha256(config).hexdigest(), tuple(manifest.get("RepoTags") or ())
        if src.has("index.json"):
            index = json.loads(src.read("index.json"))
            entry = index["manifests"][0]
            blob = src.read(_blob(entry["digest"]))
            manifest = json.loads(blob)
            tag = entry.get("annotations", {}).get("org.opencontainers.image.ref.name")
            return [_blob(layer["digest"]) for layer in manifest["layers"]], hashlib.sha256(blob).hexdigest(), \
                ((tag,) if tag else ())
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise UsageError(f"--image {where}: a malformed manifest ({type(exc).__name__}: {_first_line(exc)})") from None
    raise UsageError(f"--image {where}: neither a docker save archive (manifest.json) nor an OCI layout (index.json)")


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0].rstrip(":")


def _blob(digest: str) -> str:
    algorithm, _, value = digest.partition(":")
    if algorithm != "sha256" or not value.isalnum():
        raise UsageError(f"unsupported blob digest {digest!r}")
    return f"blobs/sha256/{value}"


def _layer_tar(data: bytes, name: str, where: Path) -> tarfile.TarFile:
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise UsageError(f"--image {where}: layer {name} is a broken gzip stream ({_first_line(exc)})") from None
    elif data[:4] == b"\x28\xb5\x2f\xfd":
        raise UsageError(f"--image {where}: layer {name} is zstd-compressed, which is not supported yet")
    try:
        return tarfile.open(fileobj=io.BytesIO(data))
    except tarfile.TarError as exc:
        raise UsageError(f"--image {where}: layer {name} is not a tarball ({_first_line(exc)})") from None


def safe_name(name: str) -> PurePosixPath:
    """Pure: a layer entry's path relative to the rootfs (ROOT for the rootfs itself, as `docker
    save` lists it), or ValueError when it would leave it."""
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts:
        raise ValueError(f"path escape: {name}")
    return PurePosixPath(*[p for p in path.parts if p != "."])


def _checked_parent(root: Path, rel: PurePosixPath) -> Path:
    """root/rel's parent, made where missing; ValueError if any part of it is a symlink (writing
    through it could land anywhere on the host)."""
    at = root
    for part in rel.parts[:-1]:
        at = at / part
        if at.is_symlink():
            raise ValueError(f"path escape: {rel} goes through the symlink {at.relative_to(root)}")
        if not at.exists():
            at.mkdir(mode=0o755)
    return at


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


PROGRESS_EVERY = 20_000  # entries between two progress lines of a big layer


def apply_layer(layer: tarfile.TarFile, root: Path, say=None) -> int:
    """Apply one layer to root (the layers below already there); the number of devices skipped.
    ValueError names the first entry that would leave root. say(n): progress, every PROGRESS_EVERY."""
    members = layer.getmembers()
    # Whiteouts first: they speak of the layers below, whatever their place in this tarball.
    for member in members:
        rel = safe_name(member.name)
        if rel.name == OPAQUE:
            directory = root / rel.parent
            if directory.is_dir() and not directory.is_symlink():
                for child in directory.iterdir():
                    _remove(child)
        elif rel.name.startswith(WHITEOUT):
            _checked_parent(root, rel)
            target = root / rel.parent / rel.name.removeprefix(WHITEOUT)
            _remove(target)
    skipped = 0
    for done, member in enumerate(members, 1):
        if say and done % PROGRESS_EVERY == 0:
            say(done)
        rel = safe_name(member.name)
        if rel == ROOT or rel.name.startswith(WHITEOUT):
            continue
        parent = _checked_parent(root, rel)
        target = parent / rel.name
        if member.isdev():
            skipped += 1
            continue
        if (target.exists() or target.is_symlink()) and not (member.isdir() and target.is_dir() and not target.is_symlink()):
            _remove(target)
        if member.isdir():
            target.mkdir(exist_ok=True)
        elif member.issym():
            os.symlink(member.linkname, target)  # never followed while unpacking
        elif member.islnk():
            source = root / safe_name(member.linkname)
            _checked_parent(root, safe_name(member.linkname))
            if source.is_symlink() or not source.is_file():
                raise ValueError(f"a hard link to what is not a file of the image: {member.name} -> {member.linkname}")
            os.link(source, target)
        elif member.isfile():
            data = layer.extractfile(member)
            assert data is not None  # a regular file member always has its data
            with data, open(target, "wb") as out:
                shutil.copyfileobj(data, out)
        else:
            continue  # fifos and the like: nothing a workload needs from an image
        keep_attributes(member, target)
    return skipped


XATTR = "SCHILY.xattr."  # how docker save and GNU tar --xattrs record extended attributes (PAX)


def keep_attributes(member: tarfile.TarInfo, target: Path) -> None:
    """Owner, mode and extended attributes as the image has them, in the order that keeps them all:
    a chown clears setuid, setgid and security.capability, so it goes first."""
    if os.geteuid() == 0:
        os.lchown(target, member.uid, member.gid)
    if member.issym():
        return  # a link's mode means nothing, and an attribute would land on what it points to
    os.chmod(target, member.mode & 0o7777)
    for key, value in member.pax_headers.items():
        if key.startswith(XATTR) and os.geteuid() == 0:
            # tarfile decodes PAX values as UTF-8 with surrogateescape: encoding back gives the bytes
            os.setxattr(target, key.removeprefix(XATTR), value.encode("utf-8", "surrogateescape"))


def peek(path: Path) -> tuple[str, tuple[str, ...]]:
    """(digest, tags) of the image at path, from its manifest alone: what its unpacked tree is cached by."""
    src = _Source(path)
    try:
        _, digest, tags = _layers(src)
        return digest, tags
    finally:
        src.close()


def import_image(path: Path, root: Path, say=None) -> ImportedImage:
    """Unpack the image at path into root, which must not exist; root is removed again on any error.
    say(text): a line of progress per layer, and within a big one every PROGRESS_EVERY entries."""
    say = say or (lambda text: None)
    src = _Source(path)
    try:
        names, digest, tags = _layers(src)
        root.mkdir(parents=True)
        skipped = 0
        try:
            for i, name in enumerate(names, 1):
                with _layer_tar(src.read(name), name, path) as layer:
                    total = len(layer.getmembers())
                    skipped += apply_layer(layer, root, lambda n, i=i, total=total: say(f"layer {i} of {len(names)}: {n} of {total} entries"))
                    say(f"layer {i} of {len(names)}: {total} entries unpacked")
        except ValueError as exc:
            shutil.rmtree(root, ignore_errors=True)
            raise UsageError(f"--image {path}: layer {name}: {exc}") from None
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
        return ImportedImage(str(path), digest, len(names), tags, skipped)
    finally:
        src.close()
