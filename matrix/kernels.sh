#!/usr/bin/env bash
# Fetch and cache the guest kernels of the kernel matrix: Debian's
# -cloud-amd64 images, one per series (default: 5.10, 6.1 and 6.12).
#
#   matrix/kernels.sh                  fetch what is not cached (cached: no-op)
#   KERNELS_REFRESH=1 matrix/kernels.sh re-resolve the newest ABI and fetch it
#   KERNEL_SERIES="6.1 6.12" ...       which series to fetch
#
# 6.1 and 6.12 come from the machine's own apt sources (bookworm). 5.10 is
# bullseye's: it comes through a private apt configuration under the cache
# ($CACHE/apt-bullseye/: its own sources list, lists, archive cache and an
# empty dpkg status), whose sources are the mirrors the machine's sources
# already name, with the suite replaced by bullseye. The machine's apt
# configuration and lists are never touched.
#
# Each package is downloaded with `apt-get download` and unpacked with
# `dpkg -x` into .cache/kernels/<release>/ (never installed into /boot).
# .cache/kernels/<series> holds the release name the series resolved to.
# Prints one line per series: "<series> <release> <path to vmlinuz>".
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE=${KERNEL_CACHE:-$PWD/.cache/kernels}
SERIES=${KERNEL_SERIES:-5.10 6.1 6.12}
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

# The Debian suite a series comes from when the machine's own suite no
# longer carries it; empty: the machine's sources.
suite_of() {
  case $1 in
    5.10) echo bullseye ;;
    *) echo '' ;;
  esac
}

# The machine's Debian mirrors, one "URI SUITE" per line, from both the
# one-line and the deb822 source formats.
host_sources() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f $f ]] && awk '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while ($i !~ /\]$/) i++; i++ } print $i, $(i + 1) }' "$f"
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f $f ]] && awk '
      /^Types:/ { t = $0 } /^URIs:/ { u = $2 } /^Suites:/ { s = $2 }
      /^[[:space:]]*$/ { if (u != "" && t ~ /deb( |$)/) print u, s; u = s = t = "" }
      END { if (u != "" && t ~ /deb( |$)/) print u, s }' "$f"
  done
  return 0
}

# Writes a private apt configuration for `suite` into $CACHE/apt-<suite>/:
# the machine's Debian mirrors with the suite swapped (a -security or
# -updates suite keeps its suffix). Prints the configuration's path.
private_apt() {
  local suite=$1 dir=$CACHE/apt-$1 uri s seen=''
  mkdir -p "$dir/lists/partial" "$dir/archives/partial" "$dir/parts"
  : >"$dir/sources.list.tmp"
  while read -r uri s; do
    case $s in
      *-security) s=$suite-security ;;
      *-updates) s=$suite-updates ;;
      *) s=$suite ;;
    esac
    [[ " $seen " == *" $uri|$s "* ]] && continue
    seen+=" $uri|$s"
    printf 'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] %s %s main\n' "$uri" "$s" \
      >>"$dir/sources.list.tmp"
  done < <(host_sources)
  [[ -s $dir/sources.list.tmp ]] || die "no Debian mirror in the machine's apt sources to fetch $suite from"
  mv "$dir/sources.list.tmp" "$dir/sources.list"
  [[ -f $dir/status ]] || : >"$dir/status"
  {
    printf 'Dir::Etc::SourceList "%s";\n' "$dir/sources.list"
    printf 'Dir::Etc::SourceParts "%s";\n' "$dir/parts"
    printf 'Dir::State::Lists "%s";\n' "$dir/lists"
    printf 'Dir::State::status "%s";\n' "$dir/status"
    printf 'Dir::Cache "%s";\n' "$dir"
    printf 'Dir::Cache::archives "%s";\n' "$dir/archives"
  } >"$dir/apt.conf"
  printf '%s\n' "$dir/apt.conf"
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
  local series=$1 pkg='' failed='' rel dir tmp attempt suite
  suite=$(suite_of "$series")
  if [[ -n $suite ]]; then
    # Every apt call below (in this subshell) uses the private configuration.
    APT_CONFIG=$(private_apt "$suite")
    export APT_CONFIG
    if ! compgen -G "$CACHE/apt-$suite/lists/*Packages*" >/dev/null; then
      say "fetching $suite's package lists into $CACHE/apt-$suite (the machine's apt is untouched)"
      apt-get update -qq || die "apt-get update of the private $suite lists failed"
    fi
  fi
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
    (fetch_series "$series")
    rel=$(cached_release "$series") || die "series $series: fetch did not complete"
  fi
  printf '%s %s %s\n' "$series" "$rel" "$CACHE/$rel/boot/vmlinuz-$rel"
done
