"""The user-facing API on CPU tensors: no GPU needed.

CPU tensors run PyTorch's own convolution, so here we check the package's shape rather than its kernels: the
import surface, the CPU fallback, the validation layer (conv2d_ext._args, which every CUDA call goes through),
the layout rule, the nn.Conv2d drop-in, convert(), explain() and autograd.
"""
import copy
import importlib
import os
import re
import subprocess
import sys
import textwrap
import types

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import conv2d_ext
from conv2d_ext import _args

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# PyTorch warns that padding='same' with an even kernel may copy the input; that is its business, not ours.
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths:UserWarning")


def randn(*shape, dtype=torch.float32):
    """Fresh random values (never zeros), so a result that ignores an input cannot pass."""
    return torch.randn(*shape, dtype=dtype)


# --------------------------------------------------------------------------------------------------------------
# Import surface: conv2d_ext.conv2d is the function, whatever was imported first.
# --------------------------------------------------------------------------------------------------------------

IMPORT_FIRST = [
    "import conv2d_ext.conv2d",
    "from conv2d_ext.conv2d import conv2d",
    "from conv2d_ext import conv2d",
    "import conv2d_ext",
    "import conv2d_ext.modules",
    "import conv2d_ext._args, conv2d_ext._ops, conv2d_ext.heuristics",
]

CHECKS = """
import sys, types
import conv2d_ext
from conv2d_ext.conv2d import conv2d as imported
module = sys.modules["conv2d_ext.conv2d"]
assert isinstance(conv2d_ext.conv2d, types.FunctionType), type(conv2d_ext.conv2d)
assert conv2d_ext.conv2d.__name__ == "conv2d"
assert conv2d_ext.conv2d.__module__ == "conv2d_ext.conv2d"
assert imported is conv2d_ext.conv2d
assert isinstance(module, types.ModuleType) and module is not conv2d_ext.conv2d
assert module.conv2d is conv2d_ext.conv2d and module.explain is conv2d_ext.explain
assert conv2d_ext.Conv2d.__module__ == "conv2d_ext.modules"
import conv2d_ext.conv2d as alias  # `import a.b as c` binds getattr(a, "b"): the function, not the module
assert alias is conv2d_ext.conv2d
print("ok")
"""


@pytest.mark.parametrize("first", IMPORT_FIRST, ids=lambda s: s.replace(" ", "_"))
def test_conv2d_attribute_is_the_function_in_a_fresh_interpreter(first):
    """The function shadows the submodule of the same name, and no import order undoes that."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result = subprocess.run([sys.executable, "-c", first + "\n" + CHECKS], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_public_names():
    """__all__ lists what the package docstring promises, and each is importable."""
    assert set(conv2d_ext.__all__) == {"conv2d", "explain", "Conv2d", "convert", "Conv2dError", "kernels",
                                       "heuristics", "__version__"}
    for name in conv2d_ext.__all__:
        assert getattr(conv2d_ext, name) is not None
    assert isinstance(conv2d_ext.heuristics, types.ModuleType)
    assert conv2d_ext.__version__ == "0.1.0"


def test_conv2d_error_is_both_value_error_and_runtime_error():
    """Code that catches F.conv2d's RuntimeErrors, or ValueErrors, catches ours too."""
    assert issubclass(conv2d_ext.Conv2dError, ValueError)
    assert issubclass(conv2d_ext.Conv2dError, RuntimeError)
    assert conv2d_ext.Conv2dError is _args.Conv2dError


# --------------------------------------------------------------------------------------------------------------
# CPU fallback: conv2d_ext.conv2d is F.conv2d on CPU tensors.
# --------------------------------------------------------------------------------------------------------------

# (input shape, weight shape, bias?, conv kwargs)
CPU_CASES = {
    "plain": ((2, 3, 9, 9), (4, 3, 3, 3), True, {}),
    "int_args": ((2, 3, 9, 9), (4, 3, 3, 3), True, dict(stride=2, padding=1, dilation=2)),
    "pair_args": ((2, 3, 11, 8), (4, 3, 3, 2), True, dict(stride=(2, 1), padding=(1, 2), dilation=(1, 2))),
    "list_args": ((1, 2, 7, 7), (3, 2, 3, 3), True, dict(stride=[1, 2], padding=[0, 1], dilation=[2, 1])),
    "same_odd": ((2, 3, 8, 8), (4, 3, 3, 3), True, dict(padding="same")),
    "same_even_dilated": ((2, 3, 8, 9), (4, 3, 4, 2), True, dict(padding="same", dilation=(1, 3))),
    "valid": ((2, 3, 8, 8), (4, 3, 3, 3), True, dict(padding="valid")),
    "groups": ((2, 6, 8, 8), (9, 2, 3, 3), True, dict(groups=3, padding=1)),
    "depthwise": ((2, 6, 8, 8), (6, 1, 3, 3), True, dict(groups=6, padding=1)),
    "strided_1x1": ((2, 5, 9, 9), (7, 5, 1, 1), True, dict(stride=2)),
    "no_bias": ((2, 3, 8, 8), (4, 3, 3, 3), False, dict(padding=1)),
    "unbatched": ((3, 8, 8), (4, 3, 3, 3), True, dict(padding=1)),
    "unbatched_same_groups": ((4, 7, 6), (4, 2, 2, 3), False, dict(padding="same", groups=2)),
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["fp32", "fp64"])
@pytest.mark.parametrize("case", list(CPU_CASES), ids=list(CPU_CASES))
def test_cpu_tensors_run_pytorch_conv2d(case, dtype):
    """On CPU tensors conv2d_ext.conv2d gives exactly what F.conv2d gives, for every argument form."""
    x_shape, w_shape, has_bias, kwargs = CPU_CASES[case]
    x, w = randn(*x_shape, dtype=dtype), randn(*w_shape, dtype=dtype)
    b = randn(w_shape[0], dtype=dtype) if has_bias else None
    out = conv2d_ext.conv2d(x, w, b, **kwargs)
    ref = F.conv2d(x, w, b, **kwargs)
    assert out.shape == ref.shape and out.dtype == dtype and out.device.type == "cpu"
    torch.testing.assert_close(out, ref)


def test_cpu_positional_arguments_match_f_conv2d():
    """The positional order is F.conv2d's: input, weight, bias, stride, padding, dilation, groups."""
    x, w, b = randn(2, 4, 10, 10, dtype=torch.float64), randn(6, 2, 3, 3, dtype=torch.float64), randn(6, dtype=torch.float64)
    torch.testing.assert_close(conv2d_ext.conv2d(x, w, b, 2, 1, 2, 2), F.conv2d(x, w, b, 2, 1, 2, 2))


