"""The autograd wiring of conv2d_ext, checked without a GPU: PyTorch's own convolution stands in for our kernels
(conv2d_ext._ops), and gradcheck / gradgradcheck verify that forward, backward-data, backward-weight and the bias
gradient call each other with the right arguments, to every order. The kernels themselves are tested on the GPU."""
import importlib

import pytest
import torch
import torch.nn.functional as F

import conv2d_ext
from conv2d_ext import _args, _ops, heuristics

conv_module = importlib.import_module("conv2d_ext.conv2d")  # the module; conv2d_ext.conv2d is the function


def _pad(x, p):
    """x zero-padded by the Problem's padding (top, bottom, left, right), so the stand-ins take asymmetric padding."""
    top, bottom, left, right = p.padding
    return F.pad(x, (left, right, top, bottom))


def _conv_args(p):
    return p.stride, 0, p.dilation, p.groups  # padding is applied by _pad


def _layout(p):
    return torch.channels_last if p.channels_last else torch.contiguous_format


@pytest.fixture
def pytorch_kernels(monkeypatch):
    """Replaces each kernel entry point by the PyTorch computation it must match, recording which ran."""
    calls = []

    def forward(kernel, x, w, bias, p):
        calls.append(("forward", kernel))
        assert tuple(x.shape) == p.input_size and tuple(w.shape) == p.weight_size
        y = F.conv2d(_pad(x, p), w, bias, *_conv_args(p)).contiguous(memory_format=_layout(p))
        assert tuple(y.shape[2:]) == p.output_size
        return y

    def backward_data(kernel, dy, w, p):
        calls.append(("backward_data", kernel))
        N, C, H, W = p.input_size
        top, bottom, left, right = p.padding
        dx = torch.nn.grad.conv2d_input((N, C, H + top + bottom, W + left + right), w, dy, *_conv_args(p))
        return dx[:, :, top : top + H, left : left + W].contiguous(memory_format=_layout(p))

    def backward_weight(kernel, dy, x, p):
        calls.append(("backward_weight", kernel))
        return torch.nn.grad.conv2d_weight(_pad(x, p), p.weight_size, dy, *_conv_args(p))

    def backward_bias(dy):
        calls.append(("backward_bias", None))
        return dy.sum((0, 2, 3))

    def backward(data_kernel, weight_kernel, dy, x, w, p):  # the op of both passes: the two stand-ins in its order
        return _ops.backward_data(data_kernel, dy, w, p), _ops.backward_weight(weight_kernel, dy, x, p)

    for name, fn in [("forward", forward), ("backward_data", backward_data), ("backward_weight", backward_weight),
                     ("backward", backward), ("backward_bias", backward_bias)]:
        monkeypatch.setattr(_ops, name, fn)
    return calls


CASES = {
    "plain": ((2, 4, 7, 6), (6, 4, 3, 3), dict(stride=1, padding=1, dilation=1, groups=1)),
    "strided_dilated_grouped": ((2, 4, 9, 8), (6, 2, 3, 2), dict(stride=(2, 1), padding=(0, 2), dilation=(1, 2), groups=2)),
    "depthwise_strided": ((1, 4, 8, 7), (4, 1, 3, 3), dict(stride=2, padding=1, dilation=1, groups=4)),
    "same_even_asymmetric": ((2, 3, 7, 6), (4, 3, 2, 4), dict(stride=1, padding="same", dilation=(1, 2), groups=1)),
}


def ours(x, w, b, args):
    """conv2d_ext's path for CUDA tensors (normalize, select, _run), on whatever device the tensors are."""
    problem = _args.normalize(x, w, b, **args, allow_tf32=False, capability=(9, 0))
    call = conv_module._Call(problem, heuristics.select(problem), unbatched=False)
    return conv_module._run(x, w, b, call)


