"""--image: a Debian image made for the test (libc6 and dash from Debian's packages, imported into
the local Docker engine and saved with `docker save`) runs the startup suite in process, chroot,
container and vm; the same without a shell runs through our layer's busybox."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from bench.analysis.store import load_run
from tests.conftest import bench

pytestmark = pytest.mark.integration

DOCKER = shutil.which("docker", path="/usr/local/bin:/usr/bin")
TAGS = {"sh": "isobench-test/debian:sh", "noshell": "isobench-test/debian:noshell"}


def debian_tree(root: Path, debs: Path, packages: list[str]) -> None:
    """Debian's own packages unpacked, /bin, /lib and /lib64 merged into /usr as Debian 12 has them."""
    for package in packages:
        (deb,) = debs.glob(f"{package}_*.deb")
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    for top in ("bin", "lib", "lib64", "sbin"):
        if (root / top).is_dir() and not (root / top).is_symlink():
            subprocess.run(["cp", "-a", f"{root / top}/.", str(root / "usr" / top)], check=True)
            shutil.rmtree(root / top)
        (root / "usr" / top).mkdir(parents=True, exist_ok=True)
        (root / top).symlink_to(f"usr/{top}")
    if (root / "usr" / "bin" / "dash").exists() and not (root / "usr" / "bin" / "sh").is_symlink():
        (root / "usr" / "bin" / "sh").symlink_to("dash")
    (root / "etc").mkdir(exist_ok=True)
    (root / "etc" / "debian-test").write_text("made by test_user_image\n")


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """{"sh": archive, "noshell": archive}, each also a Docker image of its TAGS name (removed after)."""
    if DOCKER is None:
        pytest.fail("docker is not installed: run `make setup`")
    tmp = tmp_path_factory.mktemp("user-image")
    debs = tmp / "debs"
    debs.mkdir()
    subprocess.run(["apt-get", "download", "-q", "libc6", "dash"], cwd=debs, check=True, capture_output=True)
    made = {}
    try:
        for kind, packages in {"sh": ["libc6", "dash"], "noshell": ["libc6"]}.items():
            root = tmp / kind
            root.mkdir()
            debian_tree(root, debs, packages)
            subprocess.run(f"tar -C {root} -c . | {DOCKER} import - {TAGS[kind]}", shell=True, check=True,
                           capture_output=True)
            made[kind] = tmp / f"{kind}.tar"
            subprocess.run([DOCKER, "save", "--output", str(made[kind]), TAGS[kind]], check=True)
        yield made
    finally:
        for tag in TAGS.values():
            subprocess.run([DOCKER, "rmi", "--force", tag], capture_output=True)


def forget(meta: dict) -> None:
    """Remove what the run cached for the test's image (its tree, ours on top, the VM's root disk):
    a new image id every session, so never to be reused."""
    from bench.cache import cache_dir

    image, cache = meta["image"], cache_dir()
    shutil.rmtree(Path(image["rootfs"]).parent, ignore_errors=True)
    shutil.rmtree(cache / "images" / f"base-{image['base_digest'][:16]}", ignore_errors=True)
    for disk in (cache / "initramfs").glob(f"root-{image['digest']}-*.ext4"):
        disk.unlink()


def docker_id(tag: str) -> str:
    out = subprocess.run([DOCKER, "image", "inspect", "--format", "{{.Id}}", tag], capture_output=True, text=True)
    return out.stdout.strip().removeprefix("sha256:")


def test_a_debian_image_from_docker_save_runs_the_startup_suite_in_four_runners(images, tmp_path, request):
    out = bench("run", "--suite", "startup", "--image", images["sh"], "--runners", "process,chroot,container,vm",
                "--repeat", "1", "--warmup", "0", "--results-dir", tmp_path, "--no-report", timeout=900)
    assert out.returncode == 0, out.stderr
    df, meta = load_run((tmp_path / "latest").resolve())
    request.addfinalizer(lambda: forget(meta))
    assert df["ok"].all(), df[~df["ok"]]["error"].tolist()
    assert set(df[df["metric"] == "ready_ms"]["runner"]) == {"process", "chroot", "container", "vm"}
    image = meta["image"]
    assert image["base_digest"] == docker_id(TAGS["sh"]) and TAGS["sh"] in image["source"]
    root = Path(image["rootfs"])
    assert (root / "etc" / "debian-test").exists()
    assert os.readlink(root / "usr" / "bin" / "sh") == "dash"  # the image's shell, not ours
    assert (root / "usr" / "bin" / "bench-probe").exists()  # through the image's /bin -> usr/bin
    assert os.readlink(root / "usr" / "bin" / "stress-ng") == "/.bench/bin/stress-ng"
    # our tools run with the libraries of our layer: the image's libc is the image's
    ran = subprocess.run(["chroot", str(root), "/usr/bin/stress-ng", "--version"], capture_output=True, text=True)
    assert ran.returncode == 0 and "stress-ng" in ran.stdout, ran.stderr


def test_a_shell_less_image_by_its_docker_name_runs_through_our_busybox(images, tmp_path, request):
    workload = tmp_path / "sh-ready.toml"
    workload.write_text('suite = "startup"\nargv = ["/bin/sh", "-c", "sleep 0 && echo READY"]\nmarker = "READY"\n')
    out = bench("run", "--image", TAGS["noshell"], "--workload-file", workload, "--runners", "chroot,container,vm",
                "--repeat", "1", "--warmup", "0", "--results-dir", tmp_path / "r", "--no-report", timeout=900)
    assert out.returncode == 0, out.stderr
    df, meta = load_run((tmp_path / "r" / "latest").resolve())
    request.addfinalizer(lambda: forget(meta))
    assert df["ok"].all(), df[~df["ok"]]["error"].tolist()
    assert set(df["workload"]) == {"sh-ready"} and meta["image"]["source"] == f"docker image {TAGS['noshell']}"
    assert json.loads(json.dumps(meta["workload_files"]))["sh-ready"]["origin"] == str(workload)
    root = Path(meta["image"]["rootfs"])
    assert os.readlink(root / "usr" / "bin" / "sh") == "/.bench/busybox"


