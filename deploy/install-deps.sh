#!/usr/bin/env bash
# Installs what a fresh Debian machine with only the Rust toolchain lacks: libclang (for the
# rocksdb crate's bindings), OpenSSL's headers and pkg-config (librdkafka's TLS and SASL SCRAM
# link the system's OpenSSL), stunnel and the openssl command (the secured-cluster test puts
# the broker behind TLS with a certificate authority it makes), promtool (Debian's `prometheus` package: the tests check the alert
# rules with it), kubernetes-validate and schemathesis (PyPI, in a virtualenv under target/:
# the tests validate the Kubernetes manifests and fuzz the HTTP API against its OpenAPI
# document with them) and the Tansu broker (for the local set-up and the tests).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"

SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
missing=()
dpkg -s libclang-dev >/dev/null 2>&1 || missing+=(libclang-dev)
dpkg -s libssl-dev >/dev/null 2>&1 || missing+=(libssl-dev)
command -v pkg-config >/dev/null || missing+=(pkg-config)
command -v openssl >/dev/null || missing+=(openssl)
command -v stunnel4 >/dev/null || command -v stunnel >/dev/null || missing+=(stunnel4)
command -v promtool >/dev/null || missing+=(prometheus)
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3 python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing ${missing[*]}"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

OPS_VENV="$ROOT/target/ops-venv"
if [ ! -x "$OPS_VENV/bin/kubernetes-validate" ] || [ ! -x "$OPS_VENV/bin/schemathesis" ]; then
  echo "== installing kubernetes-validate and schemathesis into $OPS_VENV"
  python3 -m venv "$OPS_VENV"
  "$OPS_VENV/bin/pip" install -q --disable-pip-version-check kubernetes-validate 'schemathesis>=4,<5'
fi

TANSU_VERSION=0.6.0
if ! { command -v tansu >/dev/null || [ -x "$HOME/.cargo/bin/tansu" ]; }; then
  echo "== installing tansu $TANSU_VERSION (a Kafka-protocol broker; 10-15 minutes the first time)"
  cargo install "tansu@$TANSU_VERSION" --locked --features dynostore,libsql
fi
