"""nn.Conv2d on conv2d_ext kernels, and convert() to swap them into an existing model."""
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.modules.utils import _pair

from . import heuristics
from .conv2d import conv2d


class Conv2d(nn.Conv2d):
    """torch.nn.Conv2d whose forward runs conv2d_ext.conv2d. Same constructor (plus `variant`), same parameters
    and state_dict, every padding_mode."""

    def __init__(self, *args, variant="auto", **kwargs):
        heuristics.check_variant(variant)  # a misspelt variant fails here, not at the first forward
        super().__init__(*args, **kwargs)
        self.variant = variant

    def _conv_forward(self, input, weight, bias):
        if self.padding_mode != "zeros":
            input = F.pad(input, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            return conv2d(input, weight, bias, self.stride, _pair(0), self.dilation, self.groups, variant=self.variant)
        return conv2d(input, weight, bias, self.stride, self.padding, self.dilation, self.groups, variant=self.variant)

    def _get_name(self):  # print(model) shows which convolutions are ours
        return "conv2d_ext.Conv2d"

    def extra_repr(self):
        text = super().extra_repr()
        return text if self.variant == "auto" else f"{text}, variant={self.variant!r}"


def _converted(conv, variant):
    new = Conv2d.__new__(Conv2d)
    # The same Parameter and buffer objects and hooks, in dicts of its own.
    new.__dict__.update({k: v.copy() if isinstance(v, dict) else v for k, v in conv.__dict__.items()})
    new.variant = variant
    return new


def convert(module, variant="auto"):
    """Replaces every torch.nn.Conv2d inside `module` (in place) by a conv2d_ext.Conv2d sharing its parameters,
    and returns the module (the new one, if `module` itself is an nn.Conv2d). A conv registered in several places
    becomes one converted module in all of them. Subclasses of nn.Conv2d are left alone: their forward may not be a
    plain convolution."""
    heuristics.check_variant(variant)
    return _convert(module, variant, {})


def _convert(module, variant, done):
    if id(module) in done:
        return done[id(module)]
    if type(module) is nn.Conv2d:
        new = _converted(module, variant)
    else:
        new = module
        for name, child in list(module._modules.items()):  # every slot, also a module registered twice
            if child is not None:
                module._modules[name] = _convert(child, variant, done)
    done[id(module)] = new
    return new
