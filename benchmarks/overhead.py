#!/usr/bin/env python3
"""Host overhead per call of conv2d_ext.conv2d against F.conv2d, on a convolution so small (N1 C8 8x8, K8, 3x3,
padding 1, fp32 NCHW, no bias) that the kernels take a few µs and the time per call is host time.

Three calls, each for ours and for F.conv2d in the same process, taking turns:
  forward             inputs that do not require grad
  forward (grad)      inputs that require grad (the autograd graph is recorded)
  forward+backward    forward, then .sum().backward()
Each is timed as the wall clock of many calls with torch.cuda.synchronize() only at both ends, after a warm-up;
the median of several repeats is reported, with the ratio ours / F.conv2d against the target (issue 6: <= 1.5x).
Writes <out>/overhead.json (GPU, versions, commit); the default <out> is benchmarks/results/local/ (git-ignored),
`--out benchmarks/results` replaces the committed copy.

    python benchmarks/overhead.py [--iters 2000] [--repeats 7] [--out DIR]
"""
import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from bench import REPO_ROOT, env
from bench.report import write_json
from bench.timing import host_us

DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results" / "local"
TARGET_RATIO = 1.5
SHAPE = dict(N=1, C=8, H=8, W=8, K=8, R=3, S=3, padding=1)


def calls(conv):
    """{call name: fn} for one convolution function conv(x, w, bias, stride, padding)."""
    x = torch.randn(1, 8, 8, 8, device="cuda")
    w = torch.randn(8, 8, 3, 3, device="cuda")
    xg, wg = x.clone().requires_grad_(True), w.clone().requires_grad_(True)
    return {
        "forward": lambda: conv(x, w, None, 1, 1),
        "forward (grad)": lambda: conv(xg, wg, None, 1, 1),
        "forward+backward": lambda: conv(xg, wg, None, 1, 1).sum().backward(),
    }


def table(results):
    lines = [f"{'call':<18} {'ours µs':>9} {'F.conv2d µs':>12} {'ratio':>7}  target <= {TARGET_RATIO}x"]
    for r in results:
        verdict = "ok" if r["ratio"] <= TARGET_RATIO else "over"
        lines.append(f"{r['call']:<18} {r['ours_us']:>9.1f} {r['torch_us']:>12.1f} {r['ratio']:>6.2f}x  {verdict}")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iters", type=int, default=2000, help="calls per timed run (default 2000)")
    ap.add_argument("--repeats", type=int, default=7, help="timed runs per call; the median is reported (default 7)")
    ap.add_argument("--warmup", type=int, default=200, help="untimed calls first (default 200)")
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="output directory (default benchmarks/results/local)")
    args = ap.parse_args(argv)
    ext, why_not = env.cuda_and_extension()
    if ext is None:
        print(f"error: {why_not}", file=sys.stderr, flush=True)
        return 2

    torch.backends.cudnn.benchmark = False
    ours, theirs = calls(ext.conv2d), calls(F.conv2d)
    results = []
    for name in ours:
        t = host_us({"ours": ours[name], "torch": theirs[name]}, args.iters, args.repeats, args.warmup)
        results.append({"call": name, "ours_us": t["ours"]["us"], "torch_us": t["torch"]["us"],
                        "ours_min_us": t["ours"]["min_us"], "torch_min_us": t["torch"]["min_us"],
                        "ratio": t["ours"]["us"] / t["torch"]["us"]})

    meta = env.collect_meta(ext, shape=SHAPE, dtype="fp32", layout="nchw", bias=False, iters=args.iters,
                            repeats=args.repeats, warmup=args.warmup, target_ratio=TARGET_RATIO,
                            timing="wall clock per call, median of repeats, cuda.synchronize only at the ends")
    print(env.describe(meta))
    print(table(results))
    path = write_json(Path(args.out) / "overhead.json", meta, results)
    print(f"wrote {path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
