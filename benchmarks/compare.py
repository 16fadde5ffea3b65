#!/usr/bin/env python3
"""Compare conv2d_ext against cuDNN (torch.nn.functional.conv2d): correctness and speed.

For each case x precision mode x layout x pass:
  1. fresh random inputs on the GPU (conv2d_ext.testing.make_inputs, no bias),
  2. ours checked against the float64 F.conv2d reference (norm-wise relative error, conv2d_ext.testing.TOLERANCE),
  3. ours timed, then cuDNN (the better of cudnn.benchmark on and off), CUDA events, median (--timing graph: the
     stream time of CUDA-graph replays instead, for calls whose host time passes their GPU time),
  4. ms, speedup (cuDNN ms / ours ms, >1 = ours faster), TFLOP/s and GB/s reported.

Results go to <out>/<tag>.json (rewritten after every row, so a killed run keeps its rows), then .csv, .md and the
speedup plot .png (if matplotlib is installed); a compact table is printed. The default <out> is
benchmarks/results/local/ (git-ignored): pass --out benchmarks/results to replace the committed results.
The exit status is non-zero if any check FAILed or ours raised an unexpected error.

    python benchmarks/compare.py                      # full default suite
    python benchmarks/compare.py --quick              # smoke test (< ~30 s)
    python benchmarks/compare.py --dtype fp16 --pass forward --shapes r50_1x1,seed
    python benchmarks/compare.py --variant forward=direct,backward_data=direct,backward_weight=direct
    python benchmarks/compare.py --shapes depthwise_3x3,grouped_g32 --timing graph   # GPU time, no host time
    python benchmarks/compare.py --merge OUT_DIR TAG a.json b.json   # join runs split across GPU calls

Pieces live in benchmarks/bench/ (suite: one row; timing; report: tables, files, plot; env: versions, commit).
conv2d_ext and CUDA are only touched after argument parsing, so --help and --merge work without the extension.
"""
import argparse
import json
import sys
from pathlib import Path


from bench import REPO_ROOT, env, report, suite, testing

DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results" / "local"


def parse_list(parser, s, valid, what):
    items = [t.strip() for t in s.split(",") if t.strip()]
    bad = [t for t in items if t not in valid]
    if bad or not items:
        parser.error(f"unknown {what} {bad or s!r}; valid: {', '.join(valid)}")
    return list(dict.fromkeys(items))


def parse_args(argv=None):
    epilog = f"cases ({', '.join(testing.CASE_FIELDS)}):\n" + "\n".join(
        f"  {name:<15} {', '.join(map(str, case))}" for name, case in testing.CASES.items())
    ap = argparse.ArgumentParser(description="Benchmark conv2d_ext against cuDNN (correctness + speed).",
                                 epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dtype", default=",".join(suite.DEFAULT_MODES),
                    help=f"comma list of precision modes: {','.join(testing.DTYPES)} (tf32 = fp32, TF32 allowed)")
    ap.add_argument("--layout", default=",".join(suite.LAYOUTS), help="comma list of nchw,nhwc (nhwc = channels_last)")
    ap.add_argument("--pass", dest="passes", default=",".join(suite.PASSES), help="comma list of forward,backward")
    ap.add_argument("--variant", default="auto",
                    help="auto, a family or kernel name, or per pass: forward=X,backward_data=Y,backward_weight=Z "
                         "(or a JSON dict)")
    ap.add_argument("--shapes", default=None, help="comma list of case names (default: all; --quick: a few)")
    ap.add_argument("--quick", action="store_true", help="smoke test: fewer reps, a few small cases")
    ap.add_argument("--out", default=str(DEFAULT_OUT),
                    help="output directory (default benchmarks/results/local; the committed results are in "
                         "benchmarks/results)")
    ap.add_argument("--tag", default="latest", help="output file stem: <out>/<tag>.{json,csv,md,png}")
    ap.add_argument("--timing", default="events", choices=suite.TIMINGS,
                    help="events: CUDA events around each call (host time shows where it passes the GPU time); "
                         "graph: stream time of CUDA-graph replays (GPU time only, both sides alike)")
    ap.add_argument("--no-check", action="store_true", help="skip the correctness check")
    ap.add_argument("--no-plot", action="store_true", help="do not draw <tag>.png")
    ap.add_argument("--merge", nargs="+", metavar=("OUT_DIR TAG", "JSON"),
                    help="join the rows of result JSONs into OUT_DIR/TAG.*; runs nothing")
    args = ap.parse_args(argv)
    if args.merge:
        if len(args.merge) < 3:
            ap.error("--merge OUT_DIR TAG a.json [b.json ...]")
        return args
    args.dtype = parse_list(ap, args.dtype, list(testing.DTYPES), "dtype")
    args.layout = parse_list(ap, args.layout, suite.LAYOUTS, "layout")
    args.passes = parse_list(ap, args.passes, suite.PASSES, "pass")
    default_shapes = suite.QUICK_CASES if args.quick else testing.CASES
    args.shapes = parse_list(ap, args.shapes, list(testing.CASES), "shape") if args.shapes else list(default_shapes)
    try:
        args.variant = suite.parse_variant(args.variant)
    except ValueError as e:
        ap.error(f"bad --variant: {e}")
    return args


