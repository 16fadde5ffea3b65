"""Kernels on the CPU emulator (tests/emulation): the real kernel code, compiled for the host with the CUDA execution
model emulated (a block's threads as coroutines, __syncthreads, mma.sync as a warp-collective), against a float64
direct convolution. Runs without a GPU (CI); needs g++ and the CUDA toolkit's headers. Covers the mma.sync kernels
whose passes it drives (implicit_gemm:im2col, all three); not the copy-engine or wgmma kernels."""
import os
import shutil
import subprocess
import sys

import pytest

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "emulation")
sys.path.insert(0, HERE)
import build_emulation  # noqa: E402

IM2COL_SOURCES = ["implicit_gemm/forward_im2col.cu", "implicit_gemm/backward_weight_im2col.cu",
                  "implicit_gemm/backward_data_im2col.cu"]


def _toolchain_reason():
    if shutil.which("g++") is None:
        return "needs g++"
    try:
        build_emulation.cuda_include()
    except SystemExit as e:
        return str(e)
    return None


pytestmark = pytest.mark.skipif(_toolchain_reason() is not None, reason=_toolchain_reason() or "")


def _run(binary, *args, sms="3"):
    env = dict(os.environ, EMU_SMS=sms)
    r = subprocess.run([binary, *args], capture_output=True, text=True, timeout=1200, env=env)
    lines = r.stdout.splitlines()
    failed = [line for line in lines if not line.startswith("PASS") and "failures" not in line]
    assert r.returncode == 0 and not failed, (r.returncode, failed[:10], r.stderr[-2000:])
    return [line for line in lines if line.startswith("PASS")]


@pytest.fixture(scope="module")
def emu_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("emulation")


def test_im2col_every_pass_on_the_emulator(emu_dir):
    """implicit_gemm:im2col (forward, backward-weight, backward-data) in fp16, bf16 and TF32, NCHW and NHWC, six shapes
    (strides, dilation, padding on one side, C R S = 160, 1x1, K past one channel tile, offset base pointers, bias),
    outputs poisoned with NaN and checked for writes outside them; three SMs (persistent grids walk several tiles,
    backward-weight's splits go through finish_splits), then one SM and many."""
    binary = build_emulation.build(str(emu_dir / "im2col"), os.path.join(HERE, "im2col_harness.cpp"),
                                   IM2COL_SOURCES, workdir=str(emu_dir / "src"))
    passed = _run(binary)
    assert len(passed) == 6 * 6 * 3 - 6  # every (shape, dtype, layout, pass) but the K = 70 shape's backward-data
    _run(binary, "small", sms="1")
    _run(binary, "small", sms="200")


def test_im2col_on_the_emulator_under_address_sanitizer(emu_dir):
    """The same kernels built with AddressSanitizer: no read or write outside a tensor or a launch's dynamic shared
    memory (each launch's is its own allocation of exactly its size)."""
    try:
        binary = build_emulation.build(str(emu_dir / "im2col_asan"), os.path.join(HERE, "im2col_harness.cpp"),
                                       IM2COL_SOURCES, workdir=str(emu_dir / "src_asan"), sanitize=True)
    except subprocess.CalledProcessError:
        pytest.skip("this g++ cannot build with -fsanitize=address")
    _run(binary, "small")


def test_tiled_filter_repack_on_the_emulator(emu_dir):
    """pack_taps_tiled (CONV2D_EXT_PACK_TILED=1, not yet run on a GPU) gives the element-wise repacks' bits exactly,
    KRSC and [C][R][S][K/groups], on dense, grouped, channel-padded and flipped (negative tap strides) filters."""
    binary = build_emulation.build(str(emu_dir / "pack"), os.path.join(HERE, "pack_harness.cpp"), [],
                                   workdir=str(emu_dir / "src_pack"))
    assert len(_run(binary)) == 8
