#!/usr/bin/env python3
"""One case's backward (grad_input and grad_weight) under the CUDA-event timing compare.py uses, ours and cuDNN's: the
per-rep event times (a bimodal row shows as two clusters) and a torch.profiler table of 20 calls by self CPU time (a
synchronising call, an allocation that misses the caching allocator, or a slow host step shows there). A development
tool; nothing checked or written.

    python benchmarks/host_profile.py r50_1x1 tf32 nchw
"""
import statistics
import sys

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

import conv2d_ext
from bench.timing import event_times
from conv2d_ext.testing import case_of, make_inputs, precision

REPS = 60


def main(name, mode, layout):
    c = case_of(name)
    with precision(mode) as dtype:
        x, w, _ = make_inputs(c.N, c.C, c.H, c.W, c.K, c.R, c.S, c.groups, dtype, channels_last=layout == "nhwc",
                              bias=False)
        x.requires_grad_(True)
        w.requires_grad_(True)
        outputs = {"ours": conv2d_ext.conv2d(x, w, **c.conv_args), "cudnn": F.conv2d(x, w, **c.conv_args)}
        grad_out = torch.randn_like(outputs["ours"])
        for who, y in outputs.items():
            def fn():
                return torch.autograd.grad(y, (x, w), grad_out, retain_graph=True)
            for _ in range(10):
                fn()
            torch.cuda.synchronize()
            t = event_times(fn, REPS)
            print(f"{who}: event ms median {statistics.median(t):.4f} min {min(t):.4f} max {max(t):.4f}:",
                  " ".join(f"{v:.3f}" for v in t[:30]))
            with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
                for _ in range(20):
                    fn()
                torch.cuda.synchronize()
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=14, max_name_column_width=50))


if __name__ == "__main__":
    main(*sys.argv[1:4])
