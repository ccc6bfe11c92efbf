# kubectl-fivexx, the plugin (issue 5): manifests, portability, releases.
#   make test-manifests    kubernetes-validate (Kubernetes $(K8S_VERSION), strict)
#                          and checkov on deploy/, from PyPI in a venv under
#                          .cache/ (in `make test`)
#   make plugin-portable   the plugin builds for macOS: `cargo check` for
#                          x86_64-apple-darwin when a darwin C compiler is set
#                          (CC_x86_64_apple_darwin), else proof by `cargo tree`
#                          that no Linux-only crate is pulled in (in `make test`)
#   make plugin-demo       the real `kubectl fivexx trace deploy/web` explaining
#                          the lab's rollout-no-prestop 502s (root): the lab's
#                          fake API server, a real `fivexx-agent serve` behind
#                          the agent pod's port-forward; shows the trace's
#                          burst lines, the explain table of its capture and
#                          the failed requests the load generator and the
#                          plugin counted
#   make dist              the release archives deploy/krew/fivexx.yaml names,
#                          with their sha256 (DIST_TARGETS)
.PHONY: test-manifests plugin-portable plugin-demo dist

TEST_EXTRA += test-manifests plugin-portable

PLUGIN_VENV ?= $(CURDIR)/.cache/plugin-venv
K8S_VERSION ?= 1.37.0
PLUGIN_TARGET_DIR ?= $(if $(CARGO_TARGET_DIR),$(CARGO_TARGET_DIR),$(CURDIR)/target)
MANIFESTS := $(wildcard deploy/0*.yaml)

$(PLUGIN_VENV)/.installed:
	python3 -m venv $(PLUGIN_VENV)
	$(PLUGIN_VENV)/bin/pip install -q --upgrade pip
	$(PLUGIN_VENV)/bin/pip install -q kubernetes-validate checkov
	touch $@

test-manifests: $(PLUGIN_VENV)/.installed
	$(PLUGIN_VENV)/bin/kubernetes-validate --strict --quiet -k $(K8S_VERSION) $(MANIFESTS)
	@# Skips are annotations on the objects, each justified in a comment there.
	$(PLUGIN_VENV)/bin/checkov -d deploy --framework kubernetes --compact --quiet --skip-download

# Crates that only build or only work on Linux: none may reach the plugin.
LINUX_ONLY := aya aya-obj aya-ebpf aya-build tracer-user tracer-ebpf libbpf-sys libbpf-rs procfs inotify netlink-sys netlink-packet-core rtnetlink caps io-uring

plugin-portable:
	@if [ -n "$$CC_x86_64_apple_darwin" ] && rustup target list --installed | grep -q x86_64-apple-darwin; then \
	  CARGO_TARGET_DIR=$(PLUGIN_TARGET_DIR) $(CARGO) check -p kubectl-fivexx --target x86_64-apple-darwin; \
	else \
	  echo "no darwin C compiler (ring, zstd-sys build C): proving portability with cargo tree"; \
	  tree=$$($(CARGO) tree -p kubectl-fivexx --target x86_64-apple-darwin -e normal,build --prefix none | sed 's/ (\*)//;s/ (proc-macro)//' | sort -u) || exit 1; \
	  bad=$$(for c in $(LINUX_ONLY); do echo "$$tree" | grep -E "^$$c v" ; done); \
	  if [ -n "$$bad" ]; then echo "Linux-only crates in the darwin build of kubectl-fivexx:"; echo "$$bad"; exit 1; fi; \
	  echo "kubectl-fivexx for x86_64-apple-darwin: $$(echo "$$tree" | wc -l) crates, none Linux-only"; \
	fi

# Targets built here; the darwin archive needs a macOS host or a darwin
# cross toolchain: make dist DIST_TARGETS="x86_64-apple-darwin".
DIST_TARGETS ?= x86_64-unknown-linux-musl
DIST_DIR ?= $(PLUGIN_TARGET_DIR)/dist

dist:
	@mkdir -p $(DIST_DIR)
	@for t in $(DIST_TARGETS); do \
	  case $$t in \
	    x86_64-unknown-linux-musl) name=linux_amd64 ;; \
	    x86_64-apple-darwin) name=darwin_amd64 ;; \
	    *) echo "dist: no krew platform for $$t"; exit 1 ;; \
	  esac; \
	  grep -q "kubectl-fivexx_$$name.tar.gz" deploy/krew/fivexx.yaml || { echo "krew manifest lacks $$name"; exit 1; }; \
	  rustup target add $$t >/dev/null && \
	  CARGO_TARGET_DIR=$(PLUGIN_TARGET_DIR) $(CARGO) build --release --locked -p kubectl-fivexx --target $$t || exit 1; \
	  stage=$$(mktemp -d) && cp $(PLUGIN_TARGET_DIR)/$$t/release/kubectl-fivexx $$stage/ && \
	  tar -C $$stage -czf $(DIST_DIR)/kubectl-fivexx_$$name.tar.gz kubectl-fivexx && rm -rf $$stage || exit 1; \
	  echo "$(DIST_DIR)/kubectl-fivexx_$$name.tar.gz sha256 $$(sha256sum $(DIST_DIR)/kubectl-fivexx_$$name.tar.gz | cut -d' ' -f1)"; \
	done

plugin-demo:
	$(CARGO) build -q -p tracer-user -p kubectl-fivexx -p fivexx-lab
	set -o pipefail; $(CARGO) test -q -p fivexx-lab --test plugin_rollout -- --nocapture 2>&1 \
	  | sed -n '/^--- trace stdout/,/^test result/p'
