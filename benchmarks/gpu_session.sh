#!/usr/bin/env bash
# One GPU session in one command: build, the full test suite (GPU tests included; --large adds the tests of more than
# 2^31 elements), the benchmark against cuDNN (compare.py, given the other arguments) and the host-overhead benchmark
# (overhead.py). Everything goes to $OUT (default /tmp/conv2d_ext_out), at most 8 files (what the GPU machine hands
# back): logs and the JSON results. Remake the tables and the plot here with
# `python benchmarks/compare.py --merge benchmarks/results latest a.json [b.json ...]`. Tests run on TEST_JOBS (15)
# pytest-xdist workers. The closing call of session 6 (H200, about 420 s with the build): `bash benchmarks/gpu_session.sh
# --pass forward,backward --dtype fp32,tf32,fp16,bf16 --layout nchw,nhwc --shapes <all 13 cases> --quick --no-plot`.
# Set CONV2D_EXT_COMMIT to the commit when the tree has no .git.
#   bash benchmarks/gpu_session.sh [--large] [--no-bench] [compare.py arguments...]
set -uo pipefail
OUT=${OUT:-/tmp/conv2d_ext_out}
mkdir -p "$OUT"
large=0; bench=1; args=()
for a in "$@"; do
  case "$a" in --large) large=1 ;; --no-bench) bench=0 ;; *) args+=("$a") ;; esac
done
export PYTHONUNBUFFERED=1
status=0

nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$OUT/gpu.txt"

start=$(date +%s)
if ! MAX_JOBS=${MAX_JOBS:-16} python3 -m pip install --no-build-isolation --no-deps -e . > "$OUT/build.log" 2>&1; then
  tail -40 "$OUT/build.log"; echo "BUILD FAILED"; exit 1
fi
echo "build: $(( $(date +%s) - start )) s"

run_tests() {  # run_tests LOG [pytest arguments...]: the log's tail on stdout; status=1 if anything failed
  local log=$1; shift
  # the CPU emulator's tests (test_emulation.py: minutes of g++) run in CI, not on the GPU machine
  python3 -m pytest -q -rs -n "${TEST_JOBS:-15}" --ignore=tests/test_emulation.py "$@" tests 2>&1 | tee "$OUT/$log" |
    tail -25
  grep -qE "[0-9]+ (failed|error)" "$OUT/$log" && status=1
}
run_tests pytest.log
[ "$large" = 1 ] && run_tests pytest_large.log -m large

if [ "$bench" = 1 ]; then
  python3 benchmarks/compare.py --out "$OUT" "${args[@]}" > "$OUT/compare.log" 2>&1 || status=1
  tail -70 "$OUT/compare.log"
  rm -f "$OUT"/*.csv "$OUT"/*.md "$OUT"/*.png  # tables and plot: remade with --merge
  python3 benchmarks/overhead.py --out "$OUT" 2>&1 | tee "$OUT/overhead.log" || status=1
fi
exit $status
