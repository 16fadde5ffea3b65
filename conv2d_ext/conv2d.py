"""conv2d_ext.conv2d: torch.nn.functional.conv2d on our own CUDA kernels.

On CUDA tensors every pass runs one of our kernel families (never cuDNN); CPU tensors run PyTorch's own
convolution, so a converted model still works on the CPU.
"""
import torch
import torch.nn.functional as F

from . import _args, _ops, heuristics
from ._args import Conv2dError


def _autocast_dtype():
    """The dtype F.conv2d would run in under torch.autocast on CUDA, or None when autocast is off."""
    try:
        enabled = torch.is_autocast_enabled("cuda")
        return torch.get_autocast_dtype("cuda") if enabled else None
    except (TypeError, AttributeError):  # older API: CUDA-only functions
        return torch.get_autocast_gpu_dtype() if torch.is_autocast_enabled() else None


def _problem(x, weight, geo, allow_tf32, fmt):
    N, C, H, W = x.shape
    K, _, R, S = weight.shape
    return heuristics.Problem(
        N=N, C=C, H=H, W=W, K=K, R=R, S=S, P=geo.output_size[0], Q=geo.output_size[1],
        stride=geo.stride, padding=geo.padding, dilation=geo.dilation, groups=geo.groups,
        dtype=str(x.dtype).replace("torch.", ""),
        channels_last=fmt == torch.channels_last,
        allow_tf32=allow_tf32,
        capability=torch.cuda.get_device_capability(x.device),
    )


def _prepare(input, weight, bias, stride, padding, dilation, groups):
    """Validates a CUDA call; returns (batched input, weight, bias, Geometry, unbatched?)."""
    if not isinstance(input, torch.Tensor):
        raise Conv2dError(f"conv2d_ext: input must be a torch.Tensor, got {type(input).__name__}")
    cast = _autocast_dtype()
    if cast is not None:  # as F.conv2d under autocast: floating tensors other than float64 run in `cast`
        def to_cast(t):
            return t.to(cast) if isinstance(t, torch.Tensor) and t.is_floating_point() and t.dtype != torch.float64 else t

        input, weight, bias = to_cast(input), to_cast(weight), to_cast(bias)
    unbatched = input.dim() == 3
    x = input.unsqueeze(0) if unbatched else input
    geo = _args.normalize(x, weight, bias, stride, padding, dilation, groups)
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
    fmt = _args.memory_format(x, weight)
    plan = heuristics.select(_problem(x, weight, geo, allow_tf32, fmt), variant)
    out = _run(x, weight, bias, geo, plan, allow_tf32, fmt)
    return out.squeeze(0) if unbatched else out


def explain(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *, variant="auto"):
    """Which family each pass would use for this call, and why: one line per pass."""
    if isinstance(input, torch.Tensor) and not input.is_cuda:
        return "\n".join(f"{p}: PyTorch (CPU tensors run PyTorch's own convolution)" for p in heuristics.PASSES)
    x, weight, bias, geo, _ = _prepare(input, weight, bias, stride, padding, dilation, groups)
    problem = _problem(x, weight, geo, torch.backends.cudnn.allow_tf32, _args.memory_format(x, weight))
    return heuristics.describe(heuristics.select(problem, variant))


class _Config:
    """What every pass of one convolution needs besides its tensors."""

    def __init__(self, geo, plan, allow_tf32, fmt, input_shape, weight_shape):
        self.geo, self.plan, self.allow_tf32, self.fmt = geo, plan, allow_tf32, fmt
        self.input_shape, self.weight_shape = input_shape, weight_shape


# Forward F(x, w), backward-data D(dy, w) and backward-weight G(dy, x) are each linear in both arguments, and each
# one's gradient is made of the other two, so every order of gradient runs on our kernels:
#   F: dx = D(dy, w)      dw = G(dy, x)
#   D: d(dy) = F(g, w)    dw = G(dy, g)
#   G: d(dy) = F(x, g)    dx = D(dy, g)
# Each Function computes only the gradients autograd asks for (ctx.needs_input_grad).


class _Forward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w, bias, cfg):
        ctx.cfg = cfg
        ctx.save_for_backward(x if ctx.needs_input_grad[1] else None, w if ctx.needs_input_grad[0] else None)
        return _ops.forward(cfg.plan["forward"].family, x, w, bias, cfg.geo, cfg.allow_tf32, cfg.fmt)

    @staticmethod
    def backward(ctx, dy):
        x, w = ctx.saved_tensors
        cfg, need = ctx.cfg, ctx.needs_input_grad
        dy = dy.contiguous(memory_format=cfg.fmt)
        dx = _BackwardData.apply(dy, w, cfg) if need[0] else None
        dw = _BackwardWeight.apply(dy, x, cfg) if need[1] else None
        db = _BiasGrad.apply(dy) if need[2] else None
        return dx, dw, db, None


class _BackwardData(torch.autograd.Function):
    @staticmethod
    def forward(ctx, dy, w, cfg):
        ctx.cfg = cfg
        ctx.save_for_backward(dy if ctx.needs_input_grad[1] else None, w if ctx.needs_input_grad[0] else None)
        return _ops.backward_data(cfg.plan["backward_data"].family, dy, w, cfg.input_shape, cfg.geo, cfg.allow_tf32,
                                  cfg.fmt)

    @staticmethod
    def backward(ctx, g):
        dy, w = ctx.saved_tensors
        cfg, need = ctx.cfg, ctx.needs_input_grad
        g = g.contiguous(memory_format=cfg.fmt)
        d_dy = _Forward.apply(g, w, None, cfg) if need[0] else None
        d_w = _BackwardWeight.apply(dy, g, cfg) if need[1] else None
        return d_dy, d_w, None


class _BackwardWeight(torch.autograd.Function):
    @staticmethod
    def forward(ctx, dy, x, cfg):
        ctx.cfg = cfg
        ctx.save_for_backward(dy if ctx.needs_input_grad[1] else None, x if ctx.needs_input_grad[0] else None)
        return _ops.backward_weight(cfg.plan["backward_weight"].family, dy, x, cfg.weight_shape, cfg.geo,
                                    cfg.allow_tf32, cfg.fmt)

    @staticmethod
    def backward(ctx, g):
        dy, x = ctx.saved_tensors
        cfg, need = ctx.cfg, ctx.needs_input_grad
        g = g.contiguous(memory_format=cfg.fmt)
        d_dy = _Forward.apply(x, g, None, cfg) if need[0] else None
        d_x = _BackwardData.apply(dy, g, cfg) if need[1] else None
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


def _run(x, weight, bias, geo, plan, allow_tf32, fmt):
    """The autograd graph of one convolution, its tensors laid out in `fmt` (PyTorch's rule: _args.memory_format)."""
    x = x.contiguous(memory_format=fmt)
    weight = weight.contiguous(memory_format=fmt)
    bias = bias.contiguous() if bias is not None else None
    cfg = _Config(geo, plan, allow_tf32, fmt, tuple(x.shape), tuple(weight.shape))
    return _Forward.apply(x, weight, bias, cfg)
