#!/usr/bin/env bash
# Where the main thread's time goes at scale (README, "Performance"): callgrind counts
# instructions over a small state that fits in every cache; this samples the CPU time of the
# default bench's mixed phase (100,000 customers, their state larger than the block cache)
# with `perf` and groups the operator thread's samples: RocksDB (its block cache, memtables,
# decompression and checksums), state (de)serialisation, the allocator, copies, the engine.
# Release build; perf installed if missing; about two minutes.
#   deploy/bench/wall.sh
#   CUSTOMERS=20000 RECORDS=100000 deploy/bench/wall.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
CUSTOMERS=${CUSTOMERS:-100000}
RECORDS=${RECORDS:-200000}
if ! command -v perf >/dev/null; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends linux-perf
fi
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --locked --bin condmon 2>&1 | tail -1
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
# Loaded by a run of its own; the sampled run reopens the state and starts after the opening.
target/release/condmon bench --customers "$CUSTOMERS" --records 0 --state-dir "$WORK/state" \
  | grep -E '^load'
perf record -q -D 1000 -e cpu-clock -F 999 -o "$WORK/perf.data" \
  target/release/condmon bench --customers "$CUSTOMERS" --records "$RECORDS" \
  --state-dir "$WORK/state" --reuse-state 2>/dev/null | grep -E '^mixed'
perf report -i "$WORK/perf.data" --no-children --comm condmon --percentage relative \
  --sort dso,symbol 2>/dev/null | python3 -c '
import re, sys
groups = [
    ("RocksDB (block cache, memtables, index and bloom, LZ4, checksums)", r"rocksdb|LZ4|crc32|XXH"),
    ("state and record (de)serialisation (MessagePack, Avro, serde)", r"rmp|serde|compact::|avro|from_utf8|visit_"),
    ("the allocator", r"\bmi_|malloc|_int_free|\bfree\b|malloc_consolidate"),
    ("memory copies and comparisons", r"memmove|memcmp|memcpy|memset"),
    ("B-tree maps", r"btree"),
    ("the engine, its own frames (conditions, plans, risk, timers)", r"condmon::engine|condmon::timer|condmon::rules"),
    ("the kernel (page faults, file reads)", r"\[k\]"),
]
shares, other = {label: 0.0 for label, _ in groups}, 0.0
for line in sys.stdin:
    m = re.match(r"\s*([\d.]+)%", line)
    if not m:
        continue
    share = float(m.group(1))
    for label, pattern in groups:
        if re.search(pattern, line):
            shares[label] += share
            break
    else:
        other += share
print("the operator thread'"'"'s CPU time:")
for label, share in shares.items():
    print(f"{share:5.1f} %  {label}")
print(f"{other:5.1f} %  the rest (condmon'"'"'s own code: the batch cache, the operator, keys)")
'
