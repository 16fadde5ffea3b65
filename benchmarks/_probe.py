# scratch: host time per call, split by layer (session 30)
import os, sys, time, torch, torch.nn.functional as F
sys.path.insert(0, os.path.dirname(__file__))
import conv2d_ext
from conv2d_ext import _ops
from conv2d_ext.conv2d import _cached_call
from conv2d_ext.testing import case_of, make_inputs, precision
from bench.timing import host_ms

def hm(fn, reps=5):
    return min(host_ms(fn, 200) for _ in range(reps)) * 1e3  # us

for name in ["1-8-8-8-8-3-3-1-1-1-1", "r50_1x1", "r50_3x3_512", "r50_3x3_128_s2", "batch1_3x3"]:
    c = case_of(name)
    for mode in ["fp16", "tf32"]:
        for layout in ["nchw", "nhwc"]:
            with precision(mode) as dtype, torch.no_grad():
                x, w, _ = make_inputs(c.N, c.C, c.H, c.W, c.K, c.R, c.S, c.groups, dtype, channels_last=layout == "nhwc", bias=False)
                args = c.conv_args
                call = _cached_call(x, w, None, args["stride"], args["padding"], args["dilation"], args["groups"], "auto")
                k = call.plan["forward"].kernel
                p = call.problem
                y = F.conv2d(x, w, None, **args)
                row = {}
                row["cudnn"] = hm(lambda: F.conv2d(x, w, None, **args))
                row["ours"] = hm(lambda: conv2d_ext.conv2d(x, w, None, **args))
                row["cached_call"] = hm(lambda: _cached_call(x, w, None, args["stride"], args["padding"], args["dilation"], args["groups"], "auto"))
                row["op:" + k] = hm(lambda: _ops.forward(k, x, w, None, p))
                for kk in ["implicit_gemm:128x128_w4", "implicit_gemm:128x128_wg", "implicit_gemm:128x64_tma", "implicit_gemm:128x128_tma"]:
                    if kk == k: continue
                    try:
                        _ops.forward(kk, x, w, None, p)
                        row["op:" + kk] = hm(lambda: _ops.forward(kk, x, w, None, p))
                    except Exception as e:
                        pass
                if layout == "nchw":
                    row["to_cl"] = hm(lambda: _ops.to_channels_last(x))
                    os.environ["CONV2D_EXT_TMA_POINTWISE"] = "0"
                    try:
                        row["op[POINTWISE=0]"] = hm(lambda: _ops.forward(k, x, w, None, p))
                    except Exception:
                        pass
                    os.environ.pop("CONV2D_EXT_TMA_POINTWISE")
                row["empty_like(y)"] = hm(lambda: torch.empty_like(y))
                row["y.zero_()"] = hm(lambda: y.zero_())
                print(f"{name} {mode} {layout}: " + " | ".join(f"{a} {b:.1f}" for a, b in row.items()), flush=True)
