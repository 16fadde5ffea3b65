"""conv2d_ext: 2-D convolution on our own CUDA kernels, a drop-in for torch.nn.functional.conv2d.

    import conv2d_ext
    y = conv2d_ext.conv2d(x, w, b, stride=1, padding=1)    # like F.conv2d
    model = conv2d_ext.convert(model)                       # every nn.Conv2d -> conv2d_ext.Conv2d
    print(conv2d_ext.explain(x, w, padding=1))              # which kernel runs each pass, and why
    conv2d_ext.kernels()                                    # the kernels of this build, by pass
"""
__version__ = "0.1.0"

import torch  # noqa: F401  (loads libc10 and libtorch, which _C links against)

from . import _C  # noqa: F401  (the compiled kernels; fails here if the extension was not built)
from . import heuristics  # noqa: F401
from ._args import Conv2dError
from .conv2d import conv2d, explain  # the function shadows the submodule name: conv2d_ext.conv2d is the function
from .modules import Conv2d, convert


def kernels():
    """The kernels built into this version, by pass, in the registry's order: {"forward": ["direct", ...], ...}.
    Any of them can be forced with variant= (a name is "family" or "family:config")."""
    return {pass_: list(names) for pass_, names in heuristics.compiled.kernels.items()}


__all__ = ["conv2d", "explain", "Conv2d", "convert", "Conv2dError", "kernels", "heuristics", "__version__"]
