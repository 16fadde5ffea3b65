"""Thin calls into the compiled kernels (conv2d_ext._C): allocate the result, call the entry point of the chosen
family on the current stream. Setting the environment variable CONV2D_EXT_POISON=1 fills every result with NaN
before the kernel runs, so that an element a kernel fails to write shows up (the tests use it)."""
import os

import torch

from . import _C


def _result(shape, like, memory_format):
    out = torch.empty(shape, dtype=like.dtype, device=like.device, memory_format=memory_format)
    if os.environ.get("CONV2D_EXT_POISON") == "1":
        out.fill_(float("nan"))
    return out


def _entry(pass_name, family):
    return getattr(_C, f"{pass_name}_{family}")


def forward(family, x, w, bias, geo, allow_tf32, memory_format):
    N, K = x.shape[0], w.shape[0]
    y = _result((N, K) + tuple(geo.output_size), x, memory_format)
    _entry("forward", family)(x, w, bias, y, geo.stride, geo.padding, geo.dilation, geo.groups, allow_tf32)
    return y


def backward_data(family, dy, w, input_shape, geo, allow_tf32, memory_format):
    dx = _result(input_shape, dy, memory_format)
    _entry("backward_data", family)(dy, w, dx, geo.stride, geo.padding, geo.dilation, geo.groups, allow_tf32)
    return dx


def backward_weight(family, dy, x, weight_shape, geo, allow_tf32, memory_format):
    dw = _result(weight_shape, dy, memory_format)
    _entry("backward_weight", family)(dy, x, dw, geo.stride, geo.padding, geo.dilation, geo.groups, allow_tf32)
    return dw


def backward_bias(dy):
    db = _result((dy.shape[1],), dy, torch.contiguous_format)
    _C.backward_bias(dy, db)
    return db
