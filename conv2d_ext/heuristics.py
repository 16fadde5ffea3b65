"""Which kernel family runs each pass of a convolution.

`select(problem, variant)` is a pure function of the problem's shape, dtype, layout and the GPU's compute
capability: no tensors, no GPU, so it is tested on any machine. For each pass it walks RULES in order and takes
the first rule whose condition holds and whose family can implement the problem; `can_implement` says why a
family cannot. A forced variant that cannot implement the problem raises ValueError with that reason.
"""
from dataclasses import dataclass
from typing import Callable, Dict, NamedTuple, Optional, Tuple

FAMILIES = ("direct", "tiled", "implicit_gemm")
PASSES = ("forward", "backward_data", "backward_weight")

# Families compiled into this version. The others are the planned shared-memory tiled and tensor-core
# implicit-GEMM families; until they exist, asking for them raises.
AVAILABLE = ("direct",)


@dataclass(frozen=True)
class Problem:
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
    capability: Tuple[int, int] = (9, 0)

    @property
    def depthwise(self):
        """One input channel per group (any channel multiplier K/C)."""
        return self.groups > 1 and self.groups == self.C

    @property
    def flops(self):
        return 2 * self.N * self.K * self.P * self.Q * (self.C // self.groups) * self.R * self.S


class Decision(NamedTuple):
    family: str
    reason: str


class Rule(NamedTuple):
    family: str
    applies: Callable[[Problem, str], bool]  # (problem, pass) -> does this rule apply
    reason: str


# The table of reasons: first applicable rule whose family can implement the problem wins.
RULES = (
    Rule("direct", lambda p, pass_: True, "direct loops: correct for every shape, dtype and layout"),
)


def can_implement(family: str, pass_: str, problem: Problem, available=AVAILABLE) -> Optional[str]:
    """None if `family` can run `pass_` of `problem`, else the reason it cannot."""
    if family not in FAMILIES:
        return f"unknown family {family!r}; expected one of {', '.join(FAMILIES)}"
    if family not in available:
        return f"the {family} family is not built in this version of conv2d_ext (available: {', '.join(available)})"
    return None  # direct: everything


def _forced(variant) -> Dict[str, str]:
    """Per-pass families the caller forces ('auto' entries left out)."""
    if isinstance(variant, str):
        return {} if variant == "auto" else {pass_: variant for pass_ in PASSES}
    if isinstance(variant, dict):
        unknown = set(variant) - set(PASSES)
        if unknown:
            raise ValueError(f"conv2d_ext: variant keys must be among {', '.join(PASSES)}, got {sorted(unknown)}")
        return {k: v for k, v in variant.items() if v != "auto"}
    raise ValueError(f"conv2d_ext: variant must be 'auto', a family name or a dict by pass, got {variant!r}")


def select(problem: Problem, variant="auto", available=AVAILABLE) -> Dict[str, Decision]:
    """The family and the reason for each pass of `problem`."""
    forced = _forced(variant)
    plan = {}
    for pass_ in PASSES:
        if pass_ in forced:
            family = forced[pass_]
            why_not = can_implement(family, pass_, problem, available)
            if why_not is not None:
                raise ValueError(f"conv2d_ext: variant {family!r} cannot run {pass_} of this convolution: {why_not}")
            plan[pass_] = Decision(family, "forced by variant")
            continue
        for rule in RULES:
            if rule.applies(problem, pass_) and can_implement(rule.family, pass_, problem, available) is None:
                plan[pass_] = Decision(rule.family, rule.reason)
                break
        else:
            raise ValueError(f"conv2d_ext: no kernel family in {available} can run {pass_} of this convolution")
    return plan


def describe(plan: Dict[str, Decision]) -> str:
    return "\n".join(f"{pass_}: {plan[pass_].family} ({plan[pass_].reason})" for pass_ in PASSES)
