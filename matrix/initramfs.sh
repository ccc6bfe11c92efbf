#!/usr/bin/env bash
# Build the kernel matrix's guest image: a gzip'd newc initramfs holding
# busybox-static, matrix/init as /init, the static fivexx-agent (if given)
# and the kernel modules the tests need, with their dependencies.
#
#   matrix/initramfs.sh KERNEL_ROOT RELEASE AGENT|none OUT.cpio.gz
#
# KERNEL_ROOT is the dpkg -x tree of the kernel package (matrix/kernels.sh).
# AGENT "none" builds an image whose /init reports "agent missing" as a
# failed test: the pipeline runs, the result can never be a pass.
# MATRIX_MODULES (default "veth dummy bridge") names the modules to load.
# MATRIX_FORMATS (default: the list in matrix/formats) names the tracepoints
# whose format files the guest prints.
# MATRIX_CHECK_ARGS (default "check --load -o json") are the agent arguments
# that print the capability report.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

die() { printf 'initramfs: error: %s\n' "$*" >&2; exit 1; }
(($# == 4)) || die "usage: $0 KERNEL_ROOT RELEASE AGENT|none OUT.cpio.gz"
kroot=$1 rel=$2 agent=$3 out=$4
modules=${MATRIX_MODULES-veth dummy bridge}
busybox=${BUSYBOX:-/bin/busybox}

[[ -d $kroot/lib/modules/$rel ]] || die "no lib/modules/$rel under $kroot"
command -v readelf >/dev/null || die "readelf not found: install binutils (make setup)"
# A static x86-64 executable: no program interpreter (ld.so) to find in the guest.
is_static_x86_64() {
  local headers
  headers=$(readelf -h -l "$1" 2>/dev/null) || return 1
  grep -q 'Machine:.*X86-64' <<<"$headers" && ! grep -q 'program interpreter' <<<"$headers"
}
[[ -x $busybox ]] || die "$busybox not found: install busybox-static (make setup)"
is_static_x86_64 "$busybox" || die "$busybox is not a static x86-64 binary: install busybox-static"
if [[ $agent != none ]]; then
  [[ -x $agent ]] || die "agent binary $agent not found or not executable"
  is_static_x86_64 "$agent" || die "$agent is not a static x86-64 binary (build it for x86_64-unknown-linux-musl)"
fi

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage"/{bin,dev,proc,sys,tmp,run,etc,root,lib/modules/"$rel"}
cp "$busybox" "$stage/bin/busybox"
install -m 0755 "$here/init" "$stage/init"
if [[ $agent != none ]]; then
  # Debug info is most of a release build's size; the guest does not need it.
  strip --strip-debug -o "$stage/bin/fivexx-agent" "$agent" 2>/dev/null || cp "$agent" "$stage/bin/fivexx-agent"
  chmod 0755 "$stage/bin/fivexx-agent"
fi
# The tracepoints whose format files /init prints (saved as artifacts).
# shellcheck disable=SC2086 # a word list on purpose
printf '%s\n' ${MATRIX_FORMATS-$(cat "$here/formats")} >"$stage/etc/fivexx-formats"
# The capability check's arguments (one word per line), read by /init.
# shellcheck disable=SC2086 # a word list on purpose
printf '%s\n' ${MATRIX_CHECK_ARGS-check --load -o json} >"$stage/etc/fivexx-check-args"

# Modules: resolve "depends=" from each module's .modinfo, load order = deps first.
moddir=$kroot/lib/modules/$rel/kernel
declare -A path_of=() seen=()
while IFS= read -r f; do
  n=${f##*/}; n=${n%%.ko*}; path_of[${n//-/_}]=$f
done < <(find "$moddir" -name '*.ko' -o -name '*.ko.xz' -o -name '*.ko.zst' -o -name '*.ko.gz')
order=()
module_bytes() { # path: the module, decompressed (busybox insmod cannot decompress)
  case $1 in
    *.xz) "$busybox" xzcat "$1" ;;
    *.gz) "$busybox" zcat "$1" ;;
    *.zst) command -v zstd >/dev/null || die "zstd not found: needed for $1"; zstd -qdc "$1" ;;
    *) cat "$1" ;;
  esac
}
modinfo_depends() {
  module_bytes "$1" | tr '\0' '\n' | sed -n 's/^depends=//p' | head -n 1 | tr ',' ' '
}
add_module() {
  local name=${1//-/_} dep
  [[ -n ${seen[$name]:-} ]] && return 0
  seen[$name]=1
  if [[ -z ${path_of[$name]:-} ]]; then
    grep -qE "/${name}\.ko|/${name//_/-}\.ko" "$kroot/lib/modules/$rel/modules.builtin" 2>/dev/null \
      && return 0
    die "kernel $rel has no module $name"
  fi
  for dep in $(modinfo_depends "${path_of[$name]}"); do add_module "$dep"; done
  order+=("$name")
}
for m in $modules; do add_module "$m"; done
: >"$stage/lib/modules/$rel/load-order"
for name in "${order[@]}"; do
  module_bytes "${path_of[$name]}" >"$stage/lib/modules/$rel/$name.ko"
  printf '%s\n' "$name" >>"$stage/lib/modules/$rel/load-order"
done

mkdir -p "$(dirname "$out")"
(cd "$stage" && find . | sort | "$busybox" cpio -o -H newc 2>/dev/null) | gzip -1 >"$out.tmp"
mv "$out.tmp" "$out"
