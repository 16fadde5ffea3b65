#!/usr/bin/env python3
"""Time each pass separately: cuDNN (F.conv2d for the forward, torch.autograd.grad of F.conv2d for one leaf for the
backward passes) beside each of our non-direct kernels of the pass, forced one at a time, plus the heuristics' pick.
The data the rules in heuristics.py are tuned from (a development tool: timings only, no correctness check, nothing
written).

    python benchmarks/backward_passes.py seed,unet_3x3 bf16,tf32 nchw,nhwc [forward,backward_data,backward_weight]
"""
import sys, torch, torch.nn.functional as F
sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
from bench.timing import gpu_ms
import conv2d_ext
from conv2d_ext.testing import CASES, make_inputs, precision, reference, rel_err

shapes = sys.argv[1].split(",")
modes = sys.argv[2].split(",")
layouts = sys.argv[3].split(",")
passes = sys.argv[4].split(",") if len(sys.argv) > 4 else ["backward_data", "backward_weight"]
kern = conv2d_ext.kernels()
torch.backends.cudnn.benchmark = True
for name in shapes:
    c = CASES[name]
    for mode in modes:
        for layout in layouts:
            with precision(mode) as dtype:
                x, w, _ = make_inputs(c.N, c.C, c.H, c.W, c.K, c.R, c.S, c.groups, dtype, channels_last=layout == "nhwc", bias=False)
                args = c.conv_args
                y = F.conv2d(x, w, **args)
                gy = torch.randn_like(y)
                for pass_ in passes:
                    # One call of the pass: cuDNN's (variant None) or ours with kernel `k` forced.
                    if pass_ == "forward":
                        def call(k=None):
                            return F.conv2d(x, w, **args) if k is None else conv2d_ext.conv2d(
                                x, w, variant={pass_: k}, **args)
                    else:
                        leaf = x if pass_ == "backward_data" else w
                        leaf.requires_grad_(True)
                        yc = F.conv2d(x, w, **args)
                        ys = {}

                        def call(k=None):
                            if k not in ys:  # the graph of each kernel's forward, made once
                                ys[k] = yc if k is None else conv2d_ext.conv2d(x, w, variant={pass_: k}, **args)
                            return torch.autograd.grad(ys[k], leaf, gy, retain_graph=True)
                    tc = gpu_ms(call, 0.2)["ms"]
                    line = f"{name:14s} {mode:5s} {layout:5s} {pass_:15s} cudnn {tc:8.3f}"
                    for k in kern[pass_]:
                        if k == "direct": continue
                        try:
                            call(k)
                            to = gpu_ms(lambda: call(k), 0.2)["ms"]
                            line += f" | {k.split(':')[1]} {to:7.3f} ({tc/to:4.2f}x)"
                        except Exception:
                            pass  # cannot run it: left out of the line
                    pick = [l for l in conv2d_ext.explain(x, w, None, **args).split("\n") if l.startswith(pass_ + ":")]
                    print(line, "| pick:", pick[0].split("(")[0].split(": ")[1] if pick else "?", flush=True)
                    if pass_ != "forward":
                        leaf.requires_grad_(False)