@pytest.mark.parametrize("variant", ["direct", "tiled", "implicit_gemm", {"forward": "direct"}],
                         ids=["direct", "tiled", "implicit_gemm", "dict"])
def test_forcing_a_variant_on_cpu_tensors_raises(variant):
    """Our kernels are CUDA-only: a forced variant on CPU tensors is an error that says so."""
    x, w = randn(1, 2, 5, 5), randn(3, 2, 3, 3)
    with pytest.raises(ValueError, match=r"variant=.*needs CUDA tensors"):
        conv2d_ext.conv2d(x, w, variant=variant)


def test_non_tensor_input_is_rejected_by_conv2d():
    """A non-tensor input gets our error naming the input, not an AttributeError from deep inside."""
    with pytest.raises(conv2d_ext.Conv2dError, match=r"input must be a torch\.Tensor, got list"):
        conv2d_ext.conv2d([[1.0]], randn(1, 1, 1, 1))


# --------------------------------------------------------------------------------------------------------------
# The validation layer: _args.normalize, which every CUDA call goes through before a kernel runs.
# --------------------------------------------------------------------------------------------------------------

def good_call(**override):
    """A valid batched call (N=2, C=4, 8x8, K=6, 3x3), with some arguments replaced; tensors built fresh."""
    call = dict(input=randn(2, 4, 8, 8), weight=randn(6, 4, 3, 3), bias=randn(6),
                stride=1, padding=0, dilation=1, groups=1)
    call.update({k: (v() if callable(v) else v) for k, v in override.items()})
    return call


# id -> (overrides, the message the error must carry)
BAD_CALLS = {
    "input_2d": (dict(input=lambda: randn(4, 8)), r"expected input to be 3-D \(unbatched\) or 4-D .* got 2-D"),
    "input_5d": (dict(input=lambda: randn(1, 2, 4, 8, 8)), r"input to be 3-D .* got 5-D"),
    "input_3d_unbatched_is_callers_job": (dict(input=lambda: randn(4, 8, 8)), r"input to be 3-D .* got 3-D"),
    "weight_3d": (dict(weight=lambda: randn(6, 4, 3)), r"weight must be 4-D .* got 3-D with shape \(6, 4, 3\)"),
    "input_int64": (dict(input=lambda: torch.ones(2, 4, 8, 8, dtype=torch.int64),
                         weight=lambda: torch.ones(6, 4, 3, 3, dtype=torch.int64), bias=None),
                    r"input dtype torch\.int64 is not supported"),
    "input_complex": (dict(input=lambda: randn(2, 4, 8, 8, dtype=torch.complex64),
                           weight=lambda: randn(6, 4, 3, 3, dtype=torch.complex64), bias=None),
                      r"input dtype torch\.complex64 is not supported"),
    "weight_dtype_mismatch": (dict(weight=lambda: randn(6, 4, 3, 3, dtype=torch.float64)),
                              r"weight dtype torch\.float64 does not match input dtype torch\.float32"),
    "bias_dtype_mismatch": (dict(bias=lambda: randn(6, dtype=torch.float16)),
                            r"bias dtype torch\.float16 does not match input dtype torch\.float32"),
    "bias_wrong_length": (dict(bias=lambda: randn(5)), r"bias must be 1-D with 6 elements .* got shape \(5,\)"),
    "bias_2d": (dict(bias=lambda: randn(6, 1)), r"bias must be 1-D with 6 elements .* got shape \(6, 1\)"),
    "bias_not_tensor": (dict(bias=[0.0] * 6), r"bias must be a torch\.Tensor, got list"),
    "channels_not_divisible_by_groups": (dict(weight=lambda: randn(6, 1, 3, 3), groups=3),
                                         r"input channels \(4\) must be divisible by groups \(3\)"),
    "out_channels_not_divisible_by_groups": (dict(weight=lambda: randn(6, 1, 3, 3), groups=4),
                                             r"out channels \(weight\.shape\[0\] = 6\) must be divisible by groups \(4\)"),
    "weight_in_channels_times_groups": (dict(weight=lambda: randn(6, 1, 3, 3), groups=2),
                                        r"weight of shape \(6, 1, 3, 3\) with groups=2 expects 2 input channels, "
                                        r"but input has 4"),
    "weight_in_channels_ungrouped": (dict(weight=lambda: randn(6, 3, 3, 3)), r"expects 3 input channels, but input has 4"),
    "weight_no_out_channels": (dict(weight=lambda: randn(0, 4, 3, 3), bias=None),
                               r"weight must have at least groups \(1\) out channels, got weight\.shape\[0\] = 0"),
    "depthwise_no_out_channels": (dict(weight=lambda: randn(0, 1, 3, 3), groups=4, bias=None),
                                  r"at least groups \(4\) out channels, got weight\.shape\[0\] = 0"),
    "input_no_channels": (dict(input=lambda: randn(2, 0, 8, 8), weight=lambda: randn(6, 0, 3, 3)),
                          r"input must have at least one channel, got shape \(2, 0, 8, 8\)"),
    "groups_0": (dict(groups=0), r"groups must be a positive int, got 0"),
    "groups_negative": (dict(groups=-2), r"groups must be a positive int, got -2"),
    "groups_float": (dict(groups=2.0), r"groups must be a positive int, got 2\.0"),
    "stride_0": (dict(stride=0), r"stride must be positive, got \(0, 0\)"),
    "stride_pair_0": (dict(stride=(1, 0)), r"stride must be positive, got \(1, 0\)"),
    "stride_triple": (dict(stride=(1, 1, 1)), r"stride must be an int or a pair of ints"),
    "stride_bool": (dict(stride=True), r"stride must be an int or a pair of ints, got True"),
    "padding_negative": (dict(padding=-1), r"padding must be non-negative, got -1"),
    "padding_pair_negative": (dict(padding=(0, -1)), r"padding must be non-negative, got \(0, -1\)"),
    "padding_float": (dict(padding=1.5), r"padding must be an int or a pair of ints, got 1\.5"),
    "dilation_0": (dict(dilation=0), r"dilation must be positive, got \(0, 0\)"),
    "dilation_pair_0": (dict(dilation=(0, 1)), r"dilation must be positive, got \(0, 1\)"),
    "padding_bad_string": (dict(padding="full"), r"padding must be 'same', 'valid', an int or a pair of ints, got 'full'"),
    "padding_same_strided": (dict(padding="same", stride=2), r"padding='same' is not supported for strided"),
    "padding_same_strided_one_axis": (dict(padding="same", stride=(1, 2)), r"padding='same' is not supported"),
    "empty_output_big_kernel": (dict(input=lambda: randn(2, 4, 3, 3), weight=lambda: randn(6, 4, 6, 6), padding=1),
                                r"output size is empty: input 3x3 padded to 5x5 is smaller than the dilated kernel 6x6"),
    "empty_output_dilation": (dict(dilation=(4, 1)), r"output size is empty: .* dilated kernel 9x3"),
    "empty_output_valid": (dict(input=lambda: randn(2, 4, 2, 8), padding="valid"), r"output size is empty"),
    "input_not_tensor": (dict(input=[[1.0]]), r"input must be a torch\.Tensor, got list"),
    "input_float": (dict(input=3.0), r"input must be a torch\.Tensor, got float"),
    "weight_not_tensor": (dict(weight=None), r"weight must be a torch\.Tensor, got NoneType"),
}


