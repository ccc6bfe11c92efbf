#!/usr/bin/env bash
set -euo pipefail
echo "make demo: not yet: the node lab (issue 3) has not landed. Try 'sudo target/release/fivexx-agent trace'."
