"""What tests and benchmarks of conv2d_ext share, shipped with the package as torch.testing is with torch: the
benchmark cases, the tolerance per precision mode, the relative error, the input maker and the float64 reference.
`tests/` and `benchmarks/compare.py` both use these, so a case or a tolerance is defined once.

Only torch is needed here, not the compiled extension.

    from conv2d_ext.testing import CASES, TOLERANCE, make_inputs, reference, rel_err
    case = CASES["r50_3x3_256"]
    x, w, b = make_inputs(*case.sizes, case.groups, torch.float16, channels_last=True, seed=0)
    ref_y, _ = reference(x, w, b, **case.conv_args)
    assert rel_err(conv2d_ext.conv2d(x, w, b, **case.conv_args), ref_y) <= TOLERANCE["fp16"]
"""
import contextlib
import math
from typing import NamedTuple, Optional, Tuple, Union

import torch
import torch.nn.functional as F

IntOrPair = Union[int, Tuple[int, int]]


class Case(NamedTuple):
    """A convolution: input N x C x H x W, weight K x C/groups x R x S, and F.conv2d's other arguments."""
    N: int
    C: int
    H: int
    W: int
    K: int
    R: int
    S: int
    stride: IntOrPair = 1
    padding: Union[IntOrPair, str] = 0
    dilation: IntOrPair = 1
    groups: int = 1

    @property
    def sizes(self):
        """N, C, H, W, K, R, S: make_inputs' first arguments (then groups)."""
        return self[:7]

    @property
    def conv_args(self):
        """The keyword arguments of F.conv2d and conv2d_ext.conv2d."""
        return dict(stride=self.stride, padding=self.padding, dilation=self.dilation, groups=self.groups)


CASE_FIELDS = Case._fields

# The benchmark suite: layers of real networks, and the case the project started from ("seed").
CASES = {
    "seed":           Case(8,   64, 512, 1024, 128, 3, 3, 1, 0, 1, 1),
    "r50_conv1":      Case(32,   3, 224,  224,  64, 7, 7, 2, 3, 1, 1),
    "r50_3x3_64":     Case(32,  64,  56,   56,  64, 3, 3, 1, 1, 1, 1),
    "r50_1x1":        Case(32, 256,  56,   56,  64, 1, 1, 1, 0, 1, 1),
    "r50_3x3_128_s2": Case(32, 128,  56,   56, 128, 3, 3, 2, 1, 1, 1),
    "r50_3x3_256":    Case(32, 256,  14,   14, 256, 3, 3, 1, 1, 1, 1),
    "r50_3x3_512":    Case(32, 512,   7,    7, 512, 3, 3, 1, 1, 1, 1),
    "unet_3x3":       Case(4,  128, 256,  256, 128, 3, 3, 1, 1, 1, 1),
    "dilated":        Case(8,  256,  64,   64, 256, 3, 3, 1, 2, 2, 1),
    "depthwise_3x3":  Case(32, 144,  56,   56, 144, 3, 3, 1, 1, 1, 144),
    "depthwise_7x7":  Case(32,  96,  56,   56,  96, 7, 7, 1, 3, 1, 96),
    "grouped_g32":    Case(32, 256,  28,   28, 256, 3, 3, 1, 1, 1, 32),
    "batch1_3x3":     Case(1,  256,  64,   64, 256, 3, 3, 1, 1, 1, 1),
}


def case_of(name):
    """A suite case by name, or an ad-hoc one written N-C-H-W-K-R-S-stride-pad-dil-groups (development tools)."""
    if name in CASES:
        return CASES[name]
    fields = name.split("-")
    if len(fields) != 11 or not all(f.isdigit() for f in fields):
        raise KeyError(f"{name!r}: not a suite case ({', '.join(CASES)}) nor N-C-H-W-K-R-S-stride-pad-dil-groups")
    return Case(*map(int, fields))


# Precision modes: "tf32" is float32 with TF32 allowed (see `precision`).
DTYPES = {"fp64": torch.float64, "fp32": torch.float32, "tf32": torch.float32, "fp16": torch.float16,
          "bf16": torch.bfloat16}

# Norm-wise relative error allowed against the float64 reference, by precision mode. Kernels that do not use
# tensor cores meet the fp32 bound in "tf32" mode too.
TOLERANCE = {"fp64": 1e-12, "fp32": 1e-5, "tf32": 2e-3, "fp16": 1e-2, "bf16": 2e-2}


