# The closing GPU call of a session (device tool): build, the whole test suite, the full default suite against cuDNN
# (quick timing, every row checked) and the host-overhead benchmark. At most 8 files under $OUT: the tables and the
# plot are remade here with `python benchmarks/compare.py --merge benchmarks/results latest $OUT/suite.json`.
set -o pipefail
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu --format=csv > $OUT/gpu.txt
start=$(date +%s)
TORCH_CUDA_ARCH_LIST=9.0 MAX_JOBS=16 python3 -m pip install --no-build-isolation --no-deps -e . > $OUT/build.log 2>&1 || { tail -30 $OUT/build.log; exit 1; }
echo build $(( $(date +%s) - start )) s
timeout 220 python3 -m pytest -q -n 15 tests > $OUT/pytest.log 2>&1; grep -E "^FAILED" $OUT/pytest.log | cut -c1-220 | head -15; tail -2 $OUT/pytest.log
echo tests $(( $(date +%s) - start )) s
timeout 330 python3 benchmarks/compare.py --pass forward,backward --dtype fp32,tf32,fp16,bf16 --layout nchw,nhwc --shapes seed,r50_conv1,r50_3x3_64,r50_1x1,r50_3x3_128_s2,r50_3x3_256,r50_3x3_512,unet_3x3,dilated,depthwise_3x3,depthwise_7x7,grouped_g32,batch1_3x3 --quick --out $OUT --tag suite --no-plot > $OUT/compare.log 2>&1; tail -12 $OUT/compare.log
rm -f $OUT/*.csv $OUT/*.md $OUT/*.png
echo compare $(( $(date +%s) - start )) s
timeout 60 python3 benchmarks/overhead.py --out $OUT > $OUT/overhead.log 2>&1; tail -6 $OUT/overhead.log
echo total $(( $(date +%s) - start )) s
