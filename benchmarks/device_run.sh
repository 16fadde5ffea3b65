# A development call on the GPU machine (device tool): build, the tests of the kernels under work, the benchmark rows
# they move (compare.py), per-kernel traces and ncu profiles (profile_case.py), logs under $OUT. Edit the tests,
# shapes and kernels for the question at hand (session 7: the depthwise and grouped kernels, backward-weight).
set -o pipefail
export PYTHONUNBUFFERED=1 CONV2D_EXT_COMMIT=${CONV2D_EXT_COMMIT:-wip}
nvidia-smi --query-gpu=name,driver_version,clocks.sm --format=csv > $OUT/gpu.txt
start=$(date +%s)
TORCH_CUDA_ARCH_LIST=9.0 MAX_JOBS=16 python3 -m pip install --no-build-isolation --no-deps -e . > $OUT/build.log 2>&1 || { tail -30 $OUT/build.log; exit 1; }
grep -E "spill" $OUT/build.log | grep -v " 0 bytes spill stores" | head -5
echo build $(( $(date +%s) - start )) s
timeout 200 python3 -m pytest -q -n 15 tests/test_gpu_correctness.py tests/test_heuristics.py -k "${TESTS:-depthwise or grouped or tma or heuristics}" 2>&1 | tee $OUT/pytest.log | grep -E "^FAILED|passed|failed" | cut -c1-200 | tail -12
echo tests $(( $(date +%s) - start )) s
timeout 150 python3 benchmarks/compare.py --quick --no-plot --out $OUT --pass forward,backward --dtype fp32,tf32,fp16,bf16 --layout nchw,nhwc --shapes ${SHAPES:-depthwise_3x3,depthwise_7x7,grouped_g32} > $OUT/compare.log 2>&1
timeout 100 python3 benchmarks/compare.py --quick --no-plot --out $OUT --tag dense --pass forward,backward --dtype tf32,bf16 --layout nchw --shapes seed,unet_3x3,r50_3x3_256,r50_3x3_512 >> $OUT/compare.log 2>&1
rm -f $OUT/*.csv $OUT/*.md
grep -E "^(depthwise|grouped|seed|r50|unet|dilated|batch1)|geomean|speedup" $OUT/compare.log | cut -c1-110 | tail -60
echo compare $(( $(date +%s) - start )) s
cd benchmarks
for c in "seed bf16 nchw backward" "r50_3x3_256 bf16 nchw backward"; do timeout 40 python3 profile_case.py --trace $c; done 2>&1 | grep -v Warn | tee $OUT/trace.txt | head -30
NCU=$(command -v ncu || ls /usr/local/cuda*/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
prof() { timeout 60 $NCU --section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats -k "regex:$1" -c 1 --launch-skip 2 python3 profile_case.py "${@:2}" 2>&1 | grep -vE "^==PROF==|^\s*$|----" >> $OUT/ncu.txt; }
prof conv_kernel depthwise_3x3 fp32 nhwc forward
prof conv_kernel depthwise_3x3 bf16 nhwc forward
grep -E "conv_kernel|Duration|DRAM Through|Compute \(SM\)|Registers Per|Achieved Occ|Warp Cycles Per Issued" $OUT/ncu.txt | cut -c1-120
echo total $(( $(date +%s) - start )) s
