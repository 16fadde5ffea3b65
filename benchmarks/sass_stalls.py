#!/usr/bin/env python3
"""Summaries of ncu's per-SASS-instruction page (benchmarks/ncu_cases.sh SOURCE=DIR writes DIR/<case>.sass.csv.gz): a
development tool, on any machine (no GPU, no ncu needed).

    python benchmarks/sass_stalls.py r50_3x3_512_tf32_nchw_forward.sass.csv.gz [more.csv.gz ...] [--top N]

For each file: the warp-stall samples in all and by reason, the N lines with the most samples (index, samples,
executions, instruction, top three reasons), and the share of samples after the last HGMMA (the epilogue's).
"""
import collections
import csv
import gzip
import sys


def summarize(path, top):
    rows = list(csv.reader(gzip.open(path, "rt") if path.endswith(".gz") else open(path)))
    header, data = rows[1], rows[2:]  # rows[0]: the kernel's name
    src, samples = header.index("Source"), header.index("Warp Stall Sampling (All Samples)")
    executed = header.index("Instructions Executed")
    reasons = [i for i, h in enumerate(header) if h.startswith("stall_") and "Not Issued" not in h]
    count = lambda r, i: int(r[i] or 0)
    total = sum(count(r, samples) for r in data)
    print(f"== {path}: {total} samples, {len(data)} instructions")
    by_reason = collections.Counter()
    for r in data:
        for i in reasons:
            by_reason[header[i][len("stall_"):]] += count(r, i)
    print("  reasons:", ", ".join(f"{k} {v}" for k, v in by_reason.most_common(8)))
    for k in sorted(sorted(range(len(data)), key=lambda k: -count(data[k], samples))[:top]):
        r = data[k]
        why = sorted(((count(r, i), header[i][len("stall_"):]) for i in reasons), reverse=True)[:3]
        print(f"  {k:5d} {count(r, samples):6d} ex={r[executed]:>8} {r[src].strip()[:60]:60s} {why}")
    mma = [k for k, r in enumerate(data) if "HGMMA" in r[src]]
    if mma and total:
        after = sum(count(r, samples) for r in data[mma[-1] + 1:])
        print(f"  after the last HGMMA (line {mma[-1]}): {after} samples ({after / total:.1%})")


if __name__ == "__main__":
    args = sys.argv[1:]
    top = 25
    if "--top" in args:
        i = args.index("--top")
        top = int(args[i + 1])
        del args[i:i + 2]
    for path in args:
        summarize(path, top)
