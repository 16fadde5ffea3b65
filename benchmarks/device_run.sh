set -o pipefail
export PYTHONUNBUFFERED=1 CONV2D_EXT_COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo wip)
nvidia-smi --query-gpu=name,driver_version,clocks.sm --format=csv > $OUT/gpu.txt
start=$(date +%s)
TORCH_CUDA_ARCH_LIST=9.0 MAX_JOBS=16 python3 -m pip install --no-build-isolation --no-deps -e . > $OUT/build.log 2>&1 || { tail -30 $OUT/build.log; exit 1; }
echo build $(( $(date +%s) - start )) s
timeout 200 python3 -m pytest -q -x -n 8 tests/test_gpu_correctness.py -k "tma" 2>&1 | tee $OUT/pytest.log | tail -15
echo tests $(( $(date +%s) - start )) s
cd benchmarks && timeout 280 python3 sweep.py --quick --shapes seed,r50_3x3_64,r50_3x3_128_s2,r50_3x3_256,r50_3x3_512,unet_3x3,dilated,batch1_3x3,r50_conv1 --dtype bf16,tf32 --kernels 128x128_tma,256x128_wgk128,128x128_wg --out $OUT --tag sweep_tma 2>&1 | tee $OUT/sweep.log | grep -v "^$" | cut -c1-230
echo total $(( $(date +%s) - start )) s
