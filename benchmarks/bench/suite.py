"""One benchmark row: a case x precision mode x layout x pass, checked against the float64 reference, then timed
for ours and for cuDNN (F.conv2d, the better of cudnn.benchmark on and off), in the same process."""
import gc
import json
import math

import torch
import torch.nn.functional as F

from . import testing
from .env import short_exc
from .timing import gpu_ms, graph_ms

LAYOUTS = ("nchw", "nhwc")  # nhwc = channels_last
PASSES = ("forward", "backward")  # backward = backward-data + backward-weight
DEFAULT_MODES = ("fp32", "tf32", "fp16", "bf16")
QUICK_CASES = ("r50_3x3_256", "depthwise_3x3", "batch1_3x3")
TARGET_S, QUICK_TARGET_S = 0.2, 0.05  # about how long each timed function is measured
TIMINGS = ("events", "graph")  # CUDA events around each call, or CUDA-graph replay (stream time, no host time)

ROW_KEYS = (
    "case", *testing.CASE_FIELDS, "P", "Q", "dtype", "layout", "pass", "variant", "bias", "flops", "bytes", "tol",
    "status", "rel_err", "rel_err_out", "rel_err_grad_input", "rel_err_grad_weight", "note",
    "ours_ms", "ours_min_ms", "ours_reps", "cudnn_ms", "cudnn_setting", "cudnn_ms_benchmark", "cudnn_ms_heuristic",
    "speedup", "ours_tflops", "cudnn_tflops", "ours_gbs", "cudnn_gbs", "cudnn_rel_err", "ours_out_channels_last",
    "cudnn_error", "explain", "timing",
)


def parse_variant(s):
    """'auto' | a family or kernel name | 'forward=a,backward_data=b,backward_weight=c' | a JSON dict."""
    s = s.strip()
    if s.startswith("{"):
        return json.loads(s)
    if "=" in s:
        return {k.strip(): v.strip() for k, _, v in (item.partition("=") for item in s.split(","))}
    return s


def variant_str(variant):
    return variant if isinstance(variant, str) else ",".join(f"{k}={v}" for k, v in variant.items())


def failed(row):
    return row["status"] == "FAIL" or row["status"].startswith("error")


def free_memory():
    gc.collect()
    torch.cuda.empty_cache()


def make_case_inputs(case, mode, layout, seed):
    """Random input, weight and grad_out (the output's shape, as PyTorch works it out) on the GPU, contiguous in
    `layout`, from `seed`; no bias. grad_out comes from another seed: with x's values, a depthwise grad_weight
    would sum squares and overflow fp16."""
    channels_last = layout == "nhwc"
    x, w, _ = testing.make_inputs(*case.sizes, case.groups, testing.DTYPES[mode], channels_last=channels_last,
                                  bias=False, seed=seed)
    grad_out = testing.random_tensor(testing.output_shape(x, w, **case.conv_args), x.dtype,
                                     channels_last=channels_last, seed=seed + 1)
    return x, w, grad_out