def inputs(x_shape, w_shape):
    x = torch.randn(*x_shape, dtype=torch.float64, requires_grad=True)
    w = torch.randn(*w_shape, dtype=torch.float64, requires_grad=True)
    b = torch.randn(w_shape[0], dtype=torch.float64, requires_grad=True)
    return x, w, b


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_first_and_second_derivatives(case, pytorch_kernels):
    x_shape, w_shape, args = case
    tensors = inputs(x_shape, w_shape)
    assert torch.autograd.gradcheck(lambda x, w, b: ours(x, w, b, args), tensors)
    assert torch.autograd.gradgradcheck(lambda x, w, b: ours(x, w, b, args), tensors)
    assert {name for name, _ in pytorch_kernels} == {"forward", "backward_data", "backward_weight", "backward_bias"}


@pytest.mark.parametrize("needs", [(True, False, False), (False, True, False), (False, False, True)])
def test_backward_runs_only_the_passes_needed(needs, pytorch_kernels):
    x, w, b = inputs((2, 4, 7, 6), (6, 4, 3, 3))
    for t, need in zip((x, w, b), needs):
        t.requires_grad_(need)
    y = ours(x, w, b, dict(stride=1, padding=1, dilation=1, groups=1))
    pytorch_kernels.clear()
    y.sum().backward()
    expected = {0: "backward_data", 1: "backward_weight", 2: "backward_bias"}[needs.index(True)]
    assert [name for name, _ in pytorch_kernels] == [expected]


def test_both_backward_passes_take_one_op(pytorch_kernels, monkeypatch):
    """Grad_input and grad_weight together come from the op of both passes (one dispatch; its backward-weight may
    overlap the backward-data), with the planned kernels; differentiated again (create_graph), or one of them alone
    (what the inputs' requires_grad asks for), from the single ops."""
    both = []
    patched = _ops.backward

    def backward(data_kernel, weight_kernel, dy, x, w, p):
        both.append((data_kernel, weight_kernel))
        return patched(data_kernel, weight_kernel, dy, x, w, p)

    monkeypatch.setattr(_ops, "backward", backward)
    x, w, b = inputs((2, 4, 7, 6), (6, 4, 3, 3))
    b.requires_grad_(False)
    y = ours(x, w, b, CASES["plain"][2])
    pytorch_kernels.clear()
    torch.autograd.grad(y, (x, w), torch.randn_like(y), retain_graph=True)
    assert both == [("direct", "direct")]
    assert [name for name, _ in pytorch_kernels] == ["backward_data", "backward_weight"]
    both.clear()
    torch.autograd.grad(y, (x, w), torch.randn_like(y), create_graph=True)
    w.requires_grad_(False)
    y = ours(x, w, b, CASES["plain"][2])
    torch.autograd.grad(y, x, torch.randn_like(y))
    assert both == []


def test_no_gradient_needed_calls_the_forward_op_alone(pytorch_kernels):
    """Without a gradient to compute (no input requires one, or grad mode is off) conv2d calls the forward op
    directly, not through the autograd Function."""
    x, w, b = inputs((2, 4, 7, 6), (6, 4, 3, 3))
    for t in (x, w, b):
        t.requires_grad_(False)
    assert ours(x, w, b, CASES["plain"][2]).grad_fn is None
    x.requires_grad_(True)
    with torch.no_grad():
        assert ours(x, w, b, CASES["plain"][2]).grad_fn is None
    assert [name for name, _ in pytorch_kernels] == ["forward", "forward"]
    assert type(ours(x, w, b, CASES["plain"][2]).grad_fn).__name__ == "_ForwardBackward"


def test_each_pass_runs_the_planned_family(pytorch_kernels):
    x, w, b = inputs((2, 4, 7, 6), (6, 4, 3, 3))
    y = ours(x, w, b, dict(stride=1, padding=1, dilation=1, groups=1))
    y.sum().backward()
    assert ("forward", "direct") in pytorch_kernels and ("backward_data", "direct") in pytorch_kernels
    assert ("backward_weight", "direct") in pytorch_kernels
    assert conv2d_ext.conv2d is conv_module.conv2d


