"""What a PyTorch user relies on beyond the numbers: gradcheck, empty batches, memory formats, streams, devices,
autocast, modules, and that only our kernels run."""
import copy
import importlib

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import conv2d_ext
from helpers import TOLERANCE, make_inputs, precision, reference, rel_err, requires_gpu, skip_if_cpp_errors_crash

pytestmark = requires_gpu


GRADCHECK_CASES = {
    "plain": dict(stride=1, padding=1, dilation=1, groups=1),
    "strided_dilated_grouped": dict(stride=(2, 1), padding=(0, 2), dilation=(1, 2), groups=2),
    "same_even": dict(stride=1, padding="same", dilation=1, groups=1),  # even kernel: asymmetric padding
    "depthwise": dict(stride=2, padding=1, dilation=1, groups=4),
}


def gradcheck_inputs(args):
    g = args["groups"]
    C, K = (4, 4) if g == 4 else (4, 6)
    kernel = (2, 3) if args["padding"] == "same" else (3, 3)
    x = torch.randn(2, C, 7, 6, device="cuda", dtype=torch.float64, requires_grad=True)
    w = torch.randn(K, C // g, *kernel, device="cuda", dtype=torch.float64, requires_grad=True)
    b = torch.randn(K, device="cuda", dtype=torch.float64, requires_grad=True)
    return x, w, b


@pytest.mark.parametrize("args", list(GRADCHECK_CASES.values()), ids=list(GRADCHECK_CASES))
def test_gradcheck_float64(args):
    inputs = gradcheck_inputs(args)
    assert torch.autograd.gradcheck(lambda x, w, b: conv2d_ext.conv2d(x, w, b, **args), inputs)


@pytest.mark.parametrize("args", list(GRADCHECK_CASES.values()), ids=list(GRADCHECK_CASES))
def test_gradgradcheck_float64(args):
    """Second derivatives (e.g. gradient penalties) also run on our kernels."""
    inputs = gradcheck_inputs(args)
    assert torch.autograd.gradgradcheck(lambda x, w, b: conv2d_ext.conv2d(x, w, b, **args), inputs)


@pytest.mark.parametrize("channels_last", [False, True])
def test_custom_ops_pass_opcheck(channels_last):
    """Schema, fake (meta) implementation and AOT dispatch of each pass's torch op."""
    x, w, _ = make_inputs(2, 8, 10, 9, 6, 3, 3, 2, torch.float32, channels_last=channels_last)
    b = torch.randn(6, device="cuda")
    # stride, padding (top, left; bottom 2 and right 1 implied by the output size 6x6), dilation, groups
    geo = ([2, 1], [1, 0], [1, 2], 2)
    ops = torch.ops.conv2d_ext
    y = ops.forward.default("direct", x, w, b, *geo, [6, 6], False, channels_last)
    ref = F.conv2d(F.pad(x, (0, 1, 1, 2)), w, b, stride=(2, 1), dilation=(1, 2), groups=2)
    assert rel_err(y, ref) < 1e-5
    torch.library.opcheck(ops.forward.default, ("direct", x, w, b, *geo, [6, 6], False, channels_last))
    torch.library.opcheck(ops.backward_data.default, ("direct", y, w, list(x.shape), *geo, False, channels_last))
    torch.library.opcheck(ops.backward_weight.default, ("direct", y, x, list(w.shape), *geo, False, channels_last))
    torch.library.opcheck(ops.backward.default, ("direct", "direct", y, x, w, *geo, False, channels_last))
    torch.library.opcheck(ops.backward_bias.default, (y,))


def test_ops_take_the_layout_they_are_given(poison):
    """The op makes its inputs dense in the layout passed (channels_last) and returns its result in it, whatever
    the inputs' own strides."""
    x, w, b = make_inputs(2, 4, 7, 7, 6, 3, 3, 1, torch.float64)
    ops = torch.ops.conv2d_ext
    ref = F.conv2d(x, w, b, padding=1)
    for channels_last in (False, True):
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        y = ops.forward.default("direct", x.transpose(2, 3).contiguous().transpose(2, 3), w, b, [1, 1], [1, 1],
                                [1, 1], 1, [7, 7], False, channels_last)
        assert y.is_contiguous(memory_format=fmt) and rel_err(y, ref) < 1e-12
        dx = ops.backward_data.default("direct", ref, w, [2, 4, 7, 7], [1, 1], [1, 1], [1, 1], 1, False, channels_last)
        assert dx.is_contiguous(memory_format=fmt)
        dw = ops.backward_weight.default("direct", ref, x, [6, 4, 3, 3], [1, 1], [1, 1], [1, 1], 1, False,
                                         channels_last)
        assert dw.is_contiguous(memory_format=fmt)


def test_ops_reject_unknown_kernels_and_inconsistent_sizes():
    """Called directly, an op checks what memory safety needs and names the kernels that exist."""
    skip_if_cpp_errors_crash()
    x, w, b = make_inputs(2, 4, 7, 7, 6, 3, 3, 1, torch.float32)
    ops = torch.ops.conv2d_ext
    with pytest.raises(RuntimeError, match=r"no forward kernel named 'direct:fast' \(registered: direct"):
        ops.forward.default("direct:fast", x, w, b, [1, 1], [1, 1], [1, 1], 1, [7, 7], False, False)
    with pytest.raises(RuntimeError, match="output size 5x7 does not fit"):
        ops.forward.default("direct", x, w, b, [1, 1], [1, 1], [1, 1], 1, [5, 7], False, False)
    with pytest.raises(RuntimeError, match="do not agree"):
        ops.forward.default("direct", x, w, b, [1, 1], [1, 1], [1, 1], 2, [7, 7], False, False)
    with pytest.raises(RuntimeError, match="bias must be a 1-D tensor of 6 elements"):
        ops.forward.default("direct", x, w, b[:5], [1, 1], [1, 1], [1, 1], 1, [7, 7], False, False)
    with pytest.raises(RuntimeError, match="does not match batch"):
        ops.backward_data.default("direct", torch.randn(1, 6, 7, 7, device="cuda"), w, [2, 4, 7, 7], [1, 1], [1, 1],
                                  [1, 1], 1, False, False)


def test_poison_fills_results_only(poison):
    """With poison on, results a kernel writes are still correct (poison is overwritten), inputs untouched."""
    x, w, b = make_inputs(2, 4, 7, 7, 6, 3, 3, 1, torch.float64)
    before = x.clone()
    y = torch.ops.conv2d_ext.forward.default("direct", x, w, b, [1, 1], [1, 1], [1, 1], 1, [7, 7], False, False)
    assert torch.equal(x, before) and rel_err(y, F.conv2d(x, w, b, padding=1)) < 1e-12


@pytest.mark.parametrize("fullgraph", [False, True])
def test_torch_compile_of_converted_model(fullgraph):
    """torch.compile traces our ops (custom ops inside autograd Functions) and gets the same values."""
    model = nn.Sequential(conv2d_ext.Conv2d(4, 8, 3, padding=1), nn.ReLU(), conv2d_ext.Conv2d(8, 4, 3, stride=2))
    model = model.cuda().double()
    torch._dynamo.reset()
    compiled = torch.compile(model, backend="aot_eager", fullgraph=fullgraph)
    x = torch.randn(2, 4, 12, 12, device="cuda", dtype=torch.float64, requires_grad=True)
    y, y_eager = compiled(x), model(x)
    assert rel_err(y, y_eager) < 1e-12
    (gx,) = torch.autograd.grad(y.square().sum(), x)
    (gx_eager,) = torch.autograd.grad(y_eager.square().sum(), x)
    assert rel_err(gx, gx_eager) < 1e-12


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_empty_batch(dtype, poison):
    x, w, b = make_inputs(0, 4, 8, 8, 6, 3, 3, 1, dtype)
    x.requires_grad_(True), w.requires_grad_(True), b.requires_grad_(True)
    y = conv2d_ext.conv2d(x, w, b, padding=1)
    assert y.shape == (0, 6, 8, 8)
    gx, gw, gb = torch.autograd.grad(y, (x, w, b), torch.randn_like(y))
    assert gx.shape == x.shape
    assert torch.equal(gw, torch.zeros_like(w)) and torch.equal(gb, torch.zeros_like(b))  # written, not poison


def _input_channels(kernel, channels):
    """Input channels of the 3x3 convolution a test forces `kernel` on: `channels`, or 4 for implicit_gemm:im2col
    (reductions of 160 at most)."""
    if kernel == "implicit_gemm:im2col":
        return 4
    return channels


@pytest.mark.parametrize("kernel", [k for k in conv2d_ext.kernels()["forward"] if k.startswith("implicit_gemm")])
def test_empty_batch_on_each_forward_kernel(kernel, poison):
    """N = 0 launches nothing (a grid of zero CTAs is a launch error) and returns the empty output."""
    # channels-last, 64 channels: a shape every configuration can implement (128x128_k128 takes only such; the FFMA
    # configuration, exact float32)
    channels = _input_channels(kernel, 64)
    with precision("fp32" if kernel.endswith("ffma") else "fp16") as dtype:
        x, w, _ = make_inputs(0, channels, 8, 8, 32, 3, 3, 1, dtype, channels_last=True)
        y = conv2d_ext.conv2d(x, w, padding=1, variant={"forward": kernel})
    assert y.shape == (0, 32, 8, 8)


@pytest.mark.parametrize("kernel", [k for k in conv2d_ext.kernels()["backward_weight"] if k.startswith("implicit_gemm")])
def test_empty_batch_on_each_backward_weight_kernel(kernel, poison):
    """N = 0: the weight gradient is an empty sum, written as zeros (not left as poison)."""
    channels = _input_channels(kernel, 32)
    with precision("fp32" if kernel.endswith("ffma") else "fp16") as dtype:
        x, w, _ = make_inputs(0, channels, 8, 8, 32, 3, 3, 1, dtype)
        w.requires_grad_(True)
        y = conv2d_ext.conv2d(x, w, padding=1, variant={"backward_weight": kernel})
        (gw,) = torch.autograd.grad(y, w, torch.randn_like(y))
    assert torch.equal(gw, torch.zeros_like(w))


def test_empty_batch_on_im2col_backward_data(poison):
    """N = 0 on implicit_gemm:im2col's backward-data launches nothing and returns the empty grad_input."""
    if torch.cuda.get_device_capability() < (8, 0):
        pytest.skip("mma.sync tensor cores need compute capability 8.0")
    with precision("fp16") as dtype:
        x, w, _ = make_inputs(0, 3, 8, 8, 16, 3, 3, 1, dtype)
        x.requires_grad_(True)
        y = conv2d_ext.conv2d(x, w, padding=1, variant={"backward_data": "implicit_gemm:im2col"})
        (gx,) = torch.autograd.grad(y, x, torch.randn_like(y))
    assert gx.shape == x.shape


@pytest.mark.parametrize("kernel", ["auto"] + [k for k in conv2d_ext.kernels()["backward_weight"]
                                                if k.startswith("implicit_gemm")])
@pytest.mark.parametrize("mode", ["tf32", "bf16", "fp32"])
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
def test_weight_gradient_is_bit_identical_across_runs(kernel, mode, channels_last, poison):
    """Ten backward passes on the same inputs give bit-identical weight gradients (split reductions in a fixed
    order, no atomics), with torch.use_deterministic_algorithms(True) on; and they are right."""
    if kernel != "auto" and (mode == "fp32") != kernel.endswith("ffma"):
        pytest.skip("tensor-core configurations take tf32/bf16, the FFMA configuration exact fp32")
    with precision(mode) as dtype:
        x, w, _ = make_inputs(8, 32, 48, 40, 64, 3, 3, 1, dtype, channels_last=channels_last)  # several splits
        w.requires_grad_(True)
        gy = torch.randn(8, 64, 48, 40, device="cuda", dtype=dtype)
        variant = {"backward_weight": kernel}
        was = torch.are_deterministic_algorithms_enabled()
        torch.use_deterministic_algorithms(True)
        try:
            grads = [torch.autograd.grad(conv2d_ext.conv2d(x, w, padding=1, variant=variant), w, gy)[0]
                     for _ in range(10)]
        except conv2d_ext.Conv2dError as e:  # e.g. the copy-engine backward-weight takes fp16/bf16 only
            if kernel == "auto" or "cannot run" not in str(e):
                raise
            pytest.skip(str(e))
        finally:
            torch.use_deterministic_algorithms(was)
        assert all(torch.equal(g, grads[0]) for g in grads)
        _, (_, ref) = reference(x, w.detach(), None, gy, padding=1)
        assert rel_err(grads[0], ref) < TOLERANCE[mode]


@pytest.mark.parametrize("kernel", [k for k in conv2d_ext.kernels()["forward"] if k.startswith("implicit_gemm")])
def test_implicit_gemm_on_the_second_device(kernel, poison):
    """Each implicit-GEMM configuration opts in to its shared memory on every device it runs on, not only the first."""
    if torch.cuda.device_count() < 2:
        pytest.skip("needs a second GPU (cuda:1)")
    channels = _input_channels(kernel, 32)
    for device in ("cuda:0", "cuda:1"):
        x, w, b = make_inputs(2, channels, 12, 12, 32, 3, 3, 1, torch.float16, device=device, channels_last=True)
        y = conv2d_ext.conv2d(x, w, b, padding=1, variant={"forward": kernel})
        ref, _ = reference(x, w, b, torch.ones_like(y), padding=1)
        assert rel_err(y, ref) < 1e-2, device


def test_unbatched_input(poison):
    """A 3-D input runs as a batch of one. Exact fp32 (TF32 allowed, PyTorch's default, this first layer runs on
    implicit_gemm:im2col's tensor cores, whose error is above the fp32 bound)."""
    x, w, b = make_inputs(1, 3, 9, 9, 5, 3, 3, 1, torch.float32)
    with precision("fp32"):
        y = conv2d_ext.conv2d(x[0], w, b, padding=1)
    ref, _ = reference(x, w, b, torch.ones(1, 5, 9, 9, device="cuda"), padding=1)
    assert y.shape == (5, 9, 9) and rel_err(y, ref[0]) < 1e-5


@pytest.mark.parametrize("mode", ["fp32", "tf32"])
def test_non_contiguous_inputs(mode, poison):
    """Strided and transposed views run as their values (exact fp32, and TF32 where allowed: the grouped case runs on
    tensor cores then)."""
    with precision(mode):
        base, w, b = make_inputs(2, 8, 12, 20, 6, 3, 3, 2, torch.float32)
        x = base[:, :, :, ::2].transpose(2, 3)  # strided and transposed view
        w = w.transpose(2, 3)
        y = conv2d_ext.conv2d(x, w, b, padding=1, groups=2)
        ref, _ = reference(x, w, b, torch.ones_like(y), padding=1, groups=2)
        assert rel_err(y, ref) < TOLERANCE[mode]


@pytest.mark.parametrize("x_cl,w_cl", [(False, False), (True, False), (False, True), (True, True)])
def test_output_memory_format_follows_pytorch(x_cl, w_cl):
    x, w, b = make_inputs(2, 8, 10, 10, 16, 3, 3, 1, torch.float32)
    if x_cl:
        x = x.contiguous(memory_format=torch.channels_last)
    if w_cl:
        w = w.contiguous(memory_format=torch.channels_last)
    ours, theirs = conv2d_ext.conv2d(x, w, b), F.conv2d(x, w, b)
    for fmt in (torch.contiguous_format, torch.channels_last):
        assert ours.is_contiguous(memory_format=fmt) == theirs.is_contiguous(memory_format=fmt)
    assert rel_err(ours, theirs.double()) < 1e-2  # cuDNN may use TF32 here


def test_runs_on_current_stream(poison):
    """The kernel must wait for work queued before it on the current (non-default) stream."""
    x, w, b = make_inputs(4, 16, 32, 32, 16, 3, 3, 1, torch.float32)
    fresh = torch.randn_like(x)
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        torch.cuda._sleep(100_000_000)  # keeps the stream busy for tens of milliseconds
        x.copy_(fresh)
        y = conv2d_ext.conv2d(x, w, b, padding=1)
    stream.synchronize()
    ref, _ = reference(fresh, w, b, torch.ones_like(y), padding=1)
    assert rel_err(y, ref) < TOLERANCE["tf32"]  # the heuristics may pick a TF32 kernel; a stale input errs by ~1


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs a second GPU (cuda:1)")
def test_second_device_while_cuda0_is_current(poison):
    torch.cuda.set_device(0)
    x, w, b = make_inputs(2, 8, 12, 12, 8, 3, 3, 1, torch.float32, device="cuda:1")
    for t in (x, w, b):
        t.requires_grad_(True)
    y = conv2d_ext.conv2d(x, w, b, padding=1)
    gy = torch.randn_like(y)
    grads = torch.autograd.grad(y, (x, w, b), gy)
    ref_y, ref_grads = reference(x, w, b, gy, padding=1)
    assert y.device == torch.device("cuda:1")
    for out, ref in zip((y,) + grads, (ref_y,) + ref_grads):
        assert rel_err(out, ref) < 1e-5


def test_profiler_shows_only_our_kernels():
    x, w, b = make_inputs(2, 16, 20, 20, 32, 3, 3, 1, torch.float32)
    for t in (x, w, b):
        t.requires_grad_(True)
    gy = torch.randn(2, 32, 20, 20, device="cuda")
    torch.cuda.synchronize()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        y = conv2d_ext.conv2d(x, w, b, padding=1)
        y.backward(gy)
        torch.cuda.synchronize()
    kernels = [e.name for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    kernels = [k for k in kernels if not k.startswith(("Memcpy", "Memset"))]
    assert len(kernels) >= 4, kernels  # forward, backward-data, backward-weight, bias
    assert all("conv2d_ext" in k for k in kernels), kernels


def test_autocast_runs_in_half_precision(poison):
    x, w, b = make_inputs(2, 8, 12, 12, 8, 3, 3, 1, torch.float32)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        y = conv2d_ext.conv2d(x, w, b, padding=1)
        assert y.dtype == F.conv2d(x, w, b, padding=1).dtype == torch.bfloat16
    ref, _ = reference(x.bfloat16(), w.bfloat16(), b.bfloat16(), torch.ones_like(y), padding=1)
    assert rel_err(y, ref) < 2e-2


@pytest.mark.parametrize("needs", [(True, False, False), (False, True, False), (False, False, True), (True, True, False)])
def test_only_requested_gradients(needs, poison):
    x, w, b = make_inputs(2, 6, 9, 9, 4, 3, 3, 1, torch.float64)
    leaves = []
    for t, need in zip((x, w, b), needs):
        t.requires_grad_(need)
        if need:
            leaves.append(t)
    y = conv2d_ext.conv2d(x, w, b, padding=1)
    gy = torch.randn_like(y)
    grads = torch.autograd.grad(y, leaves, gy)
    _, ref_grads = reference(x, w, b, gy, padding=1)
    ref_by_need = [g for g, need in zip(ref_grads, needs) if need]
    for out, ref in zip(grads, ref_by_need):
        assert rel_err(out, ref) < 1e-12


@pytest.mark.parametrize("padding_mode", ["zeros", "reflect", "replicate", "circular"])
def test_module_matches_nn_conv2d(padding_mode, poison):
    torch.manual_seed(0)
    ref = nn.Conv2d(6, 8, 3, stride=2, padding=1, groups=2, padding_mode=padding_mode).cuda().double()
    ours = conv2d_ext.Conv2d(6, 8, 3, stride=2, padding=1, groups=2, padding_mode=padding_mode).cuda().double()
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(3, 6, 11, 13, device="cuda", dtype=torch.float64, requires_grad=True)
    y_ref, y = ref(x), ours(x)
    assert rel_err(y, y_ref) < 1e-12
    gy = torch.randn_like(y)
    g_ref = torch.autograd.grad(y_ref, (x, ref.weight, ref.bias), gy)
    g = torch.autograd.grad(y, (x, ours.weight, ours.bias), gy)
    for a, e in zip(g, g_ref):
        assert rel_err(a, e) < 1e-12


def test_converted_resnet_trains_like_cudnn():
    torchvision = pytest.importorskip("torchvision", reason="torchvision is not installed")
    torch.manual_seed(0)
    reference_model = torchvision.models.resnet18(num_classes=10).cuda().double()
    model = conv2d_ext.convert(copy.deepcopy(reference_model))
    assert all(type(m) is not nn.Conv2d for m in model.modules())
    x = torch.randn(4, 3, 64, 64, device="cuda", dtype=torch.float64)
    target = torch.randint(0, 10, (4,), device="cuda")
    losses = {}
    for name, m in (("cudnn", reference_model), ("ours", model)):
        opt = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
        losses[name] = []
        for _ in range(3):
            opt.zero_grad()
            loss = F.cross_entropy(m(x), target)
            loss.backward()
            opt.step()
            losses[name].append(loss.item())
    assert losses["ours"] == pytest.approx(losses["cudnn"], rel=1e-9)
    for p_ours, p_ref in zip(model.parameters(), reference_model.parameters()):
        assert rel_err(p_ours, p_ref) < 1e-9


def test_explain_and_forced_variants():
    x, w, b = make_inputs(2, 8, 12, 12, 8, 3, 3, 1, torch.float16)
    lines = conv2d_ext.explain(x, w, b, padding=1).splitlines()
    assert [line.split(":")[0] for line in lines] == ["forward", "backward_data", "backward_weight"]
    kernels = conv2d_ext.kernels()
    for line, pass_ in zip(lines, kernels):
        assert line.split(": ", 1)[1].split(" (")[0] in kernels[pass_], line
    for family in [f for f in conv2d_ext.heuristics.FAMILIES if f not in conv2d_ext.heuristics.AVAILABLE]:
        with pytest.raises(ValueError, match="cannot run forward .*not built"):
            conv2d_ext.conv2d(x, w, b, padding=1, variant=family)
        with pytest.raises(ValueError, match="cannot run backward_weight .*not built"):
            conv2d_ext.conv2d(x, w, b, padding=1, variant={"backward_weight": family})
    with pytest.raises(conv2d_ext.Conv2dError, match="unknown family or kernel 'direct:fast'"):
        conv2d_ext.conv2d(x, w, b, padding=1, variant="direct:fast")
    for kernel in kernels["forward"]:  # every registered forward kernel can be forced by name, or says why not
        try:
            forced = conv2d_ext.explain(x, w, b, padding=1, variant={"forward": kernel}).splitlines()[0]
        except conv2d_ext.Conv2dError as error:
            assert f"variant '{kernel}' cannot run forward of this convolution: " in str(error)
        else:
            assert forced == f"forward: {kernel} (forced by variant)"


def test_repeated_calls_reuse_the_plan_and_stay_correct(poison):
    """The second identical call hits the plan cache and gives the same (deterministic) result; a call differing
    in stride is planned anew and is right too."""
    conv_module = importlib.import_module("conv2d_ext.conv2d")
    x, w, b = make_inputs(2, 8, 12, 12, 8, 3, 3, 1, torch.float32)
    conv_module._CALLS.clear()
    y1 = conv2d_ext.conv2d(x, w, b, padding=1)
    y2 = conv2d_ext.conv2d(x, w, b, padding=1)
    assert len(conv_module._CALLS) == 1 and torch.equal(y1, y2)
    y3 = conv2d_ext.conv2d(x, w, b, padding=1, stride=2)
    assert len(conv_module._CALLS) == 2
    ref, _ = reference(x, w, b, torch.ones_like(y3), padding=1, stride=2)
    assert rel_err(y3, ref) < 1e-5


@pytest.mark.parametrize(
    "make_bad, match",
    [
        (lambda x, w: (x.double(), w), "dtype"),
        (lambda x, w: (x, w.cpu()), "weight is on"),
        (lambda x, w: (x[:, :5], w), "input channels"),
        (lambda x, w: (x, w[:, :, :1, :1].expand(8, 8, 20, 20)), "output size"),
    ],
    ids=["dtype_mismatch", "device_mismatch", "channels", "empty_output"],
)
def test_bad_input_raises_before_any_kernel(make_bad, match):
    x, w, _ = make_inputs(2, 8, 12, 12, 8, 3, 3, 1, torch.float32)
    x, w = make_bad(x, w)
    torch.cuda.synchronize()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        with pytest.raises((ValueError, RuntimeError), match=match):
            conv2d_ext.conv2d(x, w)
        torch.cuda.synchronize()
    assert not [e.name for e in prof.events() if "conv2d_ext" in e.name]


@pytest.mark.large
def test_more_than_2_31_elements(poison):
    """Output and grad_output of 2.3e9 elements (fp16): indices past 2^31 must be right."""
    x = torch.randn(1, 1, 6000, 6000, device="cuda", dtype=torch.float16, requires_grad=True)
    w = torch.randn(64, 1, 1, 1, device="cuda", dtype=torch.float16, requires_grad=True)
    y = conv2d_ext.conv2d(x, w)
    assert y.numel() > 2**31 and not torch.isnan(y).any()
    tail = slice(60, 64)  # channels whose elements all lie past 2^31
    ref_tail = F.conv2d(x.detach().double(), w.detach()[tail].double())
    assert rel_err(y[:, tail], ref_tail) < 1e-2
    gy = torch.randn_like(y)
    gx, gw = torch.autograd.grad(y, (x, w), gy)
    ref_gx = torch.zeros_like(x, dtype=torch.float64)
    for k in range(64):  # channel by channel, to keep the float64 reference small
        ref_gx += gy[:, k : k + 1].double() * w[k].item()
    assert rel_err(gx, ref_gx) < 1e-2
    ref_gw_tail = (gy[:, tail].double() * x.detach().double()).sum((0, 2, 3)).view(4, 1, 1, 1)
    assert rel_err(gw[tail], ref_gw_tail) < 1e-2


@pytest.mark.large
def test_input_of_more_than_2_31_elements(poison):
    """Input and grad_input of 2.3e9 elements (fp16), read and written past 2^31 by all three passes."""
    x = torch.randn(1, 64, 6000, 6000, device="cuda", dtype=torch.float16, requires_grad=True)
    w = torch.randn(1, 64, 1, 1, device="cuda", dtype=torch.float16, requires_grad=True)
    y = conv2d_ext.conv2d(x, w)
    ref_y = torch.zeros(1, 1, 6000, 6000, device="cuda", dtype=torch.float64)
    for c in range(64):  # channel by channel, to keep the float64 reference small
        ref_y += x.detach()[:, c : c + 1].double() * w[0, c].item()
    assert rel_err(y, ref_y) < 1e-2
    gy = torch.randn_like(y)
    gx, gw = torch.autograd.grad(y, (x, w), gy)
    assert not torch.isnan(gx).any()
    tail = slice(60, 64)  # channels whose elements all lie past 2^31
    ref_gx_tail = gy.double() * w.detach()[0, tail].double().view(1, 4, 1, 1)
    assert rel_err(gx[:, tail], ref_gx_tail) < 1e-2
    ref_gw_tail = (gy.double() * x.detach()[:, tail].double()).sum((0, 2, 3)).view(1, 4, 1, 1)
    assert rel_err(gw[:, tail], ref_gw_tail) < 1e-2


@pytest.mark.large
def test_strided_backward_data_past_2_31_elements(poison):
    """Strided backward-data (1x1, stride 2) on the implicit GEMM into a grad_input of 2.3e9 elements (fp16): the
    strided phases' per-row grad_input offsets are 64-bit, and the three phases no tap reaches are written as zeros."""
    x = torch.randn(1, 64, 6000, 6000, device="cuda", dtype=torch.float16, requires_grad=True)
    w = torch.randn(16, 64, 1, 1, device="cuda", dtype=torch.float16)
    y = conv2d_ext.conv2d(x, w, stride=2, variant={"backward_data": "implicit_gemm"})
    gy = torch.randn_like(y)
    (gx,) = torch.autograd.grad(y, x, gy)
    tail = slice(60, 64)  # channels whose elements all lie past 2^31
    ref = torch.einsum("nkpq,kc->ncpq", gy.double(), w[:, tail, 0, 0].double())
    assert rel_err(gx[:, tail, ::2, ::2], ref) < 1e-2
    assert not gx[:, tail, 1::2].any() and not gx[:, tail, :, 1::2].any()  # zeros, not NaN poison


@pytest.mark.large
@pytest.mark.parametrize("layout,kernel", [("nchw", "tiled:depthwise"), ("nhwc", "tiled:depthwise"),
                                          ("nchw", "tiled:depthwise_rows")])
def test_tiled_depthwise_past_2_31_elements(layout, kernel, poison):
    """Depthwise 3x3 on 64 channels of 6000 x 6000 (fp16, 2.3e9 elements per tensor) on tiled:depthwise, all three
    passes (tiled:depthwise_rows: forward and backward-data): channels 60..63 (past 2^31 in NCHW; in NHWC they run
    through the whole tensor) against float64."""
    fmt = torch.channels_last if layout == "nhwc" else torch.contiguous_format
    x = torch.randn(1, 64, 6000, 6000, device="cuda", dtype=torch.float16).to(memory_format=fmt).requires_grad_(True)
    w = torch.randn(64, 1, 3, 3, device="cuda", dtype=torch.float16, requires_grad=True)
    variant = {"forward": kernel, "backward_data": kernel, "backward_weight": "tiled:depthwise"}
    y = conv2d_ext.conv2d(x, w, padding=1, groups=64, variant=variant)
    gy = torch.randn_like(y)
    gx, gw = torch.autograd.grad(y, (x, w), gy)
    tail = slice(60, 64)
    x64 = x.detach()[:, tail].double().requires_grad_(True)
    w64 = w.detach()[tail].double().requires_grad_(True)
    ref_y = F.conv2d(x64, w64, padding=1, groups=4)
    ref_gx, ref_gw = torch.autograd.grad(ref_y, (x64, w64), gy[:, tail].double())
    assert rel_err(y[:, tail], ref_y) < 1e-2
    assert rel_err(gx[:, tail], ref_gx) < 1e-2
    assert rel_err(gw[tail], ref_gw) < 1e-2