@pytest.mark.parametrize("case", list(BAD_CALLS), ids=list(BAD_CALLS))
def test_normalize_rejects_bad_calls_naming_the_argument(case):
    """Every bad call raises Conv2dError (a ValueError and a RuntimeError) whose message names what is wrong."""
    overrides, message = BAD_CALLS[case]
    call = good_call(**overrides)
    with pytest.raises(conv2d_ext.Conv2dError, match=message) as info:
        _args.normalize(**call)
    assert isinstance(info.value, ValueError) and isinstance(info.value, RuntimeError)
    assert str(info.value).startswith("conv2d_ext: ")


def test_normalize_accepts_a_good_call():
    """The base call of the table above is valid, so each bad case fails for its own reason only. normalize returns
    the Problem: sizes, geometry, dtype, layout and the flags it is given."""
    geo = _args.normalize(**good_call())
    assert geo == _args.Problem(N=2, C=4, H=8, W=8, K=6, R=3, S=3, P=6, Q=6, stride=(1, 1), padding=(0, 0, 0, 0),
                                dilation=(1, 1), groups=1, dtype="float32", channels_last=False, allow_tf32=True,
                                capability=(0, 0))
    assert geo.output_size == (6, 6) and geo.input_size == (2, 4, 8, 8) and geo.weight_size == (6, 4, 3, 3)
    assert conv2d_ext.heuristics.Problem is _args.Problem


def test_normalize_records_layout_dtype_and_flags():
    """The layout is decided once (channels-last if input or weight is); dtype, allow_tf32 and capability are
    carried as given."""
    x, w = channels_last(randn(1, 4, 6, 6)).double(), randn(6, 2, 3, 3).double()
    p = _args.normalize(x, w, None, 1, 1, 1, 2, allow_tf32=False, capability=(8, 6))
    assert (p.channels_last, p.dtype, p.allow_tf32, p.capability, p.groups) == (True, "float64", False, (8, 6), 2)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16],
                         ids=["fp32", "fp64", "fp16", "bf16"])
def test_normalize_accepts_every_supported_dtype(dtype):
    """float32, float64, float16 and bfloat16 all pass validation, with or without bias."""
    x, w, b = randn(1, 2, 5, 5).to(dtype), randn(3, 2, 3, 3).to(dtype), randn(3).to(dtype)
    assert _args.normalize(x, w, b, 1, 1, 1, 1).output_size == (5, 5)
    assert _args.normalize(x, w, None, 1, 1, 1, 1).output_size == (5, 5)


# (kernel R x S, dilation) -> expected (top, bottom, left, right)
SAME_PADDING = {
    "3x3": ((3, 3), (1, 1), (1, 1, 1, 1)),
    "1x1": ((1, 1), (1, 1), (0, 0, 0, 0)),
    "4x4_even": ((4, 4), (1, 1), (1, 2, 1, 2)),
    "2x2_even": ((2, 2), (1, 1), (0, 1, 0, 1)),
    "3x4_mixed": ((3, 4), (1, 1), (1, 1, 1, 2)),
    "3x3_dilation2": ((3, 3), (2, 2), (2, 2, 2, 2)),
    "2x2_dilation3_odd_total": ((2, 2), (3, 3), (1, 2, 1, 2)),
    "2x2_dilation2_even_total": ((2, 2), (2, 2), (1, 1, 1, 1)),
    "4x2_dilation_2_3": ((4, 2), (2, 3), (3, 3, 1, 2)),
    "5x1_dilation_1_4": ((5, 1), (1, 4), (2, 2, 0, 0)),
}


@pytest.mark.parametrize("case", list(SAME_PADDING), ids=list(SAME_PADDING))
def test_same_padding_matches_pytorch(case):
    """padding='same': an even total splits evenly, an odd one puts the extra pixel at the bottom/right, as
    F.conv2d does (checked by padding explicitly and comparing values, not only the output size)."""
    (R, S), dilation, expected = SAME_PADDING[case]
    x, w = randn(2, 3, 9, 10, dtype=torch.float64), randn(4, 3, R, S, dtype=torch.float64)
    geo = _args.normalize(x, w, None, 1, "same", dilation, 1)
    assert geo.padding == expected
    assert geo.output_size == (9, 10)
    ref = F.conv2d(x, w, padding="same", dilation=dilation)
    assert tuple(ref.shape[-2:]) == geo.output_size
    top, bottom, left, right = geo.padding
    ours = F.conv2d(F.pad(x, (left, right, top, bottom)), w, dilation=dilation)
    torch.testing.assert_close(ours, ref)


def test_valid_padding_is_zero():
    """padding='valid' is no padding."""
    geo = _args.normalize(randn(1, 2, 7, 6), randn(3, 2, 3, 2), None, 1, "valid", 1, 1)
    assert geo.padding == (0, 0, 0, 0) and geo.output_size == (5, 5)


# (input H x W, kernel R x S, stride, padding, dilation, groups)
GEOMETRIES = {
    "plain": ((8, 8), (3, 3), 1, 0, 1, 1),
    "stride2_pad1": ((9, 9), (3, 3), 2, 1, 1, 1),
    "stride_pair": ((10, 7), (3, 3), (3, 2), (1, 0), 1, 1),
    "stride_gt_kernel": ((11, 11), (1, 1), 4, 0, 1, 1),
    "dilation2": ((12, 12), (3, 3), 1, 0, 2, 1),
    "dilation_pair_stride_pair": ((15, 13), (3, 2), (2, 3), (2, 1), (3, 2), 1),
    "rect_kernel": ((6, 9), (1, 5), 1, (0, 2), 1, 1),
    "kernel_equals_input": ((5, 5), (5, 5), 1, 0, 1, 1),
    "pad_bigger_than_kernel": ((4, 4), (3, 3), 1, 3, 1, 1),
    "one_tuple": ((8, 8), (3, 3), (2,), (1,), (1,), 1),
    "grouped": ((8, 8), (3, 3), 2, 1, 1, 2),
}