@contextlib.contextmanager
def precision(mode):
    """Allows TF32 (torch.backends.cudnn.allow_tf32, which conv2d_ext reads too) exactly when mode is "tf32";
    restores the setting afterwards. Yields the mode's dtype."""
    saved = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = mode == "tf32"
    try:
        yield DTYPES[mode]
    finally:
        torch.backends.cudnn.allow_tf32 = saved


def rel_err(out, ref):
    """||out - ref|| / ||ref|| in float64 (||out|| if ref is all zeros); inf if the shapes differ or `out` holds a
    NaN or an infinity."""
    if tuple(out.shape) != tuple(ref.shape):
        return math.inf
    diff = out.detach().to(torch.float64, copy=True)
    if not torch.isfinite(diff).all():
        return math.inf
    diff.sub_(ref.detach())
    denom = torch.linalg.vector_norm(ref.detach().double()).item()
    err = torch.linalg.vector_norm(diff).item()
    return err / denom if denom > 0 else err


def fresh_seed():
    """A new seed from torch's global generator, for inputs that differ on every run (print it when a check fails)."""
    return int(torch.randint(0, 2**31, ()).item())


def random_tensor(shape, dtype, device="cuda", *, channels_last=False, offset=0, row_pad=0, generator=None, seed=None,
                  scale=1.0):
    """Standard-normal values times `scale`, rounded to `dtype`, never all zeros, drawn from `generator`, or from a
    new generator seeded with `seed`, or else from torch's global generator.

    By default a tensor contiguous in its layout (channels-last if asked, for 4-D shapes). With `offset` and
    `row_pad` it is a view into a larger NaN-filled buffer, as a slice of a bigger tensor would be: it starts
    `offset` elements past the start of the buffer (an odd offset leaves the data pointer off 16-byte alignment),
    and each row is followed by `row_pad` unused elements (a row is the last dimension in memory: the W elements
    of an NCHW row, the W*C elements of a channels-last row). A kernel that reads the gaps reads NaN."""
    if generator is None and seed is not None:
        generator = torch.Generator(device=device).manual_seed(seed)
    values = torch.randn(shape, device=device, generator=generator).mul_(scale).to(dtype)
    shape = tuple(shape)
    nhwc = channels_last and len(shape) == 4
    memory_shape = (shape[0], shape[2], shape[3] * shape[1]) if nhwc else shape  # rows are the last dimension
    rows, row = memory_shape[:-1], memory_shape[-1]
    buffer = torch.full((offset + math.prod(rows) * (row + row_pad),), math.nan, dtype=dtype, device=device)
    view = buffer[offset:].view(*rows, row + row_pad)[..., :row]
    if nhwc:
        view = view.unflatten(-1, (shape[3], shape[1])).permute(0, 3, 1, 2)  # N, H, W, C -> N, C, H, W
    return view.copy_(values)


def make_inputs(N, C, H, W, K, R, S, groups, dtype, device="cuda", channels_last=False, bias=True, seed=None,
                offset=0, row_pad=0):
    """Fresh random input, weight and bias (None if not `bias`) from `seed` (a fresh one if None). Weights are
    scaled by 1/sqrt(fan-in) so outputs stay O(1) in half precision. `channels_last`, `offset` and `row_pad` are
    random_tensor's (the bias is 1-D: offset only)."""
    gen = torch.Generator(device=device)
    gen.manual_seed(fresh_seed() if seed is None else seed)
    layout = dict(dtype=dtype, device=device, generator=gen, offset=offset, row_pad=row_pad)
    fan_in = max(1, C // groups * R * S)
    x = random_tensor((N, C, H, W), channels_last=channels_last, **layout)
    w = random_tensor((K, C // groups, R, S), channels_last=channels_last, scale=fan_in ** -0.5, **layout)
    b = random_tensor((K,), **dict(layout, row_pad=0)) if bias else None
    return x, w, b


def output_shape(x, w, **conv_args):
    """The shape of F.conv2d(x, w, **conv_args), worked out by PyTorch on the meta device (no kernel runs)."""
    return F.conv2d(x.to("meta"), w.to("meta"), None, **conv_args).shape


def reference(x, w, b, grad_out: Optional[torch.Tensor] = None, **conv_args):
    """F.conv2d on float64 copies of the inputs, on their device: (output, gradients), where the gradients are
    those of (x, w[, b]) for grad_out, or () when grad_out is None."""
    x64, w64, b64 = (None if t is None else t.detach().double().requires_grad_(grad_out is not None)
                     for t in (x, w, b))
    y = F.conv2d(x64, w64, b64, **conv_args)
    if grad_out is None:
        return y.detach(), ()
    leaves = [t for t in (x64, w64, b64) if t is not None]
    return y.detach(), torch.autograd.grad(y, leaves, grad_out.double())
