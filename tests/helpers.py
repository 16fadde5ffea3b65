"""Shared test helpers: the GPU skip marker, inputs, the float64 reference, and the tolerance table."""
import pytest
import torch
import torch.nn.functional as F

HAS_GPU = torch.cuda.is_available()
requires_gpu = pytest.mark.skipif(not HAS_GPU, reason="needs a CUDA GPU; this machine has none (run on the GPU machine)")

# Norm-wise relative error allowed, by precision mode. "tf32" is float32 with TF32 allowed; kernels that do not
# use tensor cores meet the fp32 bound there too.
TOLERANCE = {
    "fp64": 1e-12,
    "fp32": 1e-5,
    "tf32": 2e-3,
    "fp16": 1e-2,
    "bf16": 2e-2,
}
DTYPES = {"fp64": torch.float64, "fp32": torch.float32, "tf32": torch.float32, "fp16": torch.float16,
          "bf16": torch.bfloat16}


def rel_err(out, ref):
    """||out - ref|| / ||ref|| in float64; NaN anywhere gives inf."""
    out, ref = out.double(), ref.double()
    if not torch.isfinite(out).all():
        return float("inf")
    denom = ref.norm().item()
    diff = (out - ref).norm().item()
    return diff / denom if denom > 0 else diff


def make_inputs(N, C, H, W, K, R, S, groups, dtype, device="cuda", channels_last=False, bias=True, seed=None):
    """Fresh random input, weight, bias (never zeros). Values scaled so outputs stay O(1) in half precision."""
    gen = torch.Generator(device=device)
    gen.manual_seed(seed if seed is not None else torch.randint(0, 2**31, ()).item())
    x = torch.randn(N, C, H, W, device=device, generator=gen).to(dtype)
    w = (torch.randn(K, C // groups, R, S, device=device, generator=gen) / max(1, (C // groups * R * S)) ** 0.5).to(dtype)
    b = torch.randn(K, device=device, generator=gen).to(dtype) if bias else None
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
        w = w.contiguous(memory_format=torch.channels_last)
    return x, w, b


def reference(x, w, b, grad_out, **conv_args):
    """F.conv2d and its gradients on float64 copies of the inputs (on the inputs' device)."""
    x64 = x.detach().double().requires_grad_(True)
    w64 = w.detach().double().requires_grad_(True)
    b64 = b.detach().double().requires_grad_(True) if b is not None else None
    y64 = F.conv2d(x64, w64, b64, **conv_args)
    grads = torch.autograd.grad(y64, [t for t in (x64, w64, b64) if t is not None], grad_out.double())
    return y64.detach(), grads