@pytest.mark.parametrize("case", list(GEOMETRIES), ids=list(GEOMETRIES))
def test_output_size_matches_f_conv2d(case):
    """Problem.output_size is F.conv2d's output shape; stride/padding/dilation come back as full tuples."""
    (H, W), (R, S), stride, padding, dilation, groups = GEOMETRIES[case]
    x, w = randn(2, 4, H, W), randn(6, 4 // groups, R, S)
    geo = _args.normalize(x, w, None, stride, padding, dilation, groups)
    ref = F.conv2d(x, w, None, stride, padding, dilation, groups)
    assert geo.output_size == tuple(ref.shape[-2:])
    assert len(geo.stride) == 2 and len(geo.dilation) == 2 and len(geo.padding) == 4
    assert all(isinstance(v, int) for v in geo.stride + geo.dilation + geo.padding)
    assert geo.groups == groups


def test_problem_is_frozen():
    """A Problem is a value: it cannot be modified after normalize returns it."""
    geo = _args.normalize(**good_call())
    with pytest.raises(Exception):
        geo.groups = 2


# --------------------------------------------------------------------------------------------------------------
# Memory format: the layout PyTorch gives a convolution's output.
# --------------------------------------------------------------------------------------------------------------

def channels_last(t):
    return t.contiguous(memory_format=torch.channels_last)


# id -> (input, weight, expected format)
LAYOUTS = {
    "nchw_input_nchw_weight": (lambda: randn(2, 3, 4, 5), lambda: randn(6, 3, 3, 3), torch.contiguous_format),
    "nhwc_input_nchw_weight": (lambda: channels_last(randn(2, 3, 4, 5)), lambda: randn(6, 3, 3, 3),
                               torch.channels_last),
    "nchw_input_nhwc_weight": (lambda: randn(2, 3, 4, 5), lambda: channels_last(randn(6, 3, 3, 3)),
                               torch.channels_last),
    "nhwc_both": (lambda: channels_last(randn(2, 3, 4, 5)), lambda: channels_last(randn(6, 3, 3, 3)),
                  torch.channels_last),
    "ambiguous_c1": (lambda: randn(2, 1, 4, 5), lambda: randn(6, 1, 3, 3), torch.contiguous_format),
    "ambiguous_h1w1": (lambda: randn(2, 3, 1, 1), lambda: randn(6, 3, 1, 1), torch.contiguous_format),
    "permuted_view_nhwc": (lambda: randn(2, 4, 5, 3).permute(0, 3, 1, 2), lambda: randn(6, 3, 3, 3),
                           torch.channels_last),
}


@pytest.mark.parametrize("case", list(LAYOUTS), ids=list(LAYOUTS))
def test_memory_format(case):
    """Channels-last if input or weight is; contiguous NCHW and ambiguous strides are NCHW."""
    make_x, make_w, expected = LAYOUTS[case]
    assert _args.memory_format(make_x(), make_w()) == expected


@pytest.mark.parametrize("shape", [(2, 1, 4, 5), (2, 3, 1, 1), (1, 1, 1, 1)], ids=["C1", "H1W1", "all1"])
def test_ambiguous_tensors_are_nchw(shape):
    """A tensor contiguous in both layouts counts as NCHW (PyTorch's rule)."""
    t = randn(*shape)
    assert t.is_contiguous() and t.is_contiguous(memory_format=torch.channels_last)
    assert not _args.strides_like_channels_last(t)


STRIDED = {
    "contiguous": lambda: randn(2, 3, 4, 5),
    "channels_last": lambda: channels_last(randn(2, 3, 4, 5)),
    "channels_last_c1": lambda: channels_last(randn(2, 1, 4, 5)),
    "channels_last_h1w1": lambda: channels_last(randn(2, 3, 1, 1)),
    "contiguous_n1": lambda: randn(1, 3, 4, 5),
    "channels_last_n1": lambda: channels_last(randn(1, 3, 4, 5)),
    "nhwc_sliced_w": lambda: channels_last(randn(2, 3, 4, 10))[..., ::2],
    "nchw_sliced_c": lambda: randn(2, 6, 4, 5)[:, ::2],
    "transposed_hw": lambda: randn(2, 3, 5, 4).transpose(2, 3),
    "transposed_cw": lambda: randn(1, 5, 1, 3).transpose(1, 3),
    "expanded_c": lambda: randn(2, 1, 4, 5).expand(2, 3, 4, 5),
    "empty_batch": lambda: channels_last(randn(0, 3, 4, 5)),
    "3d": lambda: randn(3, 4, 5),
}


@pytest.mark.parametrize("case", list(STRIDED), ids=list(STRIDED))
def test_strides_like_channels_last_follows_pytorch(case):
    """strides_like_channels_last agrees with PyTorch's suggest_memory_format on assorted strides."""
    from torch._prims_common import suggest_memory_format

    t = STRIDED[case]()
    assert _args.strides_like_channels_last(t) == (suggest_memory_format(t) == torch.channels_last)


# --------------------------------------------------------------------------------------------------------------
# conv2d_ext.Conv2d: the nn.Conv2d drop-in.
# --------------------------------------------------------------------------------------------------------------

MODULE_CONFIG = dict(in_channels=4, out_channels=6, kernel_size=(3, 2), stride=(2, 1), padding=(1, 2),
                     dilation=(1, 2), groups=2, bias=True, padding_mode="reflect")


def test_conv2d_module_is_an_nn_conv2d():
    """isinstance checks written for nn.Conv2d still hold."""
    assert issubclass(conv2d_ext.Conv2d, nn.Conv2d)
    assert isinstance(conv2d_ext.Conv2d(2, 3, 3), nn.Conv2d)


def test_conv2d_module_takes_nn_conv2d_arguments():
    """Same constructor (positional and keyword), same attributes, same initialisation from the same seed."""
    torch.manual_seed(0)
    ref = nn.Conv2d(**MODULE_CONFIG)
    torch.manual_seed(0)
    ours = conv2d_ext.Conv2d(**MODULE_CONFIG)
    for attr in ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups",
                 "padding_mode", "transposed", "output_padding"):
        assert getattr(ours, attr) == getattr(ref, attr), attr
    torch.testing.assert_close(ours.weight, ref.weight, rtol=0, atol=0)
    torch.testing.assert_close(ours.bias, ref.bias, rtol=0, atol=0)
    positional = conv2d_ext.Conv2d(4, 6, 3, 1, 1, 1, 2, False, "zeros")
    assert positional.bias is None and positional.groups == 2 and positional.weight.shape == (6, 2, 3, 3)
    assert ours.variant == "auto"
    assert conv2d_ext.Conv2d(4, 6, 3, variant="direct").variant == "direct"


