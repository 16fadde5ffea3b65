"""Shared test helpers: the GPU skip marker, and (from conv2d_ext.testing, which the benchmarks use too) the
tolerance table, the precision modes, the input maker, the float64 reference and the relative error."""
import functools
import subprocess
import sys

import pytest
import torch

from conv2d_ext.testing import (
    CASES, DTYPES, TOLERANCE, Case, fresh_seed, make_inputs, output_shape, precision, random_tensor, reference,
    rel_err,
)

__all__ = ["HAS_GPU", "requires_gpu", "skip_if_cpp_errors_crash", "CASES", "DTYPES", "TOLERANCE", "Case", "fresh_seed", "make_inputs",
           "output_shape", "precision", "random_tensor", "reference", "rel_err"]

HAS_GPU = torch.cuda.is_available()
requires_gpu = pytest.mark.skipif(not HAS_GPU,
                                  reason="needs a CUDA GPU; this machine has none (run on the GPU machine)")


@functools.lru_cache(maxsize=None)
def _cpp_errors_with_numbers_crash():
    """Whether raising a C++ error whose message holds a number kills Python with this build of the extension. Seen
    on the GPU machine (torch 2.11+cu130, g++ 13.3; reproduced with a three-line extension, so the toolchain, not
    this project). Probed once, in a subprocess."""
    probe = ("from conv2d_ext import _C\n"
             "try:\n"
             "    _C.can_implement('forward', 'direct', [2, 8, 10, 10, 16, 3, 3, 8, 10], [1, 1], [1, 1], [1, 1], 1,\n"
             "                     'float32', False, True, 90)\n"
             "except RuntimeError:\n"
             "    pass\n")
    return subprocess.run([sys.executable, "-c", probe], capture_output=True).returncode != 0


def skip_if_cpp_errors_crash():
    """Skips a test that expects C++ errors with numbers in their message where raising them crashes Python."""
    if _cpp_errors_with_numbers_crash():
        pytest.skip("on this machine a C++ error message with a number crashes Python (its toolchain: see "
                    "benchmarks/NOTES.md, open items)")
