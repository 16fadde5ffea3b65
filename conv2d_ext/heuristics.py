"""Which kernel runs each pass of a convolution.

`select(problem, variant, registry)` is a pure function of a Problem (shape, dtype, layout, the GPU's compute
capability) and the kernel registry: no tensors, no GPU, so it is tested on any machine, with a fake registry
where the compiled one would not do. For each pass it walks RULES in order and takes the first rule whose
condition holds and whose kernel can implement the problem. A variant forces a family (its rules first, then its
kernels in registry order) or a kernel; one that cannot run the problem raises Conv2dError saying why.

The registry (the compiled one by default: conv2d_ext._C's table of kernels) lists every kernel as
(pass, name, family, config), a name being "family" or "family:config", and says why a kernel cannot run a
problem (its C++ can_implement).
"""
import os
from typing import Callable, Dict, NamedTuple, Optional, Sequence, Tuple

import torch

from ._args import Conv2dError, Problem

__all__ = ["PASSES", "FAMILIES", "AVAILABLE", "Problem", "Decision", "Rule", "RULES", "Registry", "compiled",
           "can_implement", "check_variant", "forced", "select", "describe", "pointwise_in_place"]

PASSES = ("forward", "backward_data", "backward_weight")

# Every family the project knows, built or planned (the shared-memory tiled and tensor-core implicit-GEMM
# families); what this build has is in the registry.
FAMILIES = ("direct", "tiled", "implicit_gemm")


def family_of(name: str) -> str:
    """The family of a kernel name ("implicit_gemm:128x128" -> "implicit_gemm")."""
    return name.split(":", 1)[0]


class Registry:
    """Kernels per pass, in table order, and why one cannot run a problem.

    kernels: (pass, name, family, config) tuples, as conv2d_ext._C.kernels() lists them.
    why_not: (pass, name, problem) -> "" when the kernel can run the problem, else the reason.
    """

    def __init__(self, kernels: Sequence[Tuple[str, str, str, str]], why_not: Callable[[str, str, Problem], str]):
        self.kernels = {pass_: tuple(name for p, name, _, _ in kernels if p == pass_) for pass_ in PASSES}
        self.families = tuple(dict.fromkeys(family for _, _, family, _ in kernels))  # in table order
        self.why_not = why_not

    def names(self):
        """Every kernel name, each once, in table order."""
        return tuple(dict.fromkeys(name for pass_ in PASSES for name in self.kernels[pass_]))


@torch.compiler.assume_constant_result  # torch.compile calls it while tracing (plain values in, a str out)
def _can_implement_in_c(pass_, name, sizes, stride, padding, dilation, groups, dtype, channels_last, allow_tf32, sm):
    from . import _C

    return _C.can_implement(pass_, name, list(sizes), list(stride), list(padding), list(dilation), groups, dtype,
                            channels_last, allow_tf32, sm)


def _compiled_why_not(pass_, name, p):
    sizes = (p.N, p.C, p.H, p.W, p.K, p.R, p.S, p.P, p.Q)
    return _can_implement_in_c(pass_, name, sizes, p.stride, (p.padding[0], p.padding[2]), p.dilation, p.groups,
                               p.dtype, p.channels_last, p.allow_tf32, p.capability[0] * 10 + p.capability[1])


def _compiled_registry():
    from . import _C

    return Registry(_C.kernels(), _compiled_why_not)


compiled = _compiled_registry()  # the kernels built into conv2d_ext._C

# Families compiled into this build.
AVAILABLE = compiled.families


class Decision(NamedTuple):
    kernel: str  # "family" or "family:config"
    family: str
    reason: str


class Rule(NamedTuple):
    kernel: str  # a kernel name; a rule whose kernel is not built, or cannot run the problem, is skipped
    applies: Callable[[Problem, str], bool]  # (problem, pass) -> does this rule apply
    reason: str


def _tensor_core_dtype(p: Problem) -> bool:
    """fp16/bf16, or fp32 where TF32 is allowed."""
    return p.dtype in ("float16", "bfloat16") or (p.dtype == "float32" and p.allow_tf32)


def _exact_fp32(p: Problem) -> bool:
    """float32 with TF32 disallowed: CUDA-core FFMA, bit-for-bit fp32 products."""
    return p.dtype == "float32" and not p.allow_tf32


def _gemm_columns(p: Problem, pass_: str) -> int:
    """The GEMM's N per group, the tile dimension a narrow group would waste: output channels (forward), input
    channels (backward-data); backward-weight's rows are output channels, its columns C/groups x R x S taps."""
    return p.C // p.groups if pass_ == "backward_data" else p.K // p.groups


def _tensor_core(p: Problem, pass_: str) -> bool:
    """A tensor-core dtype and a convolution that fills MMA tiles: not depthwise, 16 or more channels on the GEMM's
    narrow side."""
    return _tensor_core_dtype(p) and not p.depthwise and _gemm_columns(p, pass_) >= 16


def _narrow_groups(p: Problem, pass_: str) -> bool:
    """A grouped convolution (groups > 1, not depthwise) whose narrow side is too small for tensor cores."""
    return p.groups > 1 and not p.depthwise and _gemm_columns(p, pass_) < 16


