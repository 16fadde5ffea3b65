# A development call on the GPU machine (device tool): build, the tests, the benchmark rows the work moves
# (compare.py), per-kernel traces (profile_case.py --trace) and ncu profiles, logs under $OUT (at most 8 files come
# back). Edit the tests, shapes and kernels for the question at hand (session 8: the TF32 copy-engine backward-weight).
set -o pipefail
export PYTHONUNBUFFERED=1 CONV2D_EXT_COMMIT=${CONV2D_EXT_COMMIT:-wip}
nvidia-smi --query-gpu=name,driver_version,clocks.sm --format=csv > $OUT/gpu.txt
start=$(date +%s)
TORCH_CUDA_ARCH_LIST=9.0 MAX_JOBS=16 python3 -m pip install --no-build-isolation --no-deps -e . > $OUT/build.log 2>&1 || { tail -30 $OUT/build.log; exit 1; }
grep -E "spill" $OUT/build.log | grep -v " 0 bytes spill stores" | head -5
echo build $(( $(date +%s) - start )) s
timeout 260 python3 -m pytest -q -n 15 tests ${TESTS:+-k "$TESTS"} 2>&1 | tee $OUT/pytest.log | grep -E "^FAILED|^ERROR|passed|failed" | cut -c1-220 | tail -15
echo tests $(( $(date +%s) - start )) s
timeout 120 python3 benchmarks/backward_passes.py seed,unet_3x3,dilated,r50_3x3_64,r50_1x1,batch1_3x3 tf32 nchw backward_weight 2>&1 | grep -v -i warn | tee $OUT/passes.txt | cut -c1-200
echo passes $(( $(date +%s) - start )) s
timeout 100 python3 benchmarks/compare.py --quick --no-plot --out $OUT --tag dense --pass backward --dtype tf32 --layout nchw --shapes seed,unet_3x3,dilated,r50_3x3_64 > $OUT/compare.log 2>&1
rm -f $OUT/*.csv $OUT/*.md
grep -E "^(depthwise|grouped|seed|r50|unet|dilated|batch1)|geomean" $OUT/compare.log | cut -c1-110 | tail -40
echo compare $(( $(date +%s) - start )) s
cd benchmarks
for c in "seed tf32 nchw backward"; do timeout 40 python3 profile_case.py --trace $c; done 2>&1 | grep -v -i warn | tee $OUT/trace.txt | head -24
echo total $(( $(date +%s) - start )) s
