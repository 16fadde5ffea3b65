"""Kernels on the CPU emulator (tests/emulation): the real kernel sources, compiled for the host with the CUDA
execution model emulated (a block's threads as coroutines, __syncthreads, warp-collectives, cp.async, the copy engine
and its mbarriers, wgmma), against a float64 direct convolution. Runs without a GPU (CI); needs g++ and the CUDA
toolkit's headers. Covers every registered kernel, and the copy-engine kernels' experimental switches."""
import concurrent.futures
import os
import random
import re
import shutil
import subprocess
import sys

import pytest

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "emulation")
sys.path.insert(0, HERE)
import build_emulation  # noqa: E402


def _toolchain_reason():
    if shutil.which("g++") is None:
        return "needs g++"
    try:
        build_emulation.cuda_include()
    except SystemExit as e:
        return str(e)
    if not os.path.isdir(os.path.join(build_emulation.ROOT, "csrc")):
        return "needs the csrc/ sources next to the tests"
    return None


def _gpu_reason():
    """On a machine with a CUDA GPU the kernels themselves run (test_gpu_correctness), and the emulator's builds and
    runs (minutes of CPU) are left to machines without one (CI), unless CONV2D_EXT_EMULATION_TESTS=1."""
    if os.environ.get("CONV2D_EXT_EMULATION_TESTS") == "1":
        return None
    try:
        import torch
        gpu = torch.cuda.is_available()
    except Exception:
        gpu = False
    return "a CUDA GPU runs the kernels themselves (CONV2D_EXT_EMULATION_TESTS=1 runs the emulator too)" if gpu else None


_SKIP_REASON = _toolchain_reason() or _gpu_reason()
pytestmark = pytest.mark.skipif(_SKIP_REASON is not None, reason=_SKIP_REASON or "")

# Every registered kernel, each pass (the emulated build is an sm_90a one: wgmma and the copy engine included).
EMULATED = [
    "implicit_gemm:128x128_tma forward", "implicit_gemm:128x128_tma backward_data",
    "implicit_gemm:128x128_tma backward_weight", "implicit_gemm:128x64_tma forward",
    "implicit_gemm:128x64_tma backward_data", "implicit_gemm:128x128_wg forward",
    "implicit_gemm:128x128_wg backward_data", "implicit_gemm:256x128_wg backward_data", "implicit_gemm:256x128_wgk128 forward", "direct forward",
    "direct backward_data", "direct backward_weight", "implicit_gemm:im2col forward",
    "implicit_gemm:im2col backward_data", "implicit_gemm:im2col backward_weight", "implicit_gemm:64x64 forward",
    "implicit_gemm:64x64 backward_data", "implicit_gemm:64x64 backward_weight", "implicit_gemm:128x128_w4 forward",
    "implicit_gemm:128x128_w4 backward_data", "implicit_gemm:128x128_w4 backward_weight",
    "implicit_gemm:128x128_w8 forward", "implicit_gemm:128x128_w8 backward_data",
    "implicit_gemm:128x128_w8 backward_weight", "implicit_gemm:128x128_k128 forward", "implicit_gemm:ffma forward",
    "implicit_gemm:ffma backward_data", "implicit_gemm:ffma backward_weight", "implicit_gemm:128x64_ffma forward",
    "implicit_gemm:128x64_ffma backward_data", "implicit_gemm:64x128_ffma backward_weight", "tiled:depthwise forward",
    "tiled:depthwise backward_data", "tiled:depthwise backward_weight", "tiled:depthwise_vec forward",
    "tiled:depthwise_vec backward_data", "tiled:depthwise_vec backward_weight", "tiled:depthwise_rows forward",
    "tiled:depthwise_rows backward_data", "tiled:depthwise_mma forward", "tiled:depthwise_mma backward_data",
    "tiled:grouped forward", "tiled:grouped backward_data", "tiled:grouped backward_weight",
    "tiled:grouped_mma forward", "tiled:grouped_mma backward_data", "tiled:grouped_mma backward_weight",
]


def _process(binary, *args, env=None):
    """One harness run (one OS thread)."""
    env = {**os.environ, "EMU_SMS": "3", **(env or {})}
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=1800, env=env)


def _start(pool, binary, *args, env=None):
    """A harness run on the pool: the runs go side by side, a core each."""
    return pool.submit(_process, binary, *args, env=env)


def _check(r):
    """A finished run's PASS lines and the harness's count of runs per kernel; any FAIL, REFUSED or exit status
    fails."""
    lines = r.stdout.splitlines()
    failed = [line for line in lines if line.startswith(("FAIL", "REFUSED"))]
    assert r.returncode == 0 and not failed, (r.returncode, failed[:10], r.stderr[-2000:])
    runs = dict((m.group(1), int(m.group(2))) for m in (re.match(r"  (.+): (\d+)$", line) for line in lines) if m)
    return [line for line in lines if line.startswith("PASS")], runs


