#!/usr/bin/env python3
"""Quantiles of one Prometheus histogram over a run: `quantiles.py METRIC BEFORE AFTER`, where
BEFORE and AFTER are /metrics scrapes taken around it. Prints the count and the bucket bounds
that hold the median and the 99th percentile (a histogram knows no finer)."""
import re
import sys

metric, before_path, after_path = sys.argv[1:4]
pattern = re.compile(re.escape(metric) + r'_bucket\{le="([^"]+)"\} (\S+)')


def buckets(path):
    out = {}
    for line in open(path):
        m = pattern.match(line)
        if m:
            out[float(m.group(1))] = float(m.group(2))
    return out


before, after = buckets(before_path), buckets(after_path)
counts = sorted((le, after[le] - before.get(le, 0)) for le in after)
total = counts[-1][1] if counts else 0
if total == 0:
    print(f"{metric} over the run: no observations")
    sys.exit(0)


def quantile(q):
    for le, c in counts:
        if c >= q * total:
            return le


def shown(seconds):
    if seconds == float("inf"):
        return "+Inf"
    if seconds >= 86_400:
        return f"{seconds / 86_400:.1f} days"
    if seconds >= 10:
        return f"{seconds:.0f} s"
    return f"{seconds * 1000:.0f} ms"


print(f"{metric} over the run: {total:.0f} observations, "
      f"p50 ≤ {shown(quantile(0.5))}, p99 ≤ {shown(quantile(0.99))} (bucket bounds)")
