# The agent image (issue 19), built without Docker.
#   make image               the static musl fivexx-agent (release, the kernel
#                            matrix's build command) in an otherwise empty OCI
#                            image: $(IMAGE_ARCHIVE), its digest in
#                            $(IMAGE_DIR)/fivexx-agent.digest. Reproducible:
#                            fixed timestamps (SOURCE_DATE_EPOCH = the commit
#                            time), sorted entries, uid/gid 0, no host names;
#                            same digest for the same commit built in the
#                            same directory (the eBPF BTF keeps source paths)
#   make image-twice         builds the image twice and fails unless both
#                            digests agree
#   make test-image-runtime  the DaemonSet's pod template run for real under
#                            Debian's containerd and runc (root; in `make test`):
#                            tests/tests/container_runtime.rs
# Load it elsewhere with: ctr images import --index-name REF $(IMAGE_ARCHIVE)
#                     or: podman load -i $(IMAGE_ARCHIVE)
.PHONY: image image-twice test-image-runtime

IMAGE_TARGET_DIR ?= $(if $(CARGO_TARGET_DIR),$(CARGO_TARGET_DIR),$(CURDIR)/target)
IMAGE_DIR ?= $(IMAGE_TARGET_DIR)/image
IMAGE_ARCHIVE ?= $(IMAGE_DIR)/fivexx-agent.oci.tar
IMAGE_PROFILE ?= release
IMAGE_BIN := $(IMAGE_TARGET_DIR)/x86_64-unknown-linux-musl/$(if $(filter dev,$(IMAGE_PROFILE)),debug,$(IMAGE_PROFILE))/fivexx-agent
# The reference the DaemonSet names; `kubectl fivexx deploy --image` overrides it.
IMAGE_REF ?= $(shell sed -n 's/^ *image: *//p' deploy/04-daemonset.yaml | head -1)

TEST_EXTRA += test-image-runtime

# Writes the OCI image layout with nothing but tar, gzip -n and sha256sum:
# every byte is a function of the binary, the commit time and this text.
define IMAGE_SCRIPT
set -euo pipefail
sde=$${SOURCE_DATE_EPOCH:-$$(git log -1 --format=%ct 2>/dev/null || echo 0)}
created=$$(date -u -d "@$$sde" +%Y-%m-%dT%H:%M:%SZ)
work=$$(mktemp -d); trap 'rm -rf "$$work"' EXIT
mkdir -p "$$work/root" "$$work/oci/blobs/sha256"
strip -o "$$work/root/fivexx-agent" "$(IMAGE_BIN)"
tarit() { tar --sort=name --mtime="@$$sde" --owner=0 --group=0 --numeric-owner --format=ustar "$$@"; }
blob() { local d; d=$$(sha256sum "$$1" | cut -d' ' -f1); mv "$$1" "$$work/oci/blobs/sha256/$$d"; echo "$$d"; }
size() { stat -c %s "$$work/oci/blobs/sha256/$$1"; }
tarit --mode=0755 -C "$$work/root" -cf "$$work/layer.tar" fivexx-agent
diff_id=$$(sha256sum "$$work/layer.tar" | cut -d' ' -f1)
gzip -n -9 "$$work/layer.tar"
layer=$$(blob "$$work/layer.tar.gz")
printf '{"architecture":"amd64","config":{"Cmd":["serve","--listen","127.0.0.1:7450"],"Entrypoint":["/fivexx-agent"],"User":"0:0","WorkingDir":"/"},"created":"%s","history":[{"created":"%s","created_by":"make image"}],"os":"linux","rootfs":{"diff_ids":["sha256:%s"],"type":"layers"}}' \
  "$$created" "$$created" "$$diff_id" >"$$work/config.json"
config=$$(blob "$$work/config.json")
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s}],"annotations":{"org.opencontainers.image.created":"%s"}}' \
  "$$config" "$$(size "$$config")" "$$layer" "$$(size "$$layer")" "$$created" >"$$work/manifest.json"
manifest=$$(blob "$$work/manifest.json")
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"platform":{"architecture":"amd64","os":"linux"},"annotations":{"io.containerd.image.name":"$(IMAGE_REF)","org.opencontainers.image.ref.name":"$(lastword $(subst :, ,$(IMAGE_REF)))"}}]}' \
  "$$manifest" "$$(size "$$manifest")" >"$$work/oci/index.json"
printf '{"imageLayoutVersion":"1.0.0"}' >"$$work/oci/oci-layout"
mkdir -p "$(IMAGE_DIR)"
tarit --mode=u=rwX,go=rX -C "$$work/oci" -cf "$(IMAGE_ARCHIVE).tmp" oci-layout index.json blobs
mv "$(IMAGE_ARCHIVE).tmp" "$(IMAGE_ARCHIVE)"
echo "sha256:$$manifest" >"$(IMAGE_DIR)/fivexx-agent.digest"
echo "$(IMAGE_ARCHIVE): $(IMAGE_REF)@sha256:$$manifest ($$(stat -c %s "$(IMAGE_ARCHIVE)") bytes)"
endef
export IMAGE_SCRIPT

image:
	CARGO_TARGET_DIR=$(IMAGE_TARGET_DIR) $(CARGO) build --quiet --locked --profile $(IMAGE_PROFILE) \
	  --target x86_64-unknown-linux-musl -p tracer-user --bin fivexx-agent
	@bash -c "$$IMAGE_SCRIPT"

image-twice: image
	@first=$$(cat $(IMAGE_DIR)/fivexx-agent.digest) && rm -f $(IMAGE_ARCHIVE) && \
	  bash -c "$$IMAGE_SCRIPT" >/dev/null && second=$$(cat $(IMAGE_DIR)/fivexx-agent.digest) && \
	  if [ "$$first" = "$$second" ]; then echo "image reproducible: $$first twice"; \
	  else echo "image NOT reproducible: $$first then $$second"; exit 1; fi

dist: image

# Not root, or no runc/containerd: the test prints SKIP with the reason.
# Built first, so that the lab lock (eBPF, netns) is held only while it runs.
test-image-runtime: image
	$(CARGO) test -q --no-run -p fivexx-lab --test container_runtime
	flock /tmp/fivexx-lab.lock env FIVEXX_AGENT_IMAGE=$(IMAGE_ARCHIVE) \
	  $(CARGO) test -q -p fivexx-lab --test container_runtime -- --nocapture --test-threads=1
