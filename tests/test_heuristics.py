"""conv2d_ext.heuristics: which kernel family runs each pass, and why. Pure functions of a Problem: no GPU."""
import dataclasses

import pytest

from conv2d_ext import heuristics
from conv2d_ext.heuristics import AVAILABLE, FAMILIES, PASSES, Decision, Problem, can_implement, describe, select


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
    """Three passes; AVAILABLE is a non-empty subset of FAMILIES holding 'direct'; every rule names a family."""
    assert PASSES == ("forward", "backward_data", "backward_weight")
    assert "direct" in AVAILABLE and set(AVAILABLE) <= set(FAMILIES)
    assert len(set(FAMILIES)) == len(FAMILIES)
    assert heuristics.RULES
    for rule in heuristics.RULES:
        assert rule.family in FAMILIES and rule.reason


@pytest.mark.parametrize("name", list(PROBLEMS), ids=list(PROBLEMS))
def test_select_decides_every_pass_with_a_reason(name):
    """For any problem, 'auto' picks an available family for each of the three passes and says why."""
    plan = select(PROBLEMS[name])
    assert list(plan) == list(PASSES)
    for pass_, decision in plan.items():
        assert isinstance(decision, Decision)
        assert decision.family in AVAILABLE, pass_
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
    """describe: 'pass: family (reason)', one line for each pass, in PASSES order."""
    plan = select(PROBLEMS[name])
    lines = describe(plan).splitlines()
    assert len(lines) == 3
    for line, pass_ in zip(lines, PASSES):
        assert line == f"{pass_}: {plan[pass_].family} ({plan[pass_].reason})"


@pytest.mark.parametrize("name", ["fp32", "fp16", "depthwise", "large", "tiny", "sm80"])
def test_forcing_direct_forces_every_pass(name):
    """variant='direct' runs the direct family on every pass, with the reason 'forced by variant'."""
    plan = select(PROBLEMS[name], "direct")
    assert plan == {pass_: Decision("direct", "forced by variant") for pass_ in PASSES}
    assert describe(plan).count("(forced by variant)") == 3


@pytest.mark.parametrize("family", [f for f in FAMILIES if f not in AVAILABLE])
def test_forcing_a_family_not_built_raises_saying_so(family):
    """A planned family that is not compiled in raises ValueError explaining that it is not built."""
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
            assert plan[pass_] == Decision(variant[pass_], "forced by variant"), pass_


@pytest.mark.parametrize("variant", [{"backward": "direct"}, {"forward": "direct", "grad_input": "direct"}],
                         ids=["backward", "grad_input"])
def test_dict_variant_with_unknown_pass_raises(variant):
    """Dict keys must be pass names; a typo is an error, not silently ignored."""
    with pytest.raises(ValueError, match=r"variant keys must be among forward, backward_data, backward_weight"):
        select(problem(), variant)


@pytest.mark.parametrize("variant", [None, 1, ["direct"], ("direct",), b"direct"],
                         ids=["None", "int", "list", "tuple", "bytes"])
def test_variant_of_another_type_raises(variant):
    """variant must be 'auto', a family name or a dict by pass."""
    with pytest.raises(ValueError, match=r"variant must be 'auto', a family name or a dict by pass"):
        select(problem(), variant)


@pytest.mark.parametrize("pass_", PASSES)
@pytest.mark.parametrize("name", ["fp32", "fp64", "bf16", "depthwise", "large", "tiny"])
def test_direct_can_implement_everything(name, pass_):
    """The direct family runs every pass of every problem (can_implement returns None)."""
    assert can_implement("direct", pass_, PROBLEMS[name]) is None


@pytest.mark.parametrize("family", [f for f in FAMILIES if f not in AVAILABLE])
def test_can_implement_explains_a_family_not_built(family):
    """A family outside `available` cannot implement anything, and the reason names what is available."""
    why = can_implement(family, "forward", problem())
    assert why == (f"the {family} family is not built in this version of conv2d_ext "
                   f"(available: {', '.join(AVAILABLE)})")


def test_can_implement_explains_an_unknown_family():
    """An unknown family cannot implement anything, whatever `available` says."""
    assert "unknown family 'fft'" in can_implement("fft", "forward", problem())
    assert "unknown family 'fft'" in can_implement("fft", "forward", problem(), available=("direct", "fft"))


@pytest.mark.parametrize("family", [f for f in FAMILIES if f != "direct"])
def test_a_family_listed_in_available_is_accepted(family):
    """Passing `available` with more families makes them forceable (how a later build enables them)."""
    available = ("direct", family)
    for pass_ in PASSES:
        assert can_implement(family, pass_, problem(), available=available) is None
    plan = select(problem(), family, available=available)
    assert plan == {pass_: Decision(family, "forced by variant") for pass_ in PASSES}
    assert all(d.family in available for d in select(problem(), available=available).values())


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
    """With no family that can run the problem, select raises rather than return a partial plan."""
    with pytest.raises(ValueError, match="no kernel family"):
        select(problem(), available=())