def test_conv2d_module_dtype_and_device_kwargs():
    """factory kwargs (dtype, device) pass through to nn.Conv2d."""
    m = conv2d_ext.Conv2d(2, 3, 3, dtype=torch.float64, device="cpu")
    assert m.weight.dtype == torch.float64 and m.bias.dtype == torch.float64 and m.weight.device.type == "cpu"


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
def test_state_dict_interchangeable_with_nn_conv2d(bias):
    """Same keys and values as nn.Conv2d; either loads the other's state_dict strictly."""
    config = dict(MODULE_CONFIG, bias=bias)
    ref, ours = nn.Conv2d(**config), conv2d_ext.Conv2d(**config)
    assert list(ours.state_dict()) == list(ref.state_dict())
    ours.load_state_dict(ref.state_dict())
    for key, value in ref.state_dict().items():
        torch.testing.assert_close(ours.state_dict()[key], value, rtol=0, atol=0)
    fresh = nn.Conv2d(**config)
    fresh.load_state_dict(ours.state_dict())
    for key, value in ours.state_dict().items():
        torch.testing.assert_close(fresh.state_dict()[key], value, rtol=0, atol=0)


MODULE_FORWARD = {
    "pad1": dict(padding=1),
    "pad_pair_strided": dict(padding=(2, 1), stride=2),
    "same": dict(padding="same", dilation=(2, 1)),
    "valid_grouped_no_bias": dict(padding="valid", groups=2, bias=False),
}


@pytest.mark.parametrize("config", list(MODULE_FORWARD), ids=list(MODULE_FORWARD))
@pytest.mark.parametrize("padding_mode", ["zeros", "reflect", "replicate", "circular"])
def test_conv2d_module_matches_nn_conv2d_on_cpu(padding_mode, config):
    """Every padding_mode gives nn.Conv2d's output with the same parameters, batched and unbatched."""
    kwargs = dict(in_channels=4, out_channels=6, kernel_size=3, padding_mode=padding_mode, dtype=torch.float64)
    kwargs.update(MODULE_FORWARD[config])
    ref = nn.Conv2d(**kwargs)
    ours = conv2d_ext.Conv2d(**kwargs)
    ours.load_state_dict(ref.state_dict())
    x = randn(2, 4, 9, 8, dtype=torch.float64)
    torch.testing.assert_close(ours(x), ref(x))
    torch.testing.assert_close(ours(x[0]), ref(x[0]))


def test_conv2d_module_with_forced_variant_raises_on_cpu():
    """A module forced onto one of our kernel families cannot run CPU tensors, and says so."""
    m = conv2d_ext.Conv2d(2, 3, 3, variant="direct")
    with pytest.raises(ValueError, match="needs CUDA tensors"):
        m(randn(1, 2, 5, 5))


def test_extra_repr_mentions_variant_only_when_forced():
    """repr is nn.Conv2d's for variant='auto', and adds the variant otherwise."""
    auto = conv2d_ext.Conv2d(4, 6, 3, padding=1)
    forced = conv2d_ext.Conv2d(4, 6, 3, padding=1, variant="direct")
    assert auto.extra_repr() == nn.Conv2d(4, 6, 3, padding=1).extra_repr()
    assert "variant" not in repr(auto)
    assert forced.extra_repr() == auto.extra_repr() + ", variant='direct'"
    assert "variant='direct'" in repr(forced)


# --------------------------------------------------------------------------------------------------------------
# convert(): swap every nn.Conv2d in a model, in place, sharing parameters.
# --------------------------------------------------------------------------------------------------------------

class DoubledConv(nn.Conv2d):
    """A subclass of nn.Conv2d whose forward is not a plain convolution: convert must leave it alone."""

    def forward(self, x):
        return 2 * super().forward(x)


class Block(nn.Module):
    """A custom module holding convs directly and in a ModuleList."""

    def __init__(self):
        super().__init__()
        self.grouped = nn.Conv2d(8, 8, 3, padding=1, groups=4, bias=False)
        self.convs = nn.ModuleList([
            nn.Conv2d(8, 8, 1),
            nn.Conv2d(8, 8, 3, padding=1, padding_mode="reflect"),
            DoubledConv(8, 8, 3, padding=1),
        ])
        self.up = nn.ConvTranspose2d(8, 8, 3, padding=1)  # not an nn.Conv2d: untouched

    def forward(self, x):
        x = torch.relu(self.grouped(x))
        for conv in self.convs:
            x = torch.relu(conv(x))
        return self.up(x)


def small_model():
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.Sequential(Block(), nn.Conv2d(8, 8, 3, stride=2, padding=1, padding_mode="circular")),
        nn.Conv2d(8, 4, 1, bias=False),
        nn.Conv2d(4, 4, (3, 1), padding="same", dilation=2, padding_mode="replicate"),
    )


def exact_type_count(model, cls):
    return sum(type(m) is cls for m in model.modules())


def test_convert_replaces_every_nn_conv2d_in_place():
    """Every plain nn.Conv2d becomes conv2d_ext.Conv2d; the model object is returned and modified in place."""
    model = small_model()
    n_convs = exact_type_count(model, nn.Conv2d)
    assert n_convs == 7
    assert conv2d_ext.convert(model) is model
    assert exact_type_count(model, nn.Conv2d) == 0
    assert exact_type_count(model, conv2d_ext.Conv2d) == n_convs
    assert all(m.variant == "auto" for m in model.modules() if isinstance(m, conv2d_ext.Conv2d))


def test_convert_leaves_subclasses_and_other_modules_alone():
    """Subclasses of nn.Conv2d (their forward may differ) and non-Conv2d modules keep their type and identity."""
    model = small_model()
    doubled, up, bn = model[2][0].convs[2], model[2][0].up, model[1]
    conv2d_ext.convert(model)
    assert model[2][0].convs[2] is doubled and type(doubled) is DoubledConv
    assert model[2][0].up is up and type(up) is nn.ConvTranspose2d
    assert model[1] is bn


def test_convert_shares_parameters_and_buffers():
    """The converted model holds the very same Parameter (and buffer) objects: optimizers keep working."""
    model = small_model()
    params = dict(model.named_parameters())
    buffers = dict(model.named_buffers())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    conv2d_ext.convert(model)
    assert list(dict(model.named_parameters())) == list(params)
    for name, p in model.named_parameters():
        assert p is params[name], name
    for name, b in model.named_buffers():
        assert b is buffers[name], name
    optimized = [p for group in optimizer.param_groups for p in group["params"]]
    assert {id(p) for p in optimized} == {id(p) for p in model.parameters()}


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_convert_keeps_the_forward_output(mode):
    """On CPU the converted model computes what it computed before, in eval and train mode."""
    torch.manual_seed(0)
    model = small_model().double()
    getattr(model, mode)()
    ref_model = copy.deepcopy(model)
    x = randn(2, 3, 12, 12, dtype=torch.float64)
    conv2d_ext.convert(model)
    assert all(m.training == (mode == "train") for m in model.modules())
    torch.testing.assert_close(model(x), ref_model(x))


