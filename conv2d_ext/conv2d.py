"""conv2d_ext.conv2d: torch.nn.functional.conv2d on our own CUDA kernels.

On CUDA tensors every pass runs one of our kernels (never cuDNN); tensors on other devices run PyTorch's own
convolution, so a converted model still works on the CPU. Arguments are validated the same way on every device.

The host path is part of the speed: a call's arguments are normalised into a Problem and its plan (a kernel per
pass) chosen once per call signature and cached; a call that needs no gradient calls the forward op directly.
"""
import os
from typing import Dict, NamedTuple, Optional

import torch
import torch.nn.functional as F

from . import _args, _ops, heuristics
from ._args import Conv2dError, Problem

try:
    _is_compiling = torch.compiler.is_compiling
except AttributeError:  # torch < 2.3
    def _is_compiling():
        return torch._dynamo.is_compiling()


def _autocast_dtype(device_type):
    """The dtype F.conv2d would run in under torch.autocast on `device_type`, or None when autocast is off there."""
    try:
        return torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else None
    except (TypeError, AttributeError):  # older API: device-specific functions
        if device_type == "cuda":
            return torch.get_autocast_gpu_dtype() if torch.is_autocast_enabled() else None
        if device_type == "cpu":
            return torch.get_autocast_cpu_dtype() if torch.is_autocast_cpu_enabled() else None
    except RuntimeError:  # a device type autocast does not know
        pass
    return None


# Whether any autocast is on: one cheap call on the hot path (torch < 2.4 may lack it: then ask per device type).
_any_autocast = getattr(torch._C, "_is_any_autocast_enabled", lambda: True)


def _autocast(input, weight, bias):
    """The tensors F.conv2d would run under torch.autocast: floating tensors other than float64 in its dtype."""
    cast = _autocast_dtype(input.device.type)
    if cast is None:
        return input, weight, bias

    def to_cast(t):
        return t.to(cast) if isinstance(t, torch.Tensor) and t.is_floating_point() and t.dtype != torch.float64 else t

    return to_cast(input), to_cast(weight), to_cast(bias)


_CAPABILITY = {}  # torch.device -> (major, minor)


def _capability(device):
    """Compute capability of a CUDA device, read once per device."""
    if _is_compiling():
        return torch.cuda.get_device_capability(device)
    capability = _CAPABILITY.get(device)
    if capability is None:
        capability = _CAPABILITY[device] = torch.cuda.get_device_capability(device)
    return capability


class _Call(NamedTuple):
    """A validated call: its Problem and, for CUDA tensors, the plan (a heuristics.Decision per pass)."""

    problem: Problem
    plan: Optional[Dict[str, heuristics.Decision]]  # None: PyTorch runs it (tensors not on a CUDA device)
    unbatched: bool


def _resolve(input, weight, bias, stride, padding, dilation, groups, variant, allow_tf32):
    """Validates a call (raising Conv2dError naming the bad argument) and plans it."""
    choices = heuristics.check_variant(variant)
    if not isinstance(input, torch.Tensor):
        raise Conv2dError(f"conv2d_ext: input must be a torch.Tensor, got {type(input).__name__}")
    unbatched = input.dim() == 3
    x = input.unsqueeze(0) if unbatched else input
    capability = _capability(x.device) if x.is_cuda else (0, 0)
    problem = _args.normalize(x, weight, bias, stride, padding, dilation, groups, allow_tf32, capability)
    if not x.is_cuda:
        if choices:
            raise Conv2dError(f"conv2d_ext: variant={variant!r} needs CUDA tensors; {x.device.type.upper()} tensors "
                              f"run PyTorch's conv2d")
        return _Call(problem, None, unbatched)
    return _Call(problem, heuristics.select(problem, variant), unbatched)


_NOT_CACHEABLE = object()

# torch.backends.cudnn.allow_tf32, read without the module attribute machinery (a third of a microsecond a call);
# torch.compile traces only the attribute.
_allow_tf32 = getattr(torch._C, "_get_cudnn_allow_tf32", lambda: torch.backends.cudnn.allow_tf32)


def _plain(v):
    """v as a hashable key that equals only for arguments that normalise alike (2 == 2.0 == True must not)."""
    t = type(v)
    if t is int or t is str:
        return v
    if (t is tuple or t is list) and all(type(e) is int for e in v):
        return tuple(v)
    if t is dict and all(type(k) is str and type(e) is str for k, e in v.items()):
        return tuple(sorted(v.items()))
    return _NOT_CACHEABLE


def _signature(input, weight, bias, stride, padding, dilation, groups, variant, allow_tf32):
    """The cache key of a call, or None when it has arguments of unusual types (then it is not cached)."""
    if bias is None:
        b = None
    elif isinstance(bias, torch.Tensor):
        b = (bias.shape, bias.dtype, bias.device)
    else:
        return None
    if not isinstance(weight, torch.Tensor):
        return None
    key = (input.shape, input.stride(), input.dtype, input.device, weight.shape, weight.stride(), weight.dtype,
           weight.device, b, allow_tf32, _plain(stride), _plain(padding), _plain(dilation), _plain(groups),
           variant if type(variant) is str else _plain(variant), _plan_environment())
    return None if _NOT_CACHEABLE in key[10:15] else key