def _grouped_mma(p: Problem, pass_: str) -> bool:
    """Narrow groups in a tensor-core dtype whose rows of 16 bytes are full: the forward's reduction channels
    (C/groups) or backward-data's (K/groups) a multiple of 8 fp16/bf16 or 4 fp32; backward-weight with C/groups a
    multiple of 8 fp16/bf16, or of 4 fp32 (TF32) up to 16."""
    if not _narrow_groups(p, pass_) or not _tensor_core_dtype(p):
        return False
    if pass_ == "backward_weight":
        cg = p.C // p.groups
        return cg % 4 == 0 and cg <= 16 if p.dtype == "float32" else cg % 8 == 0
    reduction = p.K // p.groups if pass_ == "backward_data" else p.C // p.groups
    return reduction * (4 if p.dtype == "float32" else 2) % 16 == 0


def _tensor_core_forward(p: Problem, pass_: str) -> bool:
    return pass_ == "forward" and _tensor_core(p, pass_)


def _tensor_core_backward_data(p: Problem, pass_: str) -> bool:
    return pass_ == "backward_data" and _tensor_core(p, pass_)


def pointwise_in_place(p: Problem) -> bool:
    """A 1x1 NCHW convolution the copy-engine configurations read and write in place (their pointwise kernels:
    stride 1, no padding, one group, input and output channel planes of 16-byte multiples; the launcher's
    pointwise_fits, for contiguous tensors)."""
    elem = 4 if p.dtype == "float32" else 2
    return (not p.channels_last and p.R * p.S == 1 and tuple(p.stride) == (1, 1) and not any(p.padding) and
            p.groups == 1 and p.H * p.W * elem % 16 == 0 and p.P * p.Q * elem % 16 == 0)


def _tma_phases(p: Problem) -> bool:
    """Strided backward-data that the copy-engine configurations run by stride phase (backward_data_tma.cuh: one
    stride-1 forward of grad_output per phase into grad_input's strided view): dilation 1, every phase with taps
    (filters at least the stride), channels-last or fp16/bf16. Session 30 (H100, r50_3x3_128_s2 backward-data, graph
    ms): channels-last fp16 0.042 against 0.050 on 256x128_wg and 0.054 on 128x64_tma, TF32 0.065 against 0.076 /
    0.079 (cuDNN 0.025 / 0.044); NCHW fp16 0.064 against 0.068 on 256x128_wg, bf16 0.063 / 0.066 (each copying
    grad_output to NHWC itself: in the backward of both passes conv2d.py stages it once), TF32 0.136 / 0.134. NCHW
    only on a grid of a wave or more of 128 x 128 tiles over the phases (r50_3x3_128_s2: 784), whose GEMMs pay for
    the copy and the phases' launches; small ones keep the one launch. NCHW TF32 where backward-weight runs on the
    copy engine too (session 40: by column phase at a horizontal stride), so that conv2d.py stages grad_output once
    for both (else the stride-phase mma kernels, even with their own copy)."""
    wide = _tiles(p, 128, 128, "backward_data") >= 132
    if not (p.channels_last or (wide and (p.dtype != "float32" or _tma_backward_weight(p, "backward_weight")))):
        return False
    return tuple(p.dilation) == (1, 1) and p.R >= p.stride[0] and p.S >= p.stride[1] and tuple(p.stride) != (1, 1)


def _tma_pass(p: Problem, pass_: str) -> bool:
    """The copy-engine configurations' passes: the forward, and backward-data at stride 1 (the forward of grad_output
    with flipped filters) or by stride phase (_tma_phases). Their can_implement asks for channels in 16-byte vectors
    and a Hopper GPU. Not a 1x1 TF32 forward in NCHW that their pointwise kernels cannot read in place: each
    activation is read once there, and copying 4-byte activations to NHWC costs more than the native loads of
    128x128_wg (r50_1x1 on the H200: 0.092 ms against 0.102 through the copy; in place 0.038; in fp16/bf16 the
    copy-engine kernel wins either way, 0.061 through the copy, 0.021 in place, against 0.100)."""
    if (pass_ == "forward" and not p.channels_last and p.R * p.S == 1 and p.dtype == "float32" and
            not pointwise_in_place(p)):
        return False
    return _tensor_core_forward(p, pass_) or (_tensor_core_backward_data(p, pass_) and
                                               (tuple(p.stride) == (1, 1) or _tma_phases(p)))


def _im2col(p: Problem, pass_: str) -> bool:
    """An ungrouped first layer (4 or fewer input channels) whose whole reduction (C x R x S <= 160) fits
    implicit_gemm:im2col's tile, in a tensor-core dtype; backward-data with 64 or fewer output channels and filters of
    64 or fewer taps. H200, r50_conv1 (graph ms, session 26), against the rules after this one, forward /
    backward-data / backward-weight: fp16 NCHW 0.105 / 0.381 / 0.134 (256x128_wg 0.293, tiled:grouped 0.980, 64x64
    0.185), channels-last 0.097 / 0.521 / 0.217 (0.289, 0.840, 0.473); bf16 the same; TF32 NCHW 0.181 / 0.823 / 0.170
    (0.342, 1.030, 0.183), channels-last 0.163 / 0.913 / 0.239 (0.339, tiled:grouped 0.870, 0.248). Session 37 (H100)
    put TF32 backward-data at two CTAs a SM: 0.512 NCHW, 0.493 channels-last against tiled:grouped's 1.024 / 0.861
    (cuDNN 0.527 / 0.659); bf16 0.340 / 0.320. CONV2D_EXT_IM2COL=0 makes its can_implement refuse (the rules after
    this one decide then)."""
    if not _tensor_core_dtype(p) or p.groups != 1 or p.C > 4 or p.C * p.R * p.S > 160:
        return False
    if pass_ == "backward_data":
        return p.K <= 64 and p.R * p.S <= 64
    return True


