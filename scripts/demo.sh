#!/usr/bin/env bash
# make demo: reproduce real 502s on this machine during a Kubernetes-style
# rolling update, then show what the kernel saw. Everything on the data path
# is real (network namespaces, nginx, signals); the control plane is the lab's.
# Later issues extend the "explain" step below; keep this script short.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n== %s\n' "$*"; }

if [[ $(id -u) -ne 0 ]]; then
  echo "make demo needs root (network namespaces, cgroups, eBPF): run 'sudo make demo'" >&2
  exit 1
fi

TARGET=${CARGO_TARGET_DIR:-target}
LAB=$TARGET/release/fivexx-lab
AGENT=$TARGET/release/fivexx-agent
SCENARIO=${SCENARIO:-rollout-no-prestop}

say "building fivexx-lab and fivexx-agent (release; a first build takes several minutes)"
cargo build --release -p fivexx-lab -p tracer-user

OUT=$(mktemp -d /tmp/fivexx-demo.XXXXXX)
# Whatever happens (error, Ctrl-C), leave nothing behind.
trap '"$LAB" clean >/dev/null 2>&1 || true' EXIT

agent_flags=()
if [[ -x $AGENT ]]; then
  agent_flags=(--agent --agent-bin "$AGENT")
else
  echo "note: $AGENT is missing: running without the agent (ground truth only)"
fi

say "$SCENARIO: 3 pods behind ingress nginx at 200 req/s; a rolling update whose endpoint removal reaches nginx 1 s after SIGTERM, no preStop"
"$LAB" "$SCENARIO" "${agent_flags[@]}" --out "$OUT"

say "what happened, what Kubernetes did, what the kernel saw"
"$LAB" report "$OUT"

say "the same rollout through the real kubectl fivexx trace (the lab's fake API server, the agent behind pods/portforward)"
make --no-print-directory plugin-demo

say "teardown"
"$LAB" clean
"$LAB" leftovers && echo "nothing left behind; the run's files are in $OUT"
