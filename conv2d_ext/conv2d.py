"""conv2d_ext.conv2d: torch.nn.functional.conv2d on our own CUDA kernels.

On CUDA tensors every pass runs one of our kernel families (never cuDNN); CPU tensors run PyTorch's own
convolution, so a converted model still works on the CPU.
"""
import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from . import _args, _ops, heuristics
from ._args import Conv2dError


def _autocast_dtype():
    """The dtype F.conv2d would run in under torch.autocast on CUDA, or None when autocast is off."""
    try:
        enabled = torch.is_autocast_enabled("cuda")
        return torch.get_autocast_dtype("cuda") if enabled else None
    except (TypeError, AttributeError):  # older API: CUDA-only functions
        return torch.get_autocast_gpu_dtype() if torch.is_autocast_enabled() else None


def _problem(x, weight, geo, allow_tf32):
    N, C, H, W = x.shape
    K, _, R, S = weight.shape
    return heuristics.Problem(
        N=N, C=C, H=H, W=W, K=K, R=R, S=S, P=geo.output_size[0], Q=geo.output_size[1],
        stride=geo.stride, padding=geo.padding, dilation=geo.dilation, groups=geo.groups,
        dtype=str(x.dtype).replace("torch.", ""),
        channels_last=_args.memory_format(x, weight) == torch.channels_last,
        allow_tf32=allow_tf32,
        capability=torch.cuda.get_device_capability(x.device),
    )


def _prepare(input, weight, bias, stride, padding, dilation, groups):
    """Validates a CUDA call; returns (batched input, weight, bias, Geometry, unbatched?)."""
    if not isinstance(input, torch.Tensor):
        raise Conv2dError(f"conv2d_ext: input must be a torch.Tensor, got {type(input).__name__}")
    unbatched = input.dim() == 3
    x = input.unsqueeze(0) if unbatched else input
    geo = _args.normalize(x, weight, bias, stride, padding, dilation, groups)
    cast = _autocast_dtype()
    if cast is not None and x.dtype != cast and x.dtype != torch.float64:
        x, weight = x.to(cast), weight.to(cast)
        bias = bias.to(cast) if bias is not None else None
    return x, weight, bias, geo, unbatched


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *, variant="auto"):
    """Same arguments and result as torch.nn.functional.conv2d.

    variant: "auto" (the heuristics choose), a family name ("direct", "tiled", "implicit_gemm") forced for every
    pass, or a dict {"forward": ..., "backward_data": ..., "backward_weight": ...}. A forced family that cannot
    run this convolution raises ValueError saying why. CPU tensors run PyTorch's convolution (variant must be
    "auto" there).
    """
    if isinstance(input, torch.Tensor) and not input.is_cuda:
        if variant != "auto":
            raise Conv2dError(f"conv2d_ext: variant={variant!r} needs CUDA tensors; CPU tensors run PyTorch's conv2d")
        return F.conv2d(input, weight, bias, stride, padding, dilation, groups)
    x, weight, bias, geo, unbatched = _prepare(input, weight, bias, stride, padding, dilation, groups)
    allow_tf32 = torch.backends.cudnn.allow_tf32
    plan = heuristics.select(_problem(x, weight, geo, allow_tf32), variant)
    out = _Conv2dFunction.apply(x, weight, bias, geo, plan, allow_tf32)
    return out.squeeze(0) if unbatched else out


def explain(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *, variant="auto"):
    """Which family each pass would use for this call, and why: one line per pass."""
    if isinstance(input, torch.Tensor) and not input.is_cuda:
        return "\n".join(f"{p}: PyTorch (CPU tensors run PyTorch's own convolution)" for p in heuristics.PASSES)
    x, weight, bias, geo, _ = _prepare(input, weight, bias, stride, padding, dilation, groups)
    problem = _problem(x, weight, geo, torch.backends.cudnn.allow_tf32)
    return heuristics.describe(heuristics.select(problem, variant))


class _Conv2dFunction(torch.autograd.Function):
    """Forward on the planned family; backward computes only the gradients autograd needs."""

    @staticmethod
    def forward(ctx, input, weight, bias, geo, plan, allow_tf32):
        fmt = _args.memory_format(input, weight)
        x = input.contiguous(memory_format=fmt)
        w = weight.contiguous(memory_format=fmt)
        b = bias.contiguous() if bias is not None else None
        y = _ops.forward(plan["forward"].family, x, w, b, geo, allow_tf32, fmt)
        need_dx, need_dw = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        ctx.save_for_backward(x if need_dw else None, w if need_dx else None)
        ctx.input_shape, ctx.weight_shape = tuple(x.shape), tuple(w.shape)
        ctx.geo, ctx.plan, ctx.allow_tf32, ctx.fmt = geo, plan, allow_tf32, fmt
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output):
        x, w = ctx.saved_tensors
        dy = grad_output.contiguous(memory_format=ctx.fmt)
        dx = dw = db = None
        if ctx.needs_input_grad[0]:
            dx = _ops.backward_data(ctx.plan["backward_data"].family, dy, w, ctx.input_shape, ctx.geo,
                                    ctx.allow_tf32, ctx.fmt)
        if ctx.needs_input_grad[1]:
            dw = _ops.backward_weight(ctx.plan["backward_weight"].family, dy, x, ctx.weight_shape, ctx.geo,
                                      ctx.allow_tf32, ctx.fmt)
        if ctx.needs_input_grad[2]:
            db = _ops.backward_bias(dy)
        return dx, dw, db, None, None, None
