# A development call on the GPU machine (device tool): build, the tests the change touches (TESTS: a pytest -k
# expression; stops there if any fails), per-pass timings (PASSES_ARGS: backward_passes.py's arguments, e.g.
# "r50_conv1,seed fp32,bf16 nchw,nhwc forward,backward_data"; none skips them), another command (EXTRA, EXTRA_TIMEOUT
# seconds, default 150; its last EXTRA_LINES lines shown, default 40) and a per-kernel trace
# (profile_case.py --trace TRACE_ARGS; TRACE=0 skips it), logs under $OUT (at most 8 files come back). TESTS unset
# runs the whole GPU suite (~180 s on the H100: TESTS_TIMEOUT seconds, default 200). With CLOSING=1 it goes on to
# the closing run (gpu_session.sh: every test, the whole suite, host overhead) in the same call:
#   CLOSING=1 CONV2D_EXT_COMMIT=$(git rev-parse --short HEAD) TESTS=grouped TRACE=0 bash benchmarks/device_run.sh
set -o pipefail
export PYTHONUNBUFFERED=1 CONV2D_EXT_COMMIT=${CONV2D_EXT_COMMIT:-wip}
start=$(date +%s)
TORCH_CUDA_ARCH_LIST=9.0 MAX_JOBS=16 python3 -m pip install --no-build-isolation --no-deps -e . > $OUT/build.log 2>&1 || { tail -30 $OUT/build.log; exit 1; }
grep -E "spill" $OUT/build.log | grep -v " 0 bytes spill stores" | head -5
echo build $(( $(date +%s) - start )) s
timeout ${TESTS_TIMEOUT:-200} python3 -m pytest -q -n 15 --ignore=tests/test_emulation.py tests ${TESTS:+-k "$TESTS"} > $OUT/dev.txt 2>&1
grep -E "^FAILED|^ERROR|passed|failed" $OUT/dev.txt | cut -c1-220 | tail -15
grep -qE "[0-9]+ (failed|error)" $OUT/dev.txt && { grep -E "^E " $OUT/dev.txt | sort | uniq -c | sort -rn | head; exit 1; }
: > $OUT/dev.txt
echo tests $(( $(date +%s) - start )) s
[ "${PASSES_ARGS:-}" = none ] || timeout 150 python3 benchmarks/backward_passes.py ${PASSES_ARGS:-seed,unet_3x3,r50_3x3_64 tf32 nchw backward_weight} 2>&1 | grep -v -i warn | tee -a $OUT/dev.txt | cut -c1-400
[ -n "${EXTRA:-}" ] && timeout ${EXTRA_TIMEOUT:-150} bash -c "$EXTRA" 2>&1 | grep -v -i warn | tee -a $OUT/dev.txt | tail -${EXTRA_LINES:-40}
[ "${TRACE:-1}" = 1 ] && (cd benchmarks && timeout 40 python3 profile_case.py --trace ${TRACE_ARGS:-seed tf32 nchw backward}) 2>&1 | grep -v -i warn | tee -a $OUT/dev.txt | head -16
echo dev $(( $(date +%s) - start )) s
rm -f $OUT/build.log
[ "${CLOSING:-0}" = 1 ] || exit 0
bash benchmarks/gpu_session.sh --pass forward,backward --dtype fp32,tf32,fp16,bf16 --layout nchw,nhwc \
  --shapes seed,r50_conv1,r50_3x3_64,r50_1x1,r50_3x3_128_s2,r50_3x3_256,r50_3x3_512,unet_3x3,dilated,depthwise_3x3,depthwise_7x7,grouped_g32,batch1_3x3 \
  --quick --no-plot 2>&1 | grep -vE "^\s*$" | tail -40
rm -f $OUT/build.log
echo total $(( $(date +%s) - start )) s
