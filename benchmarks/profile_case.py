#!/usr/bin/env python3
"""Run one suite case's pass a few times under a profiler: a development tool, nothing checked or written.

    ncu --section SpeedOfLight -k regex:conv_kernel python benchmarks/profile_case.py depthwise_3x3 fp32 nchw forward [kernel]
    python benchmarks/profile_case.py --trace seed bf16 nchw backward    # per-kernel GPU times (torch.profiler)

pass: forward, backward (both backward passes), backward_data or backward_weight; kernel (optional): force that
registry name for the pass.
"""
import sys, torch
import conv2d_ext
from conv2d_ext.testing import CASES, case_of, make_inputs, precision

args = sys.argv[1:]
trace = args[0] == "--trace"
if trace:
    args = args[1:]
name, mode, layout, pass_ = args[:4]
kernel = args[4] if len(args) > 4 else None
c = case_of(name)


def run(x, w, gy, leaves, variant):
    y = conv2d_ext.conv2d(x, w, variant=variant, **c.conv_args)
    if leaves:
        torch.autograd.grad(y, leaves, gy)


with precision(mode) as dtype:
    x, w, _ = make_inputs(c.N, c.C, c.H, c.W, c.K, c.R, c.S, c.groups, dtype, channels_last=layout == "nhwc", bias=False)
    variant = {pass_: kernel} if kernel else "auto"
    leaves = {"forward": [], "backward": [x, w], "backward_data": [x], "backward_weight": [w]}[pass_]
    for leaf in leaves:
        leaf.requires_grad_(True)
    gy = None
    if leaves:
        with torch.no_grad():
            gy = torch.randn_like(conv2d_ext.conv2d(x, w, **c.conv_args))
    for _ in range(3):
        run(x, w, gy, leaves, variant)
    torch.cuda.synchronize()
    if trace:
        from torch.profiler import profile, ProfilerActivity
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            for _ in range(5):
                run(x, w, gy, leaves, variant)
            torch.cuda.synchronize()
        print(f"{name} {mode} {layout} {pass_}: GPU time per call (5 calls)")
        for e in sorted(prof.key_averages(), key=lambda e: -e.device_time_total):
            if e.device_time_total > 0:
                print(f"  {e.device_time_total / 5 / 1000:8.3f} ms  x{e.count / 5:g}  {e.key[:110]}")
