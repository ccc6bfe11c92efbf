#!/usr/bin/env bash
# The whole suite: lint, unit and kernel tests (cargo), then the extra suites
# registered by mk/*.mk (passed as make targets). Prints one summary line.
set -uo pipefail
cd "$(dirname "$0")/.."

failed=()
started=$SECONDS
# Each step says how long it took and how much disk is left: a CI machine's
# budget is wall time, and a full disk shows up as a linker's bus error.
free_disk() { df -h --output=avail . 2>/dev/null | tail -1 | tr -d ' '; }
step() {
  local name=$1; shift
  local t0=$SECONDS result=ok
  printf '\n=== %s (at %d s, %s free)\n' "$name" $((t0 - started)) "$(free_disk)"
  "$@" || { result=FAILED; failed+=("$name"); }
  printf '=== %s: %s in %d s (%s free)\n' "$name" "$result" $((SECONDS - t0)) "$(free_disk)"
}

if [[ $(id -u) -ne 0 ]]; then
  echo "NOTE: not root: the kernel tests (real eBPF) and the node lab will be SKIPPED, each saying why."
fi

step "lint" make --no-print-directory lint
# One test thread: kernel tests share the kernel's tracepoints and the lab's
# network namespaces; each test asserts on its own processes and sockets.
step "cargo test" cargo test --workspace --no-fail-fast -- --test-threads=1
for target in "$@"; do
  step "$target" make --no-print-directory "$target"
done

echo
echo "make test: $((SECONDS - started)) s in all"
if ((${#failed[@]})); then
  echo "make test: FAILED steps: ${failed[*]}"
  exit 1
fi
echo "make test: all steps passed"
