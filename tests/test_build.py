"""The compiled module conv2d_ext._C (the torch ops, the kernel registry, the poison switch) and the source
distribution. No GPU needed."""
import glob
import os
import subprocess
import sys
import tarfile

import pytest
import torch

import conv2d_ext
from conv2d_ext import _C, heuristics
from helpers import skip_if_cpp_errors_crash

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OPS = ("forward", "backward_data", "backward_weight", "backward_bias")


@pytest.mark.parametrize("name", OPS)
def test_each_pass_is_a_torch_op(name):
    """Each pass is a torch op registered in C++ (torch.ops.conv2d_ext.<pass>) with a fake implementation for
    torch.compile."""
    op = getattr(torch.ops.conv2d_ext, name).default
    assert isinstance(op, torch._ops.OpOverload)
    assert torch._C._dispatch_has_kernel_for_dispatch_key(op.name(), "CUDA")
    assert torch._C._dispatch_has_kernel_for_dispatch_key(op.name(), "Meta")  # what register_fake installs


def test_to_channels_last_is_a_torch_op():
    """The NHWC copy the NCHW copy-engine backward makes of grad_output is a torch op too (CUDA, and a fake)."""
    op = torch.ops.conv2d_ext.to_channels_last.default
    assert torch._C._dispatch_has_kernel_for_dispatch_key(op.name(), "CUDA")
    assert torch._C._dispatch_has_kernel_for_dispatch_key(op.name(), "Meta")
    out = op(torch.empty(2, 8, 3, 5, device="meta"))
    assert out.shape == (2, 8, 3, 5) and out.is_contiguous(memory_format=torch.channels_last)


def test_old_pybind_entry_points_are_gone():
    """The passes are reached through the torch ops only; the module keeps the registry and the poison switch."""
    for name in ("forward_direct", "backward_data_direct", "backward_weight_direct", "backward_bias", "FAMILIES"):
        assert not hasattr(_C, name), name
    for name in ("kernels", "can_implement", "set_poison", "poison"):
        assert callable(getattr(_C, name)), name


def test_registry_lists_direct_for_every_pass():
    """_C.kernels() lists (pass, name, family, config) tuples; every pass has the direct kernel, and every name is
    'family' or 'family:config' with a family the project knows."""
    kernels = _C.kernels()
    assert ("forward", "direct", "direct", "") in kernels
    assert ("backward_data", "direct", "direct", "") in kernels
    assert ("backward_weight", "direct", "direct", "") in kernels
    for pass_, name, family, config in kernels:
        assert pass_ in heuristics.PASSES
        assert family in heuristics.FAMILIES
        assert name == (f"{family}:{config}" if config else family)
    assert len(set((k[0], k[1]) for k in kernels)) == len(kernels)  # a name once per pass


def test_compiled_families_match_the_heuristics():
    """heuristics.AVAILABLE and conv2d_ext.kernels() come from the registry."""
    kernels = _C.kernels()
    assert heuristics.AVAILABLE == tuple(dict.fromkeys(k[2] for k in kernels))
    assert "direct" in heuristics.AVAILABLE and set(heuristics.AVAILABLE) <= set(heuristics.FAMILIES)
    assert conv2d_ext.kernels() == {p: [k[1] for k in kernels if k[0] == p] for p in heuristics.PASSES}


# sizes N, C, H, W, K, R, S, P, Q of a 3x3 convolution, 'same' padding
SIZES = [2, 8, 10, 10, 16, 3, 3, 10, 10]


@pytest.mark.parametrize("pass_", heuristics.PASSES)
@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16"])
@pytest.mark.parametrize("channels_last", [False, True])
def test_can_implement_runs_without_a_gpu(pass_, dtype, channels_last):
    """_C.can_implement is host code: the direct kernels run everything ('' is 'can run')."""
    assert _C.can_implement(pass_, "direct", SIZES, [1, 1], [1, 1], [1, 1], 1, dtype, channels_last, True, 80) == ""
    assert _C.can_implement(pass_, "direct", [1, 4, 5, 5, 4, 3, 3, 3, 2], [1, 2], [0, 0], [1, 1], 4, dtype,
                            channels_last, False, 90) == ""