# Environment variables that a kernel's can_implement reads, so that a call's plan depends on them: their values are
# part of the call cache's key (a process that sets one between two calls gets a new plan). The kernels' other
# variables are read at launch, on every call. tests/test_api.py checks that every variable csrc/ reads is in
# one list or the other.
PLAN_ENVIRONMENT = ("CONV2D_EXT_IM2COL", "CONV2D_EXT_TMA_WGRAD_PACK", "CONV2D_EXT_TMA_WGRAD_PHASES")


# os.environ's own dict (CPython), read directly: 0.1 us a call against 0.8 through os.environ.get.
_ENVIRON = getattr(os.environ, "_data", None)
_PLAN_KEYS = tuple(map(os.environ.encodekey, PLAN_ENVIRONMENT)) if hasattr(os.environ, "encodekey") else None


def _plan_environment():
    if _ENVIRON is not None and _PLAN_KEYS is not None:
        return tuple(map(_ENVIRON.get, _PLAN_KEYS))
    return tuple(map(os.environ.get, PLAN_ENVIRONMENT))


_CALLS = {}  # call signature -> _Call
_MAX_CALLS = 4096  # distinct signatures kept; the cache starts over past that


def _cached_call(input, weight, bias, stride, padding, dilation, groups, variant):
    """The _Call of these arguments, from the cache when the signature was seen before (no validation then)."""
    allow_tf32 = _allow_tf32()
    key = _signature(input, weight, bias, stride, padding, dilation, groups, variant, allow_tf32)
    call = _CALLS.get(key) if key is not None else None
    if call is None:
        call = _resolve(input, weight, bias, stride, padding, dilation, groups, variant, allow_tf32)
        if key is not None:
            if len(_CALLS) >= _MAX_CALLS:
                _CALLS.clear()
            _CALLS[key] = call
    return call


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *, variant="auto"):
    """Same arguments and result as torch.nn.functional.conv2d.

    variant: "auto" (the heuristics choose), a family ("direct", "tiled", "implicit_gemm") or a kernel name
    ("family:config", see conv2d_ext.kernels()) forced for every pass, or a dict {"forward": ..., "backward_data":
    ..., "backward_weight": ...}. A forced variant that cannot run this convolution raises Conv2dError saying why.
    Tensors not on a CUDA device run PyTorch's convolution (variant must be "auto" there).
    """
    if not isinstance(input, torch.Tensor):
        raise Conv2dError(f"conv2d_ext: input must be a torch.Tensor, got {type(input).__name__}")
    if _is_compiling():  # the same logic, traced once into the graph: no cache (the compiled graph is one)
        input, weight, bias = _autocast(input, weight, bias)
        call = _resolve(input, weight, bias, stride, padding, dilation, groups, variant,
                        torch.backends.cudnn.allow_tf32)
    else:
        if _any_autocast():
            input, weight, bias = _autocast(input, weight, bias)
        call = _cached_call(input, weight, bias, stride, padding, dilation, groups, variant)
    if call.plan is None:
        return F.conv2d(input, weight, bias, stride, padding, dilation, groups)
    x = input.unsqueeze(0) if call.unbatched else input
    out = _run(x, weight, bias, call)
    return out.squeeze(0) if call.unbatched else out


def explain(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *, variant="auto"):
    """Which kernel each pass would use for this call, and why: one line per pass. Validates like conv2d."""
    if isinstance(input, torch.Tensor):
        input, weight, bias = _autocast(input, weight, bias)
    call = _resolve(input, weight, bias, stride, padding, dilation, groups, variant, torch.backends.cudnn.allow_tf32)
    if call.plan is None:
        return "\n".join(f"{p}: PyTorch ({input.device.type.upper()} tensors run PyTorch's own convolution)"
                         for p in heuristics.PASSES)
    return heuristics.describe(call.plan)


def _layout(call):
    return torch.channels_last if call.problem.channels_last else torch.contiguous_format


# Forward F(x, w), backward-data D(dy, w) and backward-weight G(dy, x) are each linear in both arguments, and each
# one's gradient is made of the other two, so every order of gradient runs on our kernels:
#   F: dx = D(dy, w)      dw = G(dy, x)
#   D: d(dy) = F(g, w)    dw = G(dy, g)
#   G: d(dy) = F(x, g)    dx = D(dy, g)
# Each Function computes only the gradients autograd asks for (ctx.needs_input_grad). `call` is the _Call: the
# Problem and the kernel of each pass. Incoming gradients are made dense in the call's layout once, here, so the
# ops that share them do not each copy them. A backward that builds no graph (grad mode off: a plain .backward())
# calls the ops directly; one under create_graph goes through the Functions, so its gradients are differentiable.


