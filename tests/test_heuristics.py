"""conv2d_ext.heuristics: which kernel runs each pass, and why. Pure functions of a Problem and a registry (the
compiled one, or a fake one standing in for a later build): no GPU."""
import dataclasses
import itertools

import pytest

from conv2d_ext import Conv2dError, heuristics
from conv2d_ext.heuristics import (AVAILABLE, FAMILIES, PASSES, Decision, Problem, Registry, can_implement, describe,
                                   select)


def fake_registry(kernels, why_not=None):
    """A registry of `kernels` (name -> passes), each able to run everything unless why_not(pass, name, problem)
    says otherwise."""
    rows = [(pass_, name, heuristics.family_of(name), name.partition(":")[2])
            for name, passes in kernels.items() for pass_ in passes]
    return Registry(rows, why_not or (lambda pass_, name, problem: ""))


def forced(kernel, family=None):
    return Decision(kernel, family or heuristics.family_of(kernel), "forced by variant")


def problem(**override):
    """A mid-sized 3x3 'same' convolution (N=2, C=16, 32x32, K=32), with some fields replaced."""
    fields = dict(N=2, C=16, H=32, W=32, K=32, R=3, S=3, P=32, Q=32, padding=(1, 1, 1, 1))
    fields.update(override)
    return Problem(**fields)


PROBLEMS = {
    "fp32": problem(),
    "fp64": problem(dtype="float64"),
    "fp16": problem(dtype="float16"),
    "bf16": problem(dtype="bfloat16"),
    "fp32_no_tf32": problem(allow_tf32=False),
    "channels_last": problem(channels_last=True),
    "channels_last_fp16": problem(channels_last=True, dtype="float16"),
    "depthwise": problem(C=32, K=32, groups=32),
    "grouped": problem(groups=4),
    "1x1": problem(R=1, S=1, padding=(0, 0, 0, 0)),
    "strided": problem(stride=(2, 2), P=16, Q=16),
    "dilated": problem(dilation=(2, 2), padding=(2, 2, 2, 2)),
    "asymmetric_same": problem(R=4, S=4, padding=(1, 2, 1, 2)),
    "large": problem(N=256, C=512, H=56, W=56, K=512, P=56, Q=56),
    "tiny": problem(N=1, C=1, H=1, W=1, K=1, R=1, S=1, P=1, Q=1, padding=(0, 0, 0, 0)),
    "sm80": problem(capability=(8, 0)),
    "sm90": problem(capability=(9, 0)),
    "sm80_bf16_channels_last": problem(capability=(8, 0), dtype="bfloat16", channels_last=True),
}


def test_tables_are_consistent():
    """Three passes; AVAILABLE (from the registry) is a non-empty subset of FAMILIES holding 'direct'; every rule
    names a kernel of a known family, with a reason."""
    assert PASSES == ("forward", "backward_data", "backward_weight")
    assert "direct" in AVAILABLE and set(AVAILABLE) <= set(FAMILIES)
    assert AVAILABLE == heuristics.compiled.families
    assert len(set(FAMILIES)) == len(FAMILIES)
    assert heuristics.RULES
    for rule in heuristics.RULES:
        assert heuristics.family_of(rule.kernel) in FAMILIES and rule.reason


@pytest.mark.parametrize("name", list(PROBLEMS), ids=list(PROBLEMS))
def test_select_decides_every_pass_with_a_reason(name):
    """For any problem, 'auto' picks an available family for each of the three passes and says why."""
    plan = select(PROBLEMS[name])
    assert list(plan) == list(PASSES)
    for pass_, decision in plan.items():
        assert isinstance(decision, Decision)
        assert decision.family in AVAILABLE, pass_
        assert decision.kernel in heuristics.compiled.kernels[pass_], pass_
        assert heuristics.family_of(decision.kernel) == decision.family
        assert isinstance(decision.reason, str) and decision.reason.strip(), pass_
        assert decision.reason != "forced by variant"


@pytest.mark.parametrize("name", list(PROBLEMS), ids=list(PROBLEMS))
def test_select_is_a_pure_function(name):
    """Same problem, same plan; 'auto' spelled out per pass is the same as 'auto'."""
    p = PROBLEMS[name]
    assert select(p) == select(p) == select(p, "auto")
    assert select(p, {pass_: "auto" for pass_ in PASSES}) == select(p)
    assert select(p, {}) == select(p)


@pytest.mark.parametrize("name", ["fp32", "depthwise", "tiny"])
def test_describe_gives_one_line_per_pass(name):
    """describe: 'pass: kernel (reason)', one line for each pass, in PASSES order."""
    plan = select(PROBLEMS[name])
    lines = describe(plan).splitlines()
    assert len(lines) == 3
    for line, pass_ in zip(lines, PASSES):
        assert line == f"{pass_}: {plan[pass_].kernel} ({plan[pass_].reason})"


@pytest.mark.parametrize("name", ["fp32", "fp16", "depthwise", "large", "tiny", "sm80"])
def test_forcing_direct_forces_every_pass(name):
    """variant='direct' runs the direct family on every pass, with the reason 'forced by variant'."""
    plan = select(PROBLEMS[name], "direct")
    assert plan == {pass_: forced("direct") for pass_ in PASSES}
    assert describe(plan).count("(forced by variant)") == 3


@pytest.mark.parametrize("family", [f for f in FAMILIES if f not in AVAILABLE])
def test_forcing_a_family_not_built_raises_saying_so(family):
    """A planned family that is not compiled in raises Conv2dError (a ValueError) explaining that it is not built."""
    with pytest.raises(ValueError, match=rf"variant '{family}' cannot run forward .*not built in this version"):
        select(problem(), family)
    with pytest.raises(ValueError, match=rf"cannot run backward_weight .*{family} family is not built"):
        select(problem(), {"backward_weight": family})


@pytest.mark.parametrize("variant", ["winograd", "Direct", "", {"forward": "fft"}],
                         ids=["winograd", "wrong_case", "empty", "dict_value"])
def test_forcing_an_unknown_family_raises(variant):
    """An unknown family name raises ValueError listing the known ones."""
    with pytest.raises(ValueError, match=r"unknown family .*expected one of direct, tiled, implicit_gemm"):
        select(problem(), variant)
    with pytest.raises(Conv2dError, match=r"or a kernel of this build: direct"):
        select(problem(), variant)


@pytest.mark.parametrize("variant", ["direct:fast", "implicit_gemm:999x999", {"backward_data": "direct:x"}],
                         ids=["direct_config", "planned_family_config", "dict"])
def test_forcing_an_unknown_kernel_raises(variant):
    """A kernel name that is not registered raises, listing the kernels that are."""
    with pytest.raises(Conv2dError, match=r"unknown family or kernel .*kernel of this build: direct"):
        select(problem(), variant)