def test_can_implement_rejects_unknown_kernels_and_bad_problems():
    """An unknown kernel name, pass or dtype, or sizes that do not agree, raise, naming what exists."""
    skip_if_cpp_errors_crash()
    with pytest.raises(RuntimeError, match=r"no forward kernel named 'direct:x' \(registered: direct"):
        _C.can_implement("forward", "direct:x", SIZES, [1, 1], [1, 1], [1, 1], 1, "float32", False, True, 90)
    with pytest.raises(RuntimeError, match="unknown pass 'backward'"):
        _C.can_implement("backward", "direct", SIZES, [1, 1], [1, 1], [1, 1], 1, "float32", False, True, 90)
    with pytest.raises(RuntimeError, match="unknown dtype 'int8'"):
        _C.can_implement("forward", "direct", SIZES, [1, 1], [1, 1], [1, 1], 1, "int8", False, True, 90)
    with pytest.raises(RuntimeError, match="output size 8x10 does not fit"):
        _C.can_implement("forward", "direct", SIZES[:7] + [8, 10], [1, 1], [1, 1], [1, 1], 1, "float32", False,
                         True, 90)
    with pytest.raises(RuntimeError, match="do not agree"):
        _C.can_implement("forward", "direct", SIZES, [1, 1], [1, 1], [1, 1], 3, "float32", False, True, 90)


def test_poison_switch():
    """set_poison turns NaN-filling of results on and off; poison() reads it."""
    before = _C.poison()
    try:
        _C.set_poison(True)
        assert _C.poison() is True
        _C.set_poison(False)
        assert _C.poison() is False
    finally:
        _C.set_poison(before)


def test_poison_is_read_from_the_environment_at_load():
    """CONV2D_EXT_POISON=1 at import turns poison on; unset leaves it off."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    code = "import conv2d_ext; print(conv2d_ext._C.poison())"
    for value, expected in (("1", "True"), ("0", "False")):
        result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=dict(env, CONV2D_EXT_POISON=value),
                                capture_output=True, text=True, timeout=120)
        assert result.stdout.strip() == expected, result.stderr


def test_the_package_loads_the_extension_it_was_built_with():
    """conv2d_ext._C is the compiled module inside the package directory."""
    assert conv2d_ext._C is _C
    assert os.path.dirname(os.path.abspath(_C.__file__)) == os.path.dirname(os.path.abspath(conv2d_ext.__file__))
    assert _C.__file__.endswith(".so")


def cpu_call(name):
    """Arguments of a valid call of each op (3x3 convolution, N=1, C=2, 5x5 -> K=3, 3x3), on the CPU."""
    x, w, y = torch.randn(1, 2, 5, 5), torch.randn(3, 2, 3, 3), torch.randn(1, 3, 3, 3)
    geometry = ([1, 1], [0, 0], [1, 1], 1, True, False)
    return {
        "forward": ("direct", x, w, None, [1, 1], [0, 0], [1, 1], 1, [3, 3], True, False),
        "forward_with_bias": ("direct", x, w, torch.randn(3), [1, 1], [0, 0], [1, 1], 1, [3, 3], True, False),
        "backward_data": ("direct", y, w, [1, 2, 5, 5]) + geometry,
        "backward_weight": ("direct", y, x, [3, 2, 3, 3]) + geometry,
        "backward_bias": (y,),
        "to_channels_last": (x,),
    }[name]


@pytest.mark.parametrize("name", ["forward", "forward_with_bias", "backward_data", "backward_weight", "backward_bias",
                                  "to_channels_last"])
def test_ops_reject_cpu_tensors(name):
    """Every op refuses CPU tensors with a RuntimeError that mentions CUDA, writing nothing."""
    args = cpu_call(name)
    tensors = [a for a in args if isinstance(a, torch.Tensor)]
    before = [t.clone() for t in tensors]
    op = getattr(torch.ops.conv2d_ext, name.replace("_with_bias", "")).default
    with pytest.raises(RuntimeError, match="CUDA"):
        op(*args)
    for t, b in zip(tensors, before):
        assert torch.equal(t, b)


@pytest.fixture(scope="module")
def sdist(tmp_path_factory):
    """Names in the sdist built by `python setup.py sdist`, relative to its top folder (egg-info and dist kept out
    of the work tree)."""
    out = tmp_path_factory.mktemp("sdist")
    result = subprocess.run(
        [sys.executable, "setup.py", "-q", "egg_info", "--egg-base", str(out), "sdist", "--dist-dir", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    archives = glob.glob(str(out / "*.tar.gz"))
    assert len(archives) == 1, archives
    with tarfile.open(archives[0]) as tar:
        names = tar.getnames()
    top = os.path.basename(archives[0])[: -len(".tar.gz")]
    assert top == f"conv2d_ext-{conv2d_ext.__version__}"
    assert all(n == top or n.startswith(top + "/") for n in names)
    return {n[len(top) + 1:] for n in names if n != top}


def test_sdist_contains_every_source_under_csrc(sdist):
    """Every file under csrc/ (what setup.py compiles and includes) is in the sdist."""
    sources = {
        os.path.relpath(path, ROOT).replace(os.sep, "/")
        for path in glob.glob(os.path.join(ROOT, "csrc", "**"), recursive=True)
        if os.path.isfile(path)
    }
    assert any(s.endswith(".cu") for s in sources) and "csrc/bindings.cpp" in sources
    assert sources - sdist == set()


@pytest.mark.parametrize("name", ["setup.py", "pyproject.toml", "MANIFEST.in", "README.md"])
def test_sdist_contains_build_files(sdist, name):
    """The sdist carries what building it needs (setup.py, pyproject.toml) and the README that pyproject names."""
    assert name in sdist


def test_sdist_contains_the_python_package_but_no_build_output(sdist):
    """Every module of the package is in the sdist; the compiled extension and build/ are not."""
    modules = {f"conv2d_ext/{os.path.basename(p)}" for p in glob.glob(os.path.join(ROOT, "conv2d_ext", "*.py"))}
    assert "conv2d_ext/__init__.py" in modules
    assert modules - sdist == set()
    assert not [n for n in sdist if n.endswith((".so", ".o", ".pyc")) or n.startswith("build/")]


def _igemm_why_not(kernel, channels_last=True, C=64, sm=90, dtype="float16"):
    sizes = [2, C, 10, 10, 16, 3, 3, 10, 10]
    return _C.can_implement("forward", kernel, sizes, [1, 1], [1, 1], [1, 1], 1, dtype, channels_last, True, sm)


def test_implicit_gemm_128_byte_tiles_take_only_vector_shapes():
    """128x128_k128's scalar variants spill, so it takes only channels-last problems whose channels fill its
    16-byte vectors and k-tiles; the other configurations take the rest."""
    assert _igemm_why_not("implicit_gemm:128x128_k128") == ""
    for kw in (dict(channels_last=False), dict(C=3), dict(C=16)):
        assert "channels-last" in _igemm_why_not("implicit_gemm:128x128_k128", **kw), kw
        assert _igemm_why_not("implicit_gemm:128x128_w8", **kw) == "", kw


def _setup_arch_flags():
    """setup.py's arch_flags, read from the file (setup.py itself runs setup() on import)."""
    import re
    source = open(os.path.join(os.path.dirname(os.path.dirname(__file__)), "setup.py")).read()
    start, end = source.index("def arch_flags"), source.index("cuda_home = find_cuda_home()")
    namespace = {"re": re, "sys": sys}
    exec(source[start:end], namespace)
    return namespace["arch_flags"]