def _first_layer(p: Problem, pass_: str) -> bool:
    """An ungrouped convolution with 4 or fewer input channels (an RGB first layer: r50_conv1), in the passes and
    dtypes where the tiled grouped kernels beat the tensor-core tiles (H200, r50_conv1, per pass, benchmarks/results/
    passes_session9.txt): backward-data in every dtype: fp32 with or without TF32 (1.03 ms NCHW / 0.87 NHWC, against
    1.89 / 1.95 on 256x128_wg, 9.2 on ffma and 4.9 on 128x64_ffma), channels-last fp16/bf16 (0.84 against 1.04 on
    64x64) and, since session 20's staging fix (passes_session20.txt), NCHW fp16/bf16 (0.98 against 1.13 on
    128x128_wg); the forward in exact fp32 only (0.41 ms against 0.47 on
    128x64_ffma; in TF32, fp16 and bf16 the 256x128 wgmma tiles win: 0.30-0.35), backward-weight in channels-last
    exact fp32 only (0.535 against 0.567 on 64x128_ffma; NCHW 0.591 against 0.504; mma.sync 64x64 tiles win in the
    other modes: 0.19)."""
    if p.groups != 1 or p.C > 4 or p.dtype == "float64":
        return False
    if pass_ == "backward_data":
        return True
    if pass_ == "backward_weight":
        return _exact_fp32(p) and p.channels_last
    return _exact_fp32(p)


def _few_input_channels(p: Problem, pass_: str) -> bool:
    """Backward-data of an ungrouped convolution with fewer than 16 input channels (r50_conv1: C = 3) in a
    tensor-core dtype."""
    return (pass_ == "backward_data" and _tensor_core_dtype(p) and p.groups == 1 and p.C < 16 and
            p.K >= 16)


