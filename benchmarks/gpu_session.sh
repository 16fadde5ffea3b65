#!/usr/bin/env bash
# Everything one GPU session needs, in one command: build, the full test suite (GPU tests included), then the
# benchmark against cuDNN. Logs and results go to $OUT (default /tmp/conv2d_ext_out). The whole default suite takes
# about 7 minutes on an H100 with the direct kernels: split it by --dtype across calls, then join the JSONs with
# `python benchmarks/compare.py --merge benchmarks/results latest a.json b.json`. Set CONV2D_EXT_COMMIT to the
# commit when the tree has no .git.
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

python3 -m pytest -q -rs tests 2>&1 | tee "$OUT/pytest.log" | tail -25 || true
grep -qE "[0-9]+ (failed|error)" "$OUT/pytest.log" && status=1
if [ "$large" = 1 ]; then
  python3 -m pytest -q -rs -m large tests 2>&1 | tee "$OUT/pytest_large.log" | tail -5 || true
  grep -qE "[0-9]+ (failed|error)" "$OUT/pytest_large.log" && status=1
fi

if [ "$bench" = 1 ]; then
  python3 benchmarks/compare.py --out "$OUT" "${args[@]}" 2> "$OUT/compare.err" | tee "$OUT/compare.log" | tail -70
  [ "${PIPESTATUS[0]}" = 0 ] || status=1
  rm -f "$OUT"/*.csv "$OUT"/*.md  # the device tool returns at most 8 files: keep the JSON, remake the rest with --merge
fi
exit $status