def flops_and_bytes(case, out_shape, pass_name, elem_size):
    """Useful FLOPs and minimum memory traffic (bytes) of one pass; `out_shape` is the output tensor's shape."""
    n_in, n_out = math.prod(case[:4]), math.prod(out_shape)
    n_w = case.K * (case.C // case.groups) * case.R * case.S
    fwd_flops = 2 * n_out * (case.C // case.groups) * case.R * case.S
    if pass_name == "forward":
        return fwd_flops, (n_in + n_w + n_out) * elem_size
    # backward = dgrad (grad_out + weight -> grad_in) + wgrad (grad_out + input -> grad_weight)
    return 2 * fwd_flops, 2 * (n_in + n_w + n_out) * elem_size


def timed_fn(conv, x, w, grad_out, pass_name):
    """(fn, output): the function to time, returning a tuple of results, and the convolution's output for backward
    (None for forward). For backward the forward runs once here, outside the timed function."""
    if pass_name == "forward":
        x, w = x.detach(), w.detach()
        return (lambda: (conv(x, w),)), None
    x, w = x.detach().requires_grad_(True), w.detach().requires_grad_(True)
    out = conv(x, w)
    return (lambda: torch.autograd.grad(out, (x, w), grad_out, retain_graph=True)), out


def status_of(e):
    """A forced variant that cannot run a case raises a ValueError (Conv2dError): 'n/a'; anything else: 'error'."""
    if isinstance(e, ValueError):
        return "n/a: " + " ".join(str(e).split())[:300]
    return "error: " + short_exc(e)


def check(row, ours, cudnn, x, w, grad_out, pass_name, conv_args):
    """Relative errors of ours (and, for information, cuDNN's) against the float64 reference; sets row["status"]."""
    backward = pass_name == "backward"
    names = ("grad_input", "grad_weight") if backward else ("out",)
    refs = None
    try:
        ref_out, ref_grads = testing.reference(x, w, None, grad_out if backward else None, **conv_args)
        refs = ref_grads if backward else (ref_out,)
        ref_out = ref_grads = None
        fn, out = timed_fn(ours, x, w, grad_out, pass_name)
        results = fn()
        out = results[0] if out is None else out
        errs = {n: testing.rel_err(r, ref) for n, r, ref in zip(names, results, refs)}
        row.update({f"rel_err_{n}": e for n, e in errs.items()}, rel_err=max(errs.values()))
        row["ours_out_channels_last"] = (out.is_contiguous(memory_format=torch.channels_last)
                                         and not out.is_contiguous())
        ok = row["rel_err"] <= row["tol"]
        if out.dtype != x.dtype:
            ok, row["note"] = False, f"output dtype {out.dtype} != input dtype {x.dtype}"
        row["status"] = "PASS" if ok else "FAIL"
    except Exception as e:  # a variant that cannot run the case, OOM, CUDA errors, bugs: record and go on
        row["status"] = status_of(e)
    fn = out = results = None
    if refs is not None:
        try:
            cudnn_results = timed_fn(cudnn, x, w, grad_out, pass_name)[0]()
            row["cudnn_rel_err"] = max(testing.rel_err(r, ref) for r, ref in zip(cudnn_results, refs))
        except Exception as e:
            row["cudnn_error"] = "check: " + short_exc(e)
    refs = cudnn_results = None
    free_memory()


def measure(conv, x, w, grad_out, pass_name, target_s, timing):
    """{"ms", "min_ms", "reps"} of one call of `conv` for `pass_name`, by `timing` (TIMINGS)."""
    if timing == "graph":
        try:
            return graph_ms(lambda: timed_fn(conv, x, w, grad_out, pass_name)[0])
        except RuntimeError as e:  # not capturable: events instead, said in the row's note
            torch.cuda.synchronize()
            t = gpu_ms(timed_fn(conv, x, w, grad_out, pass_name)[0], target_s)
            return dict(t, fallback="graph capture failed (" + short_exc(e)[:80] + "): events")
    return gpu_ms(timed_fn(conv, x, w, grad_out, pass_name)[0], target_s)


def time_ours(row, ours, x, w, grad_out, pass_name, target_s, timing="events"):
    try:
        t = measure(ours, x, w, grad_out, pass_name, target_s, timing)
        row.update(ours_ms=t["ms"], ours_min_ms=t["min_ms"], ours_reps=t["reps"])
        if "fallback" in t:
            row["note"] = "ours: " + t["fallback"]
    except Exception as e:
        row["status"] = status_of(e)
    free_memory()


def time_cudnn(row, cudnn, x, w, grad_out, pass_name, target_s, timing="events"):
    """The better of cudnn.benchmark on (autotuned in the timer's warm-up call) and off."""
    try:
        for setting, bench in (("benchmark", True), ("heuristic", False)):
            torch.backends.cudnn.benchmark = bench
            row[f"cudnn_ms_{setting}"] = measure(cudnn, x, w, grad_out, pass_name, target_s, timing)["ms"]
        row["cudnn_setting"] = min(("benchmark", "heuristic"), key=lambda s: row[f"cudnn_ms_{s}"])
        row["cudnn_ms"] = row[f"cudnn_ms_{row['cudnn_setting']}"]
    except Exception as e:
        row["cudnn_error"] = short_exc(e)
    finally:
        torch.backends.cudnn.benchmark = False
    free_memory()


def new_row(name, case, mode, layout, pass_name, **fields):
    return dict(dict.fromkeys(ROW_KEYS), case=name, **case._asdict(), dtype=mode, layout=layout, **{"pass": pass_name},
                **fields)


def run_row(ext, name, case, mode, layout, pass_name, inputs, *, variant, check_results, target_s, explain=None,
            timing="events"):
    """One result row (a dict) for `inputs` = (x, w, grad_out), timed by `timing` (TIMINGS). Never raises: errors
    go to the row's status."""
    x, w, grad_out = inputs
    flops, nbytes = flops_and_bytes(case, grad_out.shape, pass_name, x.element_size())
    row = new_row(name, case, mode, layout, pass_name, P=grad_out.shape[2], Q=grad_out.shape[3],
                  variant=variant_str(variant), bias=False, flops=flops, bytes=nbytes, tol=testing.TOLERANCE[mode],
                  status="unchecked", explain=explain, timing=timing)

    def ours(a, b):
        return ext.conv2d(a, b, None, **case.conv_args, variant=variant)

    def cudnn(a, b):
        return F.conv2d(a, b, None, **case.conv_args)

    torch.backends.cudnn.benchmark = False  # no autotuning for the check
    with testing.precision(mode):
        if check_results:
            check(row, ours, cudnn, x, w, grad_out, pass_name, case.conv_args)
        if not row["status"].startswith(("n/a", "error")):
            time_ours(row, ours, x, w, grad_out, pass_name, target_s, timing)
        time_cudnn(row, cudnn, x, w, grad_out, pass_name, target_s, timing)

    for who in ("ours", "cudnn"):
        if row[f"{who}_ms"]:
            row[f"{who}_tflops"] = flops / (row[f"{who}_ms"] * 1e-3) / 1e12
            row[f"{who}_gbs"] = nbytes / (row[f"{who}_ms"] * 1e-3) / 1e9
    if row["ours_ms"] and row["cudnn_ms"]:
        row["speedup"] = row["cudnn_ms"] / row["ours_ms"]
    return row