PARTIAL = {
    "forward_only": {"forward": "direct"},
    "backward_data_only": {"backward_data": "direct"},
    "backward_weight_only": {"backward_weight": "direct"},
    "two_passes": {"forward": "direct", "backward_weight": "direct"},
    "with_auto_entry": {"forward": "auto", "backward_data": "direct"},
}


@pytest.mark.parametrize("variant", list(PARTIAL.values()), ids=list(PARTIAL))
def test_dict_variant_forces_only_the_passes_it_names(variant):
    """A dict forces the passes it names (other than 'auto'); the rest keep the heuristic choice and reason."""
    p = problem()
    auto = select(p)
    plan = select(p, variant)
    for pass_ in PASSES:
        if variant.get(pass_, "auto") == "auto":
            assert plan[pass_] == auto[pass_], pass_
        else:
            assert plan[pass_] == forced(variant[pass_]), pass_


@pytest.mark.parametrize("variant", [{"backward": "direct"}, {"forward": "direct", "grad_input": "direct"}],
                         ids=["backward", "grad_input"])
def test_dict_variant_with_unknown_pass_raises(variant):
    """Dict keys must be pass names; a typo is an error, not silently ignored."""
    with pytest.raises(ValueError, match=r"variant keys must be among forward, backward_data, backward_weight"):
        select(problem(), variant)


@pytest.mark.parametrize("variant", [None, 1, ["direct"], ("direct",), b"direct"],
                         ids=["None", "int", "list", "tuple", "bytes"])
def test_variant_of_another_type_raises(variant):
    """variant must be 'auto', a family name, a kernel name or a dict by pass."""
    with pytest.raises(ValueError, match=r"variant must be 'auto', a family name, a kernel name or a dict by pass"):
        select(problem(), variant)


@pytest.mark.parametrize("pass_", PASSES)
@pytest.mark.parametrize("name", ["fp32", "fp64", "bf16", "depthwise", "large", "tiny"])
def test_direct_can_implement_everything(name, pass_):
    """The direct family runs every pass of every problem (can_implement returns None)."""
    assert can_implement("direct", pass_, PROBLEMS[name]) is None


@pytest.mark.parametrize("family", [f for f in FAMILIES if f not in AVAILABLE])
def test_can_implement_explains_a_family_not_built(family):
    """A family outside the registry cannot implement anything, and the reason names what is available."""
    why = can_implement(family, "forward", problem())
    assert why == (f"the {family} family is not built in this version of conv2d_ext "
                   f"(available: {', '.join(AVAILABLE)})")


def test_can_implement_explains_an_unknown_name():
    """An unknown name cannot implement anything; the reason lists the known families and the registry's kernels."""
    registry = fake_registry({"direct": PASSES, "implicit_gemm:128x128": PASSES})
    why = can_implement("fft", "forward", problem(), registry)
    assert "unknown family or kernel 'fft'" in why
    assert "direct, tiled, implicit_gemm" in why and "direct, implicit_gemm:128x128" in why


@pytest.mark.parametrize("family", [f for f in FAMILIES if f != "direct"])
def test_a_family_in_the_registry_is_accepted(family):
    """A registry with more families makes them forceable (how a later build enables them)."""
    registry = fake_registry({"direct": PASSES, f"{family}:a": PASSES})
    for pass_ in PASSES:
        assert can_implement(family, pass_, problem(), registry) is None
        assert can_implement(f"{family}:a", pass_, problem(), registry) is None
    assert select(problem(), family, registry) == {pass_: forced(f"{family}:a") for pass_ in PASSES}
    assert all(d.family in registry.families for d in select(problem(), registry=registry).values())


def picky(pass_, name, p):
    """A fake can_implement: the 128x128 tile needs fp16 and sm_80; the 64x64 tile needs channels-last."""
    if name == "implicit_gemm:128x128":
        return "" if p.dtype == "float16" and p.capability >= (8, 0) else "needs float16 on sm_80 or newer"
    if name == "implicit_gemm:64x64":
        return "" if p.channels_last else "needs channels-last"
    return ""


PICKY = fake_registry({"direct": PASSES, "implicit_gemm:128x128": PASSES, "implicit_gemm:64x64": ("forward",)},
                      picky)


def test_can_implement_of_a_fake_registry():
    """A kernel name gets its own reason; a family can run a problem if any of its kernels can, else it gets every
    kernel's reason; a family with no kernel for the pass says so."""
    fp16, fp32 = problem(dtype="float16"), problem()
    assert can_implement("implicit_gemm:128x128", "forward", fp16, PICKY) is None
    assert can_implement("implicit_gemm:128x128", "forward", fp32, PICKY) == "needs float16 on sm_80 or newer"
    assert can_implement("implicit_gemm", "forward", fp32, PICKY) == (
        "implicit_gemm:128x128: needs float16 on sm_80 or newer; implicit_gemm:64x64: needs channels-last")
    assert can_implement("implicit_gemm", "forward", problem(channels_last=True), PICKY) is None
    assert can_implement("implicit_gemm:64x64", "backward_data", fp32, PICKY) == (
        "no backward_data kernel 'implicit_gemm:64x64'; the implicit_gemm backward_data kernels are: "
        "implicit_gemm:128x128")
    assert can_implement("tiled", "forward", fp32, fake_registry({"tiled:a": ("forward",)})) is None
    assert can_implement("tiled", "backward_data", fp32, fake_registry({"tiled:a": ("forward",)})) == (
        "the tiled family has no backward_data kernel")


def test_forcing_a_family_picks_its_first_kernel_that_can_run():
    """Forcing a family walks its kernels in registry order and takes the first that can implement the problem;
    when none can, Conv2dError says 'cannot run' with every kernel's reason."""
    plan = select(problem(channels_last=True), {"forward": "implicit_gemm"}, PICKY)
    assert plan["forward"] == forced("implicit_gemm:64x64")
    assert select(problem(dtype="float16"), "implicit_gemm", PICKY)["forward"] == forced("implicit_gemm:128x128")
    with pytest.raises(Conv2dError, match=r"variant 'implicit_gemm' cannot run backward_data of this convolution: "
                                          r"implicit_gemm:128x128: needs float16"):
        select(problem(channels_last=True), "implicit_gemm", PICKY)
    with pytest.raises(Conv2dError, match=r"variant 'implicit_gemm:64x64' cannot run forward .*needs channels-last"):
        select(problem(), {"forward": "implicit_gemm:64x64"}, PICKY)


def test_rules_name_kernels_and_skip_those_that_cannot_run(monkeypatch):
    """'auto' takes the first rule that applies and whose kernel can run; other rules are skipped."""
    rules = (heuristics.Rule("implicit_gemm:128x128", lambda p, pass_: p.dtype == "float16", "tensor cores"),
             heuristics.Rule("implicit_gemm:999", lambda p, pass_: True, "not built, skipped"),) + heuristics.RULES
    monkeypatch.setattr(heuristics, "RULES", rules)
    fp16 = select(problem(dtype="float16"), registry=PICKY)
    assert fp16["forward"] == Decision("implicit_gemm:128x128", "implicit_gemm", "tensor cores")
    old_gpu = select(problem(dtype="float16", capability=(7, 5)), registry=PICKY)
    assert old_gpu["forward"].kernel == "direct" and old_gpu["forward"].reason == heuristics.RULES[-1].reason


