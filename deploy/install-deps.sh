#!/usr/bin/env bash
# Installs what a fresh Debian machine with only the Rust toolchain lacks: libclang (for the
# rocksdb crate's bindings) and the Tansu broker (for the local set-up and the tests).
set -euo pipefail

if ! dpkg -s libclang-dev >/dev/null 2>&1; then
  echo "== installing libclang-dev"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq libclang-dev
fi

TANSU_VERSION=0.6.0
if ! { command -v tansu >/dev/null || [ -x "$HOME/.cargo/bin/tansu" ]; }; then
  echo "== installing tansu $TANSU_VERSION (a Kafka-protocol broker; 10-15 minutes the first time)"
  cargo install "tansu@$TANSU_VERSION" --locked --features dynostore,libsql
fi
