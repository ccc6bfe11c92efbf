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
# undocumented unsafe blocks, ...; Cargo.toml and clippy.toml), the
# layout rules clippy cannot check (no import cycle between the modules
# of any crate, no source file over 600 lines without a stated reason),
# and fivexx-core's `testkit` (synthetic timelines) off in every build
# but the tests'.
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	python3 -B -m unittest -q scripts/test_check_layout.py
	python3 scripts/check-layout.py
	@if $(CARGO) tree --workspace -e normal,build,features -i fivexx-core | grep -q testkit; then \
	  echo "lint: fivexx-core's testkit feature is on in a normal build"; exit 1; \
	else echo "lint: testkit is off in every normal build"; fi

fmt:
	$(CARGO) fmt --all

demo: setup
	@scripts/demo.sh

clean:
	$(CARGO) clean