def test_convert_a_bare_conv2d_returns_the_converted_module():
    """An nn.Conv2d passed directly comes back as a conv2d_ext.Conv2d with the same parameters and config."""
    conv = nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2, padding_mode="replicate")
    new = conv2d_ext.convert(conv, variant="direct")
    assert type(new) is conv2d_ext.Conv2d
    assert new.weight is conv.weight and new.bias is conv.bias
    assert (new.stride, new.padding, new.groups, new.padding_mode) == ((2, 2), (1, 1), 2, "replicate")
    assert new.variant == "direct"
    x = randn(1, 4, 7, 7)
    with pytest.raises(ValueError, match="needs CUDA tensors"):  # forced variant on CPU tensors
        new(x)
    auto = conv2d_ext.convert(conv)
    torch.testing.assert_close(auto(x), conv(x))


def test_convert_passes_variant_to_every_conv():
    """convert(model, variant=...) forces that variant on each converted conv."""
    model = conv2d_ext.convert(small_model(), variant={"forward": "direct"})
    variants = [m.variant for m in model.modules() if isinstance(m, conv2d_ext.Conv2d)]
    assert len(variants) == 7 and all(v == {"forward": "direct"} for v in variants)


def test_convert_twice_is_harmless():
    """A second convert changes nothing: same modules, same parameters, same output."""
    torch.manual_seed(0)
    model = conv2d_ext.convert(small_model().eval())
    modules = list(model.modules())
    params = list(model.parameters())
    x = randn(1, 3, 10, 10)
    before = model(x)
    assert conv2d_ext.convert(model) is model
    assert all(a is b for a, b in zip(model.modules(), modules)) and len(list(model.modules())) == len(modules)
    assert all(a is b for a, b in zip(model.parameters(), params))
    torch.testing.assert_close(model(x), before)
    converted = conv2d_ext.Conv2d(2, 3, 3)
    assert conv2d_ext.convert(converted) is converted


def test_convert_keeps_hooks():
    """Forward hooks registered on a conv before conversion still fire afterwards."""
    model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.ReLU())
    calls = []
    model[0].register_forward_hook(lambda module, inputs, output: calls.append(type(module)))
    conv2d_ext.convert(model)
    model(randn(1, 2, 5, 5))
    assert calls == [conv2d_ext.Conv2d]


def test_convert_a_conv_registered_twice_in_one_parent():
    """A conv used twice in one Sequential (weight sharing) is converted in both places, still as one module."""
    conv = nn.Conv2d(3, 3, 3, padding=1)
    model = nn.Sequential(conv, nn.ReLU(), conv)
    conv2d_ext.convert(model)
    assert type(model[0]) is conv2d_ext.Conv2d
    assert type(model[2]) is conv2d_ext.Conv2d
    assert model[0] is model[2]


def test_convert_resnet18_training_step_matches():
    """A converted torchvision resnet18 converts every conv and takes the same CPU SGD step as the original."""
    torchvision = pytest.importorskip("torchvision", reason="torchvision is not installed")
    torch.manual_seed(0)
    ref = torchvision.models.resnet18(weights=None, num_classes=10)
    model = copy.deepcopy(ref)
    n_convs = exact_type_count(ref, nn.Conv2d)
    assert n_convs == 20
    assert conv2d_ext.convert(model) is model
    assert exact_type_count(model, nn.Conv2d) == 0 and exact_type_count(model, conv2d_ext.Conv2d) == n_convs

    x, target = randn(4, 3, 64, 64), torch.randint(0, 10, (4,))
    losses = []
    for m in (ref, model):
        m.train()
        optimizer = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
        optimizer.zero_grad()
        loss = F.cross_entropy(m(x), target)
        loss.backward()
        optimizer.step()
        losses.append(loss.detach())
    torch.testing.assert_close(losses[1], losses[0], rtol=1e-5, atol=1e-5)
    for (name, p_ref), (_, p) in zip(ref.named_parameters(), model.named_parameters()):
        torch.testing.assert_close(p.grad, p_ref.grad, rtol=1e-5, atol=1e-5, msg=name)
        torch.testing.assert_close(p, p_ref, rtol=1e-5, atol=1e-5, msg=name)
    for (name, b_ref), (_, b) in zip(ref.named_buffers(), model.named_buffers()):
        torch.testing.assert_close(b, b_ref, rtol=1e-5, atol=1e-5, msg=name)


# --------------------------------------------------------------------------------------------------------------
# explain() and autograd on CPU.
# --------------------------------------------------------------------------------------------------------------

def test_explain_on_cpu_tensors_names_each_pass():
    """One line per pass (forward, backward_data, backward_weight), saying PyTorch runs CPU tensors."""
    text = conv2d_ext.explain(randn(1, 2, 5, 5), randn(3, 2, 3, 3), padding=1)
    lines = text.splitlines()
    assert len(lines) == 3
    for line, pass_ in zip(lines, ("forward", "backward_data", "backward_weight")):
        assert line.startswith(pass_ + ": ")
        assert "PyTorch" in line


CPU_GRAD_CASES = {
    "plain_bias": ((2, 3, 7, 7), (4, 3, 3, 3), True, dict(padding=1)),
    "strided_dilated": ((2, 4, 11, 9), (6, 2, 3, 2), True, dict(stride=(2, 1), dilation=(1, 2), groups=2)),
    "same_no_bias": ((1, 3, 8, 8), (3, 3, 4, 4), False, dict(padding="same")),
    "unbatched": ((3, 6, 6), (2, 3, 3, 3), True, dict(padding="valid")),
}


@pytest.mark.parametrize("case", list(CPU_GRAD_CASES), ids=list(CPU_GRAD_CASES))
def test_autograd_on_cpu_matches_f_conv2d(case):
    """Gradients with respect to input, weight and bias through conv2d_ext.conv2d equal F.conv2d's."""
    x_shape, w_shape, has_bias, kwargs = CPU_GRAD_CASES[case]
    x, w = randn(*x_shape, dtype=torch.float64), randn(*w_shape, dtype=torch.float64)
    b = randn(w_shape[0], dtype=torch.float64) if has_bias else None
    leaves = [t for t in (x, w, b) if t is not None]
    for t in leaves:
        t.requires_grad_(True)
    out = conv2d_ext.conv2d(x, w, b, **kwargs)
    grad_out = randn(*out.shape, dtype=torch.float64)
    ours = torch.autograd.grad(out, leaves, grad_out)
    ref = torch.autograd.grad(F.conv2d(x, w, b, **kwargs), leaves, grad_out)
    for g, r in zip(ours, ref):
        torch.testing.assert_close(g, r)
        assert r.norm() > 0