def test_setup_builds_hopper_as_sm90a_with_cuda_12():
    """TORCH_CUDA_ARCH_LIST's 9.0 becomes sm_90a machine code (wgmma) with CUDA 12+, and CONV2D_EXT_SM90A tells the
    host code; +PTX adds plain compute_XY PTX; CUDA 11 keeps plain sm_90 (no wgmma kernels)."""
    arch_flags = _setup_arch_flags()
    flags, defines = arch_flags("8.0;9.0+PTX", "13.0")
    assert flags == ["-gencode=arch=compute_80,code=sm_80", "-gencode=arch=compute_90a,code=sm_90a",
                     "-gencode=arch=compute_90,code=compute_90"]
    assert defines == [("CONV2D_EXT_SM90A", "1")]
    assert arch_flags("8.0 8.6", "12.4") == (["-gencode=arch=compute_80,code=sm_80",
                                              "-gencode=arch=compute_86,code=sm_86"], [])
    assert arch_flags("9.0", "11.8") == (["-gencode=arch=compute_90,code=sm_90"], [])
    assert arch_flags("10.0+PTX", "13.0")[1] == []


def test_wgmma_configurations_need_an_sm90a_build_and_a_hopper_gpu():
    """The wgmma configurations run only on compute capability 9.0, and only in a build with sm_90a code; they say
    why not elsewhere (the mma.sync configurations take those problems)."""
    for kernel in ("implicit_gemm:128x128_wg", "implicit_gemm:256x128_wgk128",
                   "implicit_gemm:128x128_tma", "implicit_gemm:128x64_tma"):
        assert "9.0" in _igemm_why_not(kernel, sm=80)
        why = _igemm_why_not(kernel, sm=90)
        assert why == "" or "sm_90a" in why, why
    assert _igemm_why_not("implicit_gemm:128x128_w8", sm=80) == ""


