# Benchmarks (issue 7, bench/README.md): overhead against no tracing and
# against bpftrace (interleaved rounds, medians and ratios), event capacity
# and drops, event-to-line latency (the agent's outputs and the real
# `kubectl fivexx trace` through the lab's fake API server and port-forward),
# explain speed, agent and plugin footprint, and the plugin's fan-out over
# 200 fake nodes (one real agent behind every agent pod's port-forward).
#   make bench [BENCH_FLAGS="--rounds 7"]   as root; 9 to 15 minutes once built (by load)
#   make bench-fanout                        only the fan-out row (about a minute once built)
# Prints one table and writes the raw samples to target/bench/results.json
# (BENCH_FLAGS="--out FILE" elsewhere). NOT part of `make test`.
.PHONY: bench bench-build bench-fanout

BENCH_FLAGS ?=
BENCH_TARGET_DIR ?= $(if $(CARGO_TARGET_DIR),$(CARGO_TARGET_DIR),$(CURDIR)/target)

bench-build:
	@[ "$$(id -u)" -eq 0 ] || { echo "make bench: run as root (eBPF, network namespaces)"; exit 1; }
	CARGO_TARGET_DIR=$(BENCH_TARGET_DIR) $(CARGO) build --release -p tracer-user -p fivexx-lab -p kubectl-fivexx

bench: setup bench-build
	CARGO_TARGET_DIR=$(BENCH_TARGET_DIR) $(CARGO) build --release -p fivexx-core --features testkit --example bench_explain
	CARGO_TARGET_DIR=$(BENCH_TARGET_DIR) python3 bench/bench.py $(BENCH_FLAGS)

bench-fanout: bench-build
	CARGO_TARGET_DIR=$(BENCH_TARGET_DIR) python3 bench/bench.py --only fanout $(BENCH_FLAGS)