def _forward(x, w, call):
    if torch.is_grad_enabled():
        return _Forward.apply(x, w, None, call)
    return _ops.forward(call.plan["forward"].kernel, x, w, None, call.problem)


def _backward_data(dy, w, call):
    if torch.is_grad_enabled():
        return _BackwardData.apply(dy, w, call)
    return _ops.backward_data(call.plan["backward_data"].kernel, dy, w, call.problem)


def _backward_weight(dy, x, call):
    if torch.is_grad_enabled():
        return _BackwardWeight.apply(dy, x, call)
    return _ops.backward_weight(call.plan["backward_weight"].kernel, dy, x, call.problem)


def _stages_grad_output(call):
    """An NCHW call whose backward-data and backward-weight both run on copy-engine kernels ("_tma"): they read
    grad_output in NHWC, and the op passes a channels-last grad_output to them as it is (csrc/bindings.cpp). Not a 1x1
    problem whose NCHW grad_output those kernels read in place (the pointwise kernels: backward-data at r50_1x1 fp16
    0.036 ms in place against ~0.05 on an NHWC copy; backward-weight under CONV2D_EXT_TMA_POINTWISE_WGRAD=1)."""
    plan, problem = call.plan, call.problem
    return (not problem.channels_last and plan["backward_data"].kernel.endswith("_tma") and
            plan["backward_weight"].kernel.endswith("_tma") and not heuristics.pointwise_in_place(problem))


def _bias_grad(dy):
    return _BiasGrad.apply(dy) if torch.is_grad_enabled() else _ops.backward_bias(dy)


class _Forward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w, bias, call):
        ctx.call = call
        ctx.save_for_backward(x if ctx.needs_input_grad[1] else None, w if ctx.needs_input_grad[0] else None)
        return _ops.forward(call.plan["forward"].kernel, x, w, bias, call.problem)

    @staticmethod
    def backward(ctx, dy):
        x, w = ctx.saved_tensors
        call, need = ctx.call, ctx.needs_input_grad
        dy = dy.contiguous(memory_format=_layout(call))
        # NCHW, both passes on the copy engine: each would copy grad_output to NHWC; copy it once for both. Not when
        # the backward is itself differentiated (create_graph): the copy op has no autograd formula.
        both = need[0] and need[1] and not torch.is_grad_enabled()  # one op for both (not differentiable itself)
        dy_nhwc = _ops.to_channels_last(dy) if both and _stages_grad_output(call) else dy
        if both:
            dx, dw = _ops.backward(call.plan["backward_data"].kernel, call.plan["backward_weight"].kernel, dy_nhwc,
                                   x, w, call.problem)
        else:
            dx = _backward_data(dy_nhwc, w, call) if need[0] else None
            dw = _backward_weight(dy_nhwc, x, call) if need[1] else None
        db = _bias_grad(dy) if need[2] else None
        return dx, dw, db, None


class _BackwardData(torch.autograd.Function):
    @staticmethod
    def forward(ctx, dy, w, call):
        ctx.call = call
        ctx.save_for_backward(dy if ctx.needs_input_grad[1] else None, w if ctx.needs_input_grad[0] else None)
        return _ops.backward_data(call.plan["backward_data"].kernel, dy, w, call.problem)

    @staticmethod
    def backward(ctx, g):
        dy, w = ctx.saved_tensors
        call, need = ctx.call, ctx.needs_input_grad
        g = g.contiguous(memory_format=_layout(call))
        d_dy = _forward(g, w, call) if need[0] else None
        d_w = _backward_weight(dy, g, call) if need[1] else None
        return d_dy, d_w, None


class _BackwardWeight(torch.autograd.Function):
    @staticmethod
    def forward(ctx, dy, x, call):
        ctx.call = call
        ctx.save_for_backward(dy if ctx.needs_input_grad[1] else None, x if ctx.needs_input_grad[0] else None)
        return _ops.backward_weight(call.plan["backward_weight"].kernel, dy, x, call.problem)

    @staticmethod
    def backward(ctx, g):
        dy, x = ctx.saved_tensors
        call, need = ctx.call, ctx.needs_input_grad
        g = g.contiguous(memory_format=_layout(call))
        d_dy = _forward(x, g, call) if need[0] else None
        d_x = _backward_data(dy, g, call) if need[1] else None
        return d_dy, d_x, None


class _BiasGrad(torch.autograd.Function):
    """grad_bias[k] = sum of dy[:, k]; its own gradient is a broadcast."""

    @staticmethod
    def forward(ctx, dy):
        ctx.shape = dy.shape
        return _ops.backward_bias(dy)

    @staticmethod
    def backward(ctx, g):
        return g.view(1, -1, 1, 1).expand(ctx.shape)


def _run(x, weight, bias, call):
    """The forward pass of a batched call on our kernels: through the autograd Functions when a gradient may be
    needed, else the forward op alone."""
    if torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad or
                                    (bias is not None and bias.requires_grad)):
        return _Forward.apply(x, weight, bias, call)
    return _ops.forward(call.plan["forward"].kernel, x, weight, bias, call.problem)
