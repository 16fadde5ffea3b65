# A development call on the GPU machine (device tool), as used in session 6 to tune the copy-engine kernels: build, the
# tma tests and the strided backward-data tests, the forward configuration sweep (sweep.py) and per-pass backward-data
# timings (backward_passes.py), logs under $OUT. Edit the shapes and kernels for the question at hand.
set -o pipefail
export PYTHONUNBUFFERED=1 CONV2D_EXT_COMMIT=${CONV2D_EXT_COMMIT:-wip}
nvidia-smi --query-gpu=name,driver_version,clocks.sm --format=csv > $OUT/gpu.txt
start=$(date +%s)
TORCH_CUDA_ARCH_LIST=9.0 MAX_JOBS=16 python3 -m pip install --no-build-isolation --no-deps -e . > $OUT/build.log 2>&1 || { tail -30 $OUT/build.log; exit 1; }
grep -E "spill" $OUT/build.log | grep -v " 0 bytes spill stores" | head -5
echo build $(( $(date +%s) - start )) s
timeout 200 python3 -m pytest -q -n 12 tests/test_gpu_correctness.py -k "tma or strided_backward_data" 2>&1 | tee $OUT/pytest.log | grep -E "^FAILED|passed|failed" | cut -c1-200 | tail -12
echo tests $(( $(date +%s) - start )) s
cd benchmarks
timeout 150 python3 sweep.py --quick --shapes seed,r50_3x3_64,r50_1x1,unet_3x3,r50_3x3_512,batch1_3x3 --dtype bf16,tf32 --kernels 128x128_tma,256x128_tma,128x64_tma,256x64_tma,256x128_wgk128,128x128_wg --out $OUT --tag sweep_tma 2>&1 | tee $OUT/sweep.log | grep -v "^$" | sed -E 's/ \(auto picks.*//' | cut -c1-250
echo sweep $(( $(date +%s) - start )) s
timeout 120 python3 backward_passes.py seed,r50_3x3_64,unet_3x3,r50_3x3_256,batch1_3x3 bf16 nchw,nhwc backward_data 2>&1 | tee $OUT/dgrad.log | sed -E 's/\| (128x128_w4|128x128_w8|64x64|ffma|depthwise|grouped) [^|]*//g' | cut -c1-260
timeout 40 python3 backward_passes.py seed tf32 nchw,nhwc backward_data 2>&1 | tee -a $OUT/dgrad.log | sed -E 's/\| (128x128_w4|128x128_w8|64x64|ffma|depthwise|grouped) [^|]*//g' | cut -c1-260
echo total $(( $(date +%s) - start )) s
