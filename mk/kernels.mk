# Kernel matrix (issue 8, matrix/README.md): fivexx-agent's capability check
# and kernel self-tests on Debian's 5.10 (bullseye, via a private apt
# config), 6.1 and 6.12 cloud kernels under qemu and on the host kernel.
# One summary line per kernel; artifacts in artifacts/kernels/.
.PHONY: kernels test-kernels test-kernels-standin test-matrix

# Fetch and cache the guest kernels (.cache/kernels/); a no-op once cached.
kernels:
	@matrix/kernels.sh >/dev/null

# The whole matrix: builds the static agent, boots each kernel, fails on any
# failed test, missing result or timeout, and when qemu is missing.
# The release build: the binary the image ships (make test builds it for
# the image first, so the matrix reuses it instead of building another).
MATRIX_PROFILE ?= release

test-kernels: kernels
	@MATRIX_PROFILE=$(MATRIX_PROFILE) matrix/run.sh

# The pipeline without the agent: every kernel boots and reports "agent
# missing", so this target always FAILS; it proves download, image, boot,
# console collection and artifacts.
test-kernels-standin: kernels
	@matrix/run.sh --agent none

# The matrix's own verdict logic (no qemu, no agent, well under a second):
# every way a kernel can fail must fail.
test-matrix:
	@cd matrix && python3 -B -m unittest -q test_result

TEST_EXTRA += test-matrix

# Part of `make test`: the agent's 9 self-tests on 5.10 (3 degraded, as
# matrix/expectations says), 6.1, 6.12 and the host. Cost: about a minute
# for the matrix, plus the static agent's release build (shared with make
# image).
TEST_EXTRA += test-kernels
