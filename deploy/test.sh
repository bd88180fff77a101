#!/usr/bin/env bash
# The second README command: every test (unit, replay golden, real broker, real process).
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/install-deps.sh
export PATH="$HOME/.cargo/bin:$PATH"
# --no-fail-fast: one failing test binary does not hide the others.
cargo test --locked --no-fail-fast "$@"