def test_nchw_copy_engine_backward_stages_grad_output_once(pytorch_kernels, monkeypatch):
    """When both backward passes of an NCHW call run on copy-engine ("_tma") kernels, grad_output is copied to NHWC
    once and that copy feeds both; not when the backward itself is differentiated (create_graph: the copy op has no
    autograd formula, so the second-order terms must come from the NCHW grad_output), and not for other kernels."""
    staged = []

    def to_channels_last(t):
        staged.append(t.shape)
        return t.contiguous(memory_format=torch.channels_last)

    monkeypatch.setattr(_ops, "to_channels_last", to_channels_last)
    args = dict(stride=1, padding=1, dilation=1, groups=1)
    x, w, b = inputs((2, 4, 7, 6), (6, 4, 3, 3))
    problem = _args.normalize(x, w, b, **args, allow_tf32=False, capability=(9, 0))
    plan = dict(heuristics.select(problem))
    for pass_ in ("backward_data", "backward_weight"):
        plan[pass_] = heuristics.Decision("implicit_gemm:128x128_tma", "implicit_gemm", "stand-in")
    call = conv_module._Call(problem, plan, unbatched=False)

    seen = []
    patched = _ops.backward_data

    def backward_data(kernel, dy, w_, p):
        seen.append(dy.is_contiguous(memory_format=torch.channels_last))
        return patched(kernel, dy, w_, p)

    monkeypatch.setattr(_ops, "backward_data", backward_data)
    y = conv_module._run(x, w, b, call)
    g = torch.randn_like(y)
    grads = torch.autograd.grad(y, (x, w, b), g)
    assert staged == [y.shape] and seen == [True]
    expected = torch.autograd.grad(F.conv2d(x, w, b, **args), (x, w, b), g)
    for got, want in zip(grads, expected):
        torch.testing.assert_close(got, want)

    staged.clear()
    y = conv_module._run(x, w, b, call)
    torch.autograd.grad(y, x, torch.randn_like(y), create_graph=True)
    assert staged == []
    assert torch.autograd.gradcheck(lambda x_, w_, b_: conv_module._run(x_, w_, b_, call), (x, w, b))
    assert torch.autograd.gradgradcheck(lambda x_, w_, b_: conv_module._run(x_, w_, b_, call), (x, w, b))

    staged.clear()
    y = conv_module._run(x, w, b, conv_module._Call(problem, heuristics.select(problem), unbatched=False))
    torch.autograd.grad(y, (x, w), torch.randn_like(y))
    assert staged == []


def test_nchw_pointwise_backward_reads_grad_output_in_place(pytorch_kernels, monkeypatch):
    """A 1x1 NCHW problem the pointwise copy-engine kernels read in place (heuristics.pointwise_in_place: channel
    planes of 16-byte multiples) gets no NHWC copy of grad_output, though both its backward passes run on "_tma"
    kernels; with planes off 16 bytes it does."""
    staged = []
    monkeypatch.setattr(_ops, "to_channels_last", lambda t: staged.append(t.shape) or t.contiguous(
        memory_format=torch.channels_last))
    for hw, copies in (((4, 8), 0), ((3, 5), 1)):  # planes of 32 pixels, 16-byte multiples; of 15, not
        staged.clear()
        x, w, b = inputs((2, 4) + hw, (6, 4, 1, 1))
        problem = _args.normalize(x, w, b, 1, 0, 1, 1, allow_tf32=False, capability=(9, 0))
        assert heuristics.pointwise_in_place(problem) == (copies == 0)
        plan = dict(heuristics.select(problem))
        for pass_ in ("backward_data", "backward_weight"):
            plan[pass_] = heuristics.Decision("implicit_gemm:128x128_tma", "implicit_gemm", "stand-in")
        call = conv_module._Call(problem, plan, unbatched=False)
        y = conv_module._run(x, w, b, call)
        grads = torch.autograd.grad(y, (x, w, b), torch.ones_like(y))
        assert len(staged) == copies
        expected = torch.autograd.grad(F.conv2d(x, w, b), (x, w, b), torch.ones_like(y))
        for got, want in zip(grads, expected):
            torch.testing.assert_close(got, want)
