# A development call on the GPU machine for the grouped kernels (session 12): build, every test, per-kernel GPU
# times of tiled:grouped_mma (tuning variables swept) and of the heuristics' choice, the grouped_g32 suite rows
# (compare.py), a per-kernel trace of one backward and, with NCU=1, an ncu summary of the forward kernel; logs under
# $OUT.
#   CONV2D_EXT_COMMIT=$(git rev-parse --short HEAD) bash benchmarks/grouped_call.sh
# Knobs: TESTS (a pytest -k expression), TEST_S (its time limit), SWEEP and SWEEP2 (kernel_times.py arguments; KT_S their time limit, KT_GRAPH=1 graph timing), AUTO_MODES, COMPARE=0, TRACE=0, NCU=1
# (NCU=2: with per-instruction SASS counters as CSV).
export PYTHONUNBUFFERED=1 CONV2D_EXT_COMMIT=${CONV2D_EXT_COMMIT:-wip}
s=$(date +%s)
nvidia-smi --query-gpu=name,clocks.sm --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'cudnn', torch.backends.cudnn.version())"
TORCH_CUDA_ARCH_LIST=9.0 MAX_JOBS=16 python3 -m pip install --no-build-isolation --no-deps -e . > $OUT/build.log 2>&1 || { tail -30 $OUT/build.log; exit 1; }
echo build $(( $(date +%s) - s ))
grep -E "spill" $OUT/build.log | grep -v " 0 bytes spill stores" | grep -i grouped_mma | head -3
rm -f $OUT/build.log
timeout ${TEST_S:-230} python3 -m pytest -q -n 15 tests ${TESTS:+-k "$TESTS"} > $OUT/tests.txt 2>&1
grep -E "^FAILED|passed|failed" $OUT/tests.txt | cut -c1-250 | tail -12
grep -E "^E " $OUT/tests.txt | sort | uniq -c | sort -rn | head -8
echo tests $(( $(date +%s) - s ))
kt() { timeout "$1" python3 benchmarks/kernel_times.py "${@:2}" 2>&1 | grep -v -i warn | tee -a $OUT/times.txt; }
[ -n "${SWEEP:-}" ] && kt ${KT_S:-45} $SWEEP
[ -n "${SWEEP2:-}" ] && kt ${KT_S:-45} $SWEEP2
kt 40 grouped_g32 ${AUTO_MODES:-fp32,tf32,fp16,bf16} nchw,nhwc forward,backward auto
[ "${COMPARE:-1}" = 1 ] && timeout 70 python3 benchmarks/compare.py --shapes grouped_g32 --pass forward,backward --dtype fp32,tf32,fp16,bf16 \
  --layout nchw,nhwc --quick --no-plot --out $OUT --tag grouped > $OUT/compare.log 2>&1
[ "${COMPARE:-1}" = 1 ] && tail -20 $OUT/compare.log | cut -c1-160
[ "${TRACE:-1}" = 1 ] && (cd benchmarks && timeout 30 python3 profile_case.py --trace grouped_g32 bf16 nhwc backward 2>&1 | grep -v -i warn | head -14 | tee -a $OUT/times.txt)
if [ "${NCU:-0}" != 0 ]; then  # NCU=2: also the per-instruction (SASS) source counters as CSV
  for k in conv_kernel:forward:fwd wgrad_kernel:backward:wgrad; do
    IFS=: read kern pass tag <<< "$k"
    timeout 120 ncu --set full -k regex:$kern -c 1 -o $OUT/$tag -f \
      python3 benchmarks/profile_case.py grouped_g32 bf16 nhwc $pass > /dev/null 2>&1
    ncu -i $OUT/$tag.ncu-rep > $OUT/ncu_$tag.txt 2>&1
    [ "$NCU" = 2 ] && ncu -i $OUT/$tag.ncu-rep --page source --csv --print-source sass > $OUT/${tag}_sass.csv 2>&1
    rm -f $OUT/$tag.ncu-rep
  done
  grep -E "Duration|Memory Throughput|DRAM Throughput|Achieved Occupancy|Theoretical Occupancy|Executed Ipc A" $OUT/ncu_*.txt | head -20
fi
echo total $(( $(date +%s) - s ))
