#!/usr/bin/env bash
# Idempotent host setup for isobench: apt packages, then .venv with the project installed.
# Safe to run again and again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
    busybox-static stress-ng fio iperf3   # the guest image and its workloads
    gcc libc6-dev                         # the static READY probe
    python3-venv                          # .venv
    iproute2 util-linux                   # namespaces, veths, mounts
    hyperfine                             # the reference timer we check our own timings against
)

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
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PYTHON=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
    echo "setup: creating .venv with $($PYTHON --version)"
    "$PYTHON" -m venv .venv
fi

# Reinstall only when the project's declared dependencies change.
stamp=.venv/.isobench-setup
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [[ ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
    echo "setup: installing isobench and its dependencies into .venv"
    .venv/bin/pip install -q --disable-pip-version-check -e '.[test]'
    echo "$want" >"$stamp"
fi
echo "setup: ready ($(.venv/bin/bench --version 2>/dev/null || echo isobench) in .venv)"
