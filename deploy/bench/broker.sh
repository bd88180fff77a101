#!/usr/bin/env bash
# Through the broker, side by side (README, "Performance"): starts its own Tansu, loads N item
# changes for C customers into the items topic, then measures in one run
#   (a) a plain consume → produce passthrough written with rdkafka (examples/broker_bench.rs),
#       with condmon's producer settings, over those records, and
#   (b) condmon over the same records (from ready to every record's batch committed),
# and prints both rates and their ratio; then, with condmon still running, (c) the time from an
# invoice that opens a collection plan to its action event under a steady background load of
# RATE item changes a second, as a client sees it and as condmon's own
# condmon_record_e2e_latency_seconds histogram does; and (d) a business day's timers: the file
# clock moves to TIMER_DATE (the second step of the plans (c) and the load opened) and each
# action event is timed from that instant until a client reads it.
#   deploy/bench/broker.sh                 # N=50000 C=10000 RATE=1000 LATENCY_SECONDS=30
#   BATCHING=librdkafka deploy/bench/broker.sh   # without topology/condmon.toml's
#                                                # batch.num.messages=1 (see the README)
#   CONSUMER='"fetch.wait.max.ms" = "10"' PRODUCER='"linger.ms" = "1"' PIPELINE='linger_ms = 5' \
#     deploy/bench/broker.sh   # settings for [kafka.consumer], [kafka.producer], [pipeline]
#   CONDMON_BIN=/tmp/condmon-before deploy/bench/broker.sh   # another build, for before/after
# Release build; a few minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${N:-50000}
C=${C:-10000}
RATE=${RATE:-1000}
LATENCY_SECONDS=${LATENCY_SECONDS:-30}
TIMER_DATE=${TIMER_DATE:-2026-03-11}
BATCHING=${BATCHING:-one}
deploy/install-deps.sh >/dev/null
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --locked --bin condmon --example broker_bench 2>&1 | tail -1
BIN=${CONDMON_BIN:-$PWD/target/release/condmon}
BENCH=$PWD/target/release/examples/broker_bench
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$WORK"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(free_port); HTTP=$(free_port)
tansu broker --listener-url tcp://127.0.0.1:$PORT --advertised-listener-url tcp://127.0.0.1:$PORT \
  --storage-engine memory://tansu/ > "$WORK/tansu.log" 2>&1 &
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
{
  cat <<TOML
state_dir = "$WORK/state"
http_listen = "127.0.0.1:$HTTP"
api_listen = "127.0.0.1:$HTTP"
rules_file = "$PWD/topology/rules.toml"
schemas_dir = "$PWD/schemas"
[kafka]
brokers = "127.0.0.1:$PORT"
group_id = "bench"
[topics]
partitions = 4
TOML
  printf '[kafka.producer]\n%s\n' "${PRODUCER:-}"
  if [ "$BATCHING" = one ]; then printf '"batch.num.messages" = "1"\n'; fi
  printf '[kafka.consumer]\n%s\n' "${CONSUMER:-}"
  # (d) moves the file clock ten days at once: a rehearsal, not a clock gone wrong.
  printf '[pipeline]\nmax_clock_jump_days = 366\n%s\n' "${PIPELINE:-}"
} > "$WORK/condmon.toml"
echo 2026-03-01 > "$WORK/today"
$BIN topics create --config "$WORK/condmon.toml" > /dev/null
echo "== $N item changes for $C customers, producer batching: $BATCHING"
$BENCH --config "$WORK/condmon.toml" load --count "$N" --customers "$C"
echo "== (a) passthrough"
pass=$($BENCH --config "$WORK/condmon.toml" passthrough --count "$N" --to bench.passthrough)
echo "$pass"
metric() { curl -s "http://127.0.0.1:$HTTP/metrics" | awk -v m="$1" '$1==m {print $2}'; }
echo "== (b) condmon"
RUST_LOG=warn $BIN run --config "$WORK/condmon.toml" --clock "file:$WORK/today" > "$WORK/condmon.log" 2>&1 &
CONDMON=$!
until [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$HTTP/readyz")" = 200 ]; do sleep 0.05; done
start=$(date +%s%N)
until [ "$(metric 'condmon_records_committed_total{topic="ar.items"}')" = "$N" ]; do sleep 0.05; done
end=$(date +%s%N)
out=$(curl -s "http://127.0.0.1:$HTTP/metrics" | awk '$1 ~ /^condmon_records_out_total/ {s += $2} END {print s}')
python3 - "$N" "$start" "$end" "$out" "$pass" <<'PY'
import re, sys
n, start, end, out, passthrough = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
took = (end - start) / 1e9
rate = n / took
base = float(re.search(r"\(([0-9.]+) records/s\)", passthrough).group(1))
print(f"condmon: {n} records in {took:.2f} s ({rate:.0f} records/s, {out} records produced: "
      f"{out / n:.1f} per input)")
print(f"ratio condmon / passthrough: {rate / base:.2f}")
PY
echo "records produced, by topic:"
curl -s "http://127.0.0.1:$HTTP/metrics" | awk -F'[{}"]' '$1 == "condmon_records_out_total" {print "  " $3 ":" $NF}' | sort -t: -k2 -rn
echo "== (c) input → action event under $RATE item changes/s"
scrape() { curl -s "http://127.0.0.1:$HTTP/metrics" > "$WORK/$1"; }
scrape e2e_before
$BENCH --config "$WORK/condmon.toml" latency --rate "$RATE" --customers "$C" --seconds "$LATENCY_SECONDS"
scrape e2e_after
python3 deploy/bench/quantiles.py condmon_record_e2e_latency_seconds "$WORK/e2e_before" "$WORK/e2e_after"
echo "== (d) the timers of $TIMER_DATE"
scrape timers_before
$BENCH --config "$WORK/condmon.toml" timers --clock "$WORK/today" --to "$TIMER_DATE"
scrape timers_after
grep -E '^condmon_timers_fired_total' "$WORK/timers_after" || true
python3 deploy/bench/quantiles.py condmon_timer_lateness_seconds "$WORK/timers_before" "$WORK/timers_after"
kill -TERM $CONDMON; wait $CONDMON || true
