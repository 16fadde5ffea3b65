#!/usr/bin/env python3
"""Time every kernel of a family, forced one by one, on the suite's cases, beside cuDNN: the data the heuristics'
table of reasons is tuned from (which configuration wins which shape).

For each case x precision mode x layout: cuDNN once (the better of cudnn.benchmark on and off), then each kernel of
the family for the pass (variant={pass: kernel}; kernels that cannot run the case are skipped with their reason),
each checked against the float64 reference first. Prints one line per row (each kernel's ms, the fastest, and the
heuristics' own pick) and writes <out>/<tag>.json.

    python benchmarks/sweep.py --shapes seed,r50_3x3_256 --dtype bf16,tf32
    python benchmarks/sweep.py --family implicit_gemm --layout nhwc --out benchmarks/results --tag sweep

Only the forward pass for now (the backward passes have one kernel each until issue 8).
"""
import argparse
import sys
from pathlib import Path

import torch.nn.functional as F

from bench import REPO_ROOT, env, report, suite, testing

DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results" / "local"
PASS = "forward"


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description="Time each kernel of a family against cuDNN (forward).")
    ap.add_argument("--family", default="implicit_gemm", help="the family whose kernels are swept")
    ap.add_argument("--shapes", default=",".join(n for n in testing.CASES if not n.startswith(("depthwise", "grouped"))),
                    help="comma list of case names (default: the dense cases)")
    ap.add_argument("--dtype", default="tf32,fp16,bf16", help="comma list of precision modes")
    ap.add_argument("--layout", default=",".join(suite.LAYOUTS), help="comma list of nchw,nhwc")
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="output directory (default benchmarks/results/local)")
    ap.add_argument("--tag", default="sweep", help="output file stem: <out>/<tag>.json")
    ap.add_argument("--kernels", default="", help="comma list of kernel configurations to time (default: all)")
    ap.add_argument("--quick", action="store_true", help="shorter timing")
    args = ap.parse_args(argv)
    for name, valid in (("shapes", testing.CASES), ("dtype", testing.DTYPES), ("layout", suite.LAYOUTS)):
        items = [t for t in getattr(args, name).split(",") if t]
        bad = [t for t in items if t not in valid]
        if bad or not items:
            ap.error(f"unknown {name} {bad}; valid: {', '.join(valid)}")
        setattr(args, name, items)
    return args


def sweep_row(ext, kernels, name, mode, layout, seed, target_s):
    """cuDNN (timed once) and every kernel (checked, then timed) on one case x mode x layout."""
    case = testing.CASES[name]
    x, w, grad_out = suite.make_case_inputs(case, mode, layout, seed)

    def cudnn(a, b):
        return F.conv2d(a, b, None, **case.conv_args)

    result = {"case": name, "dtype": mode, "layout": layout, "pass": PASS, "auto": auto_kernel(ext, x, w, case),
              "kernels": {}}
    with testing.precision(mode):
        timing = suite.new_row(name, case, mode, layout, PASS)
        suite.time_cudnn(timing, cudnn, x, w, grad_out, PASS, target_s)
        result["cudnn_ms"] = timing["cudnn_ms"]
        for kernel in kernels:
            def ours(a, b, kernel=kernel):
                return ext.conv2d(a, b, None, **case.conv_args, variant={PASS: kernel})

            row = suite.new_row(name, case, mode, layout, PASS, tol=testing.TOLERANCE[mode], status="unchecked")
            suite.check(row, ours, cudnn, x, w, grad_out, PASS, case.conv_args)
            if row["status"] == "PASS":
                suite.time_ours(row, ours, x, w, grad_out, PASS, target_s)
            result["kernels"][kernel] = {k: row[k] for k in ("status", "rel_err", "ours_ms")}
    timed = {k: r["ours_ms"] for k, r in result["kernels"].items() if r["ours_ms"] and not suite.failed(r)}
    result["best"] = min(timed, key=timed.get) if timed else None
    result["best_speedup"] = result["cudnn_ms"] / timed[result["best"]] if timed and result["cudnn_ms"] else None
    return result


def auto_kernel(ext, x, w, case):
    """The heuristics' forward kernel for this case ('?' and the error if explain fails)."""
    try:
        first = ext.explain(x, w, None, **case.conv_args).splitlines()[0]
        return first.split(": ", 1)[1].split(" ", 1)[0]
    except Exception as e:  # reported in the table, not fatal
        return "? " + env.short_exc(e)


def line(result, kernels):
    cells = []
    for k in kernels:
        r = result["kernels"][k]
        ms = f"{r['ours_ms']:.3f}" if r["ours_ms"] and not suite.failed(r) else r["status"].split(":")[0]
        cells.append(f"{k.split(':')[-1]} {ms}")
    best = result["best"] or "-"
    ratio = f"{result['best_speedup']:.2f}x" if result["best_speedup"] else "-"
    flag = "" if result["auto"] == best else f"  (auto picks {result['auto']})"
    cudnn = f"{result['cudnn_ms']:.3f}" if result["cudnn_ms"] else "-"
    return (f"{result['case']:15s} {result['dtype']:5s} {result['layout']} cuDNN {cudnn} | " + " | ".join(cells)
            + f" | best {best.split(':')[-1]} {ratio}{flag}")


def main(argv=None):
    args = parse_args(argv)
    ext, why_not = env.cuda_and_extension()
    if ext is None:
        print(f"error: {why_not}", file=sys.stderr, flush=True)
        return 2
    kernels = [k for k in ext.kernels()[PASS] if k.split(":")[0] == args.family]
    if args.kernels:
        wanted = set(args.kernels.split(","))
        kernels = [k for k in kernels if k.split(":")[-1] in wanted]
    if not kernels:
        print(f"error: no {PASS} kernels of family {args.family!r} in this build", file=sys.stderr)
        return 2
    target_s = suite.QUICK_TARGET_S if args.quick else suite.TARGET_S
    meta = env.collect_meta(ext, family=args.family, kernels=kernels, shapes=args.shapes, dtypes=args.dtype,
                            layouts=args.layout, passes=[PASS], target_s=target_s)
    print(report.header_line(meta), flush=True)
    results = []
    for name in args.shapes:
        for mode in args.dtype:
            for layout in args.layout:
                results.append(sweep_row(ext, kernels, name, mode, layout, len(results), target_s))
                print(line(results[-1], kernels), flush=True)
                report.write_json(Path(args.out) / f"{args.tag}.json", meta, results)
                suite.free_memory()
    misses = [r for r in results if r["best"] and r["auto"] != r["best"]]
    print(f"{len(results)} rows; the heuristics pick the fastest kernel in {len(results) - len(misses)}")
    return 1 if any(suite.failed(k) for r in results for k in r["kernels"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