@pytest.fixture(scope="module")
def emu_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("emulation")


@pytest.fixture(scope="module")
def registry_harness(emu_dir):
    return build_emulation.build(str(emu_dir / "registry"), os.path.join(HERE, "registry_harness.cpp"), "all",
                                 workdir=str(emu_dir / "src"))


RANDOM_SEED = int(os.environ.get("CONV2D_EXT_EMU_SEED") or random.SystemRandom().randrange(1 << 30))


@pytest.fixture(scope="module")
def registry_runs(request, registry_harness):
    """The runs of the registry harness that the selected tests below check, started together once it is built, as
    many at a time as the machine has cores (MAX_JOBS caps it): about 35 minutes of one core in all, half that on
    CI's two. The longest first; each test waits for its own."""
    planned = [("every_kernel", "test_every_kernel_on_the_emulator", [], None)]
    planned += [(name, f"test_copy_engine_paths_on_the_emulator[{name}]", ["--suite=hopper", "_tma"], env)
                for name, env in HOPPER_SWITCHES.items()]
    planned += [("random", "test_random_problems_on_the_emulator", [f"--suite=random:40:{RANDOM_SEED}"], None)]
    persistent = "test_persistent_grids_and_experimental_switches_on_the_emulator"
    planned += [("im2col_sms1", persistent, ["im2col"], {"EMU_SMS": "1"}),  # each CTA walks every tile
                ("im2col_sms200", persistent, ["im2col"], {"EMU_SMS": "200"}),
                ("im2col_runs", persistent, ["im2col"], {"CONV2D_EXT_IM2COL_RUNS": "1"}),
                ("ffma_stage_nhwc", persistent, ["ffma"], {"CONV2D_EXT_FFMA_STAGE_NHWC": "1"})]
    selected = {item.name for item in request.session.items}
    pool = concurrent.futures.ThreadPoolExecutor(build_emulation.default_jobs())
    yield {key: _start(pool, registry_harness, *args, env=env) for key, test, args, env in planned if test in selected}
    pool.shutdown(wait=False, cancel_futures=True)


def test_every_kernel_on_the_emulator(registry_runs):
    """Each registered kernel, on each problem of registry_harness.cpp's suite (first layer, dense, strided and
    dilated, 1x1, grouped, depthwise, C R S = 160) it accepts, in fp64, exact fp32, TF32, fp16 and bf16, NCHW and
    NHWC: within tolerance of float64, every output element written, nothing outside it, weight gradients
    bit-identical with the blocks run in another order."""
    passed, runs = _check(registry_runs["every_kernel"].result())
    missing = [k for k in EMULATED if runs.get(k, 0) == 0]
    assert not missing, f"kernels the emulator no longer ran: {missing}"
    assert len(passed) == sum(runs.values())


HOPPER_SWITCHES = {
    "default": {},
    "no_pointwise": {"CONV2D_EXT_TMA_POINTWISE": "0"},
    "pointwise_persistent_one_sm": {"CONV2D_EXT_TMA_POINTWISE_PERSISTENT": "1", "EMU_SMS": "1"},
    "tf32_one_cta": {"CONV2D_EXT_TMA_TF32_ONE_CTA": "1"},
    "pointwise_wgrad_two_block_tiles": {"CONV2D_EXT_TMA_POINTWISE_WGRAD": "1", "CONV2D_EXT_TMA_WGRAD_N192": "0",
                                        "CONV2D_EXT_TMA_WGRAD_PACK": "auto"},
    "no_halo_store_fused": {"CONV2D_EXT_TMA_HALO": "0", "CONV2D_EXT_TMA_STORE": "0", "CONV2D_EXT_TMA_NCHW_FUSED": "0",
                            "CONV2D_EXT_TMA_WGRAD_NCHW": "0", "CONV2D_EXT_TMA_WGRAD_PACK": "1",
                            "CONV2D_EXT_TMA_WGRAD_STAGES": "0", "CONV2D_EXT_TMA_STAGES": "0",
                            "CONV2D_EXT_PACK_PLANES": "1"},
    "wgrad_nchw_everywhere_deep_rings": {"CONV2D_EXT_TMA_WGRAD_NCHW": "1", "CONV2D_EXT_TMA_WGRAD_N192": "1",
                                         "CONV2D_EXT_TMA_STAGES": "1", "CONV2D_EXT_TMA_WGRAD_STAGES": "1"},
    "pointwise_wgrad_64x256_out_stage": {"CONV2D_EXT_TMA_POINTWISE_M64": "1", "CONV2D_EXT_TMA_OUT_STAGE": "1"},
}


