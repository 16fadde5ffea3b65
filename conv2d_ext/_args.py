"""Argument normalisation and validation, done as torch.nn.functional.conv2d does it, before any kernel runs:
normalize() turns a call into a Problem, the one description of a convolution that the heuristics, the autograd
Functions and the ops all use."""
import operator
from dataclasses import dataclass
from typing import Tuple

import torch

SUPPORTED_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


class Conv2dError(ValueError, RuntimeError):
    """Bad arguments to conv2d_ext. Both a ValueError and a RuntimeError, so code written against the
    RuntimeErrors of F.conv2d catches it too."""


@dataclass(frozen=True)
class Problem:
    """One convolution, fully resolved: x (N, C, H, W) * w (K, C/groups, R, S) -> y (N, K, P, Q), its geometry,
    dtype, layout (channels-last if input or weight is, PyTorch's rule) and the GPU's compute capability."""

    N: int
    C: int
    H: int
    W: int
    K: int
    R: int
    S: int
    P: int
    Q: int
    stride: Tuple[int, int] = (1, 1)
    padding: Tuple[int, int, int, int] = (0, 0, 0, 0)  # top, bottom, left, right
    dilation: Tuple[int, int] = (1, 1)
    groups: int = 1
    dtype: str = "float32"  # float32, float64, float16, bfloat16
    channels_last: bool = False
    allow_tf32: bool = True
    capability: Tuple[int, int] = (9, 0)  # (0, 0) for tensors not on a CUDA device

    @property
    def input_size(self):
        return (self.N, self.C, self.H, self.W)

    @property
    def weight_size(self):
        return (self.K, self.C // self.groups, self.R, self.S)

    @property
    def output_size(self):
        return (self.P, self.Q)

    @property
    def depthwise(self):
        """One input channel per group (any channel multiplier K/C)."""
        return self.groups > 1 and self.groups == self.C

    @property
    def flops(self):
        return 2 * self.N * self.K * self.P * self.Q * (self.C // self.groups) * self.R * self.S


def _as_int(v):
    """v as an int if it is one (anything with __index__, e.g. NumPy integers, as F.conv2d accepts), else None."""
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, (tuple, list, str)) or v is None:  # keeps torch.compile from tracing a failing index()
        return None
    try:
        return operator.index(v)
    except TypeError:
        return None


def _pair(value, name):
    ints = tuple(_as_int(v) for v in (value if isinstance(value, (tuple, list)) else (value,)))
    if len(ints) in (1, 2) and None not in ints:
        return ints * 2 if len(ints) == 1 else ints
    raise Conv2dError(f"conv2d_ext: {name} must be an int or a pair of ints, got {value!r}")


def _check_tensor(t, name):
    if not isinstance(t, torch.Tensor):
        raise Conv2dError(f"conv2d_ext: {name} must be a torch.Tensor, got {type(t).__name__}")


def _padding(padding, kernel, stride, dilation):
    """(top, bottom, left, right). padding='same' puts the odd pixel of an even total at the bottom/right,
    as PyTorch does."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0, 0, 0)
        if padding == "same":
            if stride != (1, 1):
                raise Conv2dError("conv2d_ext: padding='same' is not supported for strided convolutions")
            pads = []
            for k, d in zip(kernel, dilation):
                total = d * (k - 1)
                pads += [total // 2, total - total // 2]
            return tuple(pads)
        raise Conv2dError(f"conv2d_ext: padding must be 'same', 'valid', an int or a pair of ints, got {padding!r}")
    ph, pw = _pair(padding, "padding")
    if ph < 0 or pw < 0:
        raise Conv2dError(f"conv2d_ext: padding must be non-negative, got {padding!r}")
    return (ph, ph, pw, pw)


def normalize(input, weight, bias, stride, padding, dilation, groups, allow_tf32=True, capability=(0, 0)):
    """Checks a batched (4-D) call and returns its Problem; raises Conv2dError naming the bad argument."""
    _check_tensor(input, "input")
    _check_tensor(weight, "weight")
    if input.dim() != 4:
        raise Conv2dError(
            f"conv2d_ext: expected input to be 3-D (unbatched) or 4-D (batched), got {input.dim()}-D "
            f"with shape {tuple(input.shape)}"
        )
    if weight.dim() != 4:
        raise Conv2dError(
            f"conv2d_ext: weight must be 4-D (out_channels, in_channels/groups, kH, kW), got {weight.dim()}-D "
            f"with shape {tuple(weight.shape)}"
        )
    if input.dtype not in SUPPORTED_DTYPES:
        raise Conv2dError(
            f"conv2d_ext: input dtype {input.dtype} is not supported (float32, float64, float16, bfloat16)"
        )
    if weight.dtype != input.dtype:
        raise Conv2dError(f"conv2d_ext: weight dtype {weight.dtype} does not match input dtype {input.dtype}")
    if weight.device != input.device:
        raise Conv2dError(f"conv2d_ext: weight is on {weight.device} but input is on {input.device}")
    K = weight.shape[0]
    if bias is not None:
        _check_tensor(bias, "bias")
        if bias.dim() != 1 or bias.shape[0] != K:
            raise Conv2dError(
                f"conv2d_ext: bias must be 1-D with {K} elements (weight.shape[0]), got shape {tuple(bias.shape)}"
            )
        if bias.dtype != input.dtype:
            raise Conv2dError(f"conv2d_ext: bias dtype {bias.dtype} does not match input dtype {input.dtype}")
        if bias.device != input.device:
            raise Conv2dError(f"conv2d_ext: bias is on {bias.device} but input is on {input.device}")
    groups_in, groups = groups, _as_int(groups)
    if groups is None or groups < 1:
        raise Conv2dError(f"conv2d_ext: groups must be a positive int, got {groups_in!r}")
    N, C, H, W = input.shape
    if C == 0:  # F.conv2d returns a wrongly shaped result here; our kernels' tile plans divide by C / groups
        raise Conv2dError(f"conv2d_ext: input must have at least one channel, got shape {tuple(input.shape)}")
    if K < groups:  # as F.conv2d: no filters (or fewer than groups) is an error, not an empty output
        raise Conv2dError(
            f"conv2d_ext: weight must have at least groups ({groups}) out channels, got weight.shape[0] = {K}"
        )
    if C % groups != 0:
        raise Conv2dError(f"conv2d_ext: input channels ({C}) must be divisible by groups ({groups})")
    if K % groups != 0:
        raise Conv2dError(f"conv2d_ext: out channels (weight.shape[0] = {K}) must be divisible by groups ({groups})")
    if weight.shape[1] * groups != C:
        raise Conv2dError(
            f"conv2d_ext: weight of shape {tuple(weight.shape)} with groups={groups} expects "
            f"{weight.shape[1] * groups} input channels, but input has {C} (input shape {tuple(input.shape)})"
        )
    stride = _pair(stride, "stride")
    dilation = _pair(dilation, "dilation")
    if min(stride) < 1:
        raise Conv2dError(f"conv2d_ext: stride must be positive, got {stride}")
    if min(dilation) < 1:
        raise Conv2dError(f"conv2d_ext: dilation must be positive, got {dilation}")
    R, S = weight.shape[2], weight.shape[3]
    pad = _padding(padding, (R, S), stride, dilation)
    P = (H + pad[0] + pad[1] - dilation[0] * (R - 1) - 1) // stride[0] + 1
    Q = (W + pad[2] + pad[3] - dilation[1] * (S - 1) - 1) // stride[1] + 1
    if P <= 0 or Q <= 0 or R <= 0 or S <= 0:
        raise Conv2dError(
            f"conv2d_ext: output size is empty: input {H}x{W} padded to {H + pad[0] + pad[1]}x{W + pad[2] + pad[3]} "
            f"is smaller than the dilated kernel {dilation[0] * (R - 1) + 1}x{dilation[1] * (S - 1) + 1}"
        )
    return Problem(N=N, C=C, H=H, W=W, K=K, R=R, S=S, P=P, Q=Q, stride=stride, padding=pad, dilation=dilation,
                   groups=groups, dtype=str(input.dtype)[len("torch."):], channels_last=channels_last(input, weight),
                   allow_tf32=bool(allow_tf32), capability=tuple(capability))


def strides_like_channels_last(t):
    """PyTorch's rule (c10 is_channels_last_strides_2d) for a 4-D tensor; ambiguous cases are NCHW."""
    if t.dim() != 4 or t.stride(1) == 0:
        return False
    smallest = 0
    for d in (1, 3, 2, 0):
        if t.shape[d] == 0 or t.stride(d) < smallest:
            return False
        if d == 0 and smallest == t.stride(1):
            return False
        smallest = t.stride(d) * (t.shape[d] if t.shape[d] > 1 else 1)
    return True


def channels_last(input, weight):
    """The layout PyTorch gives a convolution's output: channels-last if input or weight is."""
    return strides_like_channels_last(input) or strides_like_channels_last(weight)


def memory_format(input, weight):
    """channels_last() as a torch.memory_format."""
    return torch.channels_last if channels_last(input, weight) else torch.contiguous_format