def test_copy_engine_configurations_answer_for_empty_problems():
    """can_implement of the copy-engine configurations on an empty batch (their tile plan divides by the box's
    images: it once divided by zero there, a SIGFPE in every caller) and on a first layer (3 input channels: no
    16-byte vectors for the copy engine, except in backward-data, whose forward view reads the 64 output channels)."""
    empty = [0, 64, 8, 8, 32, 3, 3, 8, 8]
    first_layer = [2, 3, 32, 32, 64, 7, 7, 32, 32]  # stride 1, padding 3
    for pass_, kernel in (("forward", "implicit_gemm:128x128_tma"), ("forward", "implicit_gemm:128x64_tma"),
                          ("backward_data", "implicit_gemm:128x128_tma"), ("backward_weight", "implicit_gemm:128x128_tma")):
        assert kernel in conv2d_ext.kernels()[pass_], (pass_, kernel)
        why = _C.can_implement(pass_, kernel, empty, [1, 1], [1, 1], [1, 1], 1, "bfloat16", True, True, 90)
        assert why == "" or "sm_90a" in why or "verified" in why, (pass_, why)
        why = _C.can_implement(pass_, kernel, first_layer, [1, 1], [3, 3], [1, 1], 1, "bfloat16", True, True, 90)
        if pass_ == "backward_data":  # its forward view reads grad_output's 64 channels and writes 3: that fits
            assert why == "" or "sm_90a" in why, (pass_, why)
        else:
            assert "16-byte vectors" in why or "sm_90a" in why, (pass_, why)


def test_implicit_gemm_checks_shared_memory_per_gpu():
    """A configuration whose tiles need more shared memory than the GPU gives a block says so (sm_86 and sm_89
    give 99 KB, sm_80 163 KB, sm_90 227 KB)."""
    assert "shared memory" in _igemm_why_not("implicit_gemm:128x128_k128", sm=86)
    assert _igemm_why_not("implicit_gemm:128x128_k128", sm=80) == ""
    assert _igemm_why_not("implicit_gemm:128x128_w4", sm=86) == ""


def test_implicit_gemm_rejects_geometry_past_its_32_bit_window_math():
    """Padding, strided output extent or dilated filter extent of 2^30 or more would overflow its 32-bit window
    corners: can_implement turns them away (the direct family runs them)."""
    sizes = [1, 16, 7, 7, 32, 2, 2, 2**29 + 3, 2**29 + 3]
    why = _C.can_implement("forward", "implicit_gemm:64x64", sizes, [1, 1], [2**29, 2**29], [2**30, 2**30], 1,
                           "float16", False, True, 90)
    assert "2^30" in why
    assert _C.can_implement("forward", "direct", sizes, [1, 1], [2**29, 2**29], [2**30, 2**30], 1, "float16",
                            False, True, 90) == ""


def test_implicit_gemm_backward_data_runs_any_stride():
    """Backward-data implicit GEMM runs stride 1 and strided problems (one GEMM per stride phase), fp16/bf16/TF32
    and exact fp32 on the FFMA configuration; grid.z (groups x stride phases) must stay within 65535."""
    sizes = [2, 64, 10, 10, 32, 3, 3, 10, 10]
    why = _C.can_implement("backward_data", "implicit_gemm:64x64", sizes, [1, 1], [1, 1], [1, 1], 1, "bfloat16",
                           True, True, 90)
    assert why == ""
    strided = [2, 64, 10, 10, 32, 3, 3, 5, 5]
    for name, dtype, allow_tf32 in [("implicit_gemm:64x64", "bfloat16", True), ("implicit_gemm:128x128_w4", "float32",
                                    True), ("implicit_gemm:128x128_w8", "float16", True),
                                    ("implicit_gemm:ffma", "float32", False)]:
        for channels_last in (False, True):
            why = _C.can_implement("backward_data", name, strided, [2, 2], [1, 1], [1, 1], 1, dtype, channels_last,
                                   allow_tf32, 90)
            assert why == "", (name, dtype, channels_last)
    beyond_kernel = [2, 64, 17, 17, 32, 2, 2, 6, 6]  # stride 3 > kernel 2: phases without taps (written as zeros)
    assert _C.can_implement("backward_data", "implicit_gemm:64x64", beyond_kernel, [3, 3], [0, 0], [1, 1], 1,
                            "float16", False, True, 90) == ""
    many_phases = [1, 64, 300, 300, 64, 1, 1, 2, 2]  # 256 x 256 stride phases
    why = _C.can_implement("backward_data", "implicit_gemm:64x64", many_phases, [256, 256], [0, 0], [1, 1], 1,
                           "float16", False, True, 90)
    assert "stride phases" in why


