#!/usr/bin/env python3
"""GPU time per call of forced kernels, beside cuDNN, from a profiler trace: a development tool for kernels whose
calls are shorter than the host time of a Python call (torch.autograd.grad alone costs more than a 30 us backward-data
kernel), nothing checked or written.

    python benchmarks/kernel_times.py depthwise_3x3,depthwise_7x7 fp32,bf16 nhwc forward,backward_data \
        tiled:depthwise_vec,tiled:depthwise [ENV=v1,v2 ...]
    python benchmarks/kernel_times.py depthwise_3x3 bf16 nchw,nhwc forward,backward auto

passes: forward, backward_data, backward_weight, backward (both backward passes); kernels: registry names forced for the pass, or
"auto" (the heuristics' choice; "backward" takes only auto).
KT_GRAPH=1 times each call by CUDA events around CUDA-graph replays instead (stream time: kernels that overlap
count once, gaps between kernels count, no host time). KT_HOST=1 gives the host's time per call instead: the wall
clock of 100 calls before the sync that ends them (the launch queue does not fill), what CUDA-event timing of a call
measures where it passes the GPU time.
Each ENV=values argument re-times every kernel with that environment variable set to each value in turn (for a
kernel that reads a tuning variable at launch). cuDNN is the better of cudnn.benchmark on and off.
"""
import itertools
import os
import sys

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

import conv2d_ext
from bench.timing import graph_ms, host_ms
from conv2d_ext.testing import CASES, case_of, make_inputs, precision

ITERS = 50


def gpu_ms(fn):
    """Mean GPU time (sum of the kernels' device time) of one fn() call, over ITERS calls after warm-up."""
    for _ in range(5):
        fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(ITERS):
            fn()
        torch.cuda.synchronize()
    total_us = sum(e.self_device_time_total for e in prof.key_averages())
    return total_us / ITERS / 1000.0


def timed(make_fn):
    """ms per call: the profiler's kernel-time sum, with KT_GRAPH=1 the CUDA-graph stream time, with KT_HOST=1 the
    host's time."""
    if os.environ.get("KT_HOST") == "1":
        return host_ms(make_fn())
    if os.environ.get("KT_GRAPH") == "1":
        try:
            return graph_ms(make_fn)["ms"]
        except RuntimeError as e:  # not capturable: the kernel-time sum instead
            print(f"graph capture failed ({str(e)[:80]}); kernel-time sum instead", file=sys.stderr)
            torch.cuda.synchronize()
    return gpu_ms(make_fn())


def callers(case, x, w, gy, pass_, variant):
    """The call to time: forward, backward_data (grad_input only), backward_weight (grad_weight only) or backward
    (both); variant "cudnn" (F.conv2d), "auto" (the heuristics' choice) or a kernel name forced for that pass."""
    args = case.conv_args

    def conv(a, b):
        if variant == "cudnn":
            return F.conv2d(a, b, None, **args)
        forced = variant if variant == "auto" else {pass_: variant}
        return conv2d_ext.conv2d(a, b, variant=forced, **args)

    if pass_ == "forward":
        return lambda: conv(x, w)
    xg = x.detach().requires_grad_(pass_ != "backward_weight")
    wg = w.detach().requires_grad_(pass_ != "backward_data")
    leaves = {"backward": (xg, wg), "backward_data": (xg,), "backward_weight": (wg,)}[pass_]
    y = conv(xg, wg)
    return lambda: torch.autograd.grad(y, leaves, gy, retain_graph=True)


def main(argv):
    shapes, modes, layouts, passes, kernels = (a.split(",") for a in argv[:5])
    envs = [(a.split("=", 1)[0], a.split("=", 1)[1].split(",")) for a in argv[5:]]
    settings = [dict(zip([k for k, _ in envs], vals)) for vals in itertools.product(*[v for _, v in envs])] or [{}]
    for name, mode, layout, pass_ in itertools.product(shapes, modes, layouts, passes):
        c = case_of(name)
        with precision(mode) as dtype:
            x, w, _ = make_inputs(c.N, c.C, c.H, c.W, c.K, c.R, c.S, c.groups, dtype,
                                  channels_last=layout == "nhwc", bias=False)
            with torch.no_grad():
                gy = torch.randn_like(F.conv2d(x, w, None, **c.conv_args))
            best = []
            for bench in (False, True):
                torch.backends.cudnn.benchmark = bench
                best.append(timed(lambda: callers(c, x, w, gy, pass_, "cudnn")))
            torch.backends.cudnn.benchmark = False
            line = [f"{name} {mode} {layout} {pass_}: cudnn {min(best):.4f}"]
            for kernel in kernels:
                for setting in settings:
                    os.environ.update(setting)
                    try:
                        ms = timed(lambda: callers(c, x, w, gy, pass_, kernel))
                        tag = ",".join(f"{k}={v}" for k, v in setting.items())
                        line.append(f"{kernel}{'[' + tag + ']' if tag else ''} {ms:.4f} ({min(best) / ms:.2f}x)")
                    except conv2d_ext.Conv2dError as e:
                        line.append(f"{kernel} n/a ({str(e)[:60]})")
                    finally:
                        for k in setting:
                            os.environ.pop(k, None)
            print(" | ".join(line), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
