#!/usr/bin/env python3
"""Compare conv2d_ext against cuDNN (torch.nn.functional.conv2d): correctness and speed.

For each case x dtype x layout x pass:
  1. build fresh random inputs on the GPU (torch.randn, no bias),
  2. check ours against a float64 F.conv2d reference (norm-wise relative error),
  3. time ours, then cuDNN (best of cudnn.benchmark=True / False),
  4. report ms, speedup (cuDNN ms / ours ms, >1 = ours faster), TFLOP/s and GB/s.

Results go to <out>/<tag>.json, .csv and .md; a compact table is printed to stdout.
The exit status is non-zero if any check FAILed or ours raised an unexpected error.

    python benchmarks/compare.py                      # full default suite
    python benchmarks/compare.py --quick              # smoke test (< ~30 s)
    python benchmarks/compare.py --dtype fp16 --pass forward --shapes r50_1x1,seed
    python benchmarks/compare.py --variant forward=direct,backward_data=direct,backward_weight=direct
    python benchmarks/compare.py --merge OUT_DIR TAG a.json b.json   # join runs split across GPU calls

Note: conv2d_ext and CUDA are only touched after argument parsing, so --help works
without the extension being built.
"""

import argparse
import csv
import datetime
import gc
import json
import math
import os
import shlex
import statistics
import subprocess
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

REPO_ROOT = Path(__file__).resolve().parent.parent

# name: (N, C, H, W, K, R, S, stride, padding, dilation, groups)
CASES = {
    "seed":           (8,   64, 512, 1024, 128, 3, 3, 1, 0, 1, 1),
    "r50_conv1":      (32,   3, 224,  224,  64, 7, 7, 2, 3, 1, 1),
    "r50_3x3_64":     (32,  64,  56,   56,  64, 3, 3, 1, 1, 1, 1),
    "r50_1x1":        (32, 256,  56,   56,  64, 1, 1, 1, 0, 1, 1),
    "r50_3x3_128_s2": (32, 128,  56,   56, 128, 3, 3, 2, 1, 1, 1),
    "r50_3x3_256":    (32, 256,  14,   14, 256, 3, 3, 1, 1, 1, 1),
    "r50_3x3_512":    (32, 512,   7,    7, 512, 3, 3, 1, 1, 1, 1),
    "unet_3x3":       (4,  128, 256,  256, 128, 3, 3, 1, 1, 1, 1),
    "dilated":        (8,  256,  64,   64, 256, 3, 3, 1, 2, 2, 1),
    "depthwise_3x3":  (32, 144,  56,   56, 144, 3, 3, 1, 1, 1, 144),
    "depthwise_7x7":  (32,  96,  56,   56,  96, 7, 7, 1, 3, 1, 96),
    "grouped_g32":    (32, 256,  28,   28, 256, 3, 3, 1, 1, 1, 32),
    "batch1_3x3":     (1,  256,  64,   64, 256, 3, 3, 1, 1, 1, 1),
}
CASE_FIELDS = ("N", "C", "H", "W", "K", "R", "S", "stride", "padding", "dilation", "groups")
QUICK_CASES = ("r50_3x3_256", "depthwise_3x3", "batch1_3x3")