def _depthwise_why_not(pass_, sizes=(2, 16, 12, 12, 16, 3, 3, 12, 12), stride=(1, 1), padding=(1, 1),
                       dilation=(1, 1), groups=None, dtype="float32", channels_last=False, sm=90):
    groups = sizes[1] if groups is None else groups
    return _C.can_implement(pass_, "tiled:depthwise", list(sizes), list(stride), list(padding), list(dilation),
                            groups, dtype, channels_last, True, sm)


def test_tiled_depthwise_is_registered_for_every_pass():
    """The tiled family's depthwise configuration has a kernel for each pass."""
    kernels = _C.kernels()
    for pass_ in heuristics.PASSES:
        assert (pass_, "tiled:depthwise", "tiled", "depthwise") in kernels


@pytest.mark.parametrize("pass_", heuristics.PASSES)
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("channels_last", [False, True])
def test_tiled_depthwise_runs_depthwise_problems(pass_, dtype, channels_last):
    """Any depthwise problem in fp32/fp16/bf16, either layout: 3x3, channel multiplier 2 with stride 2, 5x9 with
    dilation 2 and asymmetric (implied) padding, 1x7, odd sizes, the suite's depthwise_7x7."""
    problems = [
        dict(),
        dict(sizes=(2, 6, 11, 13, 12, 3, 3, 6, 7), stride=(2, 2)),
        dict(sizes=(1, 4, 17, 19, 4, 5, 9, 10, 4), padding=(1, 0), dilation=(2, 2)),  # bottom 0, right 1
        dict(sizes=(3, 5, 9, 16, 5, 1, 7, 9, 16), padding=(0, 3)),
        dict(sizes=(32, 96, 56, 56, 96, 7, 7, 56, 56), padding=(3, 3)),
    ]
    for kw in problems:
        assert _depthwise_why_not(pass_, dtype=dtype, channels_last=channels_last, **kw) == "", kw


@pytest.mark.parametrize("pass_", heuristics.PASSES)
def test_tiled_depthwise_explains_what_it_cannot_run(pass_):
    """Not depthwise, float64, pre-sm_80 GPUs, and a dilated filter whose smallest tile overflows shared memory."""
    grouped = dict(sizes=(2, 16, 12, 12, 16, 3, 3, 12, 12), groups=8)
    assert _depthwise_why_not(pass_, **grouped) == "not depthwise (groups != input channels)"
    assert _depthwise_why_not(pass_, dtype="float64") == "float64 runs on the direct family"
    assert "8.0" in _depthwise_why_not(pass_, sm=75)
    huge = dict(sizes=(1, 64, 40000, 40000, 64, 3, 3, 40000, 40000), padding=(20000, 20000), dilation=(20000, 20000))
    assert "shared memory" in _depthwise_why_not(pass_, **huge)
    assert _C.can_implement(pass_, "direct", list(huge["sizes"]), [1, 1], [20000, 20000], [20000, 20000], 64,
                            "float32", False, True, 90) == ""


def test_tiled_depthwise_backward_weight_takes_multipliers_up_to_256():
    """Backward-weight gives each output channel of a chunk its own threads: a channel multiplier above 256 is
    refused there (forward and backward-data take it)."""
    sizes = (1, 2, 8, 8, 2 * 300, 3, 3, 8, 8)
    assert "256" in _depthwise_why_not("backward_weight", sizes=sizes)
    assert _depthwise_why_not("forward", sizes=sizes) == ""
    assert _depthwise_why_not("backward_data", sizes=sizes) == ""
    assert _depthwise_why_not("backward_weight", sizes=(1, 2, 8, 8, 2 * 256, 3, 3, 8, 8)) == ""