def test_autograd_only_where_asked():
    """A frozen weight gets no gradient; the input still does (CPU fallback keeps autograd's bookkeeping)."""
    x = randn(1, 2, 6, 6, dtype=torch.float64).requires_grad_(True)
    w = randn(3, 2, 3, 3, dtype=torch.float64)
    out = conv2d_ext.conv2d(x, w)
    out.sum().backward()
    assert w.grad is None and x.grad is not None
    torch.testing.assert_close(x.grad, torch.autograd.grad(F.conv2d(x, w).sum(), x)[0])


def test_numpy_integers_are_accepted_like_f_conv2d():
    """F.conv2d takes anything with __index__ (NumPy integers included) for stride, padding, dilation, groups."""
    np = pytest.importorskip("numpy", reason="numpy is not installed")
    x, w = torch.randn(1, 4, 9, 9), torch.randn(4, 2, 3, 3)
    geo = conv2d_ext._args.normalize(x, w, None, np.int64(2), (np.int32(1), 2), np.int64(1), np.int64(2))
    assert geo.stride == (2, 2) and geo.padding == (1, 1, 2, 2) and geo.groups == 2
    assert all(type(v) is int for v in geo.stride + geo.padding + geo.dilation + (geo.groups,))
    assert geo.output_size == tuple(F.conv2d(x, w, None, 2, (1, 2), 1, 2).shape[2:])


# --------------------------------------------------------------------------------------------------------------
# What a new user hit: the same validation on every device, explain and modules check the variant early, and
# converted layers show in print(model).
# --------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("case", list(BAD_CALLS), ids=list(BAD_CALLS))
def test_conv2d_on_cpu_tensors_raises_our_errors(case):
    """conv2d on CPU tensors validates exactly as on CUDA: Conv2dError naming the argument, not PyTorch's message.
    (A 3-D input is a valid unbatched call for conv2d, so that case is not an error here.)"""
    overrides, message = BAD_CALLS[case]
    call = good_call(**overrides)
    if case == "input_3d_unbatched_is_callers_job":
        return
    with pytest.raises(conv2d_ext.Conv2dError, match=message):
        conv2d_ext.conv2d(**call)
    with pytest.raises(conv2d_ext.Conv2dError, match=message):
        conv2d_ext.explain(**call)


@pytest.mark.parametrize("variant", ["bogus", "direct:nonexistent", {"forward": "bogus"}], ids=str)
def test_explain_on_cpu_rejects_an_unknown_variant(variant):
    """explain validates the variant even where PyTorch would run the call."""
    with pytest.raises(conv2d_ext.Conv2dError, match="unknown family or kernel"):
        conv2d_ext.explain(randn(1, 2, 5, 5), randn(3, 2, 3, 3), variant=variant)


def test_explain_on_cpu_rejects_a_bad_weight():
    with pytest.raises(conv2d_ext.Conv2dError, match="expects 3 input channels, but input has 2"):
        conv2d_ext.explain(randn(1, 2, 5, 5), randn(3, 3, 3, 3))


def test_unknown_variant_on_cpu_tensors_raises_before_needs_cuda():
    """A misspelt variant is reported as such, not as 'needs CUDA tensors'."""
    with pytest.raises(conv2d_ext.Conv2dError, match="unknown family or kernel 'bogus'"):
        conv2d_ext.conv2d(randn(1, 2, 5, 5), randn(3, 2, 3, 3), variant="bogus")


@pytest.mark.parametrize("variant", ["bogus", {"forward": "fft"}, {"backward": "direct"}, 3], ids=str)
def test_module_and_convert_reject_a_bad_variant_at_once(variant):
    """Conv2d(variant=...) and convert(model, variant=...) check the variant when called, not at the first forward."""
    with pytest.raises(conv2d_ext.Conv2dError):
        conv2d_ext.Conv2d(2, 3, 3, variant=variant)
    model = nn.Sequential(nn.Conv2d(2, 3, 3))
    with pytest.raises(conv2d_ext.Conv2dError):
        conv2d_ext.convert(model, variant=variant)
    assert type(model[0]) is nn.Conv2d  # nothing converted


def test_print_shows_converted_layers():
    """print(model) names converted layers conv2d_ext.Conv2d, with nn.Conv2d's arguments."""
    model = conv2d_ext.convert(nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU()))
    text = str(model)
    assert "(0): conv2d_ext.Conv2d(2, 3, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))" in text
    assert repr(conv2d_ext.Conv2d(2, 3, 3, variant="direct")).startswith("conv2d_ext.Conv2d(2, 3, kernel_size=")


def test_kernels_lists_the_registry_by_pass():
    """conv2d_ext.kernels(): every pass has the direct kernel."""
    kernels = conv2d_ext.kernels()
    assert list(kernels) == ["forward", "backward_data", "backward_weight"]
    assert all("direct" in names for names in kernels.values())


# --------------------------------------------------------------------------------------------------------------
# The plan cache: one validation per call signature.
# --------------------------------------------------------------------------------------------------------------

conv_module = importlib.import_module("conv2d_ext.conv2d")  # the module; conv2d_ext.conv2d is the function


@pytest.fixture
def calls(monkeypatch):
    """An empty plan cache, and a count of the validations (normalize calls) done while the test runs."""
    monkeypatch.setattr(conv_module, "_CALLS", {})
    count = []
    normalize = _args.normalize

    def counting(*args, **kwargs):
        count.append(1)
        return normalize(*args, **kwargs)

    monkeypatch.setattr(_args, "normalize", counting)
    return count


def test_the_same_call_twice_hits_the_cache(calls):
    x, w, b = randn(2, 4, 8, 8), randn(6, 4, 3, 3), randn(6)
    first = conv2d_ext.conv2d(x, w, b, stride=[1, 1], padding=1)
    second = conv2d_ext.conv2d(x, w, b, stride=(1, 1), padding=1)  # a list and a tuple are the same signature
    torch.testing.assert_close(first, second)
    assert len(calls) == 1 and len(conv_module._CALLS) == 1


CACHE_VARIATIONS = {
    "stride": lambda x, w, b: conv2d_ext.conv2d(x, w, b, stride=2, padding=1),
    "dtype": lambda x, w, b: conv2d_ext.conv2d(x.double(), w.double(), b.double(), padding=1),
    "layout": lambda x, w, b: conv2d_ext.conv2d(channels_last(x), w, b, padding=1),
    "variant": lambda x, w, b: conv2d_ext.conv2d(x, w, b, padding=1, variant={"forward": "auto"}),
    "no_bias": lambda x, w, b: conv2d_ext.conv2d(x, w, None, padding=1),
    "groups": lambda x, w, b: conv2d_ext.conv2d(x, w[:, :2].contiguous(), b, padding=1, groups=2),
    "padding_same": lambda x, w, b: conv2d_ext.conv2d(x, w, b, padding="same"),
    "unbatched": lambda x, w, b: conv2d_ext.conv2d(x[0], w, b, padding=1),
    "plan_environment": None,  # the same call after a variable a can_implement reads changed (test below)
}


