# fivexx-core extras (included by the top-level Makefile; not part of `make test`).
#   make fuzz            fuzz the capture reader (FUZZ_SECONDS, default 600)
#   make bench-explain   explain on synthetic 1 M and 10 M-fact captures:
#                        facts/s and peak RSS, side by side
.PHONY: fuzz bench-explain

FUZZ_SECONDS ?= 600
CORE_TARGET_DIR ?= $(CURDIR)/target
BENCH_DIR ?= $(CORE_TARGET_DIR)/bench-explain

fuzz:
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	cd fivexx-core/fuzz && mkdir -p corpus/capture_reader && \
	  RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run capture_reader -j1 -- \
	    -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=1024 -print_final_stats=1

bench-explain:
	CARGO_TARGET_DIR=$(CORE_TARGET_DIR) $(CARGO) build --release -p fivexx-core --features testkit --example bench_explain
	@mkdir -p $(BENCH_DIR)
	@B=$(CORE_TARGET_DIR)/release/examples/bench_explain; \
	for n in 1000000 10000000; do \
	  $$B write $(BENCH_DIR)/synthetic-$$n.fxc $$n && \
	  $$B explain $(BENCH_DIR)/synthetic-$$n.fxc || exit 1; \
	done; \
	$$B engine 10000000; \
	rm -f $(BENCH_DIR)/synthetic-*.fxc
