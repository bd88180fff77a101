#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ for SECONDS each (default 300), two at a time, and prints
# each one's executions and whether it found a crash. Needs the nightly toolchain (rustup) and
# cargo-fuzz, which it installs if missing. Crashes land in fuzz/artifacts/<target>/.
# Usage: deploy/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SECONDS_EACH="${1:-300}"; shift || true
TARGETS=("$@"); [ ${#TARGETS[@]} -gt 0 ] || TARGETS=(avro_frame replay_line rule_document command)
export PATH="$HOME/.cargo/bin:$PATH"
rustup toolchain list | grep -q nightly || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
cd "$ROOT/fuzz"
# No sanitizer: condmon's own code is safe Rust, and a panic is what these targets look for.
cargo +nightly fuzz build -s none
LOGS="$ROOT/target/fuzz-logs"; mkdir -p "$LOGS"
run() {
  local target="$1"
  cargo +nightly fuzz run -s none "$target" -- -max_total_time="$SECONDS_EACH" -rss_limit_mb=4096 \
    >"$LOGS/$target.log" 2>&1 && status="no crash" || status="CRASH (see fuzz/artifacts/$target)"
  local runs; runs=$(grep -o 'Done [0-9]* runs' "$LOGS/$target.log" | tail -1 || true)
  echo "$target: ${runs:-?} in ${SECONDS_EACH}s, $status"
}
for ((i = 0; i < ${#TARGETS[@]}; i += 2)); do
  run "${TARGETS[i]}" &
  [ $((i + 1)) -lt ${#TARGETS[@]} ] && run "${TARGETS[i + 1]}" &
  wait
done