def _tiles(p: Problem, bm: int, bn: int, pass_: str = "forward") -> int:
    """CTAs of a bm x bn tiling of the forward (pixels x output channels) or backward-data (input pixels x input
    channels) GEMM, over all groups. Backward-data runs one GEMM per stride phase (stride_h x stride_w of them, each
    over about 1 / (stride_h x stride_w) of the input pixels)."""
    if pass_ == "backward_data":
        (sh, sw), phases = p.stride, p.stride[0] * p.stride[1]
        pixels = p.N * -(-p.H // sh) * -(-p.W // sw)  # the largest phase
    else:
        phases, pixels = 1, p.N * p.P * p.Q
    return -(-pixels // bm) * -(-_gemm_columns(p, pass_) // bn) * p.groups * phases


# Two CTAs per SM on a 132-SM H100: below this many 128x128 tiles, smaller tiles keep every SM busy.
_FULL_WAVE_TILES = 264
# Below this many 128x128 tiles even one CTA per SM leaves three quarters of the H100's SMs idle: 64x64 tiles
# (r50_3x3_512, 52 tiles, still runs faster on 128x128 wgmma tiles: 0.062 against 0.064 ms, bf16 NHWC).
_QUARTER_WAVE_TILES = 33
# Up to this many 128x128 tiles, the copy-engine kernel's 128x64 tiles. Above it 128x128 tiles in one CTA per SM
# with deep rings (forward_tma.cuh's tma_deep_ring) read half the activation boxes through L2 and win on a part-empty
# GPU (H100, session 35, graph ms, 128x128 / 128x64): r50_3x3_512 (52 tiles) bf16 NHWC forward 0.0243 / 0.0273,
# backward-data 0.0313 / 0.0362, TF32 0.0445 / 0.0532, NCHW bf16 0.0429 / 0.0435; batch1_3x3 (64 tiles) TF32 NCHW
# 0.0322 / 0.0336, bf16 NHWC 0.0143 / 0.0147. At 28 tiles (r50_3x3_512 at batch 16) 128x64 wins: bf16 NHWC 0.0195
# against 0.0240, NCHW 0.0333 / 0.0403. (Before the deep rings, H200: 64, batch1_3x3 and r50_3x3_512 on 128x64.)
_SMALL_TMA_TILES = 40
# The exact-fp32 FFMA configurations' like threshold (_ffma_128x64: r50_3x3_512, 52 tiles, and batch1_3x3, 64, on
# 128x64 FFMA tiles).
_SMALL_FFMA_TILES = 64
# From this many output pixels on (the backward-weight reduction), the copy-engine backward-weight wins (H200, bf16:
# seed 3.08 / 1.45 ms NCHW / NHWC against 5.15 / 3.48 on 128x128_w8, unet_3x3 0.25 / 0.18 against 0.53 / 0.44); below
# it the mma.sync kernels are as fast or faster (r50_3x3_64, 100K pixels: 0.18 either way; r50_3x3_256: 0.125 on
# 128x128_w8 against 0.143). Below it, stride-1 layers with rows of 32 or more pixels and 64 or more output channels
# per group win too (session 26, fp16 NCHW: dilated, 32K pixels, 0.128 ms against 0.257 on 128x128_w8; batch1_3x3,
# 4K pixels, 0.042 against 0.060): the narrow rows (r50_3x3_256's 14 pixels) are what lost, until session 34's
# one-wave split (split_boxes) made every layer of 64 or more output channels a group faster on it (_tma_backward_weight).
_WGRAD_TMA_PIXELS = 1 << 17
# The TF32 copy-engine backward-weight wins from this many output pixels on (H200, per pass, NCHW: dilated, 32K
# pixels, 0.215 ms against 0.550 on 128x128_w8; r50_3x3_64 0.138 against 0.160 on 64x64; r50_1x1 0.109 against 0.127
# on 64x64; seed 4.31 against 9.34; channels-last, the input copied to NCHW: seed 3.71 against 12.07, unet_3x3 0.42
# against 1.40, dilated 0.214 against 0.709, r50_3x3_64 0.146 against 0.213); batch1_3x3 (4K pixels) ran 0.102
# against 0.095 on 128x128_w8 before session 34's one-wave split, 0.044 against 0.104 since (H100, session 37, graph
# ms, NCHW; channels-last 0.044 against 0.115; cuDNN 0.054 / 0.063).
# Measured with 64 or more output channels per group and rows of 32 or more pixels only: its tiles are 128 output
# channels x k-tiles of 32 input columns, so fewer channels or narrower rows multiply zeros (kept off it until timed).
_WGRAD_TMA_TF32_PIXELS = 1 << 12


def wgrad_packs_rows(p: Problem) -> bool:
    """Whether the copy-engine backward-weight runs on row-packed copies of its operands (the batch's images side by
    side along each input row: nchw_wgrad_packs, whose rule this mirrors, as pointwise_in_place mirrors its kernel's;
    CONV2D_EXT_TMA_WGRAD_PACK, a plan variable, read as it does: unset, TF32 only): stride 1 along rows, TF32 in
    either layout or (=auto) fp16/bf16 NCHW, where a k-tile walk of one row (32 fp32 / 64 16-bit pixels) would waste
    more than an eighth of it (TF32: or rows not of 16-byte multiples), and the packed walk at most half again the
    batch's real columns (r50_3x3_512: 7-pixel rows, 1.29x in TF32; r50_3x3_256 1.14x). H100, session 33, TF32
    backward-weight (graph ms): r50_3x3_512 0.128 against 0.199 on 128x128_w8 (NCHW), 0.119 against 0.173
    (channels-last); r50_3x3_256 0.111 against 0.127, 0.107 against 0.144; fp16/bf16 lose (0.088 against 0.081).
    Size limits are the C++ side's alone (past them it does not pack: TF32 refuses, 16-bit copies its input to
    NHWC)."""
    tf32 = p.dtype == "float32"
    setting = os.environ.get("CONV2D_EXT_TMA_WGRAD_PACK") or ("auto" if tf32 else "0")
    if setting.startswith("0") or (not tf32 and (p.dtype not in ("float16", "bfloat16") or p.channels_last)):
        return False
    if p.stride[1] != 1 or p.N * p.P * p.Q == 0:
        return False
    if setting.startswith("1"):
        return True
    pix, pad_w, dil_w = (32 if tf32 else 64), p.padding[2], p.dilation[1]
    cols = p.N * max(p.W + pad_w, p.Q, p.Q + (p.S - 1) * dil_w - pad_w) + pad_w
    columns = max(0, min(p.W, (p.Q - 1) + (p.S - 1) * dil_w - pad_w + 1))
    if -(-columns // pix) * pix * 7 <= columns * 8 and (not tf32 or p.W % 4 == 0):
        return False  # rows read in place (or, channels-last TF32, copied to NCHW)
    return -(-cols // pix) * pix * 2 <= 3 * p.N * p.W


def _tma_backward_weight(p: Problem, pass_: str) -> bool:
    """The copy-engine backward-weight's reductions: in fp16/bf16 2^17 or more output pixels, or 64 or more output
    channels per group; in TF32 2^12 pixels, with 64 or
    more output channels per group and input rows of 32 or more pixels (its can_implement: stride_w 1, W % 4 == 0; a
    channels-last input is copied to NCHW first). And every 1x1 NCHW layer whose operands its pointwise kernel reads
    in place (`pointwise_in_place`; H100, graph ms, N32 28x28 512->128 and 128->512: fp16 0.025 / 0.026 against
    0.065 on the rules after this one, TF32 0.053 / 0.054 against 0.084). And, with 64 or more output channels per
    group, the small maps it packs by rows (`wgrad_packs_rows`: r50_3x3_256 / r50_3x3_512)."""
    if pass_ != "backward_weight" or not _tensor_core(p, pass_):
        return False
    if pointwise_in_place(p):
        return True
    if p.K // p.groups >= 64 and wgrad_packs_rows(p):
        return True
    if p.dtype == "float32":
        # channels-last 1x1: the input's NCHW copy costs what the kernel saves (r50_1x1: 0.137 ms against 0.130 on
        # 128x128_w8). A horizontal stride: on the input split by column phase (H100, session 41, r50_3x3_128_s2
        # graph ms against 128x128_w8: NCHW 0.109 / 0.170, channels-last 0.105 / 0.191; the C++ side's plan
        # variable CONV2D_EXT_TMA_WGRAD_PHASES=0 turns it off and its can_implement refuses)
        if p.stride[1] > 1 and os.environ.get("CONV2D_EXT_TMA_WGRAD_PHASES", "").startswith("0"):
            return False
        return (p.N * p.P * p.Q >= _WGRAD_TMA_TF32_PIXELS and p.K // p.groups >= 64 and p.W >= 32 and
                not (p.channels_last and p.R * p.S == 1))
    # fp16/bf16: 64 or more output channels a group, any stride or row width, since the split of session 34 (one wave
    # of one CTA per SM, split_boxes; H100, graph ms, against 128x128_w8): r50_3x3_256 NHWC 0.031 against 0.070, NCHW
    # (copied to NHWC) 0.040 against 0.082; r50_3x3_512 0.048 / 0.055 against 0.085 / 0.092; r50_3x3_128_s2 0.034 /
    # 0.064 against 0.073 / 0.100
    return p.N * p.P * p.Q >= _WGRAD_TMA_PIXELS or p.K // p.groups >= 64


def _ffma_stages_nhwc(p: Problem) -> bool:
    """An exact-fp32 NCHW forward the FFMA configurations run on an NHWC copy of the input (forward.cuh's
    ffma_stages_nhwc and stages_nhwc): stride 1, more than one tap, channels (and per group) in 16-byte vectors, a walk
    by tap (the flat walk not cheaper: 64-byte k-tiles of 16 channels)."""
    cg, taps = p.C // p.groups, p.R * p.S
    by_tap, flat = taps * -(-cg // 16), -(-taps * cg // 16)
    return (not p.channels_last and tuple(p.stride) == (1, 1) and taps > 1 and p.C % 4 == 0 and cg % 4 == 0 and
            p.H * p.W < (1 << 31) and not 4 * flat < 3 * by_tap)


def _ffma_128x64(p: Problem, pass_: str) -> bool:
    """Exact fp32 forward or backward-data on 128x64 FFMA tiles (H200, per pass, against 128x128 ffma): 64 or fewer
    channels on the GEMM's N (seed backward-data 18.5 / 16.4 ms NCHW / NHWC against 34.1 / 32.8; r50_3x3_64 forward
    0.24 / 0.20 against 0.44 / 0.42; r50_1x1 forward 0.12 / 0.10 against 0.22 / 0.20); a grid of at most 64 128x128
    tiles (r50_3x3_512 0.38 against 0.57 in both passes; batch1_3x3 0.19 against 0.28), or fewer than 264 in the
    forward (r50_3x3_128_s2 0.25 against 0.30); a channels-last forward (unet_3x3 1.94 against 2.16, dilated 0.96
    against 1.07; in NCHW 128x128 stays ahead there: 2.26 against 2.35, 1.11 against 1.16)."""
    if not _exact_fp32(p) or p.depthwise or pass_ not in ("forward", "backward_data") or _gemm_columns(p, pass_) < 16:
        return False
    tiles = _tiles(p, 128, 128, pass_)
    if pass_ == "forward":  # NCHW staged to NHWC runs as channels-last does (session 27, H100: seed 16.8 against
        # 18.1 ms on ffma, unet_3x3 2.05 against 2.26, dilated 0.97 against 1.11)
        return p.channels_last or _ffma_stages_nhwc(p) or _gemm_columns(p, pass_) <= 64 or tiles < _FULL_WAVE_TILES
    return _gemm_columns(p, pass_) <= 64 or tiles <= _SMALL_FFMA_TILES


# From this many 256x128 tiles on (about 1.5 waves of one CTA per SM), the larger wgmma tiles win (H100 sweep).
_LARGE_WGMMA_TILES = 200

# The table of reasons: for each pass, the first rule that applies and whose kernel can implement the problem wins.
# Depthwise convolutions are memory-bound in every pass: the tiled family's depthwise kernels (exact FP32 FMA, so
# fp32 goes there whether TF32 is allowed or not; float64 falls through to direct). The implicit-GEMM choices
# follow the H100 measurements in benchmarks/NOTES.md.
RULES = (
    # depthwise, channels-last 3x3, every pass (stride 1, multiplier 1, channels in 16-byte vectors: its
    # can_implement), where it beats the shared-memory tiles (H200, depthwise_3x3, GPU time, forward / backward-
    # data: fp32 0.036 / 0.035 ms against 0.061 / 0.061, bf16 0.023 / 0.024 against 0.053 / 0.059; backward-weight
    # with its split reduction 0.053 against 0.065, bf16 0.045 against 0.054); slower for 7x7 (fp32 0.10 against 0.074, bf16
    # 0.087 against 0.065: its filter is read from shared memory per tap), so the tiles below run the 5x5 and 7x7
    # filters
    Rule("tiled:depthwise_vec",
         lambda p, pass_: p.depthwise and p.channels_last and p.R == p.S == 3,
         "depthwise, channels-last 3x3: a thread per channel vector and strip of output pixels, inputs read from "
         "global memory once per filter row (memory-bound; exact FP32 FMA)"),
    # depthwise NCHW forward and backward-data, 3x3 / 5x5 / 7x7 at stride 1 with "same" column padding and rows of
    # 16-byte multiples (its can_implement; backward-data multiplier 1): no shared-memory tile, no barrier, so more
    # loads in flight than the tiles below keep
    Rule("tiled:depthwise_rows",
         lambda p, pass_: p.depthwise and not p.channels_last and pass_ in ("forward", "backward_data"),
         "depthwise NCHW, stride 1: a thread per 16-byte column vector and strip of output rows, inputs read from "
         "global memory once per strip, filter in registers (memory-bound; exact FP32 FMA)"),
    # depthwise, every pass and dtype but float64 (channels-last fp16/bf16 7x7 too: tiled:depthwise_mma, the filter
    # rows as band matrices on tensor cores, is registered but slower: H200 graph time, forward 0.060 against the
    # tiles' 0.054 ms, backward-data 0.060 against 0.057; NOTES, sessions 17-18)
    Rule("tiled:depthwise", lambda p, pass_: p.depthwise,
         "depthwise: shared-memory tiles with their halo, each input byte read once (memory-bound; exact FP32 FMA)"),
    # narrow groups on tensor cores (fp16, bf16, TF32): the forward and stride-1 backward-data, where the reduction's
    # channels per group fill 16-byte rows (its can_implement: K/groups <= 16 and C/groups <= 64 bytes, backward-data
    # the other way round), and backward-weight (C/groups a multiple of 8 fp16/bf16 up to 32, of 4 fp32 up to 16),
    # against the FFMA tiles below (H200, grouped_g32: see NOTES, sessions 12 and 13)
    Rule("tiled:grouped_mma", _grouped_mma,
         "narrow groups on tensor cores: a group's input tile in 16-byte planes, one ldmatrix (a lane per tap-shifted "
         "pixel) and mma.sync per 32 bytes of each pixel's reduction"),
    # narrow groups (fewer than 16 channels on the GEMM's narrow side, groups > 1, not depthwise), every pass and
    # dtype but float64: MMA tiles would be mostly empty; the tiled grouped kernels keep each group's filters and
    # input tile in shared memory (exact FP32 FMA, so fp32 goes there whether TF32 is allowed or not)
    Rule("tiled:grouped", _narrow_groups,
         "narrow groups: shared-memory tiles of a group's input and filters, 8-channel x 7-pixel FFMA register "
         "blocks (exact FP32)"),
    # first layers on tensor cores, every pass (1.5-1.7x cuDNN in NCHW fp16; off under CONV2D_EXT_IM2COL=0)
    Rule("implicit_gemm:im2col", _im2col,
         "a first layer whose whole reduction (C x R x S <= 160) fits one tile: tensor cores (mma.sync) on a pixel "
         "tile's im2col gathered into shared memory once (backward-data: grad_output x filters, then col2im)"),
    # first layers (RGB input): the forward's reduction is C x R x S = 147 for r50_conv1 (a third of a 16-wide MMA
    # k-step per tap), backward-data's output 3 channels wide; the same tiles, in chunks of reduction channels
    Rule("tiled:grouped", _first_layer,
         "a first layer (4 or fewer input channels): shared-memory tiles of the input and filters in chunks of "
         "reduction channels, FFMA register blocks of 8 output channels (4 in backward-data) x 7 pixels (exact FP32)"),
    # forward. Hopper (sm_90a builds) first: wgmma, NCHW activations copied to NHWC ahead of the kernel; the
    # other GPUs' kernels below (the wgmma kernels cannot implement their problems).
    # Hopper (sm_90a builds) first: wgmma fed by the copy engine, forward and stride-1 backward-data (H200 sweep)
    Rule("implicit_gemm:128x64_tma", lambda p, s: _tma_pass(p, s) and (_gemm_columns(p, s) <= 64 or
                                                                       _tiles(p, 128, 128, s) <= _SMALL_TMA_TILES),
         "tensor cores (Hopper wgmma fed by the copy engine: boxes of NHWC pixels per tap, one producer warp, two "
         "consumer warpgroups); 128x64 tiles: 64 or fewer output channels, or a grid too small for 128x128 tiles"),
    Rule("implicit_gemm:128x128_tma", _tma_pass,
         "tensor cores (Hopper wgmma fed by the copy engine: boxes of NHWC pixels per tap, one producer warp, two "
         "consumer warpgroups); 128x128 tiles, two CTAs per SM"),
    Rule("implicit_gemm:256x128_wgk128",
         lambda p, s: _tensor_core_forward(p, s) and _tiles(p, 256, 128) >= _LARGE_WGMMA_TILES,
         "tensor cores (Hopper wgmma); 256x128 tiles, 128-byte k-tiles: a large problem, channels in 16-byte vectors"),
    # (A large first layer that im2col cannot take, C x R x S > 160, ran on 256x128_wg until session 40: r50_conv1
    # 0.30 ms against 0.38 on 128x128_wg before im2col. Its flat scalar walk spilled at 16 warps' 128 registers a
    # thread; the 16-warp configurations now take only vector shapes, so such layers run on 128x128_wg below, and
    # the forward's 256x128_wg, picked by no rule then, is no longer built.)
    Rule("implicit_gemm:64x64", lambda p, s: _tensor_core_forward(p, s) and _tiles(p, 128, 128) < _QUARTER_WAVE_TILES,
         "tensor cores (implicit GEMM); 64x64 tiles, as 128x128 tiles would fill a quarter of the SMs"),
    Rule("implicit_gemm:128x128_wg", _tensor_core_forward,
         "tensor cores (Hopper wgmma); 128x128 tiles, two CTAs per SM"),
    Rule("implicit_gemm:64x64", lambda p, s: _tensor_core_forward(p, s) and _tiles(p, 128, 128) < _FULL_WAVE_TILES,
         "tensor cores (implicit GEMM); 64x64 tiles, as 128x128 tiles would leave SMs idle"),
    Rule("implicit_gemm:128x128_k128", lambda p, s: _tensor_core_forward(p, s) and p.channels_last,
         "tensor cores (implicit GEMM); channels-last: 16-byte cp.async loads, 128-byte k-tiles"),
    Rule("implicit_gemm:128x128_w8", lambda p, s: _tensor_core_forward(p, s) and (p.dtype != "float32" or p.channels_last),
         "tensor cores (implicit GEMM); activations gathered element by element (NCHW, or channels not in 16-byte "
         "vectors) by 8 warps"),
    Rule("implicit_gemm:128x128_w4", _tensor_core_forward,
         "tensor cores (implicit GEMM, TF32); NCHW: 4 warps of 64x64"),
    # backward-data (any stride: one GEMM per stride phase over the taps that reach it); Hopper's wgmma first
    Rule("implicit_gemm:256x128_wg",
         lambda p, s: _tensor_core_backward_data(p, s) and _tiles(p, 256, 128, s) >= _LARGE_WGMMA_TILES,
         "tensor cores (Hopper wgmma over grad_output); 256x128 tiles: a large problem"),
    Rule("implicit_gemm:128x128_wg",
         lambda p, s: _tensor_core_backward_data(p, s) and _tiles(p, 128, 128, s) >= _QUARTER_WAVE_TILES,
         "tensor cores (Hopper wgmma over grad_output); 128x128 tiles, two CTAs per SM"),
    Rule("implicit_gemm:128x128_wg", _few_input_channels,
         "tensor cores (Hopper wgmma over grad_output); fewer than 16 input channels (a first layer): tiles mostly "
         "empty, still far faster than the direct loops (r50_conv1 bf16 NCHW: 1.1 ms, 64x64 2.4 ms, direct 4.3 ms)"),
    Rule("implicit_gemm:64x64", _few_input_channels,
         "tensor cores (implicit GEMM over grad_output); fewer than 16 input channels (a first layer): 64-wide tiles, "
         "mostly empty, still run far faster than the direct loops"),
    Rule("implicit_gemm:64x64",
         lambda p, s: _tensor_core_backward_data(p, s) and _tiles(p, 128, 128, s) < _FULL_WAVE_TILES,
         "tensor cores (implicit GEMM over grad_output); 64x64 tiles, as 128x128 tiles would leave SMs idle"),
    Rule("implicit_gemm:128x128_w8",
         lambda p, s: _tensor_core_backward_data(p, s) and p.dtype != "float32" and not p.channels_last,
         "tensor cores (implicit GEMM over grad_output); NCHW fp16/bf16, gathered element by element by 8 warps"),
    Rule("implicit_gemm:128x128_w4", _tensor_core_backward_data,
         "tensor cores (implicit GEMM over grad_output); 4 warps of 64x64 (TF32, or channels-last vector loads)"),
    # backward-weight. Hopper first, for a long reduction: the copy engine's boxes of output pixels (fp16/bf16; TF32
    # with input rows of 16-byte multiples and stride_w 1, a channels-last input copied to NCHW: its can_implement)
    Rule("implicit_gemm:128x128_tma", _tma_backward_weight,
         "tensor cores (Hopper wgmma on copy-engine boxes of output pixels: fp16/bf16 both operands MN-major, or an "
         "NCHW input with rows of 56+ pixels read in place K-major; TF32 the NCHW input (channels-last: copied) "
         "K-major, grad_output from registers), split-K with a fixed-order reduction of the splits: a long reduction "
         "over output pixels"),
    Rule("implicit_gemm:64x64",
         lambda p, s: s == "backward_weight" and _tensor_core(p, s) and _gemm_columns(p, s) <= 64,
         "tensor cores (implicit GEMM over output pixels), split-K with a fixed-order reduction of the splits; 64x64 "
         "tiles for 64 or fewer output channels (r50_conv1 bf16 NCHW: 0.19 ms against 0.26 on 128x128)"),
    Rule("implicit_gemm:128x128_w8", lambda p, s: s == "backward_weight" and _tensor_core(p, s),
         "tensor cores (implicit GEMM over output pixels), split-K with a fixed-order reduction of the splits"),
    # exact FP32 (allow_tf32 = False), every pass: 128 x 64 tiles (two CTAs per SM) where the 128 x 128 ones are
    # half empty or too few, or the forward is channels-last; 64 x 128 for backward-weight of 64 or fewer filters
    Rule("implicit_gemm:128x64_ffma", _ffma_128x64,
         "exact FP32 on CUDA cores: implicit GEMM with 8x8 FFMA register blocks over shared-memory tiles; 128x64 "
         "tiles, two CTAs per SM (64 or fewer channels on the GEMM's N, a small grid, or a channels-last forward)"),
    Rule("implicit_gemm:64x128_ffma",
         lambda p, s: s == "backward_weight" and _exact_fp32(p) and not p.depthwise and 16 <= p.K // p.groups <= 64,
         "exact FP32 on CUDA cores: implicit GEMM with 8x8 FFMA register blocks over shared-memory tiles; 64x128 "
         "tiles of 64 or fewer output channels, two CTAs per SM"),
    Rule("implicit_gemm:ffma", lambda p, s: _exact_fp32(p) and not p.depthwise and _gemm_columns(p, s) >= 16,
         "exact FP32 on CUDA cores: implicit GEMM with 8x8 FFMA register blocks over shared-memory tiles"),
    Rule("direct", lambda p, pass_: True, "direct loops: correct for every shape, dtype and layout"),
)


def _unknown(name, registry):
    return (f"unknown family or kernel {name!r}; expected one of {', '.join(FAMILIES)}, or a kernel of this build: "
            f"{', '.join(registry.names()) or 'none'}")


def can_implement(name: str, pass_: str, problem: Problem, registry: Optional[Registry] = None) -> Optional[str]:
    """None if `name` can run `pass_` of `problem`, else the reason it cannot. `name` is a kernel name, or a family
    (which can run the problem if any of its kernels for the pass can)."""
    registry = registry or compiled
    family = family_of(name)
    if family not in registry.families:
        if family in FAMILIES:
            return (f"the {family} family is not built in this version of conv2d_ext "
                    f"(available: {', '.join(registry.families)})")
        return _unknown(name, registry)
    if name == family:
        kernels = [k for k in registry.kernels[pass_] if family_of(k) == family]
        if not kernels:
            return f"the {family} family has no {pass_} kernel"
        reasons = []
        for kernel in kernels:
            why = registry.why_not(pass_, kernel, problem)
            if not why:
                return None
            reasons.append(f"{kernel}: {why}")
        return "; ".join(reasons)
    if name not in registry.kernels[pass_]:
        kernels = [k for k in registry.kernels[pass_] if family_of(k) == family]
        return f"no {pass_} kernel {name!r}; the {family} {pass_} kernels are: {', '.join(kernels) or 'none'}"
    return registry.why_not(pass_, name, problem) or None


def forced(variant) -> Dict[str, str]:
    """Per-pass kernels or families the caller forces ('auto' entries left out); checks only the variant's form."""
    if isinstance(variant, str):
        return {} if variant == "auto" else {pass_: variant for pass_ in PASSES}
    if isinstance(variant, dict):
        unknown = set(variant) - set(PASSES)
        if unknown:
            raise Conv2dError(f"conv2d_ext: variant keys must be among {', '.join(PASSES)}, got {sorted(unknown, key=str)}")
        if not all(isinstance(v, str) for v in variant.values()):
            raise Conv2dError(f"conv2d_ext: variant values must be 'auto', a family or a kernel name, got {variant!r}")
        return {k: v for k, v in variant.items() if v != "auto"}
    raise Conv2dError(f"conv2d_ext: variant must be 'auto', a family name, a kernel name or a dict by pass, "
                      f"got {variant!r}")


def check_variant(variant, registry: Optional[Registry] = None) -> Dict[str, str]:
    """forced(variant), after checking that every name is a known family or a kernel of this build (a planned
    family that is not built passes here and fails in select, saying so). Raises Conv2dError."""
    registry = registry or compiled
    choices = forced(variant)
    for name in choices.values():
        if name not in FAMILIES and name not in registry.families and name not in registry.names():
            raise Conv2dError(f"conv2d_ext: variant {name!r}: {_unknown(name, registry)}")
    return choices


def _force(name, pass_, problem, registry):
    """The kernel that runs `pass_` when the caller forces `name` (a family or a kernel)."""
    if name == family_of(name) and name in registry.families:  # a family: its rules first, then its kernels
        candidates = [r.kernel for r in RULES if family_of(r.kernel) == name and r.applies(problem, pass_)]
        candidates += [k for k in registry.kernels[pass_] if family_of(k) == name]
        for kernel in dict.fromkeys(candidates):
            if kernel in registry.kernels[pass_] and not registry.why_not(pass_, kernel, problem):
                return Decision(kernel, name, "forced by variant")
    why_not = can_implement(name, pass_, problem, registry)
    if why_not is not None:
        raise Conv2dError(f"conv2d_ext: variant {name!r} cannot run {pass_} of this convolution: {why_not}")
    return Decision(name, family_of(name), "forced by variant")


def select(problem: Problem, variant="auto", registry: Optional[Registry] = None) -> Dict[str, Decision]:
    """The kernel, its family and the reason for each pass of `problem`. Raises Conv2dError."""
    registry = registry or compiled
    choices = check_variant(variant, registry)
    plan = {}
    for pass_ in PASSES:
        if pass_ in choices:
            plan[pass_] = _force(choices[pass_], pass_, problem, registry)
            continue
        for rule in RULES:
            if rule.applies(problem, pass_) and can_implement(rule.kernel, pass_, problem, registry) is None:
                plan[pass_] = Decision(rule.kernel, family_of(rule.kernel), rule.reason)
                break
        else:
            raise Conv2dError(f"conv2d_ext: no kernel family ({', '.join(registry.families) or 'none built'}) can "
                              f"run {pass_} of this convolution")
    return plan


def describe(plan: Dict[str, Decision]) -> str:
    """One line per pass: 'pass: kernel (reason)'."""
    return "\n".join(f"{pass_}: {plan[pass_].kernel} ({plan[pass_].reason})" for pass_ in PASSES)
