"""Shared test helpers: the GPU skip marker, and (from conv2d_ext.testing, which the benchmarks use too) the
tolerance table, the precision modes, the input maker, the float64 reference and the relative error."""
import pytest
import torch

from conv2d_ext.testing import (
    CASES, DTYPES, TOLERANCE, Case, fresh_seed, make_inputs, output_shape, precision, random_tensor, reference,
    rel_err,
)

__all__ = ["HAS_GPU", "requires_gpu", "CASES", "DTYPES", "TOLERANCE", "Case", "fresh_seed", "make_inputs",
           "output_shape", "precision", "random_tensor", "reference", "rel_err"]

HAS_GPU = torch.cuda.is_available()
requires_gpu = pytest.mark.skipif(not HAS_GPU,
                                  reason="needs a CUDA GPU; this machine has none (run on the GPU machine)")
