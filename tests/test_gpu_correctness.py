"""Forward and all three gradients against F.conv2d on float64 copies of the same inputs, over a grid of shapes,
dtypes, layouts and every kernel family that is built. Results are NaN-poisoned before each kernel runs."""
import pytest
import torch

import conv2d_ext
from helpers import DTYPES, TOLERANCE, make_inputs, reference, rel_err, requires_gpu

pytestmark = requires_gpu

# id: N, C, H, W, K, R, S, stride, padding, dilation, groups
CASES = {
    "1x1": (2, 8, 9, 11, 16, 1, 1, 1, 0, 1, 1),
    "3x3_pad1": (2, 8, 13, 10, 12, 3, 3, 1, 1, 1, 1),
    "3x3_stride2": (3, 5, 15, 17, 7, 3, 3, 2, 1, 1, 1),
    "5x5_s3_p2": (1, 3, 20, 19, 4, 5, 5, 3, 2, 1, 1),
    "7x7_s2_p3": (2, 3, 23, 23, 8, 7, 7, 2, 3, 1, 1),
    "2x2": (2, 5, 8, 8, 3, 2, 2, 1, 0, 1, 1),
    "4x4_s2_p1": (2, 4, 16, 16, 4, 4, 4, 2, 1, 1, 1),
    "6x6_p2": (1, 3, 14, 14, 2, 6, 6, 1, 2, 1, 1),
    "nonsquare_3x5": (2, 6, 12, 14, 5, 3, 5, (1, 2), (1, 2), 1, 1),
    "nonsquare_1x7": (1, 4, 9, 16, 6, 1, 7, 1, (0, 3), 1, 1),
    "nonsquare_7x1": (1, 4, 16, 9, 6, 7, 1, 1, (3, 0), 1, 1),
    "dilation2": (2, 8, 16, 16, 8, 3, 3, 1, 2, 2, 1),
    "dilation_2x3_s2": (2, 4, 19, 21, 6, 3, 3, 2, 1, (2, 3), 1),
    "groups2": (2, 8, 10, 10, 12, 3, 3, 1, 1, 1, 2),
    "groups4_s2": (2, 16, 11, 11, 8, 3, 3, 2, 0, 1, 4),
    "depthwise_3x3": (2, 17, 12, 12, 17, 3, 3, 1, 1, 1, 17),
    "depthwise_x2_5x5_s2": (2, 6, 10, 10, 12, 5, 5, 2, 2, 1, 6),
    "depthwise_7x7": (1, 9, 15, 15, 9, 7, 7, 1, 3, 1, 9),
    "C1": (3, 1, 12, 12, 5, 3, 3, 1, 1, 1, 1),
    "K1": (2, 5, 12, 12, 1, 3, 3, 1, 1, 1, 1),
    "C3_K17": (2, 3, 9, 9, 17, 3, 3, 1, 1, 1, 1),
    "C17_K3": (2, 17, 9, 9, 3, 3, 3, 1, 0, 1, 1),
    "same_3x3": (2, 4, 10, 10, 6, 3, 3, 1, "same", 1, 1),
    "same_even_4x4": (2, 4, 10, 11, 6, 4, 4, 1, "same", 1, 1),
    "same_2x3_dil2": (1, 4, 9, 9, 3, 2, 3, 1, "same", 2, 1),
    "valid": (2, 4, 10, 10, 6, 3, 3, 1, "valid", 1, 1),
    "padding_beyond_kernel": (1, 4, 5, 6, 3, 3, 3, 1, 3, 1, 1),
    "stride_beyond_kernel": (2, 4, 17, 17, 5, 2, 2, 3, 0, 1, 1),
    "long_reduction_c64": (2, 64, 16, 16, 32, 3, 3, 1, 1, 1, 1),
    "odd_spatial_129x151": (1, 2, 129, 151, 3, 3, 3, 1, 1, 1, 1),
    "split_reduction": (8, 2, 64, 64, 2, 1, 1, 1, 0, 1, 1),
    "split_5x5_groups2": (16, 4, 64, 64, 4, 5, 5, 1, 2, 1, 2),  # split positions x 3 tap chunks x groups
    "split_same_even_4x4": (16, 2, 48, 48, 2, 4, 4, 1, "same", 1, 1),  # split positions, asymmetric padding
    "batch1": (1, 16, 20, 20, 16, 3, 3, 1, 1, 1, 1),
}
MODES = ["fp32", "tf32", "fp16", "bf16", "fp64"]


@pytest.fixture
def precision_mode(request):
    """Sets torch.backends.cudnn.allow_tf32 for the mode and restores it afterwards."""
    saved = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = request.param == "tf32"
    yield request.param
    torch.backends.cudnn.allow_tf32 = saved


def run_and_check(case, mode, channels_last, variant, with_bias):
    N, C, H, W, K, R, S, stride, padding, dilation, groups = case
    conv_args = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    seed = torch.randint(0, 2**31, ()).item()  # fresh inputs every run; the seed is in every failure message
    x, w, b = make_inputs(N, C, H, W, K, R, S, groups, DTYPES[mode], channels_last=channels_last, bias=with_bias,
                          seed=seed)
    leaves = [t.requires_grad_(True) for t in (x, w, b) if t is not None]

    y = conv2d_ext.conv2d(x, w, b, **conv_args, variant=variant)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    grad_out = torch.randn(y.shape, device="cuda").to(y.dtype).contiguous(memory_format=fmt)
    grads = torch.autograd.grad(y, leaves, grad_out)
    ref_y, ref_grads = reference(x, w, b, grad_out, **conv_args)

    assert y.dtype == x.dtype and y.shape == ref_y.shape
    if C > 1 and K > 1 and H * W > 1:  # unambiguous layouts only
        assert y.is_contiguous(memory_format=fmt), "output must take the input's memory format"
    tol = TOLERANCE[mode]
    for name, out, ref in zip(("output", "grad_input", "grad_weight", "grad_bias"), (y,) + grads, (ref_y,) + ref_grads):
        assert out.shape == ref.shape and out.dtype == x.dtype, name
        err = rel_err(out, ref)
        assert err <= tol, f"{name}: relative error {err:.3g} > {tol:g} (seed {seed})"


@pytest.mark.parametrize("variant", conv2d_ext.heuristics.AVAILABLE)
@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
@pytest.mark.parametrize("precision_mode", MODES, indirect=True)
@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_forward_and_gradients(case, precision_mode, layout, variant, poison):
    with_bias = list(CASES.values()).index(case) % 2 == 0  # half the cases with bias, half without
    run_and_check(case, precision_mode, layout == "nhwc", variant, with_bias)


@pytest.mark.parametrize("precision_mode", ["fp32", "bf16"], indirect=True)
def test_auto_variant(precision_mode, poison):
    """The heuristics' own choice, with bias, on a ResNet-like shape."""
    run_and_check((4, 32, 28, 28, 64, 3, 3, 1, 1, 1, 1), precision_mode, False, "auto", True)
