#!/usr/bin/env bash
# The whole suite: lint, unit and kernel tests (cargo), then the extra suites
# registered by mk/*.mk (passed as make targets). Prints one summary line.
set -uo pipefail
cd "$(dirname "$0")/.."

failed=()
step() {
  local name=$1; shift
  printf '\n=== %s\n' "$name"
  if "$@"; then printf '=== %s: ok\n' "$name"; else printf '=== %s: FAILED\n' "$name"; failed+=("$name"); fi
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
if ((${#failed[@]})); then
  echo "make test: FAILED steps: ${failed[*]}"
  exit 1
fi
echo "make test: all steps passed"