DTYPES = {"fp32": torch.float32, "tf32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
# Tolerance on the norm-wise relative error ||ours - ref|| / ||ref|| (ref in float64).
TOLERANCES = {"fp32": 1e-5, "tf32": 2e-3, "fp16": 1e-2, "bf16": 2e-2}
LAYOUTS = ("nchw", "nhwc")
PASSES = ("forward", "backward")

TARGET_S, QUICK_TARGET_S = 0.2, 0.05   # approximate measuring time per timed function
MIN_REPS, MAX_REPS = 3, 200


# --------------------------------------------------------------------------- helpers

def case_params(name):
    return dict(zip(CASE_FIELDS, CASES[name]))


def out_hw(p):
    P = (p["H"] + 2 * p["padding"] - p["dilation"] * (p["R"] - 1) - 1) // p["stride"] + 1
    Q = (p["W"] + 2 * p["padding"] - p["dilation"] * (p["S"] - 1) - 1) // p["stride"] + 1
    return P, Q


def flops_and_bytes(p, pass_name, elem_size):
    """Useful FLOPs and minimum memory traffic (bytes) of one pass."""
    P, Q = out_hw(p)
    cg = p["C"] // p["groups"]
    n_in = p["N"] * p["C"] * p["H"] * p["W"]
    n_w = p["K"] * cg * p["R"] * p["S"]
    n_out = p["N"] * p["K"] * P * Q
    fwd_flops = 2 * p["N"] * p["K"] * P * Q * cg * p["R"] * p["S"]
    if pass_name == "forward":
        return fwd_flops, (n_in + n_w + n_out) * elem_size
    # backward = dgrad (grad_out + weight + grad_in) + wgrad (grad_out + input + grad_weight)
    return 2 * fwd_flops, ((n_out + n_w + n_in) + (n_out + n_in + n_w)) * elem_size


def set_precision_flags(dtype_name):
    tf32 = dtype_name == "tf32"
    torch.backends.cudnn.allow_tf32 = tf32          # read by conv2d_ext too
    torch.backends.cuda.matmul.allow_tf32 = tf32


def memory_format(layout):
    return torch.channels_last if layout == "nhwc" else torch.contiguous_format


def free_memory():
    gc.collect()
    torch.cuda.empty_cache()


def short_exc(e, limit=300):
    msg = str(e).strip().splitlines()
    msg = msg[0] if msg else ""
    return f"{type(e).__name__}: {msg}"[:limit]


def parse_variant(s):
    """'auto' | 'direct' | ... | 'forward=a,backward_data=b,backward_weight=c' | JSON dict."""
    s = s.strip()
    if s.startswith("{"):
        return json.loads(s)
    if "=" in s:
        d = {}
        for item in s.split(","):
            k, _, v = item.partition("=")
            d[k.strip()] = v.strip()
        return d
    return s


def variant_str(v):
    return v if isinstance(v, str) else ",".join(f"{k}={x}" for k, x in v.items())


# --------------------------------------------------------------------------- core

def make_inputs(p, dtype, layout, device="cuda"):
    """Fresh random input, weight and grad_out (shape of the output), in the given layout."""
    mf = memory_format(layout)
    P, Q = out_hw(p)
    x = torch.randn(p["N"], p["C"], p["H"], p["W"], device=device, dtype=dtype)
    w = torch.randn(p["K"], p["C"] // p["groups"], p["R"], p["S"], device=device, dtype=dtype)
    g = torch.randn(p["N"], p["K"], P, Q, device=device, dtype=dtype)
    return x.contiguous(memory_format=mf), w.contiguous(memory_format=mf), g.contiguous(memory_format=mf)


def rel_err(a, ref):
    """Norm-wise relative error in float64; inf on shape mismatch, NaN propagates."""
    if tuple(a.shape) != tuple(ref.shape):
        return float("inf")
    d = a.detach().double()
    d.sub_(ref)
    return (torch.linalg.vector_norm(d) / torch.linalg.vector_norm(ref)).item()


def reference(conv_ref, x, w, grad_out, pass_name):
    """float64 reference: the output (forward) or (grad_input, grad_weight) (backward)."""
    if pass_name == "forward":
        return (conv_ref(x.double(), w.double()),)
    xr = x.detach().double().requires_grad_(True)
    wr = w.detach().double().requires_grad_(True)
    out = conv_ref(xr, wr)
    return torch.autograd.grad(out, (xr, wr), grad_out.double())


def check(results, refs, pass_name):
    """Relative errors of results against refs -> dict of named errors."""
    names = ("out",) if pass_name == "forward" else ("grad_input", "grad_weight")
    return {n: rel_err(r, ref) for n, r, ref in zip(names, results, refs)}


def time_fn(fn, target_s, min_reps=MIN_REPS, max_reps=MAX_REPS):
    """Median time of fn() in ms, measured with CUDA events.

    One warm-up call (also triggers cudnn.benchmark autotuning), a short estimate,
    then enough reps for ~target_s of measurement. Each rep has its own event pair;
    no sync between reps, so CPU launch overhead is hidden unless it exceeds GPU time.
    NOTE: small cases may run (partly) out of L2 since the same tensors are reused;
    we do not flush L2 between reps for now.
    """
    fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    fn()
    end.record()
    end.synchronize()
    est = start.elapsed_time(end)
    if est < 1.0:  # short: average a few calls for a better estimate
        start.record()
        for _ in range(5):
            fn()
        end.record()
        end.synchronize()
        est = start.elapsed_time(end) / 5
    reps = int(min(max_reps, max(min_reps, target_s * 1e3 / max(est, 1e-3))))
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    for s, e in zip(starts, ends):
        s.record()
        fn()
        e.record()
    torch.cuda.synchronize()
    times = [s.elapsed_time(e) for s, e in zip(starts, ends)]
    return {"ms": statistics.median(times), "min_ms": min(times), "reps": reps}


def make_callable(conv, x, w, grad_out, pass_name):
    """The function to time. For backward, the forward runs once here, outside the timed region."""
    if pass_name == "forward":
        xf, wf = x.detach(), w.detach()
        return lambda: conv(xf, wf), None
    xg = x.detach().requires_grad_(True)
    wg = w.detach().requires_grad_(True)
    out = conv(xg, wg)
    return (lambda: torch.autograd.grad(out, (xg, wg), grad_out, retain_graph=True)), out


def run_case(ext, name, p, dtype_name, layout, pass_name, x, w, grad_out, explain, args):
    """One row: check ours (and cuDNN, for information), time ours, time cuDNN. Never raises."""
    P, Q = out_hw(p)
    elem = torch.tensor([], dtype=DTYPES[dtype_name]).element_size()
    flops, nbytes = flops_and_bytes(p, pass_name, elem)
    conv_args = (None, p["stride"], p["padding"], p["dilation"], p["groups"])
    row = {"case": name, **p, "P": P, "Q": Q, "dtype": dtype_name, "layout": layout, "pass": pass_name,
           "variant": variant_str(args.variant), "bias": False, "flops": flops, "bytes": nbytes,
           "tol": TOLERANCES[dtype_name], "status": "unchecked", "rel_err": None,
           "rel_err_out": None, "rel_err_grad_input": None, "rel_err_grad_weight": None, "note": None,
           "ours_ms": None, "ours_min_ms": None, "ours_reps": None,
           "cudnn_ms": None, "cudnn_setting": None, "cudnn_ms_benchmark": None, "cudnn_ms_heuristic": None,
           "speedup": None, "ours_tflops": None, "cudnn_tflops": None, "ours_gbs": None, "cudnn_gbs": None,
           "cudnn_rel_err": None, "ours_out_channels_last": None, "cudnn_error": None, "explain": explain}
    target = QUICK_TARGET_S if args.quick else TARGET_S

    def conv_ours(a, b):
        return ext.conv2d(a, b, *conv_args, variant=args.variant)

    def conv_ref(a, b):
        return F.conv2d(a, b, *conv_args)

    set_precision_flags(dtype_name)
    torch.backends.cudnn.benchmark = False   # no autotuning for the check runs

    # ---- 1. correctness: ours (and, for information, cuDNN) vs the float64 reference
    ours_ok = True
    if not args.no_check:
        refs = results = out = o = fn = None
        try:
            refs = reference(conv_ref, x, w, grad_out, pass_name)
            fn, out = make_callable(conv_ours, x, w, grad_out, pass_name)
            results = fn() if pass_name == "backward" else (fn(),)
            o = results[0] if pass_name == "forward" else out
            row["ours_out_channels_last"] = bool(o.is_contiguous(memory_format=torch.channels_last)
                                                 and not o.is_contiguous())
            errs = check(results, refs, pass_name)
            torch.cuda.synchronize()
            for k, v in errs.items():
                row[f"rel_err_{k}"] = v
            row["rel_err"] = max(errs.values(), key=lambda v: math.inf if math.isnan(v) else v)
            ok = all(v <= row["tol"] for v in errs.values())  # NaN compares False -> fail
            if o.dtype != x.dtype:
                ok = False
                row["note"] = f"output dtype {o.dtype} != input dtype {x.dtype}"
            row["status"] = "PASS" if ok else "FAIL"
        except ValueError as e:
            row["status"] = "n/a: " + str(e).strip().replace("\n", " ")[:300]
            ours_ok = False
        except Exception as e:  # OOM, CUDA errors, bugs: record and continue
            row["status"] = "error: " + short_exc(e)
            ours_ok = False
        results = out = o = fn = None
        if refs is not None:
            try:
                cfn, cout = make_callable(conv_ref, x, w, grad_out, pass_name)
                res = cfn() if pass_name == "backward" else (cfn(),)
                row["cudnn_rel_err"] = max(check(res, refs, pass_name).values())
            except Exception as e:
                row["cudnn_error"] = "check: " + short_exc(e)
            refs = res = cfn = cout = None
        free_memory()

    # ---- 2. time ours
    if ours_ok:
        fn = out = None
        try:
            fn, out = make_callable(conv_ours, x, w, grad_out, pass_name)
            t = time_fn(fn, target)
            row.update(ours_ms=t["ms"], ours_min_ms=t["min_ms"], ours_reps=t["reps"])
        except ValueError as e:
            row["status"] = "n/a: " + str(e).strip().replace("\n", " ")[:300]
        except Exception as e:
            row["status"] = "error: " + short_exc(e)
        fn = out = None
        free_memory()

    # ---- 3. time cuDNN: best of cudnn.benchmark = True / False
    cfn = cout = None
    try:
        for bench in (True, False):
            torch.backends.cudnn.benchmark = bench   # set before the warm-up run in time_fn
            cfn, cout = make_callable(conv_ref, x, w, grad_out, pass_name)
            t = time_fn(cfn, target)
            row["cudnn_ms_benchmark" if bench else "cudnn_ms_heuristic"] = t["ms"]
            cfn = cout = None
        best_bench = row["cudnn_ms_benchmark"] <= row["cudnn_ms_heuristic"]
        row["cudnn_ms"] = min(row["cudnn_ms_benchmark"], row["cudnn_ms_heuristic"])
        row["cudnn_setting"] = "benchmark" if best_bench else "heuristic"
    except Exception as e:
        row["cudnn_error"] = short_exc(e)
    finally:
        torch.backends.cudnn.benchmark = False
    cfn = cout = None
    free_memory()

    # ---- derived metrics
    if row["ours_ms"]:
        row["ours_tflops"] = flops / (row["ours_ms"] * 1e-3) / 1e12
        row["ours_gbs"] = nbytes / (row["ours_ms"] * 1e-3) / 1e9
    if row["cudnn_ms"]:
        row["cudnn_tflops"] = flops / (row["cudnn_ms"] * 1e-3) / 1e12
        row["cudnn_gbs"] = nbytes / (row["cudnn_ms"] * 1e-3) / 1e9
    if row["ours_ms"] and row["cudnn_ms"]:
        row["speedup"] = row["cudnn_ms"] / row["ours_ms"]
    return row


# --------------------------------------------------------------------------- output

class Progress:
    """tqdm if available, else a one-line \\r counter on stderr."""

    def __init__(self, total):
        self.total, self.n = total, 0
        try:
            from tqdm import tqdm
            self.bar = tqdm(total=total, file=sys.stderr, dynamic_ncols=True, leave=False)
        except ImportError:
            self.bar = None

    def start(self, desc):
        if self.bar is not None:
            self.bar.set_description_str(desc)
        else:
            line = f"\r[{self.n + 1:>4}/{self.total}] {desc}"
            sys.stderr.write(line.ljust(72))
            sys.stderr.flush()

    def done(self):
        self.n += 1
        if self.bar is not None:
            self.bar.update(1)

    def write(self, msg):
        if self.bar is not None:
            self.bar.write(msg, file=sys.stderr)
        else:
            sys.stderr.write("\r" + " " * 72 + "\r" + msg + "\n")
            sys.stderr.flush()

    def close(self):
        if self.bar is not None:
            self.bar.close()
        else:
            sys.stderr.write("\r" + " " * 72 + "\r")
            sys.stderr.flush()


def fmt(v, spec, suffix=""):
    return "-" if v is None else f"{v:{spec}}{suffix}"


TABLE_COLS = ("case", "dtype", "layout", "pass", "ours ms", "cuDNN ms", "speedup",
              "ours TFLOP/s", "cuDNN TFLOP/s", "ours GB/s", "rel err", "check")


def table_cells(r, check_width=None):
    status = r["status"]
    if check_width and len(status) > check_width:
        status = status[:check_width - 3] + "..."
    return [r["case"], r["dtype"], r["layout"], r["pass"],
            fmt(r["ours_ms"], ".3f"), fmt(r["cudnn_ms"], ".3f"), fmt(r["speedup"], ".2f", "x"),
            fmt(r["ours_tflops"], ".2f"), fmt(r["cudnn_tflops"], ".2f"), fmt(r["ours_gbs"], ".0f"),
            fmt(r["rel_err"], ".1e"), status]


def text_table(rows):
    cells = [list(TABLE_COLS)] + [table_cells(r, check_width=40) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(TABLE_COLS))]
    numeric = set(range(4, 11))
    lines = []
    for j, c in enumerate(cells):
        lines.append("  ".join(c[i].rjust(widths[i]) if i in numeric else c[i].ljust(widths[i])
                               for i in range(len(c))).rstrip())
        if j == 0:
            lines.append("-" * len(lines[0]))
    return "\n".join(lines)


def markdown_table(rows):
    cols = list(TABLE_COLS) + ["cuDNN sel", "cuDNN rel err"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for r in rows:
        cells = table_cells(r) + [r["cudnn_setting"] or "-", fmt(r["cudnn_rel_err"], ".1e")]
        cells = [c.replace("|", "\\|").replace("\n", " ") for c in cells]
        if r["status"] == "FAIL":
            cells[-3] = "**FAIL**"
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summary_lines(rows):
    out = []
    by_key = {}
    for r in rows:
        if r["speedup"]:
            by_key.setdefault((r["dtype"], r["pass"]), []).append(r["speedup"])
    parts = []
    for (d, ps), v in sorted(by_key.items(), key=lambda kv: (list(DTYPES).index(kv[0][0]), PASSES.index(kv[0][1]))):
        g = math.exp(sum(math.log(x) for x in v) / len(v))
        parts.append(f"{d}/{'fwd' if ps == 'forward' else 'bwd'} {g:.2f}x (n={len(v)})")
    out.append("geomean speedup (cuDNN ms / ours ms, >1 = ours faster): " + (" | ".join(parts) or "none"))
    n = {k: 0 for k in ("PASS", "FAIL", "n/a", "error", "unchecked")}
    for r in rows:
        s = r["status"]
        key = "n/a" if s.startswith("n/a") else "error" if s.startswith("error") else s
        n[key] = n.get(key, 0) + 1
    out.append(f"checks: {n['PASS']} passed, {n['FAIL']} FAILED, {n['n/a']} n/a, "
               f"{n['error']} errors, {n['unchecked']} unchecked; {len(rows)} rows")
    bad = [r for r in rows if r["status"] == "FAIL" or r["status"].startswith("error")]
    if bad:
        names = [f"{r['case']}/{r['dtype']}/{r['layout']}/{r['pass']}" for r in bad]
        out.append("FAILED/ERROR: " + ", ".join(names[:12]) + (f", ... (+{len(names) - 12})" if len(names) > 12 else ""))
    cudnn_err = sum(1 for r in rows if r["cudnn_error"])
    if cudnn_err:
        out.append(f"cuDNN errors in {cudnn_err} rows (see JSON 'cudnn_error')")
    return out


def git_info():
    def git(*a):
        return subprocess.run(["git", *a], cwd=REPO_ROOT, capture_output=True, text=True,
                              timeout=10, check=True).stdout

    if os.environ.get("CONV2D_EXT_COMMIT"):  # a copy of the tree without .git (e.g. a remote GPU machine)
        return os.environ["CONV2D_EXT_COMMIT"], os.environ.get("CONV2D_EXT_DIRTY", "unknown") == "1"
    try:
        commit = git("rev-parse", "HEAD").strip()
    except Exception:
        return "unknown", "unknown"
    try:
        dirty = bool(git("status", "--porcelain", "--", ".", ":(exclude)benchmarks/results").strip())
    except Exception:
        dirty = "unknown"
    return commit, dirty


def _safe(f):
    try:
        return f()
    except Exception as e:
        return f"unknown ({short_exc(e, 100)})"


def collect_meta(ext, args):
    commit, dirty = git_info()
    return {
        "gpu": _safe(torch.cuda.get_device_name),
        "sm_count": _safe(lambda: torch.cuda.get_device_properties(0).multi_processor_count),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": _safe(torch.backends.cudnn.version),
        "conv2d_ext": getattr(ext, "__version__", "unknown"),
        "conv2d_ext_file": getattr(ext, "__file__", None),
        "git_commit": commit,
        "git_dirty": dirty,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": shlex.join([sys.executable] + sys.argv),
        "settings": {"shapes": args.shapes, "dtypes": args.dtype, "layouts": args.layout,
                     "passes": args.passes, "variant": args.variant, "check": not args.no_check,
                     "quick": args.quick, "bias": False, "tolerances": TOLERANCES,
                     "target_s": QUICK_TARGET_S if args.quick else TARGET_S,
                     "reps": [MIN_REPS, MAX_REPS], "error_metric": "||ours-ref||/||ref|| (float64 ref)",
                     "speedup": "cudnn_ms / ours_ms (>1 = ours faster)",
                     "cudnn_ms": "min over cudnn.benchmark True/False"},
    }


def header_line(meta):
    commit = " + ".join(c[:12] for c in meta["git_commit"].split(" + ")) + ("-dirty" if meta["git_dirty"] is True else "")
    return (f"GPU {meta['gpu']} ({meta['sm_count']} SMs) | torch {meta['torch']} | CUDA {meta['cuda']} | "
            f"cuDNN {meta['cudnn']} | conv2d_ext {meta['conv2d_ext']} | commit {commit} | {meta['date']} | "
            f"variant {variant_str(meta['settings']['variant'])} | no bias")


def write_results(out_dir, tag, meta, rows):
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {ext: out_dir / f"{tag}.{ext}" for ext in ("json", "csv", "md")}
    with open(paths["json"], "w") as f:
        json.dump({"meta": meta, "rows": rows}, f, indent=1, default=str)
    keys = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    with open(paths["csv"], "w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=keys)
        wr.writeheader()
        for r in rows:
            wr.writerow(r)
    with open(paths["md"], "w") as f:
        f.write(f"# conv2d_ext vs cuDNN ({tag})\n\n{header_line(meta)}\n\n")
        f.write(markdown_table(rows) + "\n\n")
        f.write("\n".join(f"- {s}" for s in summary_lines(rows)) + "\n")
    return paths


# --------------------------------------------------------------------------- main

def parse_list(parser, s, valid, what):
    items = [t.strip() for t in s.split(",") if t.strip()]
    bad = [t for t in items if t not in valid]
    if bad or not items:
        parser.error(f"unknown {what} {bad or s!r}; valid: {', '.join(valid)}")
    return list(dict.fromkeys(items))


def parse_args(argv=None):
    epilog = "cases (N,C,H,W,K,RxS,stride,pad,dil,groups):\n" + "\n".join(
        f"  {n:<15} {','.join(map(str, v[:5]))},{v[5]}x{v[6]},{','.join(map(str, v[7:]))}"
        for n, v in CASES.items())
    ap = argparse.ArgumentParser(description="Benchmark conv2d_ext against cuDNN (correctness + speed).",
                                 epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dtype", default="fp32,tf32,fp16,bf16", help="comma list of fp32,tf32,fp16,bf16")
    ap.add_argument("--layout", default="nchw,nhwc", help="comma list of nchw,nhwc (nhwc = channels_last)")
    ap.add_argument("--pass", dest="passes", default="forward,backward", help="comma list of forward,backward")
    ap.add_argument("--variant", default="auto",
                    help="auto|direct|tiled|implicit_gemm, or per pass: "
                         "forward=X,backward_data=Y,backward_weight=Z (or a JSON dict)")
    ap.add_argument("--shapes", default=None, help="comma list of case names (default: all; --quick: a few)")
    ap.add_argument("--quick", action="store_true", help="smoke test: fewer reps, few small cases")
    ap.add_argument("--out", default=str(REPO_ROOT / "benchmarks" / "results"), help="output directory")
    ap.add_argument("--tag", default="latest", help="output file stem: <out>/<tag>.{json,csv,md}")
    ap.add_argument("--no-check", action="store_true", help="skip the correctness check")
    args = ap.parse_args(argv)
    args.dtype = parse_list(ap, args.dtype, list(DTYPES), "dtype")
    args.layout = parse_list(ap, args.layout, LAYOUTS, "layout")
    args.passes = parse_list(ap, args.passes, PASSES, "pass")
    if args.shapes is not None:
        args.shapes = parse_list(ap, args.shapes, list(CASES), "shape")
    else:
        args.shapes = list(QUICK_CASES) if args.quick else list(CASES)
    try:
        args.variant = parse_variant(args.variant)
    except ValueError as e:
        ap.error(f"bad --variant: {e}")
    return args


def merge(paths, out_dir, tag):
    """Joins the rows of several result JSONs (runs split across calls) into <out_dir>/<tag>.*"""
    metas, rows = [], []
    for path in paths:
        with open(path) as f:
            data = json.load(f)
        metas.append(data["meta"])
        rows += data["rows"]
    meta = dict(metas[0], merged_from=[str(p_) for p_ in paths], command=[m.get("command") for m in metas],
                git_commit=" + ".join(dict.fromkeys(m.get("git_commit", "unknown") for m in metas)))
    paths_out = write_results(out_dir, tag, meta, rows)
    print(text_table(rows))
    for line in summary_lines(rows):
        print(line)
    print("wrote " + ", ".join(str(p_) for p_ in paths_out.values()))
    return 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--merge":  # compare.py --merge OUT_DIR TAG a.json b.json ...
        return merge(argv[3:], Path(argv[1]), argv[2])
    args = parse_args(argv)
    if not torch.cuda.is_available():
        print("error: CUDA is not available", file=sys.stderr, flush=True)
        return 2
    try:
        import conv2d_ext as ext
    except ImportError as e:
        print(f"error: cannot import conv2d_ext ({e}); build/install the extension first",
              file=sys.stderr, flush=True)
        return 2

    meta = collect_meta(ext, args)
    combos = [(n, d, l, ps) for n in args.shapes for d in args.dtype for l in args.layout for ps in args.passes]
    print(header_line(meta), flush=True)
    print(f"{len(combos)} rows: shapes={','.join(args.shapes)} dtype={','.join(args.dtype)} "
          f"layout={','.join(args.layout)} pass={','.join(args.passes)} "
          f"check={'off' if args.no_check else 'on'}{' quick' if args.quick else ''}", flush=True)

    rows = []
    progress = Progress(len(combos))
    for name in args.shapes:
        p = case_params(name)
        for dtype_name in args.dtype:
            for layout in args.layout:
                x = w = g = None
                set_precision_flags(dtype_name)
                try:
                    torch.manual_seed(len(rows))
                    x, w, g = make_inputs(p, DTYPES[dtype_name], layout)
                    setup_err = None
                except Exception as e:
                    setup_err = "error: inputs: " + short_exc(e)
                explain = None
                if setup_err is None:
                    try:
                        explain = ext.explain(x, w, None, p["stride"], p["padding"], p["dilation"], p["groups"],
                                              variant=args.variant)
                    except Exception as e:
                        explain = "explain failed: " + short_exc(e)
                for pass_name in args.passes:
                    progress.start(f"{name} {dtype_name} {layout} {pass_name}")
                    if setup_err is None:
                        row = run_case(ext, name, p, dtype_name, layout, pass_name, x, w, g, explain, args)
                    else:
                        row = {"case": name, **p, "dtype": dtype_name, "layout": layout, "pass": pass_name,
                               "status": setup_err, "rel_err": None, "ours_ms": None, "cudnn_ms": None,
                               "speedup": None, "ours_tflops": None, "cudnn_tflops": None, "ours_gbs": None,
                               "cudnn_setting": None, "cudnn_rel_err": None, "cudnn_error": None}
                    rows.append(row)
                    write_results(args.out, args.tag, meta, rows)  # after every row: a killed run keeps its rows
                    s = row["status"]
                    if s == "FAIL" or s.startswith("error"):
                        err = "" if row.get("rel_err") is None else f" rel_err={row['rel_err']:.2e} tol={row['tol']:.0e}"
                        progress.write(f"!! {s[:200]}: {name} {dtype_name} {layout} {pass_name}{err}")
                    progress.done()
                x = w = g = None
                free_memory()
    progress.close()

    print(text_table(rows), flush=True)
    paths = write_results(args.out, args.tag, meta, rows)
    for line in summary_lines(rows):
        print(line, flush=True)
    print("wrote " + ", ".join(str(p_) for p_ in paths.values()), flush=True)
    failed = any(r["status"] == "FAIL" or r["status"].startswith("error") for r in rows)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
