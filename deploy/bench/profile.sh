#!/usr/bin/env bash
# Where a record's instructions go (README, "Performance"): runs the mixed phase of
# `condmon bench` under callgrind (instruction counts are repeatable where the wall clock of a
# shared machine is not) and prints the instructions a record and the inclusive share of each
# part of the hot path. Release build; valgrind installed if missing; about a minute.
#   deploy/bench/profile.sh                      # 2,000 customers × 10 items, 10,000 records
#   CUSTOMERS=5000 RECORDS=20000 deploy/bench/profile.sh
#   KEEP=/tmp/cg.out deploy/bench/profile.sh     # keep the profile for callgrind_annotate
set -euo pipefail
cd "$(dirname "$0")/../.."
CUSTOMERS=${CUSTOMERS:-2000}
RECORDS=${RECORDS:-10000}
if ! command -v valgrind >/dev/null; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends valgrind
fi
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --locked --bin condmon 2>&1 | tail -1
OUT=${KEEP:-$(mktemp)}
STATE=$(mktemp -d)
trap 'rm -rf "$STATE"; [ -n "${KEEP:-}" ] || rm -f "$OUT"' EXIT
# The customers are loaded by a run of their own, outside the profiler: in one run, the toggle
# on the mixed phase also let callgrind collect the load's batches (its call counts said so),
# and the state is read back from RocksDB's files as a running instance's would be.
target/release/condmon bench --customers "$CUSTOMERS" --items 10 --records 0 \
  --state-dir "$STATE" | grep -E '^load'
valgrind --tool=callgrind --callgrind-out-file="$OUT" --collect-atstart=no \
  --toggle-collect='condmon::cli::bench::mixed_phase' \
  target/release/condmon bench --customers "$CUSTOMERS" --items 10 --records "$RECORDS" \
  --state-dir "$STATE" --reuse-state 2>/dev/null | grep -E '^mixed' || true
# The records profiled must be the mixed phase's, no more.
CALLS=$(callgrind_annotate --tree=calling "$OUT" 2>/dev/null \
  | grep -A4 '\*  ???:condmon::cli::bench::process ' \
  | grep -oP 'Operator::process \(\K[0-9,]+' | tr -d , || true)
[ "$CALLS" = "$RECORDS" ] || { echo "the profile holds ${CALLS:-no} records, not $RECORDS" >&2; exit 1; }
callgrind_annotate --inclusive=yes "$OUT" 2>/dev/null | python3 -c '
import re, sys
records = int(sys.argv[1])
parts = [
    ("decoding the input (Avro → model, validation)", "condmon::pipeline::operator::Operator::check"),
    ("reading the customer (RocksDB reads, state decoding)", "condmon::pipeline::customers::load_listed"),
    # The outermost MessagePack decoding call (the nested calls carry a suffix): in the
    # mixed phase only the state values are MessagePack.
    ("  of which the state values decoded (MessagePack)", "rmp_serde::decode::Deserializer<R,C>::any_inner"),
    ("  of which RocksDB point reads", "condmon::state::Store::get"),
    ("evaluating (conditions, risk score, plans, work)", "condmon::engine::reconcile_with"),
    ("the timers the evaluation wants", "condmon::engine::timers_for"),
    ("saving the customer into the batch", "condmon::pipeline::customers::save"),
    ("finishing the batch (encoding to find the changed records)", "condmon::state::txn::Txn::finish"),
    ("the RocksDB write batch", "condmon::state::Store::apply"),
    ("encoding the outputs (model → Avro)", "condmon::codec::SchemaCatalog::encode_output"),
]
total, found = None, {}
for line in sys.stdin:
    m = re.match(r"\s*([\d,]+) \(\s*[\d.]+%\)\s+[^:\s]*:(\S+) ", line)
    if not m:
        continue
    count, name = int(m.group(1).replace(",", "")), m.group(2)
    if name == "condmon::cli::bench::mixed_phase":
        total = count
    for _, function in parts:
        if name == function:
            found[function] = max(found.get(function, 0), count)
if not total:
    sys.exit("no mixed phase in the profile")
print(f"{total / records / 1000:.0f} k instructions a record ({records} records)")
for label, function in parts:
    share = found.get(function, 0) / total * 100
    print(f"{share:5.1f} %  {label}")
' "$RECORDS"
