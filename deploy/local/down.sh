#!/usr/bin/env bash
# Stops what deploy/local/up.sh started, and waits until they are gone.
cd "$(dirname "$0")/../.."
for name in condmon tansu; do
  [ -f var/$name.pid ] || continue
  pid=$(cat var/$name.pid)
  if kill "$pid" 2>/dev/null; then
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    echo "stopped $name"
  fi
  rm -f var/$name.pid
done