@pytest.mark.parametrize("switches", list(HOPPER_SWITCHES), ids=list(HOPPER_SWITCHES))
def test_copy_engine_paths_on_the_emulator(registry_runs, switches):
    """The copy-engine kernels (implicit_gemm:*_tma, every pass) on the shapes that take their special paths (halo
    boxes, NCHW read in place, the pointwise kernels, many k-tiles on one tile), with their switches: split-K (2, and
    auto on 132 SMs; the blocks out of order, so a different CTA arrives last), the one-CTA TF32 kernel (both
    experimental, slower on the H200, off by default), the pointwise kernels' persistent CTAs on one SM (each walks
    up to 12 items) launched as programmatic dependents (experimental, untimed; the emulator runs launches in order,
    so this checks the launch path, not the overlap), the 1x1 NCHW backward-weight read in place, the 16-bit
    backward-weight reading NCHW in place wherever it fits (its rule ignored) and in tiles of two blocks instead of
    three (with its row packing under its rule: the hopper suite's small maps), and the pointwise 1x1 NCHW kernels,
    halo, copy-engine store and the in-place NCHW paths off (with the backward-weight's row packing wherever it fits
    instead: TF32 and 16-bit NCHW, and the 16-bit backward-weight's 3-stage rings, which the default runs only past
    132 CTAs, as the forward's configured rings), and the forward's deep rings wherever its tiles are 128x128 boxes
    (the default takes them on grids of at most one CTA an SM: the emulator's 3) with the backward-weight's 6-stage
    rings wherever they fit (the pointwise one's included), the pointwise backward-weight's 64 x 256 tiles
    (session 38, slower, off by default), and the NCHW forward's NHWC output stage everywhere it fits (off by
    default since session 44)."""
    passed, runs = _check(registry_runs[switches].result())
    assert runs and len(passed) == sum(runs.values())


def test_persistent_grids_and_experimental_switches_on_the_emulator(registry_runs):
    """implicit_gemm:im2col's persistent grids on one SM (each CTA walks every tile) and on many, and its forward's
    run layout (CONV2D_EXT_IM2COL_RUNS=1); the FFMA forward on an NHWC copy (CONV2D_EXT_FFMA_STAGE_NHWC=1)."""
    for name in ("im2col_sms1", "im2col_sms200", "im2col_runs"):
        _check(registry_runs[name].result())
    _, runs = _check(registry_runs["ffma_stage_nhwc"].result())  # NCHW activations to NHWC
    assert runs


def test_random_problems_on_the_emulator(registry_runs):
    """Every kernel on 40 random problems drawn as test_gpu_correctness.py's random_problem draws them (groups,
    filters up to 5x5, strides and dilations up to 3, padding up to the dilated extent), a fresh seed each run
    (CONV2D_EXT_EMU_SEED repeats one)."""
    try:
        _, runs = _check(registry_runs["random"].result())
    except AssertionError as e:
        raise AssertionError(f"seed {RANDOM_SEED} (CONV2D_EXT_EMU_SEED={RANDOM_SEED} repeats it): {e}") from None
    assert runs


def test_filter_repacks_and_activation_copies_on_the_emulator(emu_dir):
    """The filter repacks (pack_taps_rows, pack_taps_tiles, pack_taps_runs, and the transposition of dense filters by
    to_nhwc_vec) give their layouts' definitions exactly, KRSC and [C][R][S][K/groups], from KCRS (16-bit and fp32)
    and channels-last filters, dense, grouped, channel-padded and flipped (negative tap strides); so do the activation
    copies (launch_to_nhwc's three kernels, to_nhwc_planes for planes of an odd number of pixels and, with
    CONV2D_EXT_TO_NHWC_PLANES=1, of 8-byte loads, and launch_to_nchw)."""
    binary = build_emulation.build(str(emu_dir / "pack"), os.path.join(HERE, "pack_harness.cpp"), [],
                                   workdir=str(emu_dir / "src_pack"))
    passed, _ = _check(_process(binary))
    assert len(passed) == 69


def test_recent_kernels_on_the_emulator_under_address_sanitizer(emu_dir):
    """The kernels written or reshaped most recently, built with AddressSanitizer: no read or write outside a tensor
    or a launch's dynamic shared memory (each launch's is its own allocation of exactly its size)."""
    try:
        binary = build_emulation.build(str(emu_dir / "registry_asan"), os.path.join(HERE, "registry_harness.cpp"),
                                       "all", workdir=str(emu_dir / "src_asan"), sanitize=True)
    except (RuntimeError, subprocess.CalledProcessError) as e:
        if "sanitize" in str(e) or "asan" in str(e).lower():
            pytest.skip("this g++ cannot build with -fsanitize=address")
        raise
    with concurrent.futures.ThreadPoolExecutor(build_emulation.default_jobs()) as pool:
        runs = [_start(pool, binary, "--suite=hopper", "_tma forward"),  # the longest first
                _start(pool, binary, "--suite=hopper", "_tma backward"),
                _start(pool, binary, "im2col", "grouped_mma", "depthwise_vec", "depthwise_mma", "implicit_gemm:64x64",
                       "_tma")]
        for run in runs:
            _check(run.result())
