#!/usr/bin/env python3
"""Run one suite case's pass a few times under a profiler (ncu, nsys): a development tool, nothing checked or written.

    ncu --section SpeedOfLight -k regex:conv_kernel python benchmarks/profile_case.py depthwise_3x3 fp32 nchw forward [kernel]

pass: forward, backward_data or backward_weight; kernel (optional): force that registry name for the pass.
"""
import sys, torch, torch.nn.functional as F
import conv2d_ext
from conv2d_ext.testing import CASES, make_inputs, precision

name, mode, layout, pass_ = sys.argv[1:5]
kernel = sys.argv[5] if len(sys.argv) > 5 else None
c = CASES[name]
with precision(mode) as dtype:
    x, w, _ = make_inputs(c.N, c.C, c.H, c.W, c.K, c.R, c.S, c.groups, dtype, channels_last=layout == "nhwc", bias=False)
    variant = {pass_: kernel} if kernel else "auto"
    if pass_ != "forward":
        leaf = x if pass_ == "backward_data" else w
        leaf.requires_grad_(True)
    for _ in range(3):
        y = conv2d_ext.conv2d(x, w, variant=variant, **c.conv_args)
        if pass_ != "forward":
            torch.autograd.grad(y, leaf, torch.ones_like(y))
    torch.cuda.synchronize()
