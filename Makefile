# kubectl-fivexx. The two commands a new user runs (as root, for eBPF):
#   make demo   reproduce and explain real 502s on this machine
#   make test   the whole test suite
SHELL := /bin/bash
CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

.PHONY: all setup build test test-unit test-kernel demo clean lint fmt
all: build

setup:
	@scripts/setup.sh

build: setup
	$(CARGO) build --release --workspace

# Extra suites register themselves from mk/*.mk by appending to TEST_EXTRA.
TEST_EXTRA :=
include $(wildcard mk/*.mk)

test: setup
	@scripts/test.sh $(TEST_EXTRA)

# Formatting, clippy with the workspace lints (too_many_lines over 120,
# undocumented unsafe blocks, ...; Cargo.toml and clippy.toml), and the
# layout rules clippy cannot check: no import cycle between fivexx-core's
# modules, no source file over 600 lines without a stated reason.
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	python3 -B -m unittest -q scripts/test_check_layout.py
	python3 scripts/check-layout.py

fmt:
	$(CARGO) fmt --all

demo: setup
	@scripts/demo.sh

clean:
	$(CARGO) clean
