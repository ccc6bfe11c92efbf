#!/usr/bin/env bash
# Copy the tracepoint layouts saved by the last kernel-matrix run
# (artifacts/kernels/<release>/tracefs/) into a fixture tree laid out like
# ../shared/fixtures/tracefs: DEST/<major.minor>/<category>/<event>/format,
# plus DEST/<major.minor>/KERNEL holding the release. Unit tests that parse
# layouts can then read real files from every kernel of the matrix.
#
#   matrix/export-fixtures.sh DEST
set -euo pipefail
cd "$(dirname "$0")/.."
die() { printf 'export-fixtures: error: %s\n' "$*" >&2; exit 1; }
(($# == 1)) || die "usage: $0 DEST"
dest=$1
shopt -s nullglob
dirs=(artifacts/kernels/*/tracefs)
((${#dirs[@]})) || die "no saved layouts in artifacts/kernels/*/tracefs: run 'make test-kernels' first"
for d in "${dirs[@]}"; do
  rel=${d#artifacts/kernels/}; rel=${rel%/tracefs}
  [[ $rel =~ ^([0-9]+\.[0-9]+) ]] || die "cannot read a version from release '$rel'"
  series=${BASH_REMATCH[1]}
  rm -rf "${dest:?}/$series"
  mkdir -p "$dest/$series"
  cp -r "$d"/. "$dest/$series/"
  printf '%s\n' "$rel" >"$dest/$series/KERNEL"
  printf '%s -> %s/%s (%s layouts)\n' "$rel" "$dest" "$series" "$(find "$d" -name format | wc -l)"
done
