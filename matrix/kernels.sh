#!/usr/bin/env bash
# Fetch and cache the guest kernels of the kernel matrix: Debian's
# -cloud-amd64 images, one per series (default: 6.1 and 6.12).
#
#   matrix/kernels.sh                  fetch what is not cached (cached: no-op)
#   KERNELS_REFRESH=1 matrix/kernels.sh re-resolve the newest ABI and fetch it
#   KERNEL_SERIES="6.1 6.12" ...       which series to fetch
#
# Each package is downloaded with `apt-get download` and unpacked with
# `dpkg -x` into .cache/kernels/<release>/ (never installed into /boot).
# .cache/kernels/<series> holds the release name the series resolved to.
# Prints one line per series: "<series> <release> <path to vmlinuz>".
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE=${KERNEL_CACHE:-$PWD/.cache/kernels}
SERIES=${KERNEL_SERIES:-6.1 6.12}
FLAVOUR=cloud-amd64

say() { printf 'kernels: %s\n' "$*" >&2; }
die() { printf 'kernels: error: %s\n' "$*" >&2; exit 1; }

# The cached release of a series, if complete.
cached_release() {
  local series=$1 rel
  [[ -f $CACHE/$series ]] || return 1
  rel=$(<"$CACHE/$series")
  [[ -n $rel && -f $CACHE/$rel/.complete ]] || return 1
  printf '%s\n' "$rel"
}

# Newest linux-image-<series>.*-cloud-amd64 package name known to apt, or
# nothing. Signed images only: no -unsigned, -dbg.
newest_package() {
  local series=$1 re
  re="^linux-image-${series//./\\.}[.][0-9][^ ]*-${FLAVOUR}\$"
  apt-cache pkgnames linux-image- 2>/dev/null | { grep -E "$re" || true; } | sort -V | tail -n 1
}

# Download and unpack the newest package of a series; on an unknown name or a
# failed download (stale apt lists), apt-get update once and try again.
fetch_series() {
  local series=$1 pkg='' failed='' rel dir tmp attempt
  tmp=$(mktemp -d "$CACHE/.fetch.XXXXXX")
  # shellcheck disable=SC2064 # expand now: tmp is local
  trap "rm -rf '$tmp'" EXIT
  for attempt in cached-lists updated-lists; do
    if [[ $attempt == updated-lists ]]; then
      say "${failed:-no linux-image-$series.*-$FLAVOUR in the apt lists}: running apt-get update"
      apt-get update -qq || die "apt-get update failed"
    fi
    pkg=$(newest_package "$series")
    [[ -n $pkg ]] || continue
    [[ -f $CACHE/${pkg#linux-image-}/.complete ]] && break # KERNELS_REFRESH, still the newest
    say "downloading $pkg"
    (cd "$tmp" && apt-get download -q "$pkg" >/dev/null 2>"$tmp/apt.err") && break
    failed="$pkg failed to download ($(tail -n 1 "$tmp/apt.err"))"
    pkg=''
  done
  [[ -n $pkg ]] || die "${failed:-no package linux-image-$series.*-$FLAVOUR in the apt sources}"
  rel=${pkg#linux-image-}
  dir=$CACHE/$rel
  if [[ ! -f $dir/.complete ]]; then
    say "unpacking $pkg"
    mkdir -p "$tmp/root"
    dpkg -x "$tmp"/*.deb "$tmp/root"
    [[ -f $tmp/root/boot/vmlinuz-$rel ]] || die "$pkg has no boot/vmlinuz-$rel"
    rm -rf "$dir"
    mv "$tmp/root" "$dir"
    touch "$dir/.complete"
  fi
  rm -rf "$tmp"
  trap - EXIT
  printf '%s\n' "$rel" >"$CACHE/$series.tmp" && mv "$CACHE/$series.tmp" "$CACHE/$series"
}

mkdir -p "$CACHE"
for series in $SERIES; do
  [[ $series =~ ^[0-9]+\.[0-9]+$ ]] || die "bad kernel series '$series' (want e.g. 6.1)"
  if [[ -z ${KERNELS_REFRESH:-} ]] && rel=$(cached_release "$series"); then
    :
  else
    command -v apt-get >/dev/null || die "apt-get not found: the guest kernels come from Debian's apt sources"
    fetch_series "$series"
    rel=$(cached_release "$series") || die "series $series: fetch did not complete"
  fi
  printf '%s %s %s\n' "$series" "$rel" "$CACHE/$rel/boot/vmlinuz-$rel"
done
