"""Forward and all three gradients against F.conv2d on float64 copies of the same inputs, for every compiled kernel
family and every registered kernel: a grid of awkward shapes x precision modes x layouts, inputs sliced out of a
larger buffer (odd base-pointer offsets, padded rows), and random shapes. Results are NaN-poisoned before each
kernel runs; inputs are fresh random values on every run, with their seed in every failure message. A forced
variant that cannot run a case skips it with the reason."""
import os
import random
import re

import pytest
import torch

import conv2d_ext
from helpers import DTYPES, TOLERANCE, Case, fresh_seed, make_inputs, output_shape, precision, random_tensor, reference
from helpers import rel_err, requires_gpu

pytestmark = requires_gpu

# The grid: small shapes chosen for what they exercise.
GRID = {
    "1x1": Case(2, 8, 9, 11, 16, 1, 1, 1, 0, 1, 1),
    "3x3_pad1": Case(2, 8, 13, 10, 12, 3, 3, 1, 1, 1, 1),
    "3x3_stride2": Case(3, 5, 15, 17, 7, 3, 3, 2, 1, 1, 1),
    "5x5_s3_p2": Case(1, 3, 20, 19, 4, 5, 5, 3, 2, 1, 1),
    "7x7_s2_p3": Case(2, 3, 23, 23, 8, 7, 7, 2, 3, 1, 1),
    "2x2": Case(2, 5, 8, 8, 3, 2, 2, 1, 0, 1, 1),
    "4x4_s2_p1": Case(2, 4, 16, 16, 4, 4, 4, 2, 1, 1, 1),
    "6x6_p2": Case(1, 3, 14, 14, 2, 6, 6, 1, 2, 1, 1),
    "nonsquare_3x5": Case(2, 6, 12, 14, 5, 3, 5, (1, 2), (1, 2), 1, 1),
    "nonsquare_1x7": Case(1, 4, 9, 16, 6, 1, 7, 1, (0, 3), 1, 1),
    "nonsquare_7x1": Case(1, 4, 16, 9, 6, 7, 1, 1, (3, 0), 1, 1),
    "dilation2": Case(2, 8, 16, 16, 8, 3, 3, 1, 2, 2, 1),
    "dilation_2x3_s2": Case(2, 4, 19, 21, 6, 3, 3, 2, 1, (2, 3), 1),
    "groups2": Case(2, 8, 10, 10, 12, 3, 3, 1, 1, 1, 2),
    "groups4_s2": Case(2, 16, 11, 11, 8, 3, 3, 2, 0, 1, 4),
    "depthwise_3x3": Case(2, 17, 12, 12, 17, 3, 3, 1, 1, 1, 17),
    "depthwise_x2_5x5_s2": Case(2, 6, 10, 10, 12, 5, 5, 2, 2, 1, 6),
    "depthwise_7x7": Case(1, 9, 15, 15, 9, 7, 7, 1, 3, 1, 9),
    "C1": Case(3, 1, 12, 12, 5, 3, 3, 1, 1, 1, 1),
    "K1": Case(2, 5, 12, 12, 1, 3, 3, 1, 1, 1, 1),
    "C3_K17": Case(2, 3, 9, 9, 17, 3, 3, 1, 1, 1, 1),
    "C17_K3": Case(2, 17, 9, 9, 3, 3, 3, 1, 0, 1, 1),
    "same_3x3": Case(2, 4, 10, 10, 6, 3, 3, 1, "same", 1, 1),
    "same_even_4x4": Case(2, 4, 10, 11, 6, 4, 4, 1, "same", 1, 1),
    "same_2x3_dil2": Case(1, 4, 9, 9, 3, 2, 3, 1, "same", 2, 1),
    "valid": Case(2, 4, 10, 10, 6, 3, 3, 1, "valid", 1, 1),
    "padding_beyond_kernel": Case(1, 4, 5, 6, 3, 3, 3, 1, 3, 1, 1),
    "stride_beyond_kernel": Case(2, 4, 17, 17, 5, 2, 2, 3, 0, 1, 1),
    "long_reduction_c64": Case(2, 64, 16, 16, 32, 3, 3, 1, 1, 1, 1),
    "odd_spatial_129x151": Case(1, 2, 129, 151, 3, 3, 3, 1, 1, 1, 1),
    "split_reduction": Case(8, 2, 64, 64, 2, 1, 1, 1, 0, 1, 1),
    "split_5x5_groups2": Case(16, 4, 64, 64, 4, 5, 5, 1, 2, 1, 2),  # split positions x 3 tap chunks x groups
    "split_same_even_4x4": Case(16, 2, 48, 48, 2, 4, 4, 1, "same", 1, 1),  # split positions, asymmetric padding
    "batch1": Case(1, 16, 20, 20, 16, 3, 3, 1, 1, 1, 1),
    # strided, with channels the tensor-core kernels take (16+ per group, 16-byte vectors)
    "s2_c32_k24": Case(2, 32, 15, 17, 24, 3, 3, 2, 1, 1, 1),
    "s3_k2_c16": Case(2, 16, 17, 16, 16, 2, 2, 3, 0, 1, 1),  # stride beyond kernel: phases without taps
}
MODES = ["fp32", "tf32", "fp16", "bf16", "fp64"]
LAYOUTS = ["nchw", "nhwc"]

# Inputs (and grad_out) sliced out of a larger buffer: (offset of the first element, unused elements after each
# row). Odd offsets leave the data pointer off 16-byte alignment for every dtype.
SLICINGS = {"offset3": (3, 0), "rowpad5": (0, 5), "offset1_rowpad3": (1, 3)}
SLICED_CASES = ["1x1", "3x3_stride2", "nonsquare_3x5", "groups2", "depthwise_3x3", "batch1", "s2_c32_k24"]

FUZZ_COUNT = 24
FUZZ_SEED = int(os.environ.get("CONV2D_EXT_FUZZ_SEED") or fresh_seed())  # fuzz case i uses FUZZ_SEED + i


def variants():
    """{test id: variant}: each compiled family forced on every pass, and each registered kernel forced on one pass
    at a time (the others 'auto'), so a kernel that cannot run a case skips only its own pass's test."""
    out = {family: family for family in conv2d_ext.heuristics.AVAILABLE}
    for pass_, names in conv2d_ext.kernels().items():
        for name in names:
            if name not in out:
                out[f"{name}@{pass_}"] = {pass_: name}
    return out


VARIANTS = variants()
with_variants = pytest.mark.parametrize("variant", list(VARIANTS.values()), ids=list(VARIANTS))


@pytest.fixture
def precision_mode(request):
    """Allows TF32 exactly in the "tf32" mode, restored afterwards."""
    with precision(request.param):
        yield request.param


def run_and_check(case, mode, layout, variant, bias, offset=0, row_pad=0, seed=None, must_run=False):
    """Runs the forward and backward of `case` on `variant` and compares every result with the float64 reference.
    Skips with the reason when the forced variant cannot run the case (fails instead when `must_run`)."""
    seed = fresh_seed() if seed is None else seed
    where = f"{case}, {mode}, {layout}, offset {offset}, row_pad {row_pad}, seed {seed}"
    sliced = dict(channels_last=layout == "nhwc", offset=offset, row_pad=row_pad)
    x, w, b = make_inputs(*case.sizes, case.groups, DTYPES[mode], bias=bias, seed=seed, **sliced)
    leaves = [t.requires_grad_(True) for t in (x, w, b) if t is not None]
    try:
        y = conv2d_ext.conv2d(x, w, b, **case.conv_args, variant=variant)
        grad_out = random_tensor(y.shape, y.dtype, seed=seed + 1, **sliced)  # not x's values: another seed
        grads = torch.autograd.grad(y, leaves, grad_out)
    except conv2d_ext.Conv2dError as e:
        if "cannot run" not in str(e) or must_run:
            raise
        pytest.skip(str(e))
    ref_y, ref_grads = reference(x, w, b, grad_out, **case.conv_args)

    fmt = torch.channels_last if layout == "nhwc" else torch.contiguous_format
    if case.C > 1 and case.K > 1 and case.H * case.W > 1 and not (offset or row_pad):  # unambiguous layouts only
        assert y.is_contiguous(memory_format=fmt), f"output must take the input's memory format ({where})"
    tol = TOLERANCE[mode]
    for name, out, ref in zip(("output", "grad_input", "grad_weight", "grad_bias"), (y,) + grads, (ref_y,) + ref_grads):
        assert out.shape == ref.shape and out.dtype == x.dtype, f"{name} ({where})"
        if name == "grad_bias":  # a plain sum per channel: measure its error against the sum of |terms| (a sum
            # that cancels to near zero has a large relative error in any floating-point order, PyTorch's too)
            scale = grad_out.detach().double().abs().sum(dim=(0, 2, 3))
            err = ((out.double() - ref).norm() / scale.norm()).item()
        elif name == "grad_weight":  # sums of N P Q products: against the larger of their norm and the norm of the
            # rounding noise a random-sign sum of those products carries, sqrt(sum of squared products) per element
            # (the same weight gradient of x^2 and dy^2). A few weights reducing long sums (split_reduction: 4
            # weights of 32768 products each) can cancel far below that, where TF32's operand rounding, random
            # per product, is then a large fraction of the sum in any order.
            squares = (x.detach().double() ** 2, w, None, grad_out.detach().double() ** 2)
            _, (_, noise) = reference(*squares, **case.conv_args)
            scale = max(ref.norm(), noise.sqrt().norm()).item()
            # every tap in the padding (a random problem's W = 1 past its taps): an exact zero, 0 / 0 before
            err = (out.double() - ref).norm().item() / (scale if scale > 0 else 1.0)
        else:
            err = rel_err(out, ref)
        assert err <= tol, f"{name}: relative error {err:.3g} > {tol:g} ({where})"


@with_variants
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("precision_mode", MODES, indirect=True)
@pytest.mark.parametrize("name", list(GRID))
def test_forward_and_gradients(name, precision_mode, layout, variant, poison):
    bias = list(GRID).index(name) % 2 == 0  # half the cases with bias, half without
    run_and_check(GRID[name], precision_mode, layout, variant, bias)


@with_variants
@pytest.mark.parametrize("slicing", list(SLICINGS))
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("precision_mode", ["fp32", "fp16", "bf16"], indirect=True)
@pytest.mark.parametrize("name", SLICED_CASES)
def test_sliced_inputs(name, precision_mode, layout, slicing, variant, poison):
    """Inputs and grad_out that are views into a larger NaN-filled buffer: misaligned base pointers and padded
    rows, in both layouts (what vectorised loaders must handle or refuse)."""
    offset, row_pad = SLICINGS[slicing]
    run_and_check(GRID[name], precision_mode, layout, variant, True, offset, row_pad)


def random_problem(seed):
    """A random valid convolution and how to run it, all drawn from `seed`: (case, mode, layout, bias, offset,
    row_pad). Sizes are often odd; padding goes up to the dilated kernel extent; H and W keep the output >= 1."""
    rng = random.Random(seed)
    groups = rng.choice([1, 1, 2, 3])
    kernel = (rng.randint(1, 5), rng.randint(1, 5))
    dilation = (rng.randint(1, 3), rng.randint(1, 3))
    extent = [d * (k - 1) + 1 for d, k in zip(dilation, kernel)]
    padding = tuple(rng.randint(0, e) for e in extent)
    H, W = (rng.randint(max(1, e - 2 * p), e + 24) for e, p in zip(extent, padding))
    case = Case(rng.randint(1, 3), groups * rng.randint(1, 7), H, W, groups * rng.randint(1, 7), *kernel,
                (rng.randint(1, 3), rng.randint(1, 3)), padding, dilation, groups)
    return (case, rng.choice(MODES), rng.choice(LAYOUTS), rng.random() < 0.5, rng.choice([0, 0, 1, 3, 5, 7]),
            rng.choice([0, 0, 1, 4]))


@with_variants
@pytest.mark.parametrize("index", range(FUZZ_COUNT), ids=lambda i: f"fuzz{i}")
def test_random_shapes(index, variant, poison):
    """Random shapes, geometry, modes and slicings. A failure's message holds its seed: rerun it as fuzz0 with
    CONV2D_EXT_FUZZ_SEED=<seed>."""
    seed = FUZZ_SEED + index
    case, mode, layout, bias, offset, row_pad = random_problem(seed)
    with precision(mode):
        run_and_check(case, mode, layout, variant, bias, offset, row_pad, seed=seed)


# Strided backward-data on the implicit-GEMM kernels (issue 8: one GEMM per stride phase, each over the taps that
# reach it; phases no tap reaches are written as zeros). Each case must run (not skip) on every configuration.
STRIDED_BACKWARD_DATA = {
    "s2_3x3": Case(2, 32, 15, 17, 24, 3, 3, 2, 1, 1, 1),  # by tap, 16-byte vectors (24 grad_output channels)
    "s2_several_tiles": Case(3, 16, 33, 35, 16, 3, 3, 2, 1, 1, 1),  # phases of several M tiles crossing images
    "s2_dilation2": Case(2, 16, 14, 13, 32, 3, 3, 2, 2, 2, 1),  # odd phases: no tap reaches them; by tap
    "s3_kernel2": Case(2, 16, 17, 16, 16, 2, 2, 3, 0, 1, 1),  # stride beyond kernel: 5 of 9 phases without taps
    "s4_k2_dilation3": Case(1, 16, 20, 21, 16, 2, 2, 4, 1, 3, 1),  # at most one tap per phase and dimension
    "s_2x3_asymmetric": Case(2, 24, 13, 18, 40, 3, 5, (2, 3), (1, 2), 1, 1),  # 2 x 3 phases; fp32 by tap, 16-bit flat
    "s2_padding_beyond_kernel": Case(1, 16, 9, 10, 16, 3, 3, 2, 4, 1, 1),
    "s2_groups2": Case(2, 32, 12, 11, 32, 3, 3, 2, 1, 1, 2),  # grid.z = groups x phases
    "s2_7x7_odd_channels": Case(2, 17, 23, 23, 19, 7, 7, 2, 3, 1, 1),  # flat walk (19 channels: no vectors)
    "s2_4x4": Case(1, 16, 10, 11, 16, 4, 4, 2, 1, 1, 1),  # two taps per phase and dimension
}


def _implicit_gemm_backward_data_kernels():
    """Those that run strided backward-data on any channel count (the copy-engine configurations take stride 1 only;
    im2col, short reductions only, has test_im2col)."""
    return [k for k in conv2d_ext.kernels()["backward_data"]
            if k.startswith("implicit_gemm") and not k.endswith("_tma") and k != "implicit_gemm:im2col"]


