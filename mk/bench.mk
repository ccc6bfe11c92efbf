# Benchmarks (issue 7, bench/README.md): overhead against no tracing and
# against bpftrace (interleaved rounds, medians and ratios), event capacity
# and drops, event-to-line latency (the agent's outputs and the real
# `kubectl fivexx trace` through the lab's fake API server and port-forward),
# explain speed, agent and plugin footprint.
#   make bench [BENCH_FLAGS="--rounds 7"]   as root; about 10 minutes once built
# Prints one table and writes bench/results.json. NOT part of `make test`.
.PHONY: bench

BENCH_FLAGS ?=
BENCH_TARGET_DIR ?= $(if $(CARGO_TARGET_DIR),$(CARGO_TARGET_DIR),$(CURDIR)/target)

bench: setup
	@[ "$$(id -u)" -eq 0 ] || { echo "make bench: run as root (eBPF, network namespaces)"; exit 1; }
	CARGO_TARGET_DIR=$(BENCH_TARGET_DIR) $(CARGO) build --release -p tracer-user -p fivexx-lab -p kubectl-fivexx
	CARGO_TARGET_DIR=$(BENCH_TARGET_DIR) $(CARGO) build --release -p fivexx-core --example bench_explain
	CARGO_TARGET_DIR=$(BENCH_TARGET_DIR) python3 bench/bench.py $(BENCH_FLAGS)