SETUID_TAG = "isobench-test/setuid:1"
CAPABILITY = "cap_net_raw=ep"


@pytest.fixture(scope="module")
def setuid_image(tmp_path_factory):
    """A docker save of an image with a setuid-root helper and a file with a capability, as an image
    with ping, su or sudo has them (removed from Docker after)."""
    tmp = tmp_path_factory.mktemp("setuid-image")
    root = tmp / "root"
    (root / "bin").mkdir(parents=True)
    for name in ("busybox", "helper", "capped"):
        shutil.copy("/bin/busybox", root / "bin" / name)
    (root / "bin" / "sh").symlink_to("busybox")
    os.chmod(root / "bin" / "helper", 0o4755)
    subprocess.run(["setcap", CAPABILITY.replace("=", "+"), str(root / "bin" / "capped")], check=True)
    subprocess.run(f"tar --xattrs --xattrs-include='*' -C {root} -c . | {DOCKER} import - {SETUID_TAG}", shell=True,
                   check=True, capture_output=True)
    try:
        subprocess.run([DOCKER, "save", "--output", str(tmp / "setuid.tar"), SETUID_TAG], check=True)
        yield tmp / "setuid.tar"
    finally:
        subprocess.run([DOCKER, "rmi", "--force", SETUID_TAG], capture_output=True)


def test_an_images_setuid_helper_is_setuid_inside_and_out_of_everyones_reach_outside(setuid_image):
    import tempfile

    from bench.cache import USERNS_ID, closed
    from bench.images.user_image import build_user_image
    from runners.container import ContainerRunner
    from tests.conftest import RunnerFactory

    base = Path(tempfile.mkdtemp(prefix="isobench-test-"))
    os.chmod(base, 0o755)  # an open parent, as /var/cache is: only the cache's own mode closes it
    try:
        cache = closed(base / "isobench")
        image = build_user_image(str(setuid_image), cache)
        factory = RunnerFactory(image)
        try:
            code, ours, _ = factory.run(factory.runner(ContainerRunner), "busybox stat -c '%a %u %g' /bin/helper /bin/capped")
        finally:
            factory.close()
        theirs = subprocess.run([DOCKER, "run", "--rm", "--network", "none", SETUID_TAG, "busybox", "stat", "-c",
                                 "%a %u %g", "/bin/helper", "/bin/capped"], capture_output=True, text=True)
        assert code == 0 and ours == theirs.stdout == "4755 0 0\n755 0 0\n", (ours, theirs)
        got = subprocess.run(["getcap", str(image.rootfs / "bin" / "capped")], capture_output=True, text=True).stdout
        assert got.split()[-1] == CAPABILITY
        st = cache.stat()
        assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (0o710, 0, USERNS_ID)
        # a shell of the user nobody, as a local user has one (setpriv's own exec is still root's)
        nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--", "/bin/sh", "-c"]
        for command in (f"{image.rootfs}/bin/helper true", f"ls {cache}", f"ls {image.rootfs}"):
            denied = subprocess.run([*nobody, command], capture_output=True, text=True)
            assert denied.returncode != 0 and "Permission denied" in denied.stderr, (command, denied)
    finally:
        shutil.rmtree(base)


def test_an_image_without_bin_runs_through_our_layer(tmp_path, request):
    from tests.unit.test_image_import import docker_save, layer

    archive = tmp_path / "nobin.tar"
    docker_save(archive, layer(("etc", "dir", None), ("etc/hostname", "file", b"nobin\n")))
    out = bench("run", "--suite", "startup", "--image", archive, "--runners", "chroot,container", "--repeat", "1",
                "--warmup", "0", "--results-dir", tmp_path / "r", "--no-report", timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    df, meta = load_run((tmp_path / "r" / "latest").resolve())
    request.addfinalizer(lambda: forget(meta))
    assert df["ok"].all() and set(df["runner"]) == {"chroot", "container"}


def many_files(n: int) -> bytes:
    """One layer of n one-byte files, a thousand to a directory."""
    import io
    import tarfile

    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for d in range(-(-n // 1000)):
            info = tarfile.TarInfo(f"data/{d:03d}")
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
            for f in range(min(1000, n - 1000 * d)):
                info = tarfile.TarInfo(f"data/{d:03d}/{f:03d}")
                info.size = 1
                tar.addfile(info, io.BytesIO(b"x"))
    return out.getvalue()


def test_an_image_of_100000_tiny_files_imports_with_progress(tmp_path, request):
    from tests.unit.test_image_import import docker_save

    archive = tmp_path / "many.tar"
    docker_save(archive, many_files(100_000))
    out = bench("run", "--suite", "startup", "--image", archive, "--runners", "chroot", "--repeat", "1",
                "--warmup", "0", "--results-dir", tmp_path / "r", "--no-report", timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    df, meta = load_run((tmp_path / "r" / "latest").resolve())
    request.addfinalizer(lambda: forget(meta))
    assert f"--image {archive}: layer 1 of 1: 20000 of 100100 entries" in out.stdout
    assert f"--image {archive}: layer 1 of 1: 100100 entries unpacked" in out.stdout
    assert df["ok"].all()
    assert len(list((Path(meta["image"]["rootfs"]) / "data" / "099").iterdir())) == 1000
