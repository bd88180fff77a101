#!/usr/bin/env bash
# Stops what deploy/local/up.sh started.
cd "$(dirname "$0")/../.."
for name in condmon tansu; do
  if [ -f var/$name.pid ]; then kill "$(cat var/$name.pid)" 2>/dev/null && echo "stopped $name"; rm -f var/$name.pid; fi
done
