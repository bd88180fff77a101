#!/usr/bin/env bash
# How long an instance takes to take over a partition of N customers (default 100,000) from
# its changelogs, through a real broker: one instance fills a one-partition deployment with N
# customers (an invoice each, in collection: a plan of three actions, timers, indexes), stops;
# a second instance starts on an empty state directory and is timed until it is ready (the
# partition restored and claimed). Prints both instances' figures. Release build; a few minutes
# for 100,000 customers on 2 cores, most of it the first instance writing through Tansu.
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-100000}
deploy/install-deps.sh >/dev/null
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --locked --bin condmon 2>&1 | tail -1
BIN=${CONDMON_BIN:-$PWD/target/release/condmon}   # CONDMON_BIN=: another build, for before/after
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$WORK"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(free_port); HTTP_A=$(free_port); HTTP_B=$(free_port)
tansu broker --listener-url tcp://127.0.0.1:$PORT --advertised-listener-url tcp://127.0.0.1:$PORT \
  --storage-engine memory://tansu/ > "$WORK/tansu.log" 2>&1 &
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
config() { cat <<TOML
state_dir = "$WORK/$1"
http_listen = "127.0.0.1:$2"
api_listen = "127.0.0.1:$2"
rules_file = "$PWD/topology/rules.toml"
schemas_dir = "$PWD/schemas"
[kafka]
brokers = "127.0.0.1:$PORT"
group_id = "bench"
[kafka.producer]
"batch.num.messages" = "1"
[topics]
partitions = 1
TOML
}
config a "$HTTP_A" > "$WORK/a.toml"; config b "$HTTP_B" > "$WORK/b.toml"
echo 2026-03-01 > "$WORK/today"
$BIN topics create --config "$WORK/a.toml" > /dev/null
python3 - "$N" > "$WORK/ledger.ndjson" <<'PY'
import json, sys
for i in range(int(sys.argv[1])):
    print(json.dumps({"stream": "items", "value": {"set_id": "SHARE", "business_unit": "US001",
        "customer_id": f"C{i:07d}", "item_id": "INV-1", "item_line": 0, "item_type": "INVOICE",
        "original_amount": "2000", "open_amount": "2000", "currency": "USD",
        "accounting_date": "2025-12-16", "due_date": "2026-01-15", "entry_type": "IN",
        "disputed_amount": "0"}}))
PY
echo "== feeding $N invoices"
$BIN feed --config "$WORK/a.toml" --input "$WORK/ledger.ndjson"
metric() { curl -s "http://127.0.0.1:$1/metrics" | awk -v m="$2" '$1==m {print $2}'; }
echo "== instance a processes them"
start=$(date +%s%N)
RUST_LOG=info $BIN run --config "$WORK/a.toml" --clock "file:$WORK/today" > "$WORK/a.log" 2>&1 &
A=$!
until [ "$(metric $HTTP_A 'condmon_records_in_total{topic="ar.items"}')" = "$N" ]; do sleep 1; done
end=$(date +%s%N)
echo "instance a: $N records in $(( (end - start) / 1000000 )) ms"
kill -TERM $A; wait $A || true
echo "== instance b takes the partition over from the changelogs"
start=$(date +%s%N)
RUST_LOG=info $BIN run --config "$WORK/b.toml" --clock "file:$WORK/today" > "$WORK/b.log" 2>&1 &
B=$!
until [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$HTTP_B/readyz")" = 200 ]; do sleep 0.2; done
end=$(date +%s%N)
echo "instance b: ready (restored and claimed) $(( (end - start) / 1000000 )) ms after it started"
sed 's/\x1b\[[0-9;]*m//g' "$WORK/b.log" | grep "restored from its changelogs" | sed 's/.*changelog: //'
du -sh "$WORK/b" | awk '{print "state directory of b: " $1}'
kill -TERM $B; wait $B || true