def test_compiled_registry_asks_the_extension():
    """The default registry's reasons come from the C++ can_implement: the direct kernels run everything."""
    for pass_ in PASSES:
        assert heuristics.compiled.why_not(pass_, "direct", problem(groups=4, channels_last=True)) == ""


def test_problem_defaults():
    """Unspecified fields default to a unit-stride, unpadded, ungrouped fp32 NCHW convolution on sm90 with TF32."""
    p = Problem(N=1, C=2, H=3, W=4, K=5, R=1, S=1, P=3, Q=4)
    assert (p.stride, p.padding, p.dilation, p.groups) == ((1, 1), (0, 0, 0, 0), (1, 1), 1)
    assert (p.dtype, p.channels_last, p.allow_tf32, p.capability) == ("float32", False, True, (9, 0))
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.N = 2


FLOPS = {
    # 2 * N * K * P * Q * (C / groups) * R * S
    "dense": (problem(), 2 * 2 * 32 * 32 * 32 * 16 * 3 * 3),
    "grouped": (problem(groups=4), 2 * 2 * 32 * 32 * 32 * 4 * 3 * 3),
    "depthwise_strided": (problem(C=32, K=32, groups=32, stride=(2, 2), P=16, Q=16), 2 * 2 * 32 * 16 * 16 * 1 * 9),
    "tiny": (PROBLEMS["tiny"], 2),
}


@pytest.mark.parametrize("name", list(FLOPS), ids=list(FLOPS))
def test_problem_flops(name):
    """flops counts a multiply and an add per MAC: 2 * N * K * P * Q * (C / groups) * R * S."""
    p, expected = FLOPS[name]
    assert p.flops == expected


DEPTHWISE = {
    "depthwise": (dict(C=32, K=32, groups=32), True),
    "dense": (dict(), False),
    "grouped": (dict(groups=4), False),
    "channel_multiplier_2": (dict(C=32, K=64, groups=32), True),
    "single_channel": (dict(C=1, K=1, groups=1), False),
}


@pytest.mark.parametrize("name", list(DEPTHWISE), ids=list(DEPTHWISE))
def test_problem_depthwise(name):
    """depthwise: one input channel per group (groups == C > 1), whatever the channel multiplier K / C."""
    override, expected = DEPTHWISE[name]
    assert problem(**override).depthwise is expected


def test_select_raises_when_no_family_can_run():
    """With no kernel that can run the problem, select raises rather than return a partial plan."""
    with pytest.raises(ValueError, match="no kernel family"):
        select(problem(), registry=fake_registry({}))
    with pytest.raises(ValueError, match="no kernel family .* can run backward_weight"):
        select(problem(), registry=fake_registry({"direct": ("forward", "backward_data")}))


def _suite_problem(N, C, H, W, K, R, S, stride=1, pad=0, groups=1, **kw):
    P, Q = (H + 2 * pad - R) // stride + 1, (W + 2 * pad - S) // stride + 1
    return Problem(N=N, C=C, H=H, W=W, K=K, R=R, S=S, P=P, Q=Q, stride=(stride, stride), padding=(pad,) * 4,
                   groups=groups, **kw)


SEED = dict(N=8, C=64, H=512, W=1024, K=128, R=3, S=3)


