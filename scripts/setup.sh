#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian 12 machine: Debian packages, the Rust
# pieces the eBPF build needs, and bpf-linker built against LLVM 22.
# On a machine that already has everything it only checks, in about a second.
set -euo pipefail

say() { printf 'setup: %s\n' "$*" >&2; }

# Debian packages: the eBPF toolchain, the node lab, the kernel matrix, benchmarks,
# chromium (headless, for the HTML report's browser test).
PKGS=(
  llvm-22-dev libpolly-22-dev zlib1g-dev libzstd-dev build-essential pkg-config binutils util-linux
  nginx-light haproxy wrk bpftrace iproute2 iptables procps psmisc
  qemu-system-x86 busybox-static musl-tools
  python3 python3-venv
  chromium
  containerd runc
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    say "missing Debian packages: ${missing[*]}; run 'sudo make setup' once"
    exit 1
  fi
  say "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The lab runs its own nginx and HAProxy instances; the packaged services
# must not hold their ports.
for svc in nginx haproxy; do
  if systemctl is-enabled "$svc" >/dev/null 2>&1; then
    systemctl disable --now "$svc" >/dev/null 2>&1 || true
  fi
done
# The pinned official Envoy (the lab's Envoy Gateway data plane).
"$(dirname "$0")/envoy.sh" >/dev/null

command -v rustup >/dev/null || { say "rustup not found: install Rust (stable) first"; exit 1; }
installed=$(rustup component list --installed 2>/dev/null)
grep -q '^rust-src' <<<"$installed" || { say "adding rust-src"; rustup component add rust-src; }
grep -q '^rust-std-x86_64-unknown-linux-musl' <<<"$installed" || {
  say "adding the x86_64-unknown-linux-musl target (kernel matrix)"; rustup target add x86_64-unknown-linux-musl; }

if ! bpf-linker --version 2>/dev/null | grep -q '^bpf-linker 0\.13\.'; then
  say "building bpf-linker 0.13 against LLVM 22 (a few minutes, once)"
  LLVM_PREFIX=/usr/lib/llvm-22 cargo install --locked bpf-linker --version '^0.13' \
    --no-default-features --features llvm-22
fi
say "ok"