@pytest.mark.parametrize("change", list(CACHE_VARIATIONS), ids=list(CACHE_VARIATIONS))
def test_a_different_call_does_not_reuse_a_plan(change, calls):
    """A call that differs in stride, dtype, layout, variant, bias, groups, padding or batching is validated and
    planned anew, and gets its own Problem."""
    x, w, b = randn(2, 4, 8, 8), randn(6, 4, 3, 3), randn(6)
    conv2d_ext.conv2d(x, w, b, padding=1)
    (base,) = conv_module._CALLS.values()
    if change == "plan_environment":
        variable = conv_module.PLAN_ENVIRONMENT[0]
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv(variable, "1" if os.environ.get(variable) != "1" else "0")
            conv2d_ext.conv2d(x, w, b, padding=1)
    else:
        CACHE_VARIATIONS[change](x, w, b)
    assert len(calls) == 2 and len(conv_module._CALLS) == 2
    other = [c for c in conv_module._CALLS.values() if c is not base][0]
    if change not in ("variant", "no_bias", "padding_same", "plan_environment"):  # same Problem, spelt or planned
        assert other != base                                                        # differently


# The environment variables csrc/ reads at launch (every call), not in a can_implement: a new variable goes in this
# list or in conv2d.PLAN_ENVIRONMENT (the call cache's key) -- test_every_environment_variable_is_classified.
LAUNCH_ENVIRONMENT = {
    "CONV2D_EXT_IM2COL_CTAS", "CONV2D_EXT_IM2COL_RUNS", "CONV2D_EXT_TMA_STORE",
    "CONV2D_EXT_TMA_TF32_ONE_CTA", "CONV2D_EXT_TMA_HALO", "CONV2D_EXT_TMA_NCHW_FUSED", "CONV2D_EXT_TMA_POINTWISE",
    "CONV2D_EXT_TMA_POINTWISE_PERSISTENT",
    "CONV2D_EXT_FFMA_STAGE_NHWC", "CONV2D_EXT_TMA_POINTWISE_WGRAD", "CONV2D_EXT_TMA_WGRAD_NCHW",
    "CONV2D_EXT_TMA_WGRAD_N192", "CONV2D_EXT_TMA_WGRAD_CTAS", "CONV2D_EXT_TMA_WGRAD_STAGES", "CONV2D_EXT_TMA_STAGES",
    "CONV2D_EXT_TMA_WGRAD_TAIL", "CONV2D_EXT_TMA_WGRAD_N128", "CONV2D_EXT_TMA_POINTWISE_M64", "CONV2D_EXT_PACK_RUNS",
    "CONV2D_EXT_PACK_PLANES", "CONV2D_EXT_PACK_TRANSPOSE", "CONV2D_EXT_PHASES_NHWC", "CONV2D_EXT_TMA_OUT_STAGE",
    "CONV2D_EXT_TO_NHWC_PLANES",
    "CONV2D_EXT_DW_ITEMS", "CONV2D_EXT_DW_TMA", "CONV2D_EXT_DW_DYNAMIC", "CONV2D_EXT_DW_TMA_STORE",
    "CONV2D_EXT_DW_WGRAD_PER_SM", "CONV2D_EXT_GMMA_GB", "CONV2D_EXT_GMMA_TILE", "CONV2D_EXT_GMMA_FIXED",
    "CONV2D_EXT_DWMMA_PER_SM", "CONV2D_EXT_DWMMA_ALL_FFMA", "CONV2D_EXT_GMMA_SPLITS", "CONV2D_EXT_POISON",
    "CONV2D_EXT_PDL",
}


def test_every_environment_variable_is_classified():
    """Each variable the C++ sources read (getenv) is either part of the call cache's key (PLAN_ENVIRONMENT: read by a
    can_implement, so it changes plans) or read at launch (LAUNCH_ENVIRONMENT): a new one must be placed."""
    csrc = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "csrc")
    if not os.path.isdir(csrc):
        pytest.skip("no csrc/ next to the tests (an installed package)")
    read = set()
    for folder, _, files in os.walk(csrc):
        for name in files:
            with open(os.path.join(folder, name)) as f:
                read.update(re.findall(r'getenv\("(CONV2D_EXT_\w+)"\)', f.read()))
    planned = set(conv_module.PLAN_ENVIRONMENT)
    assert read - planned - LAUNCH_ENVIRONMENT == set(), "classify these in PLAN_ENVIRONMENT or LAUNCH_ENVIRONMENT"
    assert not planned & LAUNCH_ENVIRONMENT
    assert {"CONV2D_EXT_IM2COL"} <= planned  # im2col_reason (its can_implement) reads it


@pytest.mark.parametrize("value", [2.0, True, None], ids=["float", "bool", "none"])
def test_values_that_compare_equal_are_not_confused(value, calls):
    """stride=2.0 or True must raise even after stride=2 or 1 was cached (2 == 2.0 and 1 == True in Python)."""
    x, w = randn(1, 2, 9, 9), randn(3, 2, 3, 3)
    conv2d_ext.conv2d(x, w, stride=2)
    conv2d_ext.conv2d(x, w, stride=1)
    with pytest.raises(conv2d_ext.Conv2dError, match="stride must be an int or a pair of ints"):
        conv2d_ext.conv2d(x, w, stride=value)


def test_a_failing_call_is_not_cached(calls):
    """A call that raises leaves nothing in the cache, and raises again the next time."""
    x, w = randn(1, 2, 5, 5), randn(3, 3, 3, 3)
    for _ in range(2):
        with pytest.raises(conv2d_ext.Conv2dError, match="expects 3 input channels"):
            conv2d_ext.conv2d(x, w)
    assert len(calls) == 2 and not conv_module._CALLS


def test_cpu_autocast_runs_like_f_conv2d():
    """Under CPU autocast the call runs in autocast's dtype, as F.conv2d does, with no dtype-mismatch error."""
    x, w = randn(1, 2, 6, 6), randn(3, 2, 3, 3).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours, ref = conv2d_ext.conv2d(x, w), F.conv2d(x, w)
    assert ours.dtype == ref.dtype == torch.bfloat16
    torch.testing.assert_close(ours, ref)


def test_torch_compile_fullgraph_on_cpu_tensors():
    """Under torch.compile the validation is traced into the graph (no cache), without a graph break."""
    model = conv2d_ext.convert(nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 2, 3, stride=2)))
    torch._dynamo.reset()
    compiled = torch.compile(model, backend="eager", fullgraph=True)
    x = randn(2, 2, 9, 9)
    torch.testing.assert_close(compiled(x), model(x))