@pytest.mark.parametrize("dtype,allow_tf32", [("float16", True), ("bfloat16", True), ("float32", True)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_tensor_core_forward_runs_implicit_gemm(dtype, allow_tf32, channels_last):
    """fp16/bf16, and fp32 with TF32 allowed, run every pass on the implicit-GEMM family, strided backward-data
    included (one GEMM per stride phase)."""
    plan = select(_suite_problem(**SEED, dtype=dtype, allow_tf32=allow_tf32, channels_last=channels_last))
    assert plan["forward"].family == plan["backward_data"].family == plan["backward_weight"].family == "implicit_gemm"
    r50_3x3_128_s2 = dict(stride=2, pad=1, dtype=dtype, allow_tf32=allow_tf32, channels_last=channels_last)
    strided = select(_suite_problem(32, 128, 56, 56, 128, 3, 3, **r50_3x3_128_s2, capability=(8, 0)))
    assert {d.family for d in strided.values()} == {"implicit_gemm"}
    # r50_3x3_128_s2 on an A100: 4 phases of 32 x 28 x 28 input pixels, 784 tiles of 128 x 128: the large tiles
    expected = "implicit_gemm:128x128_w8" if dtype != "float32" and not channels_last else "implicit_gemm:128x128_w4"
    assert strided["backward_data"].kernel == expected
    hopper = _suite_problem(32, 128, 56, 56, 128, 3, 3, **r50_3x3_128_s2)  # capability 9.0
    # the copy-engine forward once per stride phase (784 tiles of 128 x 128); NCHW TF32 too since session 40, as
    # backward-weight runs on the copy engine (by column phase) and grad_output is staged once for both
    if _wgmma_built(hopper):
        assert select(hopper)["backward_data"].kernel == "implicit_gemm:128x128_tma"
    assert heuristics._tma_phases(hopper)  # the phases need dilation 1 and taps in every phase:
    assert not heuristics._tma_phases(dataclasses.replace(hopper, dilation=(2, 2)))
    assert not heuristics._tma_phases(dataclasses.replace(hopper, R=1, S=1, padding=(0,) * 4))


@pytest.mark.parametrize("kw", [dict(dtype="float32", allow_tf32=False), dict(dtype="float64")],
                         ids=["exact_fp32", "fp64"])
def test_exact_precision_stays_off_tensor_cores(kw):
    """allow_tf32 = False and float64 never take TF32 tensor cores: exact fp32 runs every pass on the FFMA
    configurations (strided backward-data too), float64 on the direct family."""
    exact = kw["dtype"] == "float32"
    for problem_ in (_suite_problem(**SEED, **kw), _suite_problem(32, 128, 56, 56, 128, 3, 3, stride=2, pad=1, **kw),
                     _suite_problem(32, 64, 56, 56, 64, 3, 3, pad=1, channels_last=True, **kw)):
        plan = select(problem_)
        for pass_ in PASSES:
            assert plan[pass_].kernel.endswith("ffma") if exact else plan[pass_].kernel == "direct", pass_


def test_exact_fp32_ffma_tile_shapes():
    """128x64 FFMA tiles for 64 or fewer channels on the GEMM's N, small grids, channels-last forwards and NCHW
    forwards staged to NHWC (stride 1, channels in vectors); 64x128 for backward-weight of 64 or fewer filters; 128x128
    otherwise (timed per pass on the H200 and H100: heuristics.py)."""
    exact = dict(dtype="float32", allow_tf32=False)
    seed = select(_suite_problem(**SEED, **exact))
    assert (seed["forward"].kernel, seed["backward_data"].kernel, seed["backward_weight"].kernel) == (
        "implicit_gemm:128x64_ffma", "implicit_gemm:128x64_ffma", "implicit_gemm:ffma")  # 64 input channels
    seed_nhwc = select(_suite_problem(**SEED, channels_last=True, **exact))
    assert seed_nhwc["forward"].kernel == "implicit_gemm:128x64_ffma"
    r50_3x3_64 = select(_suite_problem(32, 64, 56, 56, 64, 3, 3, pad=1, **exact))
    assert {d.kernel for d in r50_3x3_64.values()} == {"implicit_gemm:128x64_ffma", "implicit_gemm:64x128_ffma"}
    r50_3x3_512 = select(_suite_problem(32, 512, 7, 7, 512, 3, 3, pad=1, **exact))  # 52 tiles of 128 x 128
    assert r50_3x3_512["forward"].kernel == r50_3x3_512["backward_data"].kernel == "implicit_gemm:128x64_ffma"
    assert r50_3x3_512["backward_weight"].kernel == "implicit_gemm:ffma"
    unet = select(_suite_problem(4, 128, 256, 256, 128, 3, 3, pad=1, **exact))
    assert unet["forward"].kernel == "implicit_gemm:128x64_ffma"  # staged to NHWC
    assert unet["backward_data"].kernel == unet["backward_weight"].kernel == "implicit_gemm:ffma"
    strided = select(_suite_problem(4, 128, 256, 256, 128, 3, 3, stride=2, pad=1, **exact))  # not staged at stride 2
    assert strided["forward"].kernel == "implicit_gemm:ffma"


def test_depthwise_and_narrow_groups_stay_off_the_gemm():
    """Depthwise and groups of fewer than 16 output channels would waste most of an MMA tile: both run on the
    tiled family (tiled:depthwise_rows, tiled:depthwise, tiled:grouped_mma)."""
    depthwise = _suite_problem(32, 144, 56, 56, 144, 3, 3, pad=1, groups=144, dtype="float16")
    strided = _suite_problem(32, 144, 56, 56, 144, 3, 3, stride=2, pad=1, groups=144, dtype="float16")
    narrow = _suite_problem(32, 256, 28, 28, 256, 3, 3, pad=1, groups=32, dtype="float16")
    assert select(depthwise)["forward"].kernel == "tiled:depthwise_rows"
    assert select(strided)["forward"].kernel == "tiled:depthwise"
    assert select(narrow)["forward"].kernel == "tiled:grouped_mma"


DEPTHWISE_SUITE = {
    "depthwise_3x3": dict(N=32, C=144, H=56, W=56, K=144, R=3, S=3, pad=1, groups=144),
    "depthwise_7x7": dict(N=32, C=96, H=56, W=56, K=96, R=7, S=7, pad=3, groups=96),
    "multiplier_2_stride_2": dict(N=4, C=32, H=28, W=28, K=64, R=5, S=5, stride=2, pad=2, groups=32),
    "nonsquare_1x7": dict(N=2, C=16, H=15, W=15, K=16, R=1, S=7, groups=16),
}


@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
@pytest.mark.parametrize("dtype,allow_tf32", [("float32", True), ("float32", False), ("float16", True),
                                              ("bfloat16", True)], ids=["tf32", "fp32", "fp16", "bf16"])
@pytest.mark.parametrize("case", list(DEPTHWISE_SUITE))
def test_depthwise_runs_the_tiled_family_on_every_pass(case, dtype, allow_tf32, layout):
    """Every pass of a depthwise problem (any filter, stride, channel multiplier, layout; fp32 with or without TF32,
    fp16, bf16) picks the tiled family, with its reason: tiled:depthwise_vec for every pass of the channels-last
    depthwise_3x3 (stride 1, multiplier 1, channels in 16-byte vectors), tiled:depthwise_rows for the NCHW forward
    and backward-data of the suite's two cases (stride 1, "same" padding, 56-column rows), tiled:depthwise for
    everything else (tiled:depthwise_mma is never chosen yet)."""
    p = _suite_problem(**DEPTHWISE_SUITE[case], dtype=dtype, allow_tf32=allow_tf32, channels_last=layout == "nhwc")
    assert p.depthwise
    plan = select(p)
    vec = layout == "nhwc" and case == "depthwise_3x3"
    rows = layout == "nchw" and case in ("depthwise_3x3", "depthwise_7x7")
    for pass_ in PASSES:
        expected = "tiled:depthwise"
        if vec:
            expected = "tiled:depthwise_vec"
        elif rows and pass_ != "backward_weight":
            expected = "tiled:depthwise_rows"
        assert plan[pass_].kernel == expected, pass_
        rule = next(r for r in heuristics.RULES if r.kernel == expected)
        assert plan[pass_].reason == rule.reason and "depthwise" in plan[pass_].reason


def test_depthwise_float64_and_old_gpus_fall_back_to_direct():
    """tiled:depthwise turns float64 (gradcheck's dtype) and GPUs before sm_80 away; the direct family runs them."""
    fp64 = _suite_problem(**DEPTHWISE_SUITE["depthwise_3x3"], dtype="float64")
    old = _suite_problem(**DEPTHWISE_SUITE["depthwise_3x3"], capability=(7, 5))
    assert {d.kernel for d in select(fp64).values()} == {d.kernel for d in select(old).values()} == {"direct"}
    assert can_implement("tiled:depthwise", "forward", fp64) == "float64 runs on the direct family"
    assert "8.0" in can_implement("tiled", "backward_weight", old)


def test_grouped_but_not_depthwise_stays_off_the_tiled_depthwise_kernels():
    """groups < C (two input channels per group) is not depthwise: tiled:depthwise says so, tiled:grouped runs it
    (exact fp32: tiled:grouped_mma is for tensor cores)."""
    grouped = problem(groups=8, allow_tf32=False)
    assert not grouped.depthwise
    for pass_ in PASSES:
        assert select(grouped)[pass_].kernel == "tiled:grouped"
        assert "not depthwise" in can_implement("tiled:depthwise", pass_, grouped)


GROUPED_SUITE = {
    "grouped_g32": dict(N=32, C=256, H=28, W=28, K=256, R=3, S=3, pad=1, groups=32),
    "g4_c3_k5_stride2": dict(N=2, C=12, H=15, W=17, K=20, R=3, S=3, stride=2, pad=1, groups=4),
    "g2_c12_k8_5x5": dict(N=1, C=24, H=9, W=9, K=16, R=5, S=5, pad=2, groups=2),
}


@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
@pytest.mark.parametrize("dtype,allow_tf32", [("float32", True), ("float32", False), ("float16", True),
                                              ("bfloat16", True)], ids=["tf32", "fp32", "fp16", "bf16"])
@pytest.mark.parametrize("case", list(GROUPED_SUITE))
def test_narrow_groups_run_the_tiled_grouped_kernels_on_every_pass(case, dtype, allow_tf32, layout):
    """Every pass of a grouped problem whose narrow side (K/groups forward and backward-weight, C/groups
    backward-data) is below 16 picks a tiled grouped kernel (fp32 with or without TF32, fp16, bf16, both layouts):
    tiled:grouped_mma for the forward and the stride-1 backward-data in a tensor-core mode when the reduction's
    channels per group fill 16-byte rows, and for backward-weight with C/groups a multiple of 8 (fp16/bf16) or 4 up to
    16 (TF32); tiled:grouped otherwise."""
    p = _suite_problem(**GROUPED_SUITE[case], dtype=dtype, allow_tf32=allow_tf32, channels_last=layout == "nhwc")
    assert p.groups > 1 and not p.depthwise
    plan = select(p)
    esize = 4 if dtype == "float32" else 2
    for pass_ in PASSES:
        reduction = p.K // p.groups if pass_ == "backward_data" else p.C // p.groups
        if pass_ == "backward_weight":
            cg = p.C // p.groups
            mma = (cg % 8 == 0) if dtype != "float32" else (allow_tf32 and cg % 4 == 0 and cg <= 16)
        else:
            mma = allow_tf32 and reduction * esize % 16 == 0 and (pass_ == "forward" or tuple(p.stride) == (1, 1))
        assert plan[pass_].kernel == ("tiled:grouped_mma" if mma else "tiled:grouped"), pass_
        assert "narrow groups" in plan[pass_].reason


def test_grouped_float64_wide_groups_and_groups_1_stay_off_the_tiled_grouped_kernels():
    """float64 runs the direct family; groups of 16 or more channels on the GEMM's narrow side keep their GEMM
    kernels; an ungrouped convolution with 8 input channels is not a narrow-group problem nor a first layer; more
    than 64 output channels per group (or a backward-weight of more than 32 input channels per group) is beyond
    tiled:grouped (it says why)."""
    fp64 = _suite_problem(**GROUPED_SUITE["grouped_g32"], dtype="float64")
    assert {d.kernel for d in select(fp64).values()} == {"direct"}
    assert can_implement("tiled:grouped", "forward", fp64) == "float64 runs on the direct family"
    wide = _suite_problem(32, 256, 28, 28, 256, 3, 3, pad=1, groups=4, dtype="float16")
    assert all(d.family == "implicit_gemm" for d in select(wide).values())
    ungrouped = _suite_problem(2, 8, 32, 32, 16, 3, 3, pad=1, dtype="float16")
    assert all(d.kernel != "tiled:grouped" for d in select(ungrouped).values())
    deep = _suite_problem(2, 256, 16, 16, 16, 3, 3, pad=1, groups=2, dtype="float16")  # C/g 128, K/g 8
    assert can_implement("tiled:grouped", "forward", deep) is None  # its reduction in chunks
    assert select(deep)["forward"].kernel == "tiled:grouped"
    assert "more than 32 input or 64 output" in can_implement("tiled:grouped", "backward_weight", deep)
    assert "more than 64 input channels per group" in can_implement("tiled:grouped", "backward_data", deep)
    wide = _suite_problem(2, 3, 32, 32, 96, 3, 3, pad=1, dtype="float16")
    assert "more than 64 output channels per group" in can_implement("tiled:grouped", "forward", wide)
    depthwise = _suite_problem(2, 8, 8, 8, 8, 3, 3, pad=1, groups=8)
    assert "runs on tiled:depthwise" in can_implement("tiled:grouped", "forward", depthwise)


def _wgmma_built(p):
    """Can this build's wgmma kernels run p (an sm_90a build and a capability 9.0 problem)?"""
    return can_implement("implicit_gemm:128x128_wg", "forward", p) is None


def test_implicit_gemm_configuration_by_shape_and_layout():
    """Off Hopper (here an A100): 64x64 tiles when 128x128 would not fill the GPU; 128-byte k-tiles for
    channels-last with vector channels; 8 warps for gathered (NCHW fp16/bf16 or odd channel counts) activations;
    4 warps for NCHW TF32."""
    a100 = dict(capability=(8, 0))
    small = _suite_problem(32, 512, 7, 7, 512, 3, 3, pad=1, dtype="bfloat16", **a100)
    assert select(small)["forward"].kernel == "implicit_gemm:64x64"
    assert select(_suite_problem(**SEED, dtype="bfloat16", channels_last=True, **a100))["forward"].kernel == \
        "implicit_gemm:128x128_k128"
    first_layer = _suite_problem(32, 3, 224, 224, 64, 7, 7, stride=2, pad=3, dtype="bfloat16", channels_last=True,
                                 **a100)
    assert select(first_layer)["forward"].kernel == "implicit_gemm:im2col"  # the reduction (147) fits its tile
    alexnet_conv1 = _suite_problem(32, 3, 227, 227, 96, 11, 11, stride=4, dtype="bfloat16", channels_last=True, **a100)
    assert select(alexnet_conv1)["forward"].kernel == "implicit_gemm:128x128_w8"  # 3 x 11 x 11 = 363: too long
    assert select(_suite_problem(**SEED, dtype="float16", **a100))["forward"].kernel == "implicit_gemm:128x128_w8"
    assert select(_suite_problem(**SEED, dtype="float32", **a100))["forward"].kernel == "implicit_gemm:128x128_w4"


def test_hopper_runs_the_wgmma_configurations(monkeypatch):
    """On compute capability 9.0 (an sm_90a build): the copy-engine (TMA) configurations for the forward and the
    stride-1 backward-data, 128x64 tiles for 64-channel layers and small grids, 128x128 otherwise; strided
    backward-data by stride phase on them; first layers (3 channels: no 16-byte vectors) on the cp.async
    wgmma kernels; the copy-engine backward-weight for long reductions (TF32: a channels-last input copied to NCHW), mma.sync
    otherwise.
    Elsewhere the wgmma kernels say why they cannot run."""
    seed = _suite_problem(**SEED, dtype="bfloat16")
    if not _wgmma_built(seed):
        for kernel in ("implicit_gemm:128x128_wg", "implicit_gemm:128x128_tma"):
            why = can_implement(kernel, "forward", seed)
            assert "sm_90a" in why or "9.0" in why or "not built" in why or "no forward kernel" in why
        return
    for layout in (False, True):
        plan = select(_suite_problem(**SEED, dtype="bfloat16", channels_last=layout))
        assert plan["forward"].kernel == "implicit_gemm:128x128_tma"
        assert plan["backward_data"].kernel == "implicit_gemm:128x64_tma"  # 64 input channels
        assert plan["backward_weight"].kernel == "implicit_gemm:128x128_tma"  # 4.2M output pixels to reduce
        tf32 = select(_suite_problem(**SEED, dtype="float32", channels_last=layout))["backward_weight"]
        # TF32 reads the input K-major: NCHW in place, channels-last copied to NCHW first
        assert tf32.kernel == "implicit_gemm:128x128_tma"
    unet = _suite_problem(4, 128, 256, 256, 128, 3, 3, pad=1, dtype="float32")
    assert select(unet)["backward_data"].kernel == "implicit_gemm:128x128_tma"
    assert select(unet)["backward_weight"].kernel == "implicit_gemm:128x128_tma"
    unet_nhwc = _suite_problem(4, 128, 256, 256, 128, 3, 3, pad=1, dtype="float32", channels_last=True)
    assert select(unet_nhwc)["backward_weight"].kernel == "implicit_gemm:128x128_tma"
    r50_3x3_256 = _suite_problem(32, 256, 14, 14, 256, 3, 3, pad=1, dtype="float32", channels_last=True)
    # rows of 14 pixels (W % 4 != 0): packed (32 images side by side: backward_weight_tma_nchw.cuh's RowPacking, on
    # by default in TF32), refused without packing
    assert can_implement("implicit_gemm:128x128_tma", "backward_weight", r50_3x3_256) is None
    assert select(r50_3x3_256)["backward_weight"].kernel == "implicit_gemm:128x128_tma"
    monkeypatch.setenv("CONV2D_EXT_TMA_WGRAD_PACK", "0")
    assert "W % 4 == 0" in can_implement("implicit_gemm:128x128_tma", "backward_weight", r50_3x3_256)
    assert select(r50_3x3_256)["backward_weight"].kernel == "implicit_gemm:128x128_w8"
    monkeypatch.delenv("CONV2D_EXT_TMA_WGRAD_PACK")
    # TF32 NCHW backward-weight on the copy engine from 2^15 output pixels (per-pass timings, heuristics.py)
    dilated = dataclasses.replace(_suite_problem(8, 256, 64, 64, 256, 3, 3, pad=2, dtype="float32"), dilation=(2, 2),
                                  P=64, Q=64)
    for problem, expected in ((dilated, "implicit_gemm:128x128_tma"),
                              (_suite_problem(32, 64, 56, 56, 64, 3, 3, pad=1, dtype="float32"), "implicit_gemm:128x128_tma"),
                              (_suite_problem(32, 256, 56, 56, 64, 1, 1, dtype="float32"), "implicit_gemm:128x128_tma"),
                              (_suite_problem(1, 256, 64, 64, 256, 3, 3, pad=1, dtype="float32"), "implicit_gemm:128x128_tma"),
                              (_suite_problem(1, 256, 32, 32, 256, 3, 3, pad=1, dtype="float32"), "implicit_gemm:128x128_w8"),
                              (_suite_problem(32, 64, 56, 58, 128, 3, 3, pad=1, dtype="float32"),  # W % 4 != 0:
                               "implicit_gemm:128x128_tma"),                                           # packed
                              (_suite_problem(32, 64, 56, 56, 32, 3, 3, pad=1, dtype="float32"),  # 32 output channels
                               "implicit_gemm:64x64"),
                              (_suite_problem(512, 64, 8, 8, 128, 3, 3, pad=1, dtype="float32"),  # 8-pixel rows:
                               "implicit_gemm:128x128_tma")):                                       # packed
        assert select(problem)["backward_weight"].kernel == expected, problem
    odd_rows = _suite_problem(4, 128, 256, 254, 128, 3, 3, pad=1, dtype="float32")
    assert can_implement("implicit_gemm:128x128_tma", "backward_weight", odd_rows) is None  # packed rows
    monkeypatch.setenv("CONV2D_EXT_TMA_WGRAD_PACK", "0")
    assert "W % 4" in can_implement("implicit_gemm:128x128_tma", "backward_weight", odd_rows)
    monkeypatch.delenv("CONV2D_EXT_TMA_WGRAD_PACK")
    r50_3x3_256 = _suite_problem(32, 256, 14, 14, 256, 3, 3, pad=1, dtype="float16")  # 98 tiles of 128 x 128
    assert select(r50_3x3_256)["forward"].kernel == "implicit_gemm:128x128_tma"
    # 16-bit, 64 or more output channels a group: the copy engine at any row width or stride (session 34)
    for problem in (r50_3x3_256, dataclasses.replace(r50_3x3_256, channels_last=True),
                    _suite_problem(32, 128, 56, 56, 128, 3, 3, stride=2, pad=1, dtype="bfloat16")):
        assert select(problem)["backward_weight"].kernel == "implicit_gemm:128x128_tma", problem
    few_filters = _suite_problem(32, 256, 14, 14, 32, 3, 3, pad=1, dtype="float16")  # 32 output channels
    assert select(few_filters)["backward_weight"].kernel != "implicit_gemm:128x128_tma"
    # row packing (CONV2D_EXT_TMA_WGRAD_PACK=auto): the small maps go to the copy engine, packed
    monkeypatch.setenv("CONV2D_EXT_TMA_WGRAD_PACK", "auto")
    r50_3x3_512 = _suite_problem(32, 512, 7, 7, 512, 3, 3, pad=1, dtype="float32")
    for problem in (r50_3x3_256, r50_3x3_512, dataclasses.replace(r50_3x3_512, dtype="bfloat16"),
                    dataclasses.replace(r50_3x3_512, channels_last=True)):
        assert select(problem)["backward_weight"].kernel == "implicit_gemm:128x128_tma", problem
    assert not heuristics.wgrad_packs_rows(dataclasses.replace(r50_3x3_256, channels_last=True))  # 16-bit NHWC
    # the mirror agrees with the kernel's rule where TF32 runs only packed (rows not of 16-byte multiples)
    for N, W in itertools.product((1, 3, 32), (7, 14, 15, 26, 58, 202)):
        problem = _suite_problem(N, 64, 9, W, 128, 3, 3, pad=1, dtype="float32")
        kernel_packs = can_implement("implicit_gemm:128x128_tma", "backward_weight", problem) is None
        assert kernel_packs == heuristics.wgrad_packs_rows(problem), problem
    monkeypatch.delenv("CONV2D_EXT_TMA_WGRAD_PACK")
    # 16-bit, fewer than 2^17 output pixels, 64 or more output channels: on the copy engine
    batch1_3x3 = _suite_problem(1, 256, 64, 64, 256, 3, 3, pad=1, dtype="float16")
    assert select(batch1_3x3)["backward_weight"].kernel == "implicit_gemm:128x128_tma"
    dilated16 = dataclasses.replace(dilated, dtype="bfloat16")
    assert select(dilated16)["backward_weight"].kernel == "implicit_gemm:128x128_tma"
    r50_3x3_64 = _suite_problem(32, 64, 56, 56, 64, 3, 3, pad=1, dtype="float16")
    assert select(r50_3x3_64)["forward"].kernel == "implicit_gemm:128x64_tma"
    tiny = _suite_problem(1, 64, 14, 14, 128, 3, 3, pad=1, dtype="float16")  # 2 tiles
    assert select(tiny)["forward"].kernel == "implicit_gemm:128x64_tma"
    # more than 40 tiles of 128 x 128 (r50_3x3_512: 52, batch1_3x3: 64): 128x128 tiles in deep rings; 28: 128x64
    for dtype in ("float16", "float32"):
        for problem in (_suite_problem(32, 512, 7, 7, 512, 3, 3, pad=1, dtype=dtype),
                        _suite_problem(1, 256, 64, 64, 256, 3, 3, pad=1, dtype=dtype)):
            plan = select(problem)
            assert plan["forward"].kernel == plan["backward_data"].kernel == "implicit_gemm:128x128_tma", problem
        r50_3x3_512_n16 = _suite_problem(16, 512, 7, 7, 512, 3, 3, pad=1, dtype=dtype)
        assert select(r50_3x3_512_n16)["forward"].kernel == "implicit_gemm:128x64_tma"
    r50_1x1 = dict(N=32, C=256, H=56, W=56, K=64, R=1, S=1)
    assert select(_suite_problem(**r50_1x1, dtype="float32"))["forward"].kernel == "implicit_gemm:128x64_tma"
    # 49-pixel planes (196 bytes): no in-place pointwise kernel; TF32 activations copied to NHWC lose to 128x128_wg
    r50_1x1_7 = dict(N=32, C=2048, H=7, W=7, K=512, R=1, S=1)
    assert select(_suite_problem(**r50_1x1_7, dtype="float32"))["forward"].kernel == "implicit_gemm:128x128_wg"
    assert select(_suite_problem(**r50_1x1, dtype="bfloat16"))["forward"].kernel == "implicit_gemm:128x64_tma"
    # 1x1 NCHW backward-weight read in place by the pointwise kernel, also below the general rule's sizes (rows of 28)
    for dtype in ("float16", "float32"):
        pointwise_28 = _suite_problem(32, 512, 28, 28, 128, 1, 1, dtype=dtype)
        assert select(pointwise_28)["backward_weight"].kernel == "implicit_gemm:128x128_tma"
    odd_plane = _suite_problem(32, 512, 7, 7, 128, 1, 1, dtype="float16")  # 98-byte planes: not in place
    assert not heuristics.pointwise_in_place(odd_plane)  # (the copy engine on NHWC copies: 128 output channels)
    strided = _suite_problem(32, 128, 56, 56, 128, 3, 3, stride=2, pad=1, dtype="bfloat16")
    assert select(strided)["forward"].kernel == "implicit_gemm:128x128_tma"
    assert select(strided)["backward_data"].kernel == "implicit_gemm:128x128_tma"  # by stride phase (NCHW 16-bit too)
    strided_tf32 = dataclasses.replace(strided, dtype="float32")
    # TF32 NCHW: by stride phase on the copy engine, as backward-weight (by column phase), grad_output staged once;
    # CONV2D_EXT_TMA_WGRAD_PHASES=0: backward-weight's gathers on mma.sync, backward-data on the stride-phase wgmma
    assert select(strided_tf32)["backward_data"].kernel == "implicit_gemm:128x128_tma"
    assert select(strided_tf32)["backward_weight"].kernel == "implicit_gemm:128x128_tma"
    monkeypatch.setenv("CONV2D_EXT_TMA_WGRAD_PHASES", "0")
    assert "CONV2D_EXT_TMA_WGRAD_PHASES=0" in can_implement("implicit_gemm:128x128_tma", "backward_weight", strided_tf32)
    assert select(strided_tf32)["backward_weight"].kernel == "implicit_gemm:128x128_w8"
    assert select(strided_tf32)["backward_data"].kernel == "implicit_gemm:256x128_wg"
    monkeypatch.delenv("CONV2D_EXT_TMA_WGRAD_PHASES")
    first_layer = _suite_problem(32, 3, 224, 224, 64, 7, 7, stride=2, pad=3, dtype="bfloat16")
    assert "16-byte vectors" in can_implement("implicit_gemm:128x128_tma", "forward", first_layer)
    assert select(first_layer)["forward"].kernel == "implicit_gemm:im2col"
    alexnet_conv1 = _suite_problem(32, 3, 227, 227, 96, 11, 11, stride=4, dtype="bfloat16")  # a reduction of 363
    # a large first layer: the 16-warp tiles take only vector shapes (their scalar variants spilled), so 128 x 128
    assert select(alexnet_conv1)["forward"].kernel == "implicit_gemm:128x128_wg"
    assert "16-byte vectors" in can_implement("implicit_gemm:256x128_wgk128", "forward", alexnet_conv1)
    assert "16-byte vectors" in can_implement("implicit_gemm:256x128_wg", "backward_data",
                                              dataclasses.replace(alexnet_conv1, K=100))
    a100 = _suite_problem(**SEED, dtype="bfloat16", capability=(8, 0))
    assert "9.0" in can_implement("implicit_gemm:128x128_wg", "forward", a100)
    assert "9.0" in can_implement("implicit_gemm:128x128_tma", "forward", a100)


def test_implicit_gemm_explains_what_it_cannot_run():
    """The registry's reasons reach the caller: exact fp32, fp64 and old GPUs."""
    exact = _suite_problem(**SEED, dtype="float32", allow_tf32=False)
    assert "allow_tf32" in can_implement("implicit_gemm:128x128_w4", "forward", exact)
    assert can_implement("implicit_gemm:ffma", "forward", exact) is None
    assert "float64" in can_implement("implicit_gemm", "forward", _suite_problem(**SEED, dtype="float64"))
    assert "8.0" in can_implement("implicit_gemm", "forward", _suite_problem(**SEED, dtype="float16",
                                                                             capability=(7, 5)))


def test_strided_backward_data_tiles_per_stride_phase():
    """Strided backward-data runs one GEMM per stride phase: its tile count is phases x the largest phase's tiles, so
    a small strided problem takes 64x64 tiles; a first layer on 3 input channels in NCHW fp16/bf16 takes wgmma tiles
    (mostly empty, still faster than the FFMA tiles there), 64x64 ones off Hopper."""
    r50_s2 = _suite_problem(32, 128, 56, 56, 128, 3, 3, stride=2, pad=1, dtype="bfloat16")
    assert heuristics._tiles(r50_s2, 128, 128, "backward_data") == 4 * 196  # 4 phases of 32 x 28 x 28 pixels
    assert heuristics._tiles(_suite_problem(1, 16, 17, 16, 16, 2, 2, stride=3), 64, 64, "backward_data") == 9 * 1
    small = _suite_problem(2, 64, 14, 14, 64, 3, 3, stride=2, pad=1, dtype="bfloat16")
    assert select(small)["backward_data"].kernel == "implicit_gemm:64x64"
    eight = _suite_problem(32, 8, 224, 224, 64, 7, 7, stride=2, pad=3, dtype="bfloat16")  # not a first layer: C > 4
    expected = "implicit_gemm:128x128_wg" if _wgmma_built(eight) else "implicit_gemm:64x64"
    assert select(eight)["backward_data"].kernel == expected
    assert "fewer than 16 input channels" in select(eight)["backward_data"].reason
    first_layer = _suite_problem(32, 3, 224, 224, 96, 7, 7, stride=2, pad=3, dtype="bfloat16")  # K > 64: no im2col
    assert select(first_layer)["backward_data"].kernel == "tiled:grouped"  # 3 channels: the FFMA tiles win
    a100 = _suite_problem(32, 3, 224, 224, 96, 7, 7, stride=2, pad=3, dtype="bfloat16", capability=(8, 0))
    assert select(a100)["backward_data"].kernel == "tiled:grouped"
    a100_11x11 = _suite_problem(32, 3, 227, 227, 64, 11, 11, stride=4, dtype="bfloat16", capability=(8, 0))
    assert select(a100_11x11)["backward_weight"].kernel == "implicit_gemm:64x64"  # 64 output channels
    exact = _suite_problem(32, 3, 224, 224, 64, 7, 7, stride=2, pad=3, dtype="float32", allow_tf32=False)
    assert select(exact)["backward_data"].kernel == "tiled:grouped"  # a first layer in fp32: FFMA tiles


@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
@pytest.mark.parametrize("dtype,allow_tf32", [("float32", True), ("float32", False), ("float16", True),
                                              ("bfloat16", True)], ids=["tf32", "fp32", "fp16", "bf16"])
def test_first_layers_run_on_the_tiled_grouped_kernels_where_they_win(dtype, allow_tf32, layout):
    """r50_conv1 (3 input channels, 7x7 stride 2): on implicit_gemm:im2col in every pass in a tensor-core dtype
    (channels-last TF32 backward-data too since session 37); on tiled:grouped where it was timed faster (exact fp32:
    the forward, backward-data, backward-weight in channels-last), the FFMA GEMM tiles elsewhere. With 96 output channels
    (too many for im2col's backward-data) backward-data runs on tiled:grouped in every dtype. float64 stays
    direct."""
    p = _suite_problem(32, 3, 224, 224, 64, 7, 7, stride=2, pad=3, dtype=dtype, allow_tf32=allow_tf32,
                       channels_last=layout == "nhwc")
    plan = select(p)
    exact = dtype == "float32" and not allow_tf32
    for pass_ in PASSES:
        assert (plan[pass_].kernel == "implicit_gemm:im2col") == (not exact), pass_
    expected = {"forward": exact, "backward_data": exact, "backward_weight": exact and layout == "nhwc"}
    for pass_, grouped in expected.items():
        assert (plan[pass_].kernel == "tiled:grouped") == grouped, pass_
        if grouped:
            assert "first layer" in plan[pass_].reason
    wide = select(_suite_problem(32, 3, 224, 224, 96, 7, 7, stride=2, pad=3, dtype=dtype, allow_tf32=allow_tf32,
                                 channels_last=layout == "nhwc"))
    assert wide["backward_data"].kernel == "tiled:grouped" and "first layer" in wide["backward_data"].reason
    fp64 = _suite_problem(2, 3, 16, 16, 8, 3, 3, pad=1, dtype="float64")
    assert {d.kernel for d in select(fp64).values()} == {"direct"}


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_depthwise_rows_says_why_it_cannot_run(dtype):
    """tiled:depthwise_rows takes NCHW 3x3 / 5x5 / 7x7 at stride 1 with "same" column padding and rows of 16 bytes;
    anything else gets a reason (and the heuristics fall back to tiled:depthwise)."""
    base = dict(N=2, C=16, H=20, W=32, K=16, R=3, S=3, pad=1, groups=16)
    assert can_implement("tiled:depthwise_rows", "forward", _suite_problem(**base, dtype=dtype)) is None
    assert can_implement("tiled:depthwise_rows", "backward_data", _suite_problem(**base, dtype=dtype)) is None
    refusals = {
        "NCHW tensors only": (dict(base), dict(channels_last=True)),
        "3x3, 5x5 and 7x7 filters only": (dict(base, R=1, S=7, pad=0), {}),
        "stride 1 and dilation 1 only": (dict(base, stride=2), {}),
        "same\" column padding": (dict(base, pad=0), {}),
        "multiple of 16 bytes": (dict(base, W=36 if dtype == "bfloat16" else 30), {}),
    }
    for why, (shape, extra) in refusals.items():
        p = _suite_problem(**shape, dtype=dtype, **extra)
        assert why in can_implement("tiled:depthwise_rows", "forward", p), why
        assert select(p)["forward"].kernel != "tiled:depthwise_rows"
    multiplier = _suite_problem(**dict(base, K=32), dtype=dtype)
    assert can_implement("tiled:depthwise_rows", "forward", multiplier) is None
    assert "multiplier 1" in can_implement("tiled:depthwise_rows", "backward_data", multiplier)
    assert select(multiplier)["backward_data"].kernel == "tiled:depthwise"


def test_first_layers_take_im2col_where_it_can_run():
    """implicit_gemm:im2col comes first for a first layer in a tensor-core dtype, every pass; not for more than 4
    input channels, groups, exact fp32, or a backward-data of more than 64 output channels."""
    registry = fake_registry({"direct": PASSES, "tiled:grouped": PASSES, "implicit_gemm:im2col": PASSES,
                              "implicit_gemm:64x64": PASSES, "implicit_gemm:ffma": PASSES})
    r50_conv1 = dict(N=32, C=3, H=224, W=224, K=64, R=7, S=7, stride=2, pad=3)
    for dtype, allow_tf32 in (("float16", True), ("bfloat16", True), ("float32", True)):
        plan = select(_suite_problem(**r50_conv1, dtype=dtype, allow_tf32=allow_tf32), registry=registry)
        assert {d.kernel for d in plan.values()} == {"implicit_gemm:im2col"}, dtype
        assert "whole reduction" in plan["forward"].reason
    tf32_nhwc = select(_suite_problem(**r50_conv1, dtype="float32", channels_last=True), registry=registry)
    assert tf32_nhwc["backward_data"].kernel == "implicit_gemm:im2col"  # session 37: 0.493 ms against 0.861
    exact = select(_suite_problem(**r50_conv1, dtype="float32", allow_tf32=False), registry=registry)
    assert "implicit_gemm:im2col" not in {d.kernel for d in exact.values()}
    eight = select(_suite_problem(**dict(r50_conv1, C=8), dtype="float16"), registry=registry)  # 8 x 49 > 160
    assert "implicit_gemm:im2col" not in {d.kernel for d in eight.values()}
    wide = select(_suite_problem(**dict(r50_conv1, K=96), dtype="float16"), registry=registry)
    assert wide["forward"].kernel == wide["backward_weight"].kernel == "implicit_gemm:im2col"
    assert wide["backward_data"].kernel == "tiled:grouped"
    grouped = select(_suite_problem(**dict(r50_conv1, C=4, K=64, R=3, S=3), groups=2, dtype="float16"),
                     registry=registry)
    assert "implicit_gemm:im2col" not in {d.kernel for d in grouped.values()}
