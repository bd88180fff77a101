#!/usr/bin/env bash
# The first README command: set up, start a local broker and condmon, feed the sample ledger
# and show the actions condmon produced. Leaves both running; stop them with deploy/local/down.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
deploy/install-deps.sh
export PATH="$HOME/.cargo/bin:$PATH"

PORT=9092
mkdir -p var
cargo build --locked --bin condmon
BIN=target/debug/condmon

if ! (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null; then
  echo "== starting tansu on 127.0.0.1:$PORT (log: var/tansu.log)"
  nohup tansu broker --listener-url tcp://127.0.0.1:$PORT --advertised-listener-url tcp://127.0.0.1:$PORT \
    --storage-engine memory://tansu/ > var/tansu.log 2>&1 &
  echo $! > var/tansu.pid
  # A new in-memory broker has none of the old records: start condmon's state afresh too.
  rm -rf var/state
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
fi

echo "== creating topics"
for attempt in 1 2 3 4 5; do
  $BIN topics create && break
  [ $attempt = 5 ] && exit 1
  sleep 1
done

if [ -f var/condmon.pid ] && kill -0 "$(cat var/condmon.pid)" 2>/dev/null; then
  kill "$(cat var/condmon.pid)"; sleep 1
fi
echo "== starting condmon (log: var/condmon.log, metrics: http://127.0.0.1:9464/metrics)"
nohup $BIN run > var/condmon.log 2>&1 &
echo $! > var/condmon.pid
for _ in $(seq 100); do
  (exec 3<>/dev/tcp/127.0.0.1/9464) 2>/dev/null && break; sleep 0.2
done

echo "== feeding the sample ledger (topology/sample/ledger.ndjson)"
$BIN feed --input topology/sample/ledger.ndjson
# A new consumer group takes a few seconds to join on a fresh broker: wait for the first actions.
for _ in $(seq 60); do
  [ -n "$($BIN tail --stream actions --idle-secs 1 2>/dev/null | head -1)" ] && break
  sleep 1
done
sleep 3

echo "== actions produced (cm.actions)"
$BIN tail --stream actions --idle-secs 3 --table
echo "== escalations (cm.escalations)"
$BIN tail --stream escalations --idle-secs 2 --table
echo "== conditions (cm.conditions)"
$BIN tail --stream conditions --idle-secs 2 --table
echo "== working actions: OSCORP's plan (topology/sample/action-plan.ndjson)"
# The sample's customer and invoices first, then the collectors' commands on the plan they open
# (topics are read side by side: a command before its action would be refused as unknown).
grep -v '"action-commands"' topology/sample/action-plan.ndjson | head -3 > var/action-plan-ledger.ndjson
grep '"action-commands"' topology/sample/action-plan.ndjson > var/action-plan-commands.ndjson
$BIN feed --input var/action-plan-ledger.ndjson
sleep 3
$BIN feed --input var/action-plan-commands.ndjson
sleep 3
echo "== command results (cm.command-results)"
$BIN tail --stream command-results --idle-secs 3 --table
echo "== notifications (cm.notifications)"
$BIN tail --stream notifications --idle-secs 2 --table | grep -E 'OSCORP|ACME' | head -12
echo "== requests to the ERP (cm.requests)"
$BIN tail --stream requests --idle-secs 2 --table | head -12
echo "== OSCORP's action history (GET /customers/SHARE/OSCORP/action-history)"
exec 4<>/dev/tcp/127.0.0.1/9465; printf 'GET /customers/SHARE/OSCORP/action-history HTTP/1.0\r\n\r\n' >&4
sed -n '/^\r*$/,$p' <&4 | tail -n +2 | python3 -c 'import json,sys; [print(a["id"], a["action_code"], a["status"], a["owner"], "due", a["due_date"], a.get("result") or "", a.get("cancel_reason") or "") for a in json.load(sys.stdin)]' || true
echo "== conversations: LUTHOR's promises, dispute and exclusion (topology/sample/conversations.ndjson)"
# The ledger (master, items, payments) first, then the conversations: everything arrives today
# and topics are read side by side, so a promise read before its payment would be judged (past
# its deadline) with nothing paid.
grep -v '"action-commands"' topology/sample/conversations.ndjson | grep -v '"stream":"conversations"' \
  > var/conversations-ledger.ndjson
grep '"stream":"conversations"' topology/sample/conversations.ndjson > var/conversations.ndjson
$BIN feed --input var/conversations-ledger.ndjson
sleep 3
$BIN feed --input var/conversations.ndjson
sleep 4
echo "== promise statuses (cm.promise-status)"
$BIN tail --stream promise-status --idle-secs 3 --table
echo "== dunning decisions (cm.dunning-decisions)"
$BIN tail --stream dunning-decisions --idle-secs 2 --table
echo "== promises by collector (GET /promises?group_by=collector)"
exec 5<>/dev/tcp/127.0.0.1/9465; printf 'GET /promises?group_by=collector HTTP/1.0\r\n\r\n' >&5
sed -n '/^\r*$/,$p' <&5 | tail -n +2; echo
echo "== dead letters (cm.dead-letter)"
$BIN tail --stream dead-letter --idle-secs 2 --table
echo "== a few metrics"
exec 3<>/dev/tcp/127.0.0.1/9464; printf 'GET /metrics HTTP/1.0\r\n\r\n' >&3
grep -E '^condmon_(records_in_total|dead_letters_total|actions|violations|customers_flagged|rules_version|timers_pending|outcomes_total)' <&3 | grep -v ' 0$' || true
echo "condmon and tansu are still running; stop them with deploy/local/down.sh"
