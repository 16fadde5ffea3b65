# A development call on the GPU machine (device tool): build, the tests of the kernels under work, per-pass timings
# (backward_passes.py) and ncu profiles (profile_case.py), logs under $OUT. Edit the tests, shapes and kernels for
# the question at hand (session 7: the copy-engine backward-weight, the depthwise and grouped kernels).
set -o pipefail
export PYTHONUNBUFFERED=1 CONV2D_EXT_COMMIT=${CONV2D_EXT_COMMIT:-wip}
nvidia-smi --query-gpu=name,driver_version,clocks.sm --format=csv > $OUT/gpu.txt
start=$(date +%s)
TORCH_CUDA_ARCH_LIST=9.0 MAX_JOBS=16 python3 -m pip install --no-build-isolation --no-deps -e . > $OUT/build.log 2>&1 || { tail -30 $OUT/build.log; exit 1; }
grep -E "spill" $OUT/build.log | grep -v " 0 bytes spill stores" | head -5
echo build $(( $(date +%s) - start )) s
timeout 200 python3 -m pytest -q -n 12 tests/test_gpu_correctness.py -k "${TESTS:-tma_backward_weight}" 2>&1 | tee $OUT/pytest.log | grep -E "^FAILED|passed|failed" | cut -c1-200 | tail -12
echo tests $(( $(date +%s) - start )) s
cd benchmarks
export CONV2D_EXT_UNVERIFIED=1
timeout 150 python3 backward_passes.py seed,unet_3x3,r50_3x3_64,r50_3x3_256,r50_1x1 bf16 nchw,nhwc backward_weight 2>&1 | tee $OUT/wgrad.log | sed -E 's/\| (128x128_w4|64x64|ffma|depthwise|grouped) [^|]*//g' | cut -c1-260
echo passes $(( $(date +%s) - start )) s
NCU=$(command -v ncu || ls /usr/local/cuda*/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
prof() { timeout 60 $NCU --section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats --section MemoryWorkloadAnalysis -k "regex:$1" -c 1 --launch-skip 2 python3 profile_case.py "${@:2}" 2>&1 | grep -vE "^==PROF==|^\s*$|----" >> $OUT/ncu.txt; }
prof conv_kernel depthwise_3x3 fp32 nchw forward
prof conv_kernel depthwise_3x3 fp32 nhwc forward
prof conv_kernel grouped_g32 bf16 nhwc forward
prof "forward_tma|wgrad_tma|backward_weight" seed bf16 nhwc backward_weight implicit_gemm:128x128_tma
echo total $(( $(date +%s) - start )) s