# Configurations that compile no scalar variant (implicit_gemm.cuh's kVectorShapesOnly: 16 warps): they take only
# shapes whose grad_output channels fill 16-byte vectors and k-tiles (s2_3x3 among the strided ones), refusing the
# rest with the reason; a misaligned base pointer runs on 128x128_wg's kernels.
VECTOR_SHAPES_ONLY = {"implicit_gemm:256x128_wg"}


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("precision_mode", ["fp32", "tf32", "fp16", "bf16"], indirect=True)
@pytest.mark.parametrize("kernel", _implicit_gemm_backward_data_kernels())
@pytest.mark.parametrize("name", list(STRIDED_BACKWARD_DATA))
def test_implicit_gemm_strided_backward_data(name, kernel, precision_mode, layout, poison):
    """Every implicit-GEMM backward-data configuration forced on strided shapes (NaN-poisoned grad_input: every
    element must be written by exactly one phase); it must accept each of them (VECTOR_SHAPES_ONLY: s2_3x3)."""
    if (precision_mode == "fp32") != kernel.endswith("ffma"):
        pytest.skip("tensor-core configurations take tf32/fp16/bf16, the FFMA configuration exact fp32")
    bias = list(STRIDED_BACKWARD_DATA).index(name) % 2 == 0
    run_and_check(STRIDED_BACKWARD_DATA[name], precision_mode, layout, {"backward_data": kernel}, bias,
                  must_run=kernel not in VECTOR_SHAPES_ONLY or name == "s2_3x3")


@pytest.mark.parametrize("slicing", list(SLICINGS))
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("kernel", _implicit_gemm_backward_data_kernels())
@pytest.mark.parametrize("name", ["s2_3x3", "s_2x3_asymmetric"])
def test_implicit_gemm_strided_backward_data_sliced(name, kernel, layout, slicing, poison):
    """Misaligned or row-padded grad_output (the vector path refuses it: the flat walk runs, VECTOR_SHAPES_ONLY's
    launches on 128x128_wg's kernels) on strided shapes."""
    mode = "fp32" if kernel.endswith("ffma") else "bf16"
    offset, row_pad = SLICINGS[slicing]
    with precision(mode):
        run_and_check(STRIDED_BACKWARD_DATA[name], mode, layout, {"backward_data": kernel}, True, offset, row_pad,
                      must_run=kernel not in VECTOR_SHAPES_ONLY or name == "s2_3x3")


# The exact-fp32 FFMA forward on an NHWC copy of NCHW activations (CONV2D_EXT_FFMA_STAGE_NHWC=1, experimental, stride
# 1 only): 3x3, dilated 3x5, grouped (whole 16-byte vectors per group), an odd map, batch 1, padding past the
# filter, sliced inputs (offset base pointer, padded rows: the copy reads any strides).
FFMA_STAGED = {
    "3x3_c32_k40": Case(2, 32, 11, 13, 40, 3, 3, 1, 1, 1, 1),
    "3x5_dil2_c32": Case(1, 32, 14, 17, 24, 3, 5, 1, (2, 4), 2, 1),  # 32 channels: the walk by tap (C = 20 walks flat)
    "groups2_c48": Case(2, 48, 9, 10, 64, 3, 3, 1, 1, 1, 2),
    "batch1_pad3": Case(1, 16, 7, 9, 72, 3, 3, 1, 3, 1, 1),
}


@pytest.mark.parametrize("slicing", ["dense", "offset_rows"])
@pytest.mark.parametrize("kernel", [k for k in conv2d_ext.kernels()["forward"] if k.endswith("ffma")])
@pytest.mark.parametrize("name", list(FFMA_STAGED))
def test_ffma_forward_staged_nhwc(name, kernel, slicing, poison, monkeypatch):
    """The FFMA configurations' forward with NCHW activations copied to NHWC first: right, and the copy ran (its
    channels-last main loop writing the NCHW output)."""
    monkeypatch.setenv("CONV2D_EXT_FFMA_STAGE_NHWC", "1")
    from torch.profiler import ProfilerActivity, profile
    offset, row_pad = (0, 0) if slicing == "dense" else (3, 2)
    with precision("fp32"), profile(activities=[ProfilerActivity.CUDA]) as prof:
        run_and_check(FFMA_STAGED[name], "fp32", "nchw", {"forward": kernel}, True, offset, row_pad, must_run=True)
        torch.cuda.synchronize()
    names = {e.name for e in prof.events()}
    assert any("to_nhwc" in n for n in names), sorted(names)
    # forward_kernel<T, Cfg, kNHWC, kVec, kFlat, kOutNHWC>: NHWC in, vector loads, NCHW out
    assert any(re.search(r"forward_kernel<float, .*(true|\(bool\)1), (true|\(bool\)1), (false|\(bool\)0), "
                         r"(false|\(bool\)0)>\(", n) for n in names), sorted(names)


# The Hopper copy-engine configurations (implicit_gemm:*_tma, every one built): their box of output pixels (nt images
# x ht rows x wt columns) per shape, channels off the 128-byte k-tile, more than one tile of output channels (and a count off 16-byte
# runs), strides as the copy engine's element strides, dilation, padding past the kernel, grouped k-tiles, 1x1. Each
# case must run (not skip) wherever the kernel is built.
TMA_FORWARD = {
    "wide_rows_q200": Case(2, 16, 9, 200, 24, 3, 3, 1, 1, 1, 1),  # wt < Q: several boxes per output row
    "s2_k140": Case(2, 64, 21, 23, 140, 3, 3, 2, 1, 1, 1),  # two tiles of output channels, 140 not in 16-byte runs
    "dilation2_c72": Case(2, 72, 17, 19, 40, 3, 3, 1, 2, 2, 1),  # a partial k-tile of channels
    "maps_7x7_n5": Case(5, 32, 7, 7, 64, 3, 3, 1, 1, 1, 1),  # boxes of two images
    "groups2_c256": Case(2, 256, 10, 12, 256, 3, 3, 1, 1, 1, 2),  # whole k-tiles per group, both passes
    "s3_5x5_p2": Case(1, 16, 20, 19, 16, 5, 5, 3, 2, 1, 1),
    "s_2x3_asymmetric": Case(2, 24, 13, 18, 40, 3, 5, (2, 3), (1, 2), 1, 1),
    "1x1_c24": Case(3, 24, 9, 11, 40, 1, 1, 1, 0, 1, 1),
    "padding_beyond_kernel": Case(1, 16, 5, 6, 16, 3, 3, 1, 3, 1, 1),
    "same_even_4x4": Case(2, 16, 10, 11, 24, 4, 4, 1, "same", 1, 1),
    "batch1_q130": Case(1, 32, 3, 130, 32, 3, 3, 1, 1, 1, 1),
    # NCHW outputs in boxes of whole rows (forward_tile): two 8 x 8 images a box (the last alone) and an 8-channel
    # tile of output channels; 81-pixel planes of 20 channels; 49-pixel planes of 18 channels; 14 x 14 in boxes of 8
    # rows (9 -> 8 for 16-byte rows, TF32), 72 channels
    "images_8x8_k136": Case(3, 48, 8, 8, 136, 3, 3, 1, 1, 1, 1),
    "images_9x9_k20": Case(2, 32, 9, 9, 20, 3, 3, 1, 1, 1, 1),
    "maps_7x7_k18": Case(3, 32, 7, 7, 18, 3, 3, 1, 1, 1, 1),
    "rows_14x14_k72": Case(2, 32, 14, 14, 72, 3, 3, 1, 1, 1, 1),
    # Halo boxes (tiles of one output row, stride 1 along it): taps shifted 8 pixels (5x5, dilation 2), a 1x7 row
    # filter on 100-pixel tiles, partial k-tiles of channels, rows strided by 2 with whole k-tiles per group, padding
    # beyond the filter (each shape's best tiles are one row: rows of 128 or 256 pixels, or one output row).
    "halo_5x5_dil2": Case(2, 24, 12, 128, 40, 5, 5, 1, 4, 2, 1),
    "halo_1x7_q100": Case(3, 40, 1, 100, 72, 1, 7, 1, (0, 3), 1, 1),
    "halo_c160_q256": Case(2, 160, 6, 256, 64, 3, 3, 1, 1, 1, 1),
    "halo_s2x1_groups2": Case(2, 128, 2, 90, 128, 3, 3, (2, 1), 1, 1, 2),
    "halo_pad3": Case(1, 16, 3, 124, 24, 3, 3, 1, (0, 3), 1, 1),
    # backward-data by stride phase (every case above with a stride too): r50_3x3_128_s2 in small, odd maps (phases
    # of unequal sizes), stride 3 with padding 2 (a phase whose first window starts inside grad_output), grouped
    "phases_s2_odd": Case(2, 64, 13, 11, 64, 3, 3, 2, 1, 1, 1),
    "phases_s3_pad2": Case(1, 32, 11, 10, 64, 3, 3, 3, 2, 1, 1),
    "phases_s2_groups2": Case(2, 128, 9, 10, 128, 4, 4, 2, 1, 1, 2),
}
TMA_KERNELS = [k for k in conv2d_ext.kernels()["forward"] if k.startswith("implicit_gemm") and k.endswith("_tma")]


