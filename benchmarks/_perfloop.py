# scratch: a loop of r50_1x1 fp16 NCHW forward op calls for perf (session 30)
import sys, torch
import conv2d_ext
from conv2d_ext import _ops
from conv2d_ext.conv2d import _cached_call
from conv2d_ext.testing import case_of, make_inputs, precision
c = case_of(sys.argv[1] if len(sys.argv) > 1 else "r50_1x1")
with precision("fp16") as dtype, torch.no_grad():
    x, w, _ = make_inputs(c.N, c.C, c.H, c.W, c.K, c.R, c.S, c.groups, dtype, bias=False)
    a = c.conv_args
    for i in range(30000):
        conv2d_ext.conv2d(x, w, None, **a)
        if i % 100 == 0:
            torch.cuda.synchronize()
    torch.cuda.synchronize()
