#!/usr/bin/env bash
# Installs what a fresh Debian machine with only the Rust toolchain lacks: libclang (for the
# rocksdb crate's bindings), promtool (Debian's `prometheus` package: the tests check the alert
# rules with it) and the Tansu broker (for the local set-up and the tests).
set -euo pipefail

SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
missing=()
dpkg -s libclang-dev >/dev/null 2>&1 || missing+=(libclang-dev)
command -v promtool >/dev/null || missing+=(prometheus)
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing ${missing[*]}"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

TANSU_VERSION=0.6.0
if ! { command -v tansu >/dev/null || [ -x "$HOME/.cargo/bin/tansu" ]; }; then
  echo "== installing tansu $TANSU_VERSION (a Kafka-protocol broker; 10-15 minutes the first time)"
  cargo install "tansu@$TANSU_VERSION" --locked --features dynostore,libsql
fi