def _tma_built(kernel):
    return kernel in conv2d_ext.kernels()["forward"] and torch.cuda.get_device_capability() == (9, 0)


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def _tma_passes(name):
    """The passes the copy-engine configurations take on this case: the forward; backward-data at stride 1, and
    strided by stride phase (backward_data_tma.cuh) where every phase has taps (dilation 1, filters at least the
    stride), where grad_output's channels fill 16-byte vectors in every dtype (a grad_output the copy engine cannot
    read, sliced, is copied to dense NHWC first)."""
    c = TMA_FORWARD[name]
    (sh, sw), (dh, dw) = _pair(c.stride), _pair(c.dilation)
    phases = (dh, dw) == (1, 1) and c.R >= sh and c.S >= sw
    vectors = (c.K // c.groups) % 8 == 0
    return ["forward"] + (["backward_data"] if vectors and ((sh, sw) == (1, 1) or phases) else [])


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("precision_mode", ["tf32", "fp16", "bf16"], indirect=True)
@pytest.mark.parametrize("kernel", TMA_KERNELS)
@pytest.mark.parametrize("name", list(TMA_FORWARD))
def test_tma(name, kernel, precision_mode, layout, poison):
    """The copy-engine configurations forced on shapes that exercise their boxes (forward, and backward-data as the
    forward of grad_output with flipped filters, once per stride phase where strided), NaN-poisoned results; they
    must accept each."""
    if not _tma_built(kernel):
        pytest.skip(f"{kernel} needs an sm_90a build on a compute capability 9.0 GPU")
    bias = list(TMA_FORWARD).index(name) % 2 == 0
    for pass_ in _tma_passes(name):
        run_and_check(TMA_FORWARD[name], precision_mode, layout, {pass_: kernel}, bias, must_run=True)


@pytest.mark.parametrize("store", ["1", "0"])
@pytest.mark.parametrize("halo", ["1", "0"])
def test_tma_halo_and_store_switches(halo, store, monkeypatch, poison):
    """Halo boxes run on cases of one-row tiles unless CONV2D_EXT_TMA_HALO=0 (so that test_tma's halo cases test
    them), and every combination with the threads' stores (CONV2D_EXT_TMA_STORE=0; test_tma's channels-last cases
    mostly take the copy engine's) is right, forward and backward-data."""
    kernel = "implicit_gemm:128x128_tma"
    if not _tma_built(kernel):
        pytest.skip(f"{kernel} needs an sm_90a build on a compute capability 9.0 GPU")
    monkeypatch.setenv("CONV2D_EXT_TMA_HALO", halo)
    monkeypatch.setenv("CONV2D_EXT_TMA_STORE", store)
    from torch.profiler import ProfilerActivity, profile
    for name in ("halo_c160_q256", "halo_5x5_dil2", "wide_rows_q200"):
        for mode in ("tf32", "bf16"):
            with precision(mode), profile(activities=[ProfilerActivity.CUDA]) as prof:
                run_and_check(TMA_FORWARD[name], mode, "nhwc", {"forward": kernel, "backward_data": kernel}, True,
                              must_run=True)
                torch.cuda.synchronize()
            names = {e.name for e in prof.events() if "forward_tma_kernel<" in e.name}
            # forward_tma_kernel<T, Cfg, kOutNHWC, kHalo, kFromNchw>: the halo flag is the second bool from the end
            with_halo = [n for n in names if re.search(r"forward_tma_kernel<.*(true|\(bool\)1), [^,]+>\(", n)]
            assert names and bool(with_halo) == (halo == "1" and name != "wide_rows_q200"), (name, sorted(names))


@pytest.mark.parametrize("stages", ["1", "0"])
def test_tma_ring_depths(stages, monkeypatch, poison):
    """The forward's 128x128 box tiles (not halo) in deep rings (6 stages, one CTA per SM: CONV2D_EXT_TMA_STAGES=1;
    the default on grids of at most one CTA per SM, which test_tma's small shapes are) and in their configuration's
    3 (=0), forward and backward-data, in both layouts; 128x64 tiles keep their 4 stages either way."""
    from torch.profiler import ProfilerActivity, profile
    for kernel in ("implicit_gemm:128x128_tma", "implicit_gemm:128x64_tma"):
        if not _tma_built(kernel):
            pytest.skip(f"{kernel} needs an sm_90a build on a compute capability 9.0 GPU")
        monkeypatch.setenv("CONV2D_EXT_TMA_STAGES", stages)
        for name in ("maps_7x7_n5", "dilation2_c72", "s2_k140"):
            for mode, layout in (("tf32", "nchw"), ("bf16", "nhwc"), ("fp16", "nchw")):
                with precision(mode), profile(activities=[ProfilerActivity.CUDA]) as prof:
                    passes = {pass_: kernel for pass_ in _tma_passes(name)}
                    run_and_check(TMA_FORWARD[name], mode, layout, passes, True, must_run=True)
                    torch.cuda.synchronize()
                names = {e.name for e in prof.events() if "forward_tma_kernel<" in e.name}
                deep = [n for n in names if re.search(r"TmaConfig<1, 128, 6>", n)]
                assert names and bool(deep) == (stages == "1" and kernel.startswith("implicit_gemm:128x128")), (
                    name, mode, layout, sorted(names))


@pytest.mark.parametrize("stage", ["1", "0", None])
def test_tma_out_stage(stage, monkeypatch, poison):
    """NCHW problems on the NHWC copy of their input write a dense NHWC output into the workspace (the channels-last
    epilogue, kOutNHWC) and one to_nchw moves it to the NCHW output, forward and backward-data, where
    CONV2D_EXT_TMA_OUT_STAGE=1, never where =0 or unset (the NCHW epilogue; the stage was the default on maps of
    fewer than 64 pixels until session 44). The results, and which epilogue ran."""
    kernel = "implicit_gemm:128x128_tma"
    if not _tma_built(kernel):
        pytest.skip(f"{kernel} needs an sm_90a build on a compute capability 9.0 GPU")
    if stage is None:
        monkeypatch.delenv("CONV2D_EXT_TMA_OUT_STAGE", raising=False)
    else:
        monkeypatch.setenv("CONV2D_EXT_TMA_OUT_STAGE", stage)
    from torch.profiler import ProfilerActivity, profile
    for name in ("maps_7x7_n5", "maps_7x7_k18", "dilation2_c72", "s2_k140", "groups2_c256", "batch1_q130"):
        for mode in ("tf32", "bf16", "fp16"):
            with precision(mode), profile(activities=[ProfilerActivity.CUDA]) as prof:
                passes = {pass_: kernel for pass_ in _tma_passes(name)}
                run_and_check(TMA_FORWARD[name], mode, "nchw", passes, True, must_run=True)
                torch.cuda.synchronize()
            names = {e.name for e in prof.events() if "forward_tma_kernel<" in e.name}
            # forward_tma_kernel<T, Cfg, kOutNHWC, kHalo, kFromNchw>: kOutNHWC is the third bool from the end
            nhwc = [n for n in names if re.search(r"forward_tma_kernel<.*(true|\(bool\)1), [^,]+, [^,]+>\(", n)]
            expected = stage == "1"
            assert names and bool(nhwc) == expected, (name, mode, sorted(names))


# The NCHW input read by the copy engine itself (nchw_fused: 16-bit transposed in shared memory, TF32 fragments
# loaded from the raw box into registers). Halo tiles of NCHW problems at least a raw box (152 pixels) wide, rows
# (input and output: backward-data reads grad_output) in 16-byte multiples: taps shifted 8 pixels, a partial k-tile,
# input boxes from 5 pixels into their 16-byte start (padding 3: dilation 3, and three 128-pixel tiles of a 1x7 row
# filter), rows strided by 2 with whole k-tiles per group.
TMA_NCHW_FUSED = {
    "5x5_dil2": Case(2, 24, 12, 256, 40, 5, 5, 1, 4, 2, 1),
    "c160_q256": Case(2, 160, 6, 256, 64, 3, 3, 1, 1, 1, 1),
    "pad3_dil3_q248": Case(1, 16, 3, 248, 24, 3, 3, 1, (0, 3), (1, 3), 1),
    "1x7_q304": Case(1, 40, 1, 304, 72, 1, 7, 1, (0, 3), 1, 1),
    "s2x1_groups2": Case(2, 128, 2, 200, 128, 3, 3, (2, 1), 1, 1, 2),
}


@pytest.mark.parametrize("kernel", ["implicit_gemm:128x128_tma", "implicit_gemm:128x64_tma"])
@pytest.mark.parametrize("precision_mode", ["tf32", "fp16", "bf16"], indirect=True)
@pytest.mark.parametrize("name", list(TMA_NCHW_FUSED))
def test_tma_nchw_fused(name, precision_mode, kernel, poison):
    """The copy-engine forward on NCHW inputs (and backward-data at stride 1) reading the input in place: the
    results, and that the fused kernel ran (forward_tma_kernel<..., kHalo, kFromNchw> both true)."""
    if not _tma_built(kernel):
        pytest.skip(f"{kernel} needs an sm_90a build on a compute capability 9.0 GPU")
    case = TMA_NCHW_FUSED[name]
    from torch.profiler import ProfilerActivity, profile
    for pass_ in ["forward"] + (["backward_data"] if case.stride == 1 else []):
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            run_and_check(case, precision_mode, "nchw", {pass_: kernel}, True, must_run=True)
            torch.cuda.synchronize()
        names = {e.name for e in prof.events() if "forward_tma_kernel<" in e.name}
        fused = [n for n in names if re.search(r"forward_tma_kernel<.*(true|\(bool\)1), (true|\(bool\)1)>\(", n)]
        assert fused, f"{pass_}: the fused kernel did not run: {sorted(names)}"


@pytest.mark.parametrize("name", list(TMA_NCHW_FUSED))
def test_tma_tf32_one_cta(name, poison, monkeypatch):
    """CONV2D_EXT_TMA_TF32_ONE_CTA=1: the TF32 NCHW-in-place 128x128 kernel at one CTA per SM (its MMAs pipelined),
    forward and stride-1 backward-data: the results, and that it ran."""
    kernel = "implicit_gemm:128x128_tma"
    if not _tma_built(kernel):
        pytest.skip(f"{kernel} needs an sm_90a build on a compute capability 9.0 GPU")
    monkeypatch.setenv("CONV2D_EXT_TMA_TF32_ONE_CTA", "1")
    case = TMA_NCHW_FUSED[name]
    from torch.profiler import ProfilerActivity, profile
    for pass_ in ["forward"] + (["backward_data"] if case.stride == 1 else []):
        with precision("tf32"), profile(activities=[ProfilerActivity.CUDA]) as prof:
            run_and_check(case, "tf32", "nchw", {pass_: kernel}, True, must_run=True)
            torch.cuda.synchronize()
        assert any("forward_tma_one_cta_kernel<" in e.name for e in prof.events()), f"{pass_}: it did not run"


# The 1x1 NCHW kernels reading and writing NCHW in place (forward_pointwise_tma.cuh; the default since session 26,
# CONV2D_EXT_TMA_POINTWISE=0 turns them off). Maps of HW % 8 == 0 (16-byte
# channel rows): half a pixel tile, a partial k-tile (C = 200), a second pixel box wholly outside the map (HW = 56),
# output channels short of a tile (K = 40, 72).
TMA_POINTWISE = {
    "c64_hw192_k72": Case(2, 64, 8, 24, 72, 1, 1, 1, 0, 1, 1),
    "c200_hw200": Case(1, 200, 10, 20, 128, 1, 1, 1, 0, 1, 1),
    "c256_hw56_k40": Case(3, 256, 7, 8, 40, 1, 1, 1, 0, 1, 1),
    "c520_hw136_k200": Case(2, 520, 8, 17, 200, 1, 1, 1, 0, 1, 1),  # 9 k-tiles (both rings wrap), 2 channel tiles
    "c192_hw2048_k256_n16": Case(16, 192, 32, 64, 256, 1, 1, 1, 0, 1, 1),  # 512-1024 items: persistent CTAs walk several
    "c296_hw120_k24": Case(2, 296, 10, 12, 24, 1, 1, 1, 0, 1, 1),  # backward-weight's 64 x 256 tiles, two of them
}


@pytest.mark.parametrize("persistent", ["0", "1"])
@pytest.mark.parametrize("kernel", ["implicit_gemm:128x128_tma", "implicit_gemm:128x64_tma"])
@pytest.mark.parametrize("precision_mode", ["tf32", "fp16", "bf16"], indirect=True)
@pytest.mark.parametrize("name", list(TMA_POINTWISE))
def test_tma_pointwise(name, precision_mode, kernel, persistent, poison, monkeypatch):
    """The 1x1 NCHW kernel of `kernel`'s configuration, forward and backward-data (the forward of grad_output), with
    and without bias, one item per CTA or persistent CTAs (CONV2D_EXT_TMA_POINTWISE_PERSISTENT=1; TF32 128x128 has
    no room for them): the results, and that the kernel meant ran (the other pass pinned to a kernel without it)."""
    if not _tma_built(kernel):
        pytest.skip(f"{kernel} needs an sm_90a build on a compute capability 9.0 GPU")
    monkeypatch.delenv("CONV2D_EXT_TMA_POINTWISE", raising=False)
    monkeypatch.setenv("CONV2D_EXT_TMA_POINTWISE_PERSISTENT", persistent)
    from torch.profiler import ProfilerActivity, profile
    config = "TmaConfig<1, 128, 3>" if kernel.endswith("128x128_tma") else "TmaConfig<1, 64, 4>"
    walks = persistent == "1" and not (precision_mode == "tf32" and kernel.endswith("128x128_tma"))
    for pass_, other in [("forward", "backward_data"), ("backward_data", "forward")]:
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            run_and_check(TMA_POINTWISE[name], precision_mode, "nchw",
                          {pass_: kernel, other: "implicit_gemm:128x128_wg"}, pass_ == "forward", must_run=True)
            torch.cuda.synchronize()
        ran = [e.name for e in prof.events() if "forward_pointwise_kernel<" in e.name]
        assert any(config in n and (", true>" in n) == walks for n in ran), \
            f"{pass_}: the {config} kernel (persistent: {walks}) did not run: {sorted(set(ran))}"


@pytest.mark.parametrize("m64", ["0", "1"])
@pytest.mark.parametrize("precision_mode", ["tf32", "fp16", "bf16"], indirect=True)
@pytest.mark.parametrize("name", list(TMA_POINTWISE))
def test_tma_pointwise_backward_weight(name, precision_mode, m64, poison, monkeypatch):
    """The 1x1 NCHW backward-weight read in place (backward_weight_pointwise_tma.cuh), on 128 x 128 tiles and on 64 x
    256 (CONV2D_EXT_TMA_POINTWISE_M64=1; off by default: slower on r50_1x1): the weight gradient against the reference,
    bit-identical over three runs (split-K's fixed-order sum), and that it ran, alone and within the op of both
    backward passes."""
    kernel = "implicit_gemm:128x128_tma"
    if not _tma_built(kernel):
        pytest.skip(f"{kernel} needs an sm_90a build on a compute capability 9.0 GPU")
    if precision_mode == "tf32" and TMA_POINTWISE[name].W % 4 != 0:
        pytest.skip("the 128x128_tma entry's TF32 backward-weight takes rows of whole 16-byte multiples (W % 4 == 0)")
    monkeypatch.setenv("CONV2D_EXT_TMA_POINTWISE_WGRAD", "1")
    monkeypatch.setenv("CONV2D_EXT_TMA_POINTWISE_M64", m64)
    from torch.profiler import ProfilerActivity, profile
    case = TMA_POINTWISE[name]
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        run_and_check(case, precision_mode, "nchw", {"backward_weight": kernel, "backward_data": kernel}, False,
                      must_run=True)
        torch.cuda.synchronize()
    assert any("backward_weight_pointwise_kernel<" in e.name for e in prof.events()), "it did not run"
    x, w, _ = make_inputs(*case.sizes, case.groups, DTYPES[precision_mode], bias=False, seed=fresh_seed())
    x.requires_grad_(True), w.requires_grad_(True)
    y = conv2d_ext.conv2d(x, w, variant={"backward_weight": kernel}, **case.conv_args)
    gy = torch.randn_like(y)
    first = torch.autograd.grad(y, w, gy, retain_graph=True)[0]
    for _ in range(2):
        assert torch.equal(torch.autograd.grad(y, w, gy, retain_graph=True)[0], first), "not deterministic"


# The filter repacks (forward.cuh's pack_taps, where the planes and the transposition below cannot take them):
# KCRS -> KRSC for NCHW forwards by rows (pack_taps_rows), and
# backward-data's [C][R][S][K/groups], flipped or not, from KCRS or channels-last filters by tiles (pack_taps_tiles);
# dense KCRS filters (their taps one run) by runs (pack_taps_runs) in both.
# Channel counts past one block of 256 threads and past whole 32-channel tiles, 49 taps, groups, stride 2
# (backward-data by stride phase on the mma.sync kernels).
PACK = {
    "3x3_c64_k72": Case(2, 64, 10, 12, 72, 3, 3, 1, 1, 1, 1),
    "5x3_s2_g2": Case(2, 128, 9, 11, 128, 5, 3, 2, (2, 1), 1, 2),
    "7x7_c24_k40": Case(1, 24, 8, 8, 40, 7, 7, 1, 3, 1, 1),
    "3x3_g2_cg128": Case(2, 256, 6, 10, 128, 3, 3, 1, 1, 1, 2),  # the flipped pack, grouped
    "3x3_c320_k272": Case(1, 320, 6, 7, 272, 3, 3, 1, 1, 1, 1),  # two blocks of i's each way
}


PACK_SWITCHES = {
    "rows": {"CONV2D_EXT_PACK_PLANES": "0", "CONV2D_EXT_PACK_RUNS": "0", "CONV2D_EXT_PACK_TRANSPOSE": "0"},
    "planes": {"CONV2D_EXT_PACK_PLANES": "1", "CONV2D_EXT_PACK_RUNS": "0", "CONV2D_EXT_PACK_TRANSPOSE": "1"},
    "runs": {"CONV2D_EXT_PACK_PLANES": "1", "CONV2D_EXT_PACK_RUNS": "1", "CONV2D_EXT_PACK_TRANSPOSE": "0"}}


@pytest.mark.parametrize("pack", list(PACK_SWITCHES))
@pytest.mark.parametrize("precision_mode", ["tf32", "bf16"], indirect=True)
@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
@pytest.mark.parametrize("name", list(PACK))
def test_filter_repacks(name, layout, precision_mode, pack, poison, monkeypatch):
    """Forward and backward-data of the implicit-GEMM kernels (mma.sync, and the copy engine's where built) with
    their filters repacked: the results, and that the repack kernels ran (NCHW forward, dense KCRS filters: as K
    images of C/groups planes by to_nhwc_planes (the default since session 40), by rows (CONV2D_EXT_PACK_PLANES=0),
    by runs with CONV2D_EXT_PACK_RUNS=1; backward-data: as a transposition of each group's K/groups x C/groups R S
    matrix by to_nhwc_vec (the planes case, the default since session 40), by tiles, reading along the filters'
    input channels (CONV2D_EXT_PACK_TRANSPOSE=0), or by runs). The planes case asserts that no pack_taps kernel ran:
    to_nhwc_planes and to_nhwc_vec may copy the activations too."""
    for key, value in PACK_SWITCHES[pack].items():
        monkeypatch.setenv(key, value)
    case = PACK[name]
    variants = [{"forward": "implicit_gemm:128x128_w4", "backward_data": "implicit_gemm:128x128_w4"}]
    tma = "implicit_gemm:128x128_tma"
    if _tma_built(tma) and (case.groups == 1 or (case.C // case.groups) % 64 == 0):
        variants.append({"forward": tma, **({"backward_data": tma} if case.stride == 1 else {})})
    from torch.profiler import ProfilerActivity, profile
    for variant in variants:
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            run_and_check(case, precision_mode, layout, variant, True, must_run=True)
            torch.cuda.synchronize()
        names = [e.name for e in prof.events()]
        if layout == "nchw":  # dense KCRS filters, C/groups in 16-byte vectors in every case here
            want = {"rows": "pack_taps_rows<", "planes": "to_nhwc_planes<", "runs": "pack_taps_runs<"}[pack]
            assert any(want in n for n in names), f"{variant}: {want} did not run"
        if pack == "planes":  # every case's filters are dense with channels in whole vectors: no pack_taps
            assert not any("pack_taps" in n for n in names), f"{variant}: a repack ran on pack_taps"
        elif "backward_data" in variant:
            assert any(k in n for n in names for k in ("pack_taps_tiles<", "pack_taps_runs<")), \
                f"{variant}: the repack by tiles or runs did not run"


# implicit_gemm:im2col (csrc/implicit_gemm/im2col.cuh: a pixel tile's whole reduction, C x R x S <= 160, gathered
# into shared memory; written in session 24 with no device, run since session 25). First layers at their real sizes
# (r50_conv1 at batch 4: 196 pixel tiles of 128 per image pair, more tiles than the persistent grid's CTAs), two
# channel tiles with a partial one (K = 96), pixel tiles across images (an output of 15 x 13), the largest reduction
# (C 10 x 4 x 4 = 160), and every GRID case it takes.
IM2COL = {
    "r50_conv1_n4": Case(4, 3, 224, 224, 64, 7, 7, 2, 3, 1, 1),
    "stem_3x3_s2_k32": Case(3, 3, 30, 26, 32, 3, 3, 2, 1, 1, 1),
    "patchify_4x4_s4_k96": Case(2, 3, 60, 52, 96, 4, 4, 4, 0, 1, 1),
    "c10_4x4_k40_dil2": Case(2, 10, 19, 17, 40, 4, 4, 1, 3, 2, 1),
    **{name: case for name, case in GRID.items() if case.groups == 1 and case.C * case.R * case.S <= 160},
}


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("precision_mode", ["tf32", "fp16", "bf16"], indirect=True)
@pytest.mark.parametrize("name", list(IM2COL))
def test_im2col(name, precision_mode, layout, poison, monkeypatch):
    """implicit_gemm:im2col forced on the forward (16-bit: also its run layout), backward-weight and (K <= 64)
    backward-data, with and without bias, on inputs sliced off 16-byte alignment, and with the persistent grids
    (forward, backward-data) capped at 3 CTAs (each walks several tiles); every element of the output and of both
    gradients checked against the largest reference element too (one wrong pixel of r50_conv1 passes a norm-wise
    check); both gradients bit-identical run to run."""
    monkeypatch.delenv("CONV2D_EXT_IM2COL", raising=False)
    # its tiles' shared memory: up to 94208 bytes (fp16/bf16), 133184 (TF32); sm_80, sm_90 and sm_100 give a block
    # more
    if torch.cuda.get_device_capability() not in ((8, 0), (9, 0), (10, 0)):
        pytest.skip("needs compute capability 8.0, 9.0 or 10.0 (mma.sync, and its tiles' shared memory)")
    case = IM2COL[name]
    variant = {"forward": "implicit_gemm:im2col", "backward_weight": "implicit_gemm:im2col"}
    if case.K <= 64 and case.R * case.S <= 64:  # backward-data's reduction (K) in one run, a pass's 64 taps
        variant["backward_data"] = "implicit_gemm:im2col"
    run_and_check(case, precision_mode, layout, variant, True, must_run=True)
    if precision_mode != "tf32":  # the forward's run layout (experimental, CONV2D_EXT_IM2COL_RUNS=1)
        monkeypatch.setenv("CONV2D_EXT_IM2COL_RUNS", "1")
        run_and_check(case, precision_mode, layout, variant, True, must_run=True)
        monkeypatch.delenv("CONV2D_EXT_IM2COL_RUNS")
    run_and_check(case, precision_mode, layout, variant, False, offset=3, must_run=True)
    for ctas in (None, "3"):
        if ctas:
            monkeypatch.setenv("CONV2D_EXT_IM2COL_CTAS", ctas)
        x, w, b = make_inputs(*case.sizes, case.groups, DTYPES[precision_mode], channels_last=layout == "nhwc")
        x.requires_grad_(True), w.requires_grad_(True)
        gy = random_tensor(output_shape(x, w, **case.conv_args), x.dtype, channels_last=layout == "nhwc")
        runs = []
        for _ in range(2 if ctas else 1):
            y = conv2d_ext.conv2d(x, w, b, **case.conv_args, variant=variant)
            runs.append((y.detach(),) + tuple(torch.autograd.grad(y, (x, w), gy)))
        if len(runs) > 1:
            assert all(torch.equal(u, v) for u, v in zip(*runs)), "results differ run to run"
        ref_y, (ref_dx, ref_dw, _) = reference(x, w, b, gy, **case.conv_args)
        for what, out, ref in zip(("output", "grad_input", "grad_weight"), runs[0], (ref_y, ref_dx, ref_dw)):
            err = ((out.double() - ref).abs().max() / ref.abs().max()).item()
            assert err <= 4 * TOLERANCE[precision_mode], f"{what}: largest element error {err:.3g} ({ctas or 'all'})"


@pytest.mark.parametrize("slicing", list(SLICINGS))
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("kernel", TMA_KERNELS)
@pytest.mark.parametrize("name", ["wide_rows_q200", "dilation2_c72", "s_2x3_asymmetric"])
def test_tma_sliced(name, kernel, layout, slicing, poison):
    """Sliced inputs: an odd base pointer (channels-last: the cp.async fallback, strided backward-data a dense copy of
    grad_output; NCHW: the NHWC copy) or padded rows."""
    if not _tma_built(kernel):
        pytest.skip(f"{kernel} needs an sm_90a build on a compute capability 9.0 GPU")
    offset, row_pad = SLICINGS[slicing]
    with precision("bf16"):
        for pass_ in _tma_passes(name):
            run_and_check(TMA_FORWARD[name], "bf16", layout, {pass_: kernel}, True, offset, row_pad, must_run=True)


# The copy-engine backward-weight (implicit_gemm:128x128_tma, fp16/bf16; csrc/implicit_gemm/backward_weight_tma.cuh)
# forced on the copy-engine shapes whose channels fill 16-byte vectors, plus a reduction of many splits, three tiles
# of output channels and channel boxes off 64-channel boundaries.
TMA_WGRAD = {name: case for name, case in TMA_FORWARD.items() if case.C % 8 == 0 and case.K % 8 == 0}
TMA_WGRAD["splits_8x64x32x64"] = Case(8, 64, 32, 64, 128, 3, 3, 1, 1, 1, 1)
TMA_WGRAD["k320"] = Case(2, 64, 9, 11, 320, 3, 3, 1, 1, 1, 1)  # three tiles of output channels
TMA_WGRAD["groups4_c8_k64"] = Case(2, 32, 12, 10, 256, 3, 3, 1, 1, 1, 4)  # channel boxes off 64-channel boundaries
TMA_WGRAD_KERNEL = "implicit_gemm:128x128_tma"


def _tma_wgrad_built():
    return TMA_WGRAD_KERNEL in conv2d_ext.kernels()["backward_weight"] and torch.cuda.get_device_capability() == (9, 0)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("precision_mode", ["fp16", "bf16"], indirect=True)
@pytest.mark.parametrize("name", list(TMA_WGRAD))
def test_tma_backward_weight(name, precision_mode, layout, poison):
    """The copy-engine backward-weight forced on shapes that exercise its boxes and splits; it must accept each."""
    if not _tma_wgrad_built():
        pytest.skip(f"{TMA_WGRAD_KERNEL} backward_weight needs an sm_90a build on a compute capability 9.0 GPU")
    bias = list(TMA_WGRAD).index(name) % 2 == 0
    run_and_check(TMA_WGRAD[name], precision_mode, layout, {"backward_weight": TMA_WGRAD_KERNEL}, bias, must_run=True)


# The 16-bit copy-engine backward-weight reading an NCHW input in place (csrc/implicit_gemm/backward_weight_tma_nchw.cuh,
# session 31; the 128x128_tma entry takes it where wgrad_reads_nchw says so): rows of 16-byte multiples (W % 8 == 0),
# stride 1 along them. Three blocks of (filter row, 64 channels) a filter column (tiles of two and one), five (a 5x5
# filter), partial 64-channel chunks, a partial tile of output channels and three tiles of them, groups (32 channels
# a group), stride and dilation along h, dilation along w, padding past the kernel, rows shorter than a k-tile (only
# under CONV2D_EXT_TMA_WGRAD_NCHW=1: a k-tile walks 64 pixels), rows of two k-tiles, many splits.
TMA_WGRAD_NCHW16 = {
    "w64_c64_k128": Case(2, 64, 7, 64, 128, 3, 3, 1, 1, 1, 1),
    "w120_c128_k72_s2x1_d2x1": Case(1, 128, 9, 120, 72, 3, 5, (2, 1), (1, 2), (2, 1), 1),
    "w72_c40_k24": Case(2, 40, 6, 72, 24, 3, 3, 1, 1, 1, 1),
    "groups2_w64_d1x3": Case(2, 64, 5, 64, 96, 3, 3, 1, (0, 1), (1, 3), 2),
    "k320_w64": Case(2, 64, 5, 64, 320, 3, 3, 1, 1, 1, 1),
    "5x5_w56": Case(2, 32, 12, 56, 48, 5, 5, 1, 2, 1, 1),
    "w16": Case(2, 32, 9, 16, 32, 3, 3, 1, 1, 1, 1),
    "w8_padding_beyond_kernel": Case(1, 16, 5, 8, 16, 3, 3, 1, 3, 1, 1),
    "splits_8x64x32x64": Case(8, 64, 32, 64, 128, 3, 3, 1, 1, 1, 1),
}


def _assert_wgrad_deterministic(case, dtype, layout, runs=3):
    """Bit-identical weight gradients of `case` on the copy-engine backward-weight over `runs` runs, fresh inputs."""
    x, w, _ = make_inputs(*case.sizes, case.groups, dtype, channels_last=layout == "nhwc", bias=False,
                          seed=fresh_seed())
    w.requires_grad_(True)
    y = conv2d_ext.conv2d(x, w, variant={"backward_weight": TMA_WGRAD_KERNEL}, **case.conv_args)
    gy = torch.randn_like(y)
    first = torch.autograd.grad(y, w, gy, retain_graph=True)[0]
    for _ in range(runs - 1):
        assert torch.equal(torch.autograd.grad(y, w, gy, retain_graph=True)[0], first), "not deterministic"


@pytest.mark.parametrize("precision_mode", ["fp16", "bf16"], indirect=True)
@pytest.mark.parametrize("mode", ["rule", "everywhere", "two_block_tiles"])
@pytest.mark.parametrize("name", list(TMA_WGRAD_NCHW16))
def test_tma_backward_weight_nchw_in_place(name, mode, precision_mode, poison, monkeypatch):
    """The 16-bit NCHW-in-place backward-weight: gradients against the reference (backward-data on the heuristics'
    kernel, so grad_output comes staged in NHWC where both passes are copy-engine kernels), and that it ran where
    wgrad_reads_nchw's rule (or CONV2D_EXT_TMA_WGRAD_NCHW=1, everywhere it fits) says so, in the configuration
    nchw_wgrad_tile_blocks picks: by default two blocks of 64 channels a tile on these short reductions (three from
    2^20 output pixels on); "everywhere" also sets CONV2D_EXT_TMA_WGRAD_N192=1 (three blocks for 3x3 filters of more
    than 64 output channels), "two_block_tiles" =0. Then bit-identical weight gradients over three runs."""
    if not _tma_wgrad_built():
        pytest.skip(f"{TMA_WGRAD_KERNEL} backward_weight needs an sm_90a build on a compute capability 9.0 GPU")
    case = TMA_WGRAD_NCHW16[name]
    monkeypatch.delenv("CONV2D_EXT_TMA_WGRAD_NCHW", raising=False)
    monkeypatch.delenv("CONV2D_EXT_TMA_WGRAD_N192", raising=False)
    if mode != "rule":
        monkeypatch.setenv("CONV2D_EXT_TMA_WGRAD_NCHW", "1")
        monkeypatch.setenv("CONV2D_EXT_TMA_WGRAD_N192", "1" if mode == "everywhere" else "0")
    walked = -(-case.W // 64) * 64  # 64-pixel k-tiles over the input columns the taps read: all W in these cases
    expect = mode != "rule" or walked * 15 <= case.W * 16
    kg, chunks = case.K // case.groups, -(-(case.C // case.groups) // 64)
    blocks = 3 if mode == "everywhere" and kg > 64 and case.R * chunks % 3 == 0 else 2
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        run_and_check(case, precision_mode, "nchw", {"backward_weight": TMA_WGRAD_KERNEL}, name.startswith("w"),
                      must_run=True)
        torch.cuda.synchronize()
    ran = [e.name for e in prof.events() if "backward_weight_tma_nchw_kernel<" in e.name]
    assert bool(ran) == expect, f"the NCHW kernel ran: {sorted(set(ran))}, expected {expect}"
    configs = {int(m.group(1)) for m in (re.search(r"TmaWgradNchwConfig<[^,<>]+, (\d+),", n) for n in ran) if m}
    assert not ran or configs == {blocks}, f"tile blocks {configs}, expected {blocks}"
    _assert_wgrad_deterministic(case, DTYPES[precision_mode], "nchw")


@pytest.mark.parametrize("slicing", [(3, 0), (0, 8), (1, 3)], ids=["offset3", "rowpad8", "offset1_rowpad3"])
@pytest.mark.parametrize("name", ["w64_c64_k128", "groups2_w64_d1x3", "w72_c40_k24"])
def test_tma_backward_weight_nchw_in_place_sliced(name, slicing, poison, monkeypatch):
    """Sliced NCHW inputs: the op makes a padded-row input dense (csrc/bindings.cpp), which the kernel then reads in
    place; an input at an odd base pointer with dense strides reaches the launcher as it is and takes the NHWC copy
    and the MN-major kernel (the copy engine needs 16-byte aligned bases)."""
    if not _tma_wgrad_built():
        pytest.skip(f"{TMA_WGRAD_KERNEL} backward_weight needs an sm_90a build on a compute capability 9.0 GPU")
    monkeypatch.setenv("CONV2D_EXT_TMA_WGRAD_NCHW", "1")
    offset, row_pad = slicing
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        run_and_check(TMA_WGRAD_NCHW16[name], "fp16", "nchw", {"backward_weight": TMA_WGRAD_KERNEL}, False, offset,
                      row_pad, must_run=True)
        torch.cuda.synchronize()
    ran = any("backward_weight_tma_nchw_kernel<" in e.name for e in prof.events())
    assert ran == (offset == 0 or row_pad > 0), f"the NCHW kernel ran: {ran}"


# The TF32 copy-engine backward-weight (csrc/implicit_gemm/backward_weight_tma_nchw.cuh): NCHW input read in place,
# a channels-last one copied to NCHW first (W % 4 == 0, stride_w 1), k-tiles of 32 aligned input columns of one row, grad_output's box shifted by the filter
# column. Rows shorter than a box and with a partial last box, partial 32-channel chunks, three tiles of output channels, groups, vertical stride, dilation, asymmetric
# padding, padding past the kernel, 1x1, a first layer's 3 channels, many splits. A horizontal stride (session 40): the
# input split by column phase (split_column_phases), each filter column's boxes in its phase's rows: strides 2 to 4,
# odd widths, dilation, 1x1, padding past the kernel, groups.
TMA_WGRAD_TF32 = {
    "q20_c16_k24": Case(2, 16, 9, 20, 24, 3, 3, 1, 1, 1, 1),
    "q72_c40_k36": Case(2, 40, 6, 72, 36, 3, 3, 1, 1, 1, 1),
    "splits_8x64x32x64": Case(8, 64, 32, 64, 128, 3, 3, 1, 1, 1, 1),
    "k320": Case(2, 64, 9, 12, 320, 3, 3, 1, 1, 1, 1),
    "groups4_c8_k64": Case(2, 32, 12, 12, 256, 3, 3, 1, 1, 1, 4),
    "stride_2x1": Case(2, 16, 21, 24, 16, 3, 3, (2, 1), 1, 1, 1),
    "dilation2": Case(2, 24, 17, 20, 40, 3, 3, 1, 2, 2, 1),
    "5x3_p2x1": Case(1, 16, 20, 36, 20, 5, 3, 1, (2, 1), 1, 1),
    "same_even_4x4": Case(2, 16, 10, 12, 24, 4, 4, 1, "same", 1, 1),
    "padding_beyond_kernel": Case(1, 16, 5, 8, 16, 3, 3, 1, 3, 1, 1),
    "1x1_c24": Case(3, 24, 9, 12, 40, 1, 1, 1, 0, 1, 1),
    "c3_k16": Case(2, 3, 16, 16, 16, 3, 3, 1, 1, 1, 1),
    "batch1_q132": Case(1, 32, 3, 132, 32, 3, 3, 1, 1, 1, 1),
    "groups2_kg36_cg24": Case(2, 48, 9, 20, 72, 3, 3, 1, 1, 1, 2),  # grad_output boxes at 16- but not 128-byte offsets
    "s2_q28_k64": Case(2, 32, 16, 56, 64, 3, 3, 2, 1, 1, 1),  # r50_3x3_128_s2's rows
    "s1x2_odd_w37": Case(2, 16, 9, 37, 24, 3, 3, (1, 2), 1, 1, 1),
    "s3_5x5_p2": Case(1, 24, 10, 40, 20, 5, 5, 3, 2, 1, 1),
    "s2_dilation2": Case(2, 16, 12, 30, 16, 3, 3, 2, 2, 2, 1),
    "s2_1x1": Case(2, 32, 8, 20, 40, 1, 1, 2, 0, 1, 1),
    "s4_padding_beyond_kernel": Case(1, 16, 9, 33, 16, 3, 3, 4, 3, 1, 1),
    "s2_groups2": Case(2, 32, 10, 70, 64, 3, 3, 2, 1, 1, 2),  # two column tiles of 32 phase columns
    "s4_w48": Case(1, 16, 6, 48, 24, 3, 3, (1, 4), 1, 1, 1),  # NCHW rows in 16-byte vectors at stride 4
}


@pytest.mark.parametrize("precision_mode", ["tf32"], indirect=True)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("slicing", [None] + list(SLICINGS))
@pytest.mark.parametrize("name", list(TMA_WGRAD_TF32))
def test_tma_backward_weight_tf32(name, slicing, layout, precision_mode, poison):
    """The TF32 copy-engine backward-weight forced on shapes that exercise its boxes; it must accept each. NCHW: an
    odd base pointer takes its mma.sync fallback. Channels-last: the input copied to NCHW first (to_nchw: 16-byte
    vectors, or one element at a time at odd offsets); padded rows (no single pixel stride) take the fallback."""
    if not _tma_wgrad_built():
        pytest.skip(f"{TMA_WGRAD_KERNEL} backward_weight needs an sm_90a build on a compute capability 9.0 GPU")
    offset, row_pad = SLICINGS[slicing] if slicing else (0, 0)
    bias = list(TMA_WGRAD_TF32).index(name) % 2 == 0
    run_and_check(TMA_WGRAD_TF32[name], "tf32", layout, {"backward_weight": TMA_WGRAD_KERNEL}, bias, offset, row_pad,
                  must_run=True)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_tma_backward_weight_is_deterministic(layout):
    """Bit-identical weight gradients over 10 runs (split partials added in a fixed order)."""
    if not _tma_wgrad_built():
        pytest.skip(f"{TMA_WGRAD_KERNEL} backward_weight needs an sm_90a build on a compute capability 9.0 GPU")
    case = TMA_WGRAD["splits_8x64x32x64"]
    x, w, _ = make_inputs(*case.sizes, case.groups, torch.bfloat16, channels_last=layout == "nhwc", bias=False)
    w.requires_grad_(True)
    y = conv2d_ext.conv2d(x, w, **case.conv_args, variant={"backward_weight": TMA_WGRAD_KERNEL})
    grad_out = random_tensor(y.shape, y.dtype, channels_last=layout == "nhwc")
    first = torch.autograd.grad(y, w, grad_out, retain_graph=True)[0]
    for _ in range(9):
        assert torch.equal(torch.autograd.grad(y, w, grad_out, retain_graph=True)[0], first)


def test_tma_backward_weight_tf32_is_deterministic():
    """The TF32 kernel (NCHW): bit-identical weight gradients over 10 runs."""
    if not _tma_wgrad_built():
        pytest.skip(f"{TMA_WGRAD_KERNEL} backward_weight needs an sm_90a build on a compute capability 9.0 GPU")
    case = TMA_WGRAD_TF32["splits_8x64x32x64"]
    with precision("tf32"):
        x, w, _ = make_inputs(*case.sizes, case.groups, torch.float32, bias=False)
        w.requires_grad_(True)
        y = conv2d_ext.conv2d(x, w, **case.conv_args, variant={"backward_weight": TMA_WGRAD_KERNEL})
        grad_out = random_tensor(y.shape, y.dtype)
        first = torch.autograd.grad(y, w, grad_out, retain_graph=True)[0]
        for _ in range(9):
            assert torch.equal(torch.autograd.grad(y, w, grad_out, retain_graph=True)[0], first)


# Tail splits (backward_weight_tma.cuh's plan_wgrad_grid): where the output tiles pass a wave of CTAs
# (CONV2D_EXT_TMA_WGRAD_CTAS, 132 by default) by at most half a wave, the last tiles' reductions are cut into several
# splits whose partial tiles reduce_splits adds after their first. r50_3x3_512 (144 tiles) takes it by default in
# every dtype and layout (bf16 on the MN-major kernel, TF32 packed rows); the small cases under a small wave of CTAs:
# 5 tiles in waves of 4 and 2 (one tail tile of 4 or 2 splits), the NCHW kernels' 6 and 4 tiles, three m tiles.
TAIL_CASES = {
    "r50_3x3_512": (Case(32, 512, 7, 7, 512, 3, 3, 1, 1, 1, 1), None),
    "splits_8x64x32x64_w4": (TMA_WGRAD["splits_8x64x32x64"], "4"),
    "splits_8x64x32x64_w2": (TMA_WGRAD["splits_8x64x32x64"], "2"),
    "w64_c64_k128_w5": (TMA_WGRAD_NCHW16["w64_c64_k128"], "5"),
    "k320_w64_w4": (TMA_WGRAD_NCHW16["k320_w64"], "4"),
    "r50_7x7_c64_k128_w3": (Case(32, 64, 7, 7, 128, 3, 3, 1, 1, 1, 1), "3"),
}


@pytest.mark.parametrize("mode_layout", ["bf16-nhwc", "fp16-nchw", "bf16-nchw_in_place", "tf32-nchw", "tf32-nhwc"])
@pytest.mark.parametrize("tail", ["auto", "off"])
@pytest.mark.parametrize("name", list(TAIL_CASES))
def test_tma_backward_weight_tail_splits(name, tail, mode_layout, poison, monkeypatch):
    """The copy-engine backward-weight with tail splits (and with them off: CONV2D_EXT_TMA_WGRAD_TAIL=0): gradients
    against the reference and bit-identical weight gradients over three runs, on the three kernels (MN-major 16-bit,
    16-bit NCHW in place, TF32; packed rows where the maps are small)."""
    if not _tma_wgrad_built():
        pytest.skip(f"{TMA_WGRAD_KERNEL} backward_weight needs an sm_90a build on a compute capability 9.0 GPU")
    case, ctas = TAIL_CASES[name]
    mode, layout = mode_layout.split("-")
    if layout == "nchw_in_place":
        layout = "nchw"
        monkeypatch.setenv("CONV2D_EXT_TMA_WGRAD_NCHW", "1")
        monkeypatch.setenv("CONV2D_EXT_TMA_WGRAD_PACK", "auto")  # small maps: packed rows
    if ctas is None:
        monkeypatch.delenv("CONV2D_EXT_TMA_WGRAD_CTAS", raising=False)
    else:
        monkeypatch.setenv("CONV2D_EXT_TMA_WGRAD_CTAS", ctas)
    monkeypatch.setenv("CONV2D_EXT_TMA_WGRAD_TAIL", "0" if tail == "off" else "1")
    with precision(mode):
        run_and_check(case, mode, layout, {"backward_weight": TMA_WGRAD_KERNEL}, False, must_run=True)
        _assert_wgrad_deterministic(case, DTYPES[mode], layout)


# Row-packed small maps (backward_weight_tma_nchw.cuh's RowPacking, session 32): the batch's images side by side
# along each input row, so that a k-tile of 32 (TF32) or 64 (16-bit) pixels walks several images' columns. TF32 in
# either layout, fp16/bf16 NCHW. r50's 7x7 and 14x14 layers, stride and dilation along h, dilation along w, groups of
# 32 channels (narrow tiles), padding past the kernel (slots wider than W + pad), 5x5 filters, a batch of one (packed
# only under CONV2D_EXT_TMA_WGRAD_PACK=1), "same" padding of even filters (more padding right than left: slots of
# Q + (S - 1) dil_w - pad_w).
TMA_WGRAD_PACKED = {
    "r50_7x7_c64_k128": Case(32, 64, 7, 7, 128, 3, 3, 1, 1, 1, 1),
    "w14_c32_k72": Case(16, 32, 14, 14, 72, 3, 3, 1, 1, 1, 1),
    "stride2x1_dil2": Case(24, 16, 9, 6, 72, 3, 3, (2, 1), 1, 2, 1),
    "groups2_narrow": Case(20, 64, 5, 5, 64, 3, 3, 1, 1, 1, 2),
    "padding_beyond_kernel": Case(16, 16, 5, 5, 16, 3, 3, 1, 3, 1, 1),
    "5x5_w9_k40": Case(8, 24, 9, 9, 40, 5, 5, 1, 2, 1, 1),
    "batch1_w7": Case(1, 32, 7, 7, 32, 3, 3, 1, 1, 1, 1),
    "same_even_4x4_w11": Case(4, 16, 10, 11, 24, 4, 4, 1, "same", 1, 1),  # right padding 2, left 1
    "same_even_2x2_w6_dil3": Case(6, 32, 6, 6, 64, 2, 2, 1, "same", 3, 1),  # right padding 2, left 1
}


def _problem(case, dtype, layout):
    """The Problem of `case` in `dtype` and `layout`, as conv2d_ext plans it (meta tensors: nothing allocated)."""
    x = torch.empty(case.N, case.C, case.H, case.W, dtype=dtype, device="meta")
    w = torch.empty(case.K, case.C // case.groups, case.R, case.S, dtype=dtype, device="meta")
    if layout == "nhwc":
        x = x.to(memory_format=torch.channels_last)
    return conv2d_ext._args.normalize(x, w, None, **case.conv_args, capability=(9, 0))


@pytest.mark.parametrize("mode", ["default", "rule", "everywhere", "off"])
@pytest.mark.parametrize("dtype_layout", ["tf32-nchw", "tf32-nhwc", "fp16-nchw", "bf16-nchw"])
@pytest.mark.parametrize("name", list(TMA_WGRAD_PACKED))
def test_tma_backward_weight_packed_rows(name, dtype_layout, mode, poison, monkeypatch):
    """The copy-engine backward-weight on row-packed copies: gradients against the reference, the packing kernels
    ran exactly where the rule says so (CONV2D_EXT_TMA_WGRAD_PACK unset, the default: TF32 only; =auto: every dtype;
    =1 everywhere; =0 never), and bit-identical weight gradients over three runs. TF32 rows that are not 16-byte
    multiples and are not packed are refused."""
    if not _tma_wgrad_built():
        pytest.skip(f"{TMA_WGRAD_KERNEL} backward_weight needs an sm_90a build on a compute capability 9.0 GPU")
    mode_name, layout = dtype_layout.split("-")
    case = TMA_WGRAD_PACKED[name]
    monkeypatch.delenv("CONV2D_EXT_TMA_WGRAD_NCHW", raising=False)
    monkeypatch.delenv("CONV2D_EXT_TMA_WGRAD_PACK", raising=False)
    if mode != "default":
        monkeypatch.setenv("CONV2D_EXT_TMA_WGRAD_PACK", {"rule": "auto", "everywhere": "1", "off": "0"}[mode])
    # heuristics.wgrad_packs_rows mirrors the kernel's rule under the environment set here; the profiler checks it
    expect = conv2d_ext.heuristics.wgrad_packs_rows(_problem(case, DTYPES[mode_name], layout))
    from torch.profiler import ProfilerActivity, profile
    with precision(mode_name):
        if mode_name == "tf32" and not expect and case.W % 4 != 0:  # rows the TF32 kernel cannot read in place
            with pytest.raises(conv2d_ext.Conv2dError, match="W % 4"):
                run_and_check(case, mode_name, layout, {"backward_weight": TMA_WGRAD_KERNEL}, False, must_run=True)
            return
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            run_and_check(case, mode_name, layout, {"backward_weight": TMA_WGRAD_KERNEL}, name.startswith("r50"),
                          must_run=True)
            torch.cuda.synchronize()
        names = {e.name for e in prof.events()}
        packed = any("pack_input_rows" in n for n in names) and any("pack_grad_output_rows" in n for n in names)
        assert packed == expect, f"packed: {packed}, expected {expect}"
        if packed:
            assert any("backward_weight_tma_nchw_kernel<" in n for n in names), sorted(names)
        _assert_wgrad_deterministic(case, DTYPES[mode_name], layout)


@pytest.mark.parametrize("slicing", list(SLICINGS))
@pytest.mark.parametrize("mode_name", ["tf32", "bf16"])
def test_tma_backward_weight_packed_rows_sliced(mode_name, slicing, poison, monkeypatch):
    """Sliced inputs and gradients (odd base pointers, padded rows) on the packed path: the packing kernels read any
    strides (grad_output element by element where its channels are not dense 16-byte vectors)."""
    if not _tma_wgrad_built():
        pytest.skip(f"{TMA_WGRAD_KERNEL} backward_weight needs an sm_90a build on a compute capability 9.0 GPU")
    monkeypatch.setenv("CONV2D_EXT_TMA_WGRAD_PACK", "auto")
    offset, row_pad = SLICINGS[slicing]
    with precision(mode_name):
        run_and_check(TMA_WGRAD_PACKED["r50_7x7_c64_k128"], mode_name, "nchw", {"backward_weight": TMA_WGRAD_KERNEL},
                      True, offset, row_pad, must_run=True)


# Both backward passes on the copy engine in NCHW: grad_output is copied to NHWC once (conv2d_ext::to_channels_last)
# and both passes read that copy in place (csrc/bindings.cpp keeps it, staged_nhwc skips its own copy).
SHARED_STAGING = {name: case for name, case in TMA_WGRAD.items() if case.stride == 1}
SHARED_STAGING.update({f"tf32_{name}": case for name, case in TMA_WGRAD_TF32.items() if case.stride == 1})


@pytest.mark.parametrize("slicing", [None] + list(SLICINGS))
@pytest.mark.parametrize("precision_mode", ["tf32", "fp16", "bf16"], indirect=True)
@pytest.mark.parametrize("name", list(SHARED_STAGING))
def test_nchw_backward_stages_grad_output_once(name, precision_mode, slicing, poison, monkeypatch):
    """Forward and both gradients correct when the two copy-engine backward passes share one NHWC grad_output, which
    the backward makes exactly once per call (not at all for 1x1 problems the pointwise kernels read in place)."""
    if not _tma_wgrad_built():
        pytest.skip(f"{TMA_WGRAD_KERNEL} needs an sm_90a build on a compute capability 9.0 GPU")
    copies = []
    real = conv2d_ext._ops.to_channels_last
    monkeypatch.setattr(conv2d_ext._ops, "to_channels_last", lambda t: copies.append(t.shape) or real(t))
    offset, row_pad = SLICINGS[slicing] if slicing else (0, 0)
    variant = {"backward_data": "implicit_gemm:128x64_tma", "backward_weight": TMA_WGRAD_KERNEL}
    case = SHARED_STAGING[name]
    x, w, _ = make_inputs(*case.sizes, case.groups, DTYPES[precision_mode], bias=False)
    problem = conv2d_ext._args.normalize(x, w, None, **case.conv_args, capability=(9, 0))
    for pass_, kernel in variant.items():
        why = conv2d_ext.heuristics.can_implement(kernel, pass_, problem)
        if why:
            pytest.skip(f"{kernel} cannot run {pass_} of {name}: {why}")
    run_and_check(case, precision_mode, "nchw", variant, True, offset, row_pad, must_run=True)
    # none for a 1x1 problem the pointwise kernels read in place (TF32 1x1_c24: 432-byte planes)
    assert len(copies) == (0 if conv2d_ext.heuristics.pointwise_in_place(problem) else 1)


def test_to_channels_last_op_copies_exactly():
    """conv2d_ext::to_channels_last: a bit-exact channels-last copy, for vector-friendly and odd sizes and a sliced
    input (fp32, fp16, bf16)."""
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        for shape in ((2, 64, 510, 1022), (3, 24, 7, 7), (1, 5, 3, 9), (2, 128, 14, 14)):
            x = torch.randn(shape, device="cuda").to(dtype)
            y = torch.ops.conv2d_ext.to_channels_last(x)
            assert y.is_contiguous(memory_format=torch.channels_last) and torch.equal(y, x)
            sliced = torch.randn(shape[0], shape[1] + 1, shape[2], shape[3] + 2, device="cuda").to(dtype)[:, 1:, :, 1:]
            assert torch.equal(torch.ops.conv2d_ext.to_channels_last(sliced), sliced)


@pytest.mark.parametrize("precision_mode", ["fp32", "bf16"], indirect=True)
def test_auto_variant(precision_mode, poison):
    """The heuristics' own choice, with bias, on a ResNet-like shape."""
    run_and_check(Case(4, 32, 28, 28, 64, 3, 3, 1, 1, 1, 1), precision_mode, "nchw", "auto", True)


# Depthwise shapes for the tiled family's depthwise kernels (issue 9): the specialised 3x3 / 5x5 / 7x7 stride-1 path
# and the general one (3x1, 1x7, 5x9, strides, dilations, asymmetric padding), channel multipliers 2 and 3, odd
# and wide images, several channel chunks, and the suite's two cases at batch 2 (16-byte copies, many tiles per
# block).
DEPTHWISE_GRID = {
    "3x3": Case(2, 17, 12, 12, 17, 3, 3, 1, 1, 1, 17),
    "3x3_x2": Case(2, 8, 13, 11, 16, 3, 3, 1, 1, 1, 8),
    "5x5": Case(2, 12, 11, 9, 12, 5, 5, 1, 2, 1, 12),
    "7x7_odd": Case(1, 9, 15, 17, 9, 7, 7, 1, 3, 1, 9),
    "3x1": Case(2, 6, 16, 9, 6, 3, 1, 1, (1, 0), 1, 6),
    "1x7": Case(2, 6, 9, 16, 6, 1, 7, 1, (0, 3), 1, 6),
    "5x9_x2": Case(1, 4, 14, 19, 8, 5, 9, 1, (2, 4), 1, 4),
    "stride2": Case(2, 10, 15, 17, 10, 3, 3, 2, 1, 1, 10),
    "stride2_x2_5x5": Case(2, 6, 10, 10, 12, 5, 5, 2, 2, 1, 6),
    "stride_2x3": Case(1, 5, 19, 21, 5, 3, 3, (2, 3), 1, 1, 5),
    "dilation2": Case(2, 8, 16, 16, 8, 3, 3, 1, 2, 2, 8),
    "dilation_2x3_s2_x2": Case(2, 4, 19, 21, 8, 3, 3, 2, 1, (2, 3), 4),
    "same_even_4x4": Case(2, 6, 10, 11, 6, 4, 4, 1, "same", 1, 6),  # asymmetric padding
    "padding_beyond_kernel": Case(1, 4, 5, 6, 4, 3, 3, 1, 3, 1, 4),
    "stride_beyond_kernel": Case(2, 4, 17, 17, 4, 2, 2, 3, 0, 1, 4),
    "odd_129x151": Case(1, 3, 129, 151, 3, 3, 3, 1, 1, 1, 3),
    "wide_9x200": Case(1, 4, 9, 200, 4, 3, 3, 1, 1, 1, 4),
    "multiplier_3": Case(1, 5, 12, 12, 15, 3, 3, 1, 1, 1, 5),
    "channels_72": Case(2, 72, 14, 14, 72, 3, 3, 1, 1, 1, 72),
    "suite_3x3_n2": Case(2, 144, 56, 56, 144, 3, 3, 1, 1, 1, 144),
    "suite_7x7_n2": Case(2, 96, 56, 56, 96, 7, 7, 1, 3, 1, 96),
    "batch16_split": Case(16, 8, 32, 32, 8, 3, 3, 1, 1, 1, 8),  # backward-weight in several splits
}
DEPTHWISE_SLICED = ["3x3_x2", "stride2", "5x9_x2", "odd_129x151", "suite_3x3_n2", "suite_7x7_n2"]


# Grouped shapes for the tiled family's grouped kernels (issue 9): narrow groups (C/groups and K/groups up to 32;
# K/groups up to 64 with 4 or fewer input channels per group), first layers (groups 1, 1 or 3 input channels: RGB,
# r50_conv1's 7x7 stride 2 at a small size; 4-channel register blocks in backward-data), with odd channel counts,
# channel multipliers K/groups != C/groups (both ways, up to 32 with masked register blocks), strides (backward-data by stride phase, phases no tap reaches included), dilations, non-square and 1x1
# filters, asymmetric padding, odd and wide images (several column tiles), batch 1, a split backward-weight, and
# the suite's grouped_g32 at batch 2.
GROUPED_GRID = {
    "c4_k6": Case(2, 8, 12, 11, 12, 3, 3, 1, 1, 1, 2),
    "c3_k5_stride2": Case(2, 12, 15, 17, 20, 3, 3, 2, 1, 1, 4),
    "c4_k1": Case(2, 8, 10, 9, 2, 3, 3, 1, 1, 1, 2),
    "c2_k6_multiplier_3": Case(1, 4, 11, 13, 12, 3, 3, 1, 1, 1, 2),
    "c5_k12": Case(1, 10, 10, 10, 24, 3, 3, 1, 1, 1, 2),
    "c16_k16": Case(2, 32, 9, 9, 32, 3, 3, 1, 1, 1, 2),
    "c32_k32": Case(1, 64, 8, 8, 64, 3, 3, 1, 1, 1, 2),
    "c5_k3_batch3": Case(3, 15, 7, 9, 9, 3, 3, 1, 1, 1, 3),
    "stride2_5x5": Case(2, 8, 13, 14, 8, 5, 5, 2, 2, 1, 2),
    "stride_2x3": Case(1, 12, 19, 21, 6, 3, 3, (2, 3), 1, 1, 3),
    "dilation2": Case(2, 8, 16, 16, 8, 3, 3, 1, 2, 2, 4),
    "dilation_2x3_s2": Case(2, 8, 19, 21, 12, 3, 3, 2, 1, (2, 3), 4),
    "3x1": Case(2, 8, 16, 9, 8, 3, 1, 1, (1, 0), 1, 2),
    "1x7": Case(2, 8, 9, 16, 8, 1, 7, 1, (0, 3), 1, 2),
    "5x3": Case(1, 6, 12, 10, 9, 5, 3, 1, (2, 1), 1, 3),
    "1x1_g4": Case(2, 16, 9, 11, 8, 1, 1, 1, 0, 1, 4),
    "same_even_4x4": Case(2, 8, 10, 11, 8, 4, 4, 1, "same", 1, 4),  # asymmetric padding
    "padding_beyond_kernel": Case(1, 8, 5, 6, 8, 3, 3, 1, 3, 1, 2),
    "stride_beyond_kernel": Case(2, 8, 17, 17, 8, 2, 2, 3, 0, 1, 2),  # backward-data phases without taps
    "odd_129x151": Case(1, 6, 129, 151, 6, 3, 3, 1, 1, 1, 2),
    "batch1_g4": Case(1, 16, 20, 20, 16, 3, 3, 1, 1, 1, 4),
    "batch16_split": Case(16, 8, 32, 32, 8, 3, 3, 1, 1, 1, 2),  # backward-weight in several splits
    "suite_g32_n2": Case(2, 256, 28, 28, 256, 3, 3, 1, 1, 1, 32),
    "rgb_k64_7x7_stride2": Case(2, 3, 45, 39, 64, 7, 7, 2, 3, 1, 1),
    "rgb_k24_3x3": Case(1, 3, 17, 23, 24, 3, 3, 1, 1, 1, 1),
    "c1_k40_5x5_stride2_dilation2": Case(2, 1, 21, 19, 40, 5, 5, 2, 2, 2, 1),
    "c4_k64_g2": Case(2, 8, 12, 13, 128, 3, 3, 1, 1, 1, 2),
    "stride_3x1": Case(2, 8, 17, 13, 8, 3, 3, (3, 1), 1, 1, 2),  # backward-data: 3 phases in one block
    "stride_1x2_dilation_1x2": Case(1, 6, 11, 16, 9, 3, 3, (1, 2), (1, 2), (1, 2), 3),
}
GROUPED_SLICED = ["c3_k5_stride2", "c5_k12", "1x7", "odd_129x151", "suite_g32_n2", "rgb_k64_7x7_stride2"]

# tiled:grouped's forward and backward-data over a reduction too wide for one staging (its channels in chunks, the
# register blocks kept across them): the forward of 200 input channels into 8 (and of 96 per group into 20, stride 2), backward-data of 256 output channels
# into 3 (and r50_conv1's backward-data, 64 channels x 16 taps per phase, at batch 4). Each names its pass.
GROUPED_CHUNKED = {
    "forward_c200_k8": (Case(2, 200, 13, 15, 8, 3, 3, 1, 1, 1, 1), "forward"),
    "forward_c192_k40_g2_stride2": (Case(1, 192, 17, 16, 40, 3, 3, 2, 1, 1, 2), "forward"),
    "backward_data_k256_c3": (Case(2, 3, 20, 22, 256, 3, 3, 1, 1, 1, 1), "backward_data"),
    "backward_data_r50_conv1_n4": (Case(4, 3, 224, 224, 64, 7, 7, 2, 3, 1, 1), "backward_data"),
}


# The tiled family's kernels: each forced on every pass of every case of its grid (it must accept all of them), on
# sliced inputs, for a bit-identical backward-weight, and under the heuristics. Per kernel: its grid, the cases run
# sliced, the cases whose backward-weight is repeated, the case run with variant "auto".
TILED = {
    "tiled:depthwise": (DEPTHWISE_GRID, DEPTHWISE_SLICED, ["suite_3x3_n2", "5x9_x2", "batch16_split"], "3x3_x2"),
    "tiled:grouped": (GROUPED_GRID, GROUPED_SLICED, ["suite_g32_n2", "c3_k5_stride2", "batch16_split"], "suite_g32_n2"),
}


def _tiled(index):
    """(kernel, case name) pairs of TILED's `index`-th list, for parametrize."""
    return [(kernel, name) for kernel, spec in TILED.items() for name in spec[index]]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("precision_mode", ["fp32", "tf32", "fp16", "bf16"], indirect=True)
@pytest.mark.parametrize("kernel,name", _tiled(0))
def test_tiled(kernel, name, precision_mode, layout, poison):
    """A tiled kernel forced on every pass of its shapes; it must accept each of them (fp32 meets the fp32 bound in the
    tf32 mode too: the tiled kernels never use tensor cores)."""
    grid = TILED[kernel][0]
    bias = list(grid).index(name) % 2 == 0
    run_and_check(grid[name], precision_mode, layout, kernel, bias, must_run=True)


@pytest.mark.parametrize("slicing", list(SLICINGS))
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("precision_mode", ["fp32", "fp16", "bf16"], indirect=True)
@pytest.mark.parametrize("kernel,name", _tiled(1))
def test_tiled_sliced_inputs(kernel, name, precision_mode, layout, slicing, poison):
    """Misaligned base pointers (odd offsets: the copies fall back to narrower or single-element ones, channels-last
    stores from 16-byte vectors) and padded rows, in both layouts."""
    offset, row_pad = SLICINGS[slicing]
    run_and_check(TILED[kernel][0][name], precision_mode, layout, kernel, True, offset, row_pad, must_run=True)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("precision_mode", ["fp32", "fp16", "bf16"], indirect=True)
@pytest.mark.parametrize("name", list(GROUPED_CHUNKED))
def test_tiled_grouped_chunked_reduction(name, precision_mode, layout, poison):
    """tiled:grouped forced on one pass whose reduction channels are staged in several chunks; it must accept it."""
    case, pass_ = GROUPED_CHUNKED[name]
    run_and_check(case, precision_mode, layout, {pass_: "tiled:grouped"}, True, must_run=True)


def check_backward_weight_deterministic(case, dtype, channels_last, variant):
    """Backward-weight of `case` on `variant`, 11 times on the same inputs under
    torch.use_deterministic_algorithms(True): every result bit-identical to the first."""
    seed = fresh_seed()
    x, w, _ = make_inputs(*case.sizes, case.groups, dtype, channels_last=channels_last, bias=False, seed=seed)
    w.requires_grad_(True)
    saved = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        y = conv2d_ext.conv2d(x, w, **case.conv_args, variant=variant)
        grad_out = random_tensor(y.shape, y.dtype, seed=seed + 1, channels_last=channels_last)
        first = torch.autograd.grad(y, w, grad_out, retain_graph=True)[0]
        for _ in range(10):
            assert torch.equal(torch.autograd.grad(y, w, grad_out, retain_graph=True)[0], first), f"seed {seed}"
    finally:
        torch.use_deterministic_algorithms(saved)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("kernel,name", _tiled(2))
def test_tiled_backward_weight_is_deterministic(kernel, name, layout):
    """Backward-weight adds fixed per-block partials in a fixed order (no atomics): bit-identical over 10 runs, with
    torch.use_deterministic_algorithms(True)."""
    check_backward_weight_deterministic(TILED[kernel][0][name], torch.float32, layout == "nhwc", kernel)


# tiled:grouped_mma (narrow groups on tensor cores: fp16, bf16, TF32; forward with K/groups <= 16, backward-data at
# stride 1 with C/groups <= 16; the reduction's channels per group at most 64 bytes). Forced on every pass of every
# GROUPED_GRID case it should implement by that rule (it must accept exactly those), so the grid's strides, dilations,
# non-square and 1x1 filters, asymmetric padding, odd sizes, odd channel counts (channels staged as zeros past the
# group's, element by element), multipliers both ways and several tiles and group blocks all run on it; plus
# sliced views (misaligned: element-wise staging and stores), a wide image (several column tiles) and tiles of
# whole rows whose last tile is short (NCHW 16-byte stores in TF32; fp16/bf16 store it element by element).
GROUPED_MMA_EXTRA = {
    "c8_k8_wide_70x75": Case(1, 16, 70, 75, 16, 3, 3, 1, 1, 1, 2),
    "c8_k16_g12_7x7": Case(2, 96, 17, 19, 192, 7, 7, 1, 3, 1, 12),
    "c16_k8_stride2_g9": Case(2, 144, 15, 16, 72, 3, 3, 2, 1, 1, 9),
    "c8_k8_batch16_split": Case(16, 16, 32, 32, 16, 3, 3, 1, 1, 1, 2),
    "c8_k4_same_4x4": Case(2, 16, 10, 11, 8, 4, 4, 1, "same", 1, 2),
    "c24_k12_5x3_dilation2": Case(1, 48, 13, 12, 24, 5, 3, 1, (2, 1), 2, 2),
    "c8_k8_1x1_g3": Case(2, 24, 9, 7, 24, 1, 1, 1, 0, 1, 3),
    "c8_k8_row_tiles_23x12": Case(2, 16, 23, 12, 16, 3, 3, 1, 1, 1, 2),  # NCHW 16-byte stores, short last tile
    # Channels-last blocks of 128 bytes of output channels: a last group block of 4 of 8 groups (16-bit), a short last
    # tile row, two tile columns.
    "c8_k8_g12_30_wide": Case(2, 96, 13, 30, 96, 3, 3, 1, 1, 1, 12),
    "c8_k8_g8_33_wide": Case(1, 64, 9, 33, 64, 3, 3, 1, 1, 1, 8),
}
GROUPED_MMA_CASES = {**GROUPED_GRID, **GROUPED_MMA_EXTRA}


def grouped_mma_passes(case, mode):
    """The passes tiled:grouped_mma runs for `case` in `mode` (tf32, fp16, bf16), by its stated limits; backward-weight
    with C/groups in whole 16-byte rows up to 64 bytes and at most 64 m-tiles (R*S*C/groups / 16; 48 in TF32 with
    K/groups > 8)."""
    esize = 4 if mode == "tf32" else 2
    cg, kg = case.C // case.groups, case.K // case.groups
    if case.groups == 1 or case.groups == case.C:
        return {}
    passes = {}
    if kg <= 16 and cg * esize <= 64:
        passes["forward"] = "tiled:grouped_mma"
    if case.stride in (1, (1, 1)) and cg <= 16 and kg * esize <= 64:
        passes["backward_data"] = "tiled:grouped_mma"
    most_mtiles = 48 if esize == 4 and kg > 8 else 64  # TF32 with two n8 tiles keeps 6 jobs a warp, not 8
    if cg * esize % 16 == 0 and cg * esize <= 64 and kg <= 16 and case.R * case.S * cg <= most_mtiles * 16:
        passes["backward_weight"] = "tiled:grouped_mma"
    return passes


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("precision_mode", ["tf32", "fp16", "bf16"], indirect=True)
@pytest.mark.parametrize("name", list(GROUPED_MMA_CASES))
def test_tiled_grouped_mma(name, precision_mode, layout, poison):
    """tiled:grouped_mma forced on the passes its limits admit; it must accept each of them."""
    case = GROUPED_MMA_CASES[name]
    passes = grouped_mma_passes(case, precision_mode)
    if not passes:
        pytest.skip("beyond tiled:grouped_mma's limits (groups 1, depthwise, or too many channels per group)")
    bias = list(GROUPED_MMA_CASES).index(name) % 2 == 0
    run_and_check(case, precision_mode, layout, passes, bias, must_run=True)


@pytest.mark.parametrize("slicing", list(SLICINGS))
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("precision_mode", ["tf32", "bf16"], indirect=True)
@pytest.mark.parametrize("name", ["suite_g32_n2", "c5_k12", "c16_k16", "c8_k16_g12_7x7"])
def test_tiled_grouped_mma_sliced_inputs(name, precision_mode, layout, slicing, poison):
    """Views at odd offsets (not 16-byte aligned: the staging falls back to element loads, the stores to single
    elements) and padded rows (made dense by the op)."""
    offset, row_pad = SLICINGS[slicing]
    case = GROUPED_MMA_CASES[name]
    run_and_check(case, precision_mode, layout, grouped_mma_passes(case, precision_mode), True, offset, row_pad,
                  must_run=True)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("name", ["suite_g32_n2", "c8_k8_batch16_split", "c24_k12_5x3_dilation2"])
def test_tiled_grouped_mma_backward_weight_is_deterministic(name, layout):
    """tiled:grouped_mma's backward-weight (per-block sums over fixed tiles, the splits added in a fixed order; no
    atomics): bit-identical over 10 runs, with torch.use_deterministic_algorithms(True)."""
    check_backward_weight_deterministic(GROUPED_MMA_CASES[name], torch.bfloat16, layout == "nhwc",
                                        {"backward_weight": "tiled:grouped_mma"})


def test_tiled_grouped_mma_says_why_not():
    """Exact fp32, float64, strided backward-data, wide groups and TF32 backward-weight of more than 16 input channels
    per group are refused with their reason."""
    x = torch.randn(1, 64, 8, 8, device="cuda")
    w = torch.randn(64, 8, 3, 3, device="cuda")
    with precision("fp32"):
        with pytest.raises(conv2d_ext.Conv2dError, match="exact fp32"):
            conv2d_ext.conv2d(x, w, padding=1, groups=8, variant={"forward": "tiled:grouped_mma"})
    with pytest.raises(conv2d_ext.Conv2dError, match="float64"):
        conv2d_ext.conv2d(x.double(), w.double(), padding=1, groups=8, variant={"forward": "tiled:grouped_mma"})
    with pytest.raises(conv2d_ext.Conv2dError, match="strided"):
        y = conv2d_ext.conv2d(x.half().requires_grad_(), w.half(), stride=2, groups=8,
                              variant={"backward_data": "tiled:grouped_mma"})
        y.sum().backward()
    with pytest.raises(conv2d_ext.Conv2dError, match="more than 16 output channels"):
        conv2d_ext.conv2d(x.half(), torch.randn(256, 8, 3, 3, device="cuda").half(), groups=8,
                          variant={"forward": "tiled:grouped_mma"})
    with precision("fp32"):
        with pytest.raises(conv2d_ext.Conv2dError, match="exact fp32"):
            y = conv2d_ext.conv2d(x, w.clone().requires_grad_(), padding=1, groups=8,
                                  variant={"backward_weight": "tiled:grouped_mma"})
            y.sum().backward()
    with pytest.raises(conv2d_ext.Conv2dError, match="multiple of 4 up to 16"):  # TF32: 32 input channels per group
        y = conv2d_ext.conv2d(x, torch.randn(64, 32, 3, 3, device="cuda", requires_grad=True), padding=1, groups=2,
                              variant={"backward_weight": "tiled:grouped_mma"})
        y.sum().backward()


# tiled:depthwise_vec (channels-last forward and stride-1 backward-data, 3x3 / 5x5 / 7x7, multiplier 1, channels in
# 16-byte vectors for every dtype; backward-weight 3x3): partial strips (widths not a multiple of 4 or 2), padding of
# 0 and beyond the filter, images smaller than the filter, batch 1 and 3, channels in more than one block (320 fp32
# channels: 80 vectors, groups of 64), the suite's two cases at batch 2.
DEPTHWISE_VEC = {
    "3x3_c8": Case(2, 8, 13, 11, 8, 3, 3, 1, 1, 1, 8),
    "3x3_c24_w17": Case(1, 24, 15, 17, 24, 3, 3, 1, 1, 1, 24),
    "3x3_c40_batch3": Case(3, 40, 7, 9, 40, 3, 3, 1, 1, 1, 40),
    "5x5_c16_pad0": Case(2, 16, 11, 9, 16, 5, 5, 1, 0, 1, 16),
    "7x7_c32": Case(1, 32, 15, 17, 32, 7, 7, 1, 3, 1, 32),
    "7x7_c8_smaller_than_filter": Case(2, 8, 5, 6, 8, 7, 7, 1, 3, 1, 8),
    "3x3_padding_beyond_kernel": Case(1, 8, 5, 6, 8, 3, 3, 1, 3, 1, 8),
    "3x3_pad0_rows_cut": Case(2, 16, 6, 7, 16, 3, 3, 1, 0, 1, 16),
    "3x3_wide_9x200": Case(1, 8, 9, 200, 8, 3, 3, 1, 1, 1, 8),
    "3x3_c320_two_groups": Case(1, 320, 9, 10, 320, 3, 3, 1, 1, 1, 320),
    "suite_3x3_n2": Case(2, 144, 56, 56, 144, 3, 3, 1, 1, 1, 144),
    "suite_7x7_n2": Case(2, 96, 56, 56, 96, 7, 7, 1, 3, 1, 96),
}


def depthwise_vec_passes(case):
    """The passes tiled:depthwise_vec runs for `case`: forward and backward-data, and backward-weight for 3x3."""
    passes = {"forward": "tiled:depthwise_vec", "backward_data": "tiled:depthwise_vec"}
    if case.R == case.S == 3:
        passes["backward_weight"] = "tiled:depthwise_vec"
    return passes


@pytest.mark.parametrize("precision_mode", ["fp32", "fp16", "bf16"], indirect=True)
@pytest.mark.parametrize("name", list(DEPTHWISE_VEC))
def test_tiled_depthwise_vec(name, precision_mode, poison):
    """tiled:depthwise_vec forced on its forward and backward-data (channels-last), and on backward-weight for 3x3
    filters; it must accept each case."""
    case = DEPTHWISE_VEC[name]
    bias = list(DEPTHWISE_VEC).index(name) % 2 == 0
    run_and_check(case, precision_mode, "nhwc", depthwise_vec_passes(case), bias, must_run=True)


@pytest.mark.parametrize("slicing", list(SLICINGS))
@pytest.mark.parametrize("precision_mode", ["fp32", "bf16"], indirect=True)
@pytest.mark.parametrize("name", ["3x3_c24_w17", "7x7_c32"])
def test_tiled_depthwise_vec_sliced_inputs(name, precision_mode, slicing, poison):
    """Views at odd offsets (not 16-byte aligned: tiled:depthwise_vec hands them to depthwise.cuh's tiles, with
    their workspace for backward-weight) and padded rows (made dense by the op)."""
    offset, row_pad = SLICINGS[slicing]
    case = DEPTHWISE_VEC[name]
    run_and_check(case, precision_mode, "nhwc", depthwise_vec_passes(case), True, offset, row_pad, must_run=True)


@pytest.mark.parametrize("precision_mode", ["fp32", "bf16"], indirect=True)
@pytest.mark.parametrize("name", ["3x3_c40_batch3", "suite_3x3_n2"])
def test_tiled_depthwise_vec_backward_weight_is_deterministic(name, precision_mode):
    """tiled:depthwise_vec's backward-weight (per-block sums in lane order, then the split rows in a fixed order; no
    atomics): bit-identical over 10 runs, with torch.use_deterministic_algorithms(True)."""
    check_backward_weight_deterministic(DEPTHWISE_VEC[name], DTYPES[precision_mode], True,
                                        {"backward_weight": "tiled:depthwise_vec"})


def depthwise_mma_passes(case):
    """tiled:depthwise_mma's passes for `case`: forward, and backward-data where the padding stays within the filter."""
    passes = {"forward": "tiled:depthwise_mma"}
    if case.padding <= min(case.R, case.S) - 1:  # DEPTHWISE_VEC paddings are ints
        passes["backward_data"] = "tiled:depthwise_mma"
    return passes


# Beyond DEPTHWISE_VEC's square filters: non-square filters (1 x 7, 5 x 3, 7 x 5) and two tiles of columns.
DEPTHWISE_MMA = dict(DEPTHWISE_VEC, **{
    "1x7_c16_pad0": Case(2, 16, 9, 23, 16, 1, 7, 1, 0, 1, 16),
    "5x3_c8_pad1": Case(1, 8, 10, 19, 8, 5, 3, 1, 1, 1, 8),
    "7x5_c8_w70": Case(1, 8, 9, 70, 8, 7, 5, 1, 2, 1, 8),
})


@pytest.mark.parametrize("precision_mode", ["fp16", "bf16"], indirect=True)
@pytest.mark.parametrize("name", list(DEPTHWISE_MMA))
def test_tiled_depthwise_mma(name, precision_mode, poison):
    """tiled:depthwise_mma (filter rows as band matrices on mma.sync) forced on its forward and
    backward-data, channels-last; it must accept each case."""
    case = DEPTHWISE_MMA[name]
    bias = list(DEPTHWISE_MMA).index(name) % 2 == 1
    run_and_check(case, precision_mode, "nhwc", depthwise_mma_passes(case), bias, must_run=True)


@pytest.mark.parametrize("slicing", list(SLICINGS))
@pytest.mark.parametrize("precision_mode", ["fp16", "bf16"], indirect=True)
@pytest.mark.parametrize("name", ["3x3_c24_w17", "7x7_c32"])
def test_tiled_depthwise_mma_sliced_inputs(name, precision_mode, slicing, poison):
    """Padded rows (made dense by the op) and views at odd element offsets (not 16-byte aligned: handed to
    tiled:depthwise's tiles) must run."""
    offset, row_pad = SLICINGS[slicing]
    case = DEPTHWISE_VEC[name]
    run_and_check(case, precision_mode, "nhwc", depthwise_mma_passes(case), True, offset, row_pad, must_run=True)


@pytest.mark.parametrize("precision_mode", ["fp16", "bf16"], indirect=True)
@pytest.mark.parametrize("name", ["3x3_c24_w17", "7x7_c32", "1x7_c16_pad0", "7x5_c8_w70"])
def test_tiled_depthwise_mma_ffma_tiles(name, precision_mode, poison, monkeypatch):
    """The FFMA path that tiles holding an inf or a NaN take, forced on every tile (CONV2D_EXT_DWMMA_ALL_FFMA=1, a
    test hook) with finite inputs: forward and backward-data."""
    monkeypatch.setenv("CONV2D_EXT_DWMMA_ALL_FFMA", "1")
    case = DEPTHWISE_MMA[name]
    run_and_check(case, precision_mode, "nhwc", depthwise_mma_passes(case), True, must_run=True)


# tiled:depthwise's copy-engine staging (the default on compute capability 9.0; CONV2D_EXT_DW_TMA=0 turns it off):
# channels-last fp16/bf16 5x5 / 7x7 tiles of 32 staged channels (C = 32, or a multiple of 32 chunked by 32): awkward
# sizes, batch 1, three chunks; base pointers 16-byte aligned (offset 8 elements) and not (offset 3: cp.async path).
DEPTHWISE_TMA = {
    "7x7_c96": Case(2, 96, 17, 23, 96, 7, 7, 1, 3, 1, 96),
    "7x7_c32_b1_w70": Case(1, 32, 9, 70, 32, 7, 7, 1, 3, 1, 32),
    "5x5_c128": Case(2, 128, 12, 13, 128, 5, 5, 1, 2, 1, 128),
    "7x7_c32_pad1": Case(3, 32, 11, 9, 32, 7, 7, 1, 1, 1, 32),
}


@pytest.mark.parametrize("precision_mode", ["fp16", "bf16"], indirect=True)
@pytest.mark.parametrize("tma", ["1", "0"])
@pytest.mark.parametrize("offset", [0, 8, 3])
@pytest.mark.parametrize("name", list(DEPTHWISE_TMA))
def test_tiled_depthwise_tma(name, offset, tma, precision_mode, poison, monkeypatch):
    """tiled:depthwise's three passes with the copy-engine staging on (CONV2D_EXT_DW_TMA=1, the default) and off, the
    static items of conv_kernel (CONV2D_EXT_DW_DYNAMIC=0): the
    results, and that the copy-engine kernels (forward / backward-data, backward-weight) ran exactly when it is on and
    the base pointers are 16-byte aligned (their names in a profiler trace)."""
    if torch.cuda.get_device_capability() != (9, 0):
        pytest.skip("the copy-engine staging runs on compute capability 9.0 only")
    monkeypatch.setenv("CONV2D_EXT_DW_TMA", tma)
    monkeypatch.setenv("CONV2D_EXT_DW_DYNAMIC", "0")  # conv_kernel's copy-engine variant (test_tiled_depthwise_dynamic)
    case = DEPTHWISE_TMA[name]
    passes = {p: "tiled:depthwise" for p in ("forward", "backward_data", "backward_weight")}
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        run_and_check(case, precision_mode, "nhwc", passes, offset == 0, offset=offset, must_run=True)
        torch.cuda.synchronize()
    names = sorted({e.name for e in prof.events() if re.search(r"\b(conv|wgrad)_kernel<", e.name)})
    tma_runs = [n for n in names if re.search(r"32, (true|\(bool\)1)>", n)]
    if tma == "1" and offset % 8 == 0:
        for kernel in ("conv_kernel<", "wgrad_kernel<"):
            assert any(kernel in n for n in tma_runs), f"no copy-engine {kernel}...> in {names}"
    else:
        assert not tma_runs, f"a copy-engine depthwise kernel ran: {tma_runs}"
        assert len(names) >= 2, f"tiled:depthwise kernels missing from the trace: {names}"


# tiled:depthwise's register blocks handed out at run time (conv_kernel_dynamic, the default; CONV2D_EXT_DW_DYNAMIC=0
# turns it off): the copy-engine forward and backward-data. Block ranges that start and end inside tiles and reuse their buffers
# need more tiles than the grid has blocks (the two large cases: 960 and 1296 tiles).
DEPTHWISE_DYNAMIC = dict(DEPTHWISE_TMA, **{
    "7x7_c96_n40": Case(40, 96, 56, 56, 96, 7, 7, 1, 3, 1, 96),
    "5x5_c160_n24_h29_w61": Case(24, 160, 29, 61, 160, 5, 5, 1, 2, 1, 160),
})


@pytest.mark.parametrize("precision_mode", ["fp16", "bf16"], indirect=True)
@pytest.mark.parametrize("tma_store", ["1", "0"])
@pytest.mark.parametrize("offset", [0, 8])
@pytest.mark.parametrize("name", list(DEPTHWISE_DYNAMIC))
def test_tiled_depthwise_dynamic(name, offset, tma_store, precision_mode, poison, monkeypatch):
    """tiled:depthwise forward and backward-data with its default conv_kernel_dynamic (CONV2D_EXT_DW_DYNAMIC unset),
    its register blocks stored by the copy engine (the default) or by global stores (CONV2D_EXT_DW_TMA_STORE=0): the
    results, and that the dynamic kernel ran (its name in a profiler trace)."""
    if torch.cuda.get_device_capability() != (9, 0):
        pytest.skip("the copy-engine staging runs on compute capability 9.0 only")
    monkeypatch.delenv("CONV2D_EXT_DW_DYNAMIC", raising=False)
    monkeypatch.setenv("CONV2D_EXT_DW_TMA_STORE", tma_store)
    monkeypatch.delenv("CONV2D_EXT_DW_TMA", raising=False)
    case = DEPTHWISE_DYNAMIC[name]
    passes = {"forward": "tiled:depthwise", "backward_data": "tiled:depthwise"}
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        run_and_check(case, precision_mode, "nhwc", passes, offset == 0, offset=offset, must_run=True)
        torch.cuda.synchronize()
    names = sorted({e.name for e in prof.events() if "conv_kernel_dynamic<" in e.name})
    assert len(names) >= 2, f"no dynamic depthwise kernel for both passes: {names}"


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_tiled_depthwise_mma_inf_only_where_pytorch_has_it(dtype):
    """The band matrices' zeros meet input columns outside each output's window: a tile holding an inf must take the
    FFMA path, so that the non-finite outputs are exactly PyTorch's."""
    x = random_tensor((2, 16, 12, 40), dtype, seed=fresh_seed(), channels_last=True)
    x[1, 3, 5, 20] = float("inf")
    w = random_tensor((16, 1, 7, 7), dtype, seed=fresh_seed())
    y = conv2d_ext.conv2d(x, w, padding=3, groups=16, variant={"forward": "tiled:depthwise_mma"})
    ref = torch.nn.functional.conv2d(x.double(), w.double(), padding=3, groups=16)
    finite = torch.isfinite(ref)
    assert not finite.all()
    assert torch.equal(torch.isfinite(y), finite)
    assert rel_err(y[finite].double(), ref[finite]) <= TOLERANCE["bf16" if dtype == torch.bfloat16 else "fp16"]


def check_backward_weight_inf(channels, weight_shape, padding, groups, inf_at, finite_taps, channels_last,
                              variant="auto", allow_tf32=False):
    """Backward-weight of a 3 x 3 image of `channels` channels with an infinite input at `inf_at` (row, column), which
    reaches the taps named by `finite_taps` (index into the gradient's (r, s) dimensions) only through output
    positions past the image: those taps must stay finite (no 0 x inf NaN), the finite pattern must be PyTorch's
    float64 gradient's, and the finite values must agree."""
    x = random_tensor((2, channels, 3, 3), torch.float32, seed=fresh_seed(), channels_last=channels_last)
    x[:, :, inf_at[0], inf_at[1]] = float("inf")
    w = random_tensor(weight_shape, torch.float32, seed=fresh_seed()).requires_grad_(True)
    old = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = allow_tf32
    try:
        y = conv2d_ext.conv2d(x, w, padding=padding, groups=groups, variant=variant)
        grad_out = random_tensor(y.shape, y.dtype, seed=fresh_seed(), channels_last=channels_last)
        ours = torch.autograd.grad(y, w, grad_out)[0]
    finally:
        torch.backends.cudnn.allow_tf32 = old
    wd = w.detach().double().requires_grad_(True)
    ref = torch.autograd.grad(torch.nn.functional.conv2d(x.double(), wd, padding=padding, groups=groups), wd,
                              grad_out.double())[0]
    finite = torch.isfinite(ref)
    assert all(finite[(slice(None), slice(None)) + taps].all() for taps in finite_taps) and not finite.all()
    assert torch.equal(torch.isfinite(ours), finite)
    assert rel_err(ours[finite], ref[finite]) <= TOLERANCE["tf32" if allow_tf32 else "fp32"]


FIRST_ROW, FIRST_COL = (0, slice(None)), (slice(None), 0)  # taps r = 0, taps s = 0


def test_tiled_depthwise_vec_backward_weight_inf_only_where_pytorch_has_it():
    """An infinite input in the last column, which only a strip's pixel past the last output column meets at tap
    s = 0 (3 columns, padding 1: strips of 2 pixels)."""
    check_backward_weight_inf(8, (8, 1, 3, 3), 1, 8, (1, 2), [FIRST_COL], True,
                              {"backward_weight": "tiled:depthwise_vec"})


@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
@pytest.mark.parametrize("filter_rs", [(3, 3), (3, 1)])  # the tiles' specialised 3x3 path and their general path
def test_tiled_depthwise_backward_weight_inf_only_where_pytorch_has_it(filter_rs, layout):
    """tiled:depthwise: an infinite input in the last row and column, which only register-block positions past the
    last output row (and, channels-last, column) meet at tap r = 0 (s = 0)."""
    R, S = filter_rs
    check_backward_weight_inf(8, (8, 1, R, S), (R // 2, S // 2), 8, (2, 2), [FIRST_ROW], layout == "nhwc",
                              {"backward_weight": "tiled:depthwise"})


@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
def test_tiled_grouped_backward_weight_inf_only_where_pytorch_has_it(layout):
    """tiled:grouped (groups of 4 channels): tile positions past the 3 x 3 output meet the infinite input at taps
    r = 0 and s = 0."""
    check_backward_weight_inf(8, (8, 4, 3, 3), 1, 2, (2, 2), [FIRST_ROW, FIRST_COL], layout == "nhwc",
                              {"backward_weight": "tiled:grouped"})


@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
@pytest.mark.parametrize("allow_tf32", [False, True])
def test_dense_backward_weight_inf_only_where_pytorch_has_it(layout, allow_tf32):
    """The heuristics' backward-weight of a small dense convolution (16 -> 16 channels): the same, in exact fp32 and
    TF32 (the implicit-GEMM im2col of positions past the output)."""
    check_backward_weight_inf(16, (16, 16, 3, 3), 1, 1, (2, 2), [FIRST_ROW, FIRST_COL], layout == "nhwc",
                              allow_tf32=allow_tf32)


# tiled:depthwise_rows (NCHW forward and stride-1 backward-data, 3x3 / 5x5 / 7x7, "same" column padding, rows of a
# multiple of 16 bytes: 8 columns here, so every dtype takes them): strips cut by the height (rows not a multiple of
# 8 or 4), row padding of 0 and beyond the filter, images smaller than the filter and one vector wide, batch 1 and 3,
# the suite's two cases at batch 2. Multiplier 2 runs its forward only (backward-data: multiplier 1).
DEPTHWISE_ROWS = {
    "3x3_c8": Case(2, 8, 13, 16, 8, 3, 3, 1, 1, 1, 8),
    "3x3_c24_w24": Case(1, 24, 15, 24, 24, 3, 3, 1, 1, 1, 24),
    "3x3_c40_batch3": Case(3, 40, 7, 8, 40, 3, 3, 1, 1, 1, 40),
    "5x5_c16": Case(2, 16, 11, 24, 16, 5, 5, 1, 2, 1, 16),
    "5x5_c16_row_pad0": Case(2, 16, 11, 24, 16, 5, 5, 1, (0, 2), 1, 16),
    "7x7_c32": Case(1, 32, 15, 32, 32, 7, 7, 1, 3, 1, 32),
    "7x7_c8_smaller_than_filter": Case(2, 8, 5, 8, 8, 7, 7, 1, 3, 1, 8),
    "3x3_row_pad_beyond_kernel": Case(1, 8, 5, 16, 8, 3, 3, 1, (4, 1), 1, 8),
    "3x3_wide_9x200": Case(1, 8, 9, 200, 8, 3, 3, 1, 1, 1, 8),
    "suite_3x3_n2": Case(2, 144, 56, 56, 144, 3, 3, 1, 1, 1, 144),
    "suite_7x7_n2": Case(2, 96, 56, 56, 96, 7, 7, 1, 3, 1, 96),
}
DEPTHWISE_ROWS_PASSES = {"forward": "tiled:depthwise_rows", "backward_data": "tiled:depthwise_rows"}


@pytest.mark.parametrize("precision_mode", ["fp32", "fp16", "bf16"], indirect=True)
@pytest.mark.parametrize("name", list(DEPTHWISE_ROWS))
def test_tiled_depthwise_rows(name, precision_mode, poison):
    """tiled:depthwise_rows forced on its forward and backward-data (NCHW); it must accept each case."""
    bias = list(DEPTHWISE_ROWS).index(name) % 2 == 0
    run_and_check(DEPTHWISE_ROWS[name], precision_mode, "nchw", DEPTHWISE_ROWS_PASSES, bias, must_run=True)


@pytest.mark.parametrize("precision_mode", ["fp32", "bf16"], indirect=True)
@pytest.mark.parametrize("name", ["3x3_multiplier_2", "7x7_multiplier_3"])
def test_tiled_depthwise_rows_channel_multiplier(name, precision_mode, poison):
    """Forward with K = M x C (output channel k reads input channel k / M)."""
    case = {"3x3_multiplier_2": Case(2, 8, 11, 16, 16, 3, 3, 1, 1, 1, 8),
            "7x7_multiplier_3": Case(1, 8, 9, 24, 24, 7, 7, 1, 3, 1, 8)}[name]
    run_and_check(case, precision_mode, "nchw", {"forward": "tiled:depthwise_rows"}, True, must_run=True)


@pytest.mark.parametrize("slicing", list(SLICINGS))
@pytest.mark.parametrize("precision_mode", ["fp32", "bf16"], indirect=True)
@pytest.mark.parametrize("name", ["3x3_c24_w24", "7x7_c32"])
def test_tiled_depthwise_rows_sliced_inputs(name, precision_mode, slicing, poison):
    """Views at odd offsets (not 16-byte aligned: tiled:depthwise_rows hands them to depthwise.cuh's tiles) and padded
    rows (made dense by the op)."""
    offset, row_pad = SLICINGS[slicing]
    run_and_check(DEPTHWISE_ROWS[name], precision_mode, "nchw", DEPTHWISE_ROWS_PASSES, True, offset, row_pad,
                  must_run=True)


@pytest.mark.parametrize("precision_mode", ["fp32", "tf32", "bf16"], indirect=True)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("kernel", list(TILED))
def test_auto_variant_tiled(kernel, precision_mode, layout, poison):
    """The heuristics pick the tiled kernel for every pass of its kind of convolution (depthwise, narrow groups)."""
    case = TILED[kernel][0][TILED[kernel][3]]
    x, w, b = make_inputs(*case.sizes, case.groups, DTYPES[precision_mode], channels_last=layout == "nhwc")
    assert conv2d_ext.explain(x, w, b, **case.conv_args).count(kernel) == 3
    run_and_check(case, precision_mode, layout, "auto", True)
