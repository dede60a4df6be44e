"""The app suite's image: Debian 12 (debootstrap minbase) with nginx-light, redis-server,
mariadb-server and python3-minimal from Debian's packages, the same apt sources as the host's, so that the servers in
the image are the versions a plain process runs on the host. Built by `make setup` (python -m
bench.images.app_image), or on the first app run; cached by the package list and the host's sources.

No daemon starts while it is built (a policy-rc.d that says no), and the apt lists, docs and
locales are left out. Every run puts our layer on top of it as it does for --image.

MariaDB's data directory is prepared here once, outside every timing: mariadb-install-db, a user
the host-side client logs in as, and sysbench's OLTP table loaded by the host's sysbench (through
the build server's socket). The mariadb workload copies it into the instance's scratch and starts
the server on the copy, as an application that brings its data would.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench.atomic import staged
from bench.errors import UsageError

# libpython3.11-stdlib: python3-minimal's interpreter has no json, http or email without it.
PACKAGES = ("nginx-light", "redis-server", "mariadb-server", "python3-minimal", "libpython3.11-stdlib")
MARIADB_SEED = "var/lib/bench-mariadb"  # in the image: the prepared data directory
# What every MariaDB start is given, in the build as in the workload (bench/workloads/mariadb.toml):
# no native AIO (gVisor has none to give, so no runner gets it) and a small redo log.
MARIADB_SETTINGS = ("--innodb-use-native-aio=0", "--innodb-log-file-size=16M", "--innodb-buffer-pool-size=128M")
SYSBENCH = "/usr/bin/sysbench"
OLTP = ("oltp_read_write", "--db-driver=mysql", "--mysql-db=sbtest", "--tables=1", "--table-size=10000")
RELEASE = "bookworm"
BUILD_VERSION = "2"  # bump when how it is built changes
DEBOOTSTRAP = "/usr/sbin/debootstrap"
SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
SOURCE = f"isobench's app image (Debian 12: {', '.join(PACKAGES)})"
TRIMMED = ("var/lib/apt/lists", "var/cache/apt", "usr/share/doc", "usr/share/man", "usr/share/locale", "usr/share/info")


def key() -> str:
    sources = SOURCES.read_text() if SOURCES.exists() else ""
    return hashlib.sha256(f"{BUILD_VERSION} {RELEASE} {' '.join(PACKAGES)}\n{sources}".encode()).hexdigest()[:16]


def app_dir(cache_dir: Path) -> Path:
    return cache_dir / "app-image" / key()


def mirror() -> str:
    """The host's Debian mirror (the first URIs of its debian.sources), else Debian's own."""
    if SOURCES.exists():
        for line in SOURCES.read_text().splitlines():
            if line.startswith("URIs:") and "security" not in line:
                return line.split()[1]
    return DEFAULT_MIRROR


def build_app_image(cache_dir: Path, say=print) -> tuple[Path, str]:
    """(its rootfs, its digest), built unless it is cached."""
    final = app_dir(cache_dir)
    if (final / "rootfs").is_dir():
        return final / "rootfs", final.name
    if not os.access(DEBOOTSTRAP, os.X_OK):
        raise UsageError("the app suite's image is built with debootstrap, which is not installed: run `make setup`")
    if os.geteuid() != 0:
        raise UsageError("the app suite's image is built as root (debootstrap): run `make setup` as root")
    started = time.monotonic()
    say(f"app image: debootstrap {RELEASE} minbase, then {', '.join(PACKAGES)} (once; 29 s on a 2-core host)")
    with staged(final, replace=False) as staging:
        staging.mkdir()
        root = staging / "rootfs"
        log = staging / "build.log"
        with open(log, "w") as out:
            step(out, log, DEBOOTSTRAP, "--variant=minbase", RELEASE, str(root), mirror())
            if SOURCES.exists():  # the host's suites (updates, security): the host's package versions
                shutil.copy(SOURCES, root / "etc/apt/sources.list.d/debian.sources")
                (root / "etc/apt/sources.list").unlink(missing_ok=True)
            policy = root / "usr/sbin/policy-rc.d"
            policy.write_text("#!/bin/sh\nexit 101\n")  # no daemon starts inside the build
            policy.chmod(0o755)
            env = {"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
            step(out, log, "chroot", str(root), "apt-get", "update", "-qq", env=env)
            step(out, log, "chroot", str(root), "apt-get", "install", "-y", "-qq", "--no-install-recommends",
                 *PACKAGES, env=env)
            policy.unlink()
            seed_mariadb(out, log, root, env)
        for rel in TRIMMED:
            shutil.rmtree(root / rel, ignore_errors=True)
        versions = subprocess.run(["chroot", str(root), "dpkg-query", "-W", *PACKAGES], capture_output=True,
                                  text=True, check=False).stdout.split("\n")
        (staging / "build.json").write_text(json.dumps({
            "packages": [v for v in versions if v], "mirror": mirror(), "seconds": round(time.monotonic() - started)},
            indent=2))
    say(f"app image: built in {time.monotonic() - started:.0f} s: {final / 'rootfs'}")
    return final / "rootfs", final.name


def seed_mariadb(out, log: Path, root: Path, env: dict) -> None:
    """MariaDB's data directory with sysbench's table, made once in the image (a server started in
    the build's chroot on a socket only, loaded from the host, shut down)."""
    if not os.access(SYSBENCH, os.X_OK):
        raise UsageError("the app image's MariaDB data is loaded with sysbench, which is not installed: run `make setup`")
    sock = "/run/bench-mariadb-build.sock"
    # --force and --skip-name-resolve: the build's chroot resolves no host name, and no grant names one.
    step(out, log, "chroot", str(root), "mariadb-install-db", "--force", "--skip-name-resolve", "--user=root",
         f"--datadir=/{MARIADB_SEED}", "--auth-root-authentication-method=socket", "--skip-test-db", *MARIADB_SETTINGS,
         env=env)
    (root / "run").mkdir(exist_ok=True)
    server = subprocess.Popen(["chroot", str(root), "mariadbd", "--user=root", f"--datadir=/{MARIADB_SEED}",
                               f"--socket={sock}", "--pid-file=/run/bench-mariadb-build.pid", "--skip-networking",
                               "--skip-name-resolve", *MARIADB_SETTINGS],
                              stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 60
        while subprocess.run(["chroot", str(root), "mariadb-admin", f"--socket={sock}", "--silent", "ping"],
                             capture_output=True, env=env, check=False).returncode:
            if server.poll() is not None or time.monotonic() > deadline:
                out.flush()
                said = log.read_text().strip().splitlines()[-3:]
                raise UsageError(f"app image: the build's MariaDB did not start: {said} (the log went with the failed build)")
            time.sleep(0.1)
        step(out, log, "chroot", str(root), "mariadb", f"--socket={sock}", "-e",
             "CREATE DATABASE sbtest; CREATE USER bench@'%' IDENTIFIED BY 'bench'; GRANT ALL ON sbtest.* TO bench@'%';",
             env=env)
        step(out, log, SYSBENCH, *OLTP, f"--mysql-socket={root / sock.lstrip('/')}", "--mysql-user=root", "prepare")
        step(out, log, "chroot", str(root), "mariadb-admin", f"--socket={sock}", "shutdown", env=env)
        server.wait(timeout=60)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def step(out, log: Path, *argv: str, env: dict | None = None) -> None:
    out.write(f"$ {' '.join(argv)}\n")
    out.flush()
    if subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, env=env, check=False).returncode:
        tail = log.read_text().strip().splitlines()[-1:]
        raise UsageError(f"app image: {argv[0]} {argv[1]} failed: {tail} (the log went with the failed build)")


def versions(cache_dir: Path) -> list[str]:
    """The packages of the built image and their versions ("nginx-light\\t1.22.1-9+deb12u1")."""
    record = app_dir(cache_dir) / "build.json"
    return json.loads(record.read_text())["packages"] if record.exists() else []


if __name__ == "__main__":  # make setup
    from bench.cache import cache_dir

    try:
        build_app_image(cache_dir(), say=lambda line: print(f"setup: {line}"))
    except UsageError as exc:
        print(f"setup: {exc}", file=sys.stderr)
        sys.exit(2)