def merge(out_dir, tag, paths, plot=True):
    """Joins the rows of several result JSONs (a run split across GPU calls) into <out_dir>/<tag>.*"""
    metas, rows = [], []
    for path in paths:
        with open(path) as f:
            data = json.load(f)
        metas.append(data["meta"])
        rows += data["rows"]
    meta = dict(metas[0], merged_from=[str(p) for p in paths], command=[m.get("command") for m in metas],
                git_commit=" + ".join(dict.fromkeys(str(m.get("git_commit", "unknown")) for m in metas)))
    report.print_report(rows, report.write_results(out_dir, tag, meta, rows, plot))
    return 0


def explain(ext, x, w, case, variant):
    try:
        return ext.explain(x, w, None, **case.conv_args, variant=variant)
    except Exception as e:
        return "explain failed: " + env.short_exc(e)


def main(argv=None):
    args = parse_args(argv)
    if args.merge:
        return merge(Path(args.merge[0]), args.merge[1], args.merge[2:], not args.no_plot)
    ext, why_not = env.cuda_and_extension()
    if ext is None:
        print(f"error: {why_not}", file=sys.stderr, flush=True)
        return 2

    target_s = suite.QUICK_TARGET_S if args.quick else suite.TARGET_S
    meta = env.collect_meta(
        ext, shapes=args.shapes, dtypes=args.dtype, layouts=args.layout, passes=args.passes, variant=args.variant,
        check=not args.no_check, quick=args.quick, bias=False, target_s=target_s,
        tolerances={d: testing.TOLERANCE[d] for d in args.dtype},
        error_metric="||ours-ref||/||ref|| (float64 ref)", speedup="cudnn_ms / ours_ms (>1 = ours faster)",
        cudnn_ms="min over cudnn.benchmark True/False", timing=args.timing)
    json_path = Path(args.out) / f"{args.tag}.json"
    combos = [(n, d, l) for n in args.shapes for d in args.dtype for l in args.layout]
    print(report.header_line(meta), flush=True)
    print(f"{len(combos) * len(args.passes)} rows: shapes={','.join(args.shapes)} dtype={','.join(args.dtype)} "
          f"layout={','.join(args.layout)} pass={','.join(args.passes)} "
          f"check={'off' if args.no_check else 'on'}{' quick' if args.quick else ''}", flush=True)

    rows = []
    progress = report.Progress(len(combos) * len(args.passes))
    for name, mode, layout in combos:
        case = testing.CASES[name]
        try:
            inputs, setup_error = suite.make_case_inputs(case, mode, layout, seed=len(rows)), None
            with testing.precision(mode):  # fp32 rows: TF32 allowed or not, as the row runs
                why = explain(ext, *inputs[:2], case, args.variant)
        except Exception as e:
            inputs, setup_error = None, "error: inputs: " + env.short_exc(e)
        for pass_name in args.passes:
            progress.start(f"{name} {mode} {layout} {pass_name}")
            if setup_error:
                row = suite.new_row(name, case, mode, layout, pass_name, status=setup_error)
            else:
                row = suite.run_row(ext, name, case, mode, layout, pass_name, inputs, variant=args.variant,
                                    check_results=not args.no_check, target_s=target_s, explain=why,
                                    timing=args.timing)
            rows.append(row)
            report.write_json(json_path, meta, rows)
            if suite.failed(row):
                err = "" if row["rel_err"] is None else f" rel_err={row['rel_err']:.2e} tol={row['tol']:.0e}"
                progress.write(f"!! {row['status'][:200]}: {name} {mode} {layout} {pass_name}{err}")
            progress.done()
        inputs = None
        suite.free_memory()
    progress.close()

    report.print_report(rows, report.write_results(args.out, args.tag, meta, rows, not args.no_plot))
    return 1 if any(suite.failed(r) for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
