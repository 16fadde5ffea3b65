"""Thin calls into the compiled kernels (conv2d_ext._C): allocate the result, call the entry point of the chosen
family on the current stream. Setting the environment variable CONV2D_EXT_POISON=1 fills every result with NaN
before the kernel runs, so that an element a kernel fails to write shows up (the tests use it).

Each pass is a torch custom op (torch.library.custom_op, conv2d_ext::<pass>), so torch.compile sees one opaque
node with a known result (the register_fake functions) instead of breaking its graph. The ops take the geometry as
the binding does: stride[2], padding[4] (top, bottom, left, right), dilation[2], groups.
"""
import os
from typing import List, Optional

import torch
from torch import Tensor

from . import _C


def _fake(shape, like, channels_last):
    """An uninitialised result (also what each op's fake implementation returns)."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return torch.empty(shape, dtype=like.dtype, device=like.device, memory_format=fmt)


def _result(shape, like, channels_last):
    out = _fake(shape, like, channels_last)
    if os.environ.get("CONV2D_EXT_POISON") == "1":
        out.fill_(float("nan"))
    return out


@torch.library.custom_op("conv2d_ext::forward", mutates_args=(), device_types="cuda")
def forward_op(family: str, x: Tensor, w: Tensor, bias: Optional[Tensor], stride: List[int], padding: List[int],
               dilation: List[int], groups: int, output_size: List[int], allow_tf32: bool,
               channels_last: bool) -> Tensor:
    y = _result([x.shape[0], w.shape[0], *output_size], x, channels_last)
    getattr(_C, f"forward_{family}")(x, w, bias, y, stride, padding, dilation, groups, allow_tf32)
    return y


@forward_op.register_fake
def _(family, x, w, bias, stride, padding, dilation, groups, output_size, allow_tf32, channels_last):
    return _fake([x.shape[0], w.shape[0], *output_size], x, channels_last)


@torch.library.custom_op("conv2d_ext::backward_data", mutates_args=(), device_types="cuda")
def backward_data_op(family: str, dy: Tensor, w: Tensor, input_shape: List[int], stride: List[int],
                     padding: List[int], dilation: List[int], groups: int, allow_tf32: bool,
                     channels_last: bool) -> Tensor:
    dx = _result(input_shape, dy, channels_last)
    getattr(_C, f"backward_data_{family}")(dy, w, dx, stride, padding, dilation, groups, allow_tf32)
    return dx


@backward_data_op.register_fake
def _(family, dy, w, input_shape, stride, padding, dilation, groups, allow_tf32, channels_last):
    return _fake(input_shape, dy, channels_last)


@torch.library.custom_op("conv2d_ext::backward_weight", mutates_args=(), device_types="cuda")
def backward_weight_op(family: str, dy: Tensor, x: Tensor, weight_shape: List[int], stride: List[int],
                       padding: List[int], dilation: List[int], groups: int, allow_tf32: bool,
                       channels_last: bool) -> Tensor:
    dw = _result(weight_shape, dy, channels_last)
    getattr(_C, f"backward_weight_{family}")(dy, x, dw, stride, padding, dilation, groups, allow_tf32)
    return dw


@backward_weight_op.register_fake
def _(family, dy, x, weight_shape, stride, padding, dilation, groups, allow_tf32, channels_last):
    return _fake(weight_shape, dy, channels_last)


@torch.library.custom_op("conv2d_ext::backward_bias", mutates_args=(), device_types="cuda")
def backward_bias_op(dy: Tensor) -> Tensor:
    db = _result([dy.shape[1]], dy, False)
    _C.backward_bias(dy, db)
    return db


@backward_bias_op.register_fake
def _(dy):
    return _fake([dy.shape[1]], dy, False)


# What the autograd Functions call: the same passes with the geometry as a Geometry and the layout as a
# torch.memory_format.

def _geometry(geo):
    return list(geo.stride), list(geo.padding), list(geo.dilation), geo.groups


def forward(family, x, w, bias, geo, allow_tf32, fmt):
    return forward_op(family, x, w, bias, *_geometry(geo), list(geo.output_size), allow_tf32,
                      fmt == torch.channels_last)


def backward_data(family, dy, w, input_shape, geo, allow_tf32, fmt):
    return backward_data_op(family, dy, w, list(input_shape), *_geometry(geo), allow_tf32, fmt == torch.channels_last)


def backward_weight(family, dy, x, weight_shape, geo, allow_tf32, fmt):
    return backward_weight_op(family, dy, x, list(weight_shape), *_geometry(geo), allow_tf32,
                              fmt == torch.channels_last)


def backward_bias(dy):
    return backward_bias_op(dy)
