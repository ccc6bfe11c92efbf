# The node lab (issue 3, tests/): real netns pods, ingress nginx, backends,
# kubelet simulator. The scenario tests themselves run inside `cargo test`
# (tests/tests/lab_scenarios.rs); this file adds:
#   make lab SCENARIO=drain [PROXY=envoy] [LAB_FLAGS="--agent --rate 300"]
#                                                     run one scenario (PROXY: nginx,
#                                                     envoy or haproxy; default nginx)
#   make lab-clean                                             remove every lab object
#   lab-leftovers (in `make test`, after cargo test): nothing of the lab remains
.PHONY: lab lab-build lab-clean lab-leftovers

SCENARIO ?= rollout-no-prestop
PROXY ?= nginx
LAB_FLAGS ?=
LAB_TARGET_DIR ?= $(if $(CARGO_TARGET_DIR),$(CARGO_TARGET_DIR),$(CURDIR)/target)
LAB_BIN = $(LAB_TARGET_DIR)/debug/fivexx-lab

lab-build:
	@$(CARGO) build -q -p fivexx-lab

lab: lab-build
	@$(LAB_BIN) run --scenario $(SCENARIO) --proxy $(PROXY) $(LAB_FLAGS)

lab-clean: lab-build
	@$(LAB_BIN) clean

lab-leftovers: lab-build
	@if [ "$$(id -u)" -ne 0 ]; then echo "SKIP lab-leftovers: not root (the lab did not run)"; \
	else $(LAB_BIN) leftovers && echo "lab: no namespace, link, cgroup or process left behind"; fi

TEST_EXTRA += lab-leftovers

# The parameter sweep of issue 13 over its full grid (lag-type scenarios at
# 0.5..5 s, retries over tries x replicas x rates; about 25 minutes as
# root). `make test` runs a few points of it in cargo test (lab_sweep).
.PHONY: lab-sweep
lab-sweep:
	FIVEXX_SWEEP=full $(CARGO) test -p fivexx-lab --test lab_sweep -- --nocapture --test-threads=1
