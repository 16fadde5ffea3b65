"""The passes as torch ops, and the thin calls the autograd Functions make.

The ops conv2d_ext::forward / backward_data / backward_weight / backward (both backward passes in one call: one
dispatch, and the backward-weight kernel may overlap the end of the backward-data one) / backward_bias (and
to_channels_last, the NHWC copy of grad_output that an NCHW backward on the copy-engine kernels makes once for both
passes) are defined and implemented for CUDA in C++ (csrc/bindings.cpp), so a call costs one dispatch. Here they get
their fake implementations (the result's shape, dtype, device and layout, from the sizes passed), so torch.compile
traces them as opaque nodes.

Op arguments: the kernel name, tensors, stride[2], padding[2] (top, left: the bottom/right padding is implied by
the output size), dilation[2], groups, allow_tf32, and channels_last (the layout of every tensor of the call).
"""
import torch

from . import _C  # noqa: F401  (loading the extension registers the ops)

_ops = torch.ops.conv2d_ext
_forward_op = _ops.forward.default
_backward_data_op = _ops.backward_data.default
_backward_weight_op = _ops.backward_weight.default
_backward_op = _ops.backward.default
_backward_bias_op = _ops.backward_bias.default
_to_channels_last_op = _ops.to_channels_last.default


def _empty(shape, like, channels_last):
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return torch.empty(shape, dtype=like.dtype, device=like.device, memory_format=fmt)


@torch.library.register_fake("conv2d_ext::forward")
def _(kernel, input, weight, bias, stride, padding, dilation, groups, output_size, allow_tf32, channels_last):
    return _empty((input.shape[0], weight.shape[0], *output_size), input, channels_last)


@torch.library.register_fake("conv2d_ext::backward_data")
def _(kernel, grad_output, weight, input_size, stride, padding, dilation, groups, allow_tf32, channels_last):
    return _empty(input_size, grad_output, channels_last)


@torch.library.register_fake("conv2d_ext::backward_weight")
def _(kernel, grad_output, input, weight_size, stride, padding, dilation, groups, allow_tf32, channels_last):
    return _empty(weight_size, grad_output, channels_last)


@torch.library.register_fake("conv2d_ext::backward")
def _(data_kernel, weight_kernel, grad_output, input, weight, stride, padding, dilation, groups, allow_tf32,
      channels_last):
    return _empty(input.shape, grad_output, channels_last), _empty(weight.shape, grad_output, channels_last)


@torch.library.register_fake("conv2d_ext::backward_bias")
def _(grad_output):
    return grad_output.new_empty((grad_output.shape[1],))


@torch.library.register_fake("conv2d_ext::to_channels_last")
def _(input):
    return torch.empty_like(input, memory_format=torch.channels_last)


# What conv2d and the autograd Functions call: one pass of the convolution `p` (a Problem) on kernel `kernel`.

def forward(kernel, x, w, bias, p):
    return _forward_op(kernel, x, w, bias, p.stride, (p.padding[0], p.padding[2]), p.dilation, p.groups,
                       (p.P, p.Q), p.allow_tf32, p.channels_last)


def backward_data(kernel, dy, w, p):
    return _backward_data_op(kernel, dy, w, p.input_size, p.stride, (p.padding[0], p.padding[2]), p.dilation,
                             p.groups, p.allow_tf32, p.channels_last)


def backward_weight(kernel, dy, x, p):
    return _backward_weight_op(kernel, dy, x, p.weight_size, p.stride, (p.padding[0], p.padding[2]), p.dilation,
                               p.groups, p.allow_tf32, p.channels_last)


def backward(data_kernel, weight_kernel, dy, x, w, p):
    """Both backward passes in one op: (grad_input, grad_weight)."""
    return _backward_op(data_kernel, weight_kernel, dy, x, w, p.stride, (p.padding[0], p.padding[2]), p.dilation,
                        p.groups, p.allow_tf32, p.channels_last)


def backward_bias(dy):
    return _backward_bias_op(dy)


def to_channels_last(t):
    return _to_channels_last_op(t)