def _depthwise_mma_why_not(pass_, sizes=(2, 32, 20, 70, 32, 7, 7, 20, 70), stride=(1, 1), padding=(3, 3),
                           groups=None, dtype="bfloat16", channels_last=True):
    groups = sizes[1] if groups is None else groups
    return _C.can_implement(pass_, "tiled:depthwise_mma", list(sizes), list(stride), list(padding), [1, 1], groups,
                            dtype, channels_last, True, 90)


def test_tiled_depthwise_mma_says_what_it_runs():
    """Channels-last fp16/bf16 depthwise, multiplier 1, stride 1, filters up to 7x7, channels in eights;
    backward-data only with padding within the filter."""
    for dtype in ("float16", "bfloat16"):
        for pass_ in ("forward", "backward_data"):
            assert _depthwise_mma_why_not(pass_, dtype=dtype) == ""
            assert _depthwise_mma_why_not(pass_, sizes=(1, 8, 5, 9, 8, 3, 1, 5, 9), padding=(1, 0)) == ""
    assert _depthwise_mma_why_not("forward", dtype="float32") == "fp16 and bf16 only"
    assert _depthwise_mma_why_not("forward", channels_last=False) == "channels-last only"
    assert _depthwise_mma_why_not("forward", sizes=(1, 12, 9, 9, 12, 3, 3, 9, 9), padding=(1, 1)) == \
        "channels not a multiple of 8"
    assert _depthwise_mma_why_not("forward", sizes=(1, 8, 9, 9, 16, 3, 3, 9, 9), padding=(1, 1)) == \
        "not depthwise with channel multiplier 1"
    assert "stride" in _depthwise_mma_why_not("forward", sizes=(1, 8, 9, 9, 8, 3, 3, 5, 5), stride=(2, 2),
                                              padding=(1, 1))
    assert _depthwise_mma_why_not("forward", sizes=(1, 8, 9, 9, 8, 9, 9, 9, 9), padding=(4, 4)) == \
        "filters larger than 7x7"
    assert "padding" in _depthwise_mma_why_not("backward_data", sizes=(1, 8, 9, 9, 8, 3, 3, 13, 13), padding=(3, 3))
    assert _depthwise_mma_why_not("forward", sizes=(1, 8, 9, 9, 8, 3, 3, 13, 13), padding=(3, 3)) == ""
    with pytest.raises(RuntimeError, match="no backward_weight kernel named"):  # registered for two passes only
        _depthwise_mma_why_not("backward_weight")


def test_im2col_answers_without_a_gpu(monkeypatch):
    """implicit_gemm:im2col: refused under CONV2D_EXT_IM2COL=0 (timing the other kernels); otherwise it takes a first
    layer in every pass (r50_conv1: 3 x 7 x 7 = 147 of at most 160 reduction elements; backward-data 64 output
    channels at most), and says why not for longer reductions, groups, exact fp32, and GPUs without mma.sync."""
    first_layer = [2, 3, 32, 32, 64, 7, 7, 16, 16]  # stride 2, padding 3
    def why(pass_, sizes=first_layer, groups=1, dtype="float16", allow_tf32=True, sm=90):
        return _C.can_implement(pass_, "implicit_gemm:im2col", sizes, [2, 2], [3, 3], [1, 1], groups, dtype, False,
                                allow_tf32, sm)
    passes = ("forward", "backward_data", "backward_weight")
    for pass_ in passes:
        assert "implicit_gemm:im2col" in conv2d_ext.kernels()[pass_], pass_
    monkeypatch.setenv("CONV2D_EXT_IM2COL", "0")
    assert all("CONV2D_EXT_IM2COL=0" in why(pass_) for pass_ in passes)
    monkeypatch.delenv("CONV2D_EXT_IM2COL")
    for pass_ in passes:
        assert why(pass_) == "" and why(pass_, dtype="float32") == "", pass_
        assert "160" in why(pass_, sizes=[2, 4, 32, 32, 64, 7, 7, 16, 16]), pass_  # 4 x 7 x 7 = 196
        assert "group" in why(pass_, sizes=[2, 4, 32, 32, 64, 3, 3, 18, 18], groups=2), pass_  # padding 3
        assert "allow_tf32" in why(pass_, dtype="float32", allow_tf32=False), pass_
        assert "8.0" in why(pass_, sm=75), pass_
        assert "float64" in why(pass_, dtype="float64"), pass_
    assert "64 output channels" in why("backward_data", sizes=[2, 3, 32, 32, 96, 7, 7, 16, 16])
    assert why("forward", sizes=[2, 3, 32, 32, 96, 7, 7, 16, 16]) == ""
