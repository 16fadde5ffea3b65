#!/usr/bin/env bash
# Nsight Compute summaries of one kernel launch per suite case (a development tool, for the GPU machine): for each
# argument "case mode layout pass [kernel]" (profile_case.py's arguments), the first launch whose name matches
# KERNEL_REGEX (default conv_kernel) under SpeedOfLight, Occupancy, WarpStateStats and MemoryWorkloadAnalysis, the
# clocks left alone (--clock-control none, as the device notes ask), the key lines only:
#   bash benchmarks/ncu_cases.sh "depthwise_3x3 fp32 nhwc forward" "depthwise_3x3 bf16 nchw forward"
#   KERNEL_REGEX=wgrad bash benchmarks/ncu_cases.sh "depthwise_3x3 fp32 nhwc backward_weight"
# STALLS=1 prints instead the warp-stall breakdown (smsp__average_warps_issue_stalled_*_per_issue_active, cycles per issued
# instruction by reason) and the duration, the lines over 0.05 only:
#   STALLS=1 KERNEL_REGEX=forward_tma bash benchmarks/ncu_cases.sh "r50_3x3_256 tf32 nchw forward"
# SOURCE=DIR writes instead each case's per-SASS-instruction page (DIR/<case words>.sass.csv.gz: warp-stall samples
# by reason per instruction; the report itself under /tmp; benchmarks/sass_stalls.py summarizes them):
#   SOURCE=$OUT KERNEL_REGEX=forward_tma bash benchmarks/ncu_cases.sh "r50_3x3_512 tf32 nchw forward"
cd "$(dirname "$0")"
for args in "$@"; do
  echo "== $args"
  if [ -n "${SOURCE:-}" ]; then
    name=$(echo "$args" | tr ' ' '_') rep=/tmp/ncu_$(echo "$args" | tr ' ' '_')
    # shellcheck disable=SC2086
    timeout 300 ncu --clock-control none --section SourceCounters --section WarpStateStats --section SpeedOfLight \
      -k "regex:${KERNEL_REGEX:-conv_kernel}" -c 1 -f -o "$rep" python3 profile_case.py $args 2>&1 | tail -2
    ncu -i "$rep.ncu-rep" --page source --csv --print-source sass > "$SOURCE/$name.sass.csv" ||
      ncu -i "$rep.ncu-rep" --page source --csv > "$SOURCE/$name.sass.csv"
    ncu -i "$rep.ncu-rep" --page details 2>&1 | grep -E "Duration|Cycles Per Issued|Throughput" | head -8
    wc -l "$SOURCE/$name.sass.csv" && gzip -f "$SOURCE/$name.sass.csv"
    continue
  fi
  if [ "${STALLS:-0}" = 1 ]; then
    # shellcheck disable=SC2086
    timeout 90 ncu --clock-control none --metrics "regex:smsp__average_warps_issue_stalled_.*_per_issue_active\\.ratio,gpu__time_duration.sum" \
      -k "regex:${KERNEL_REGEX:-conv_kernel}" -c 1 python3 profile_case.py $args 2>&1 |
      awk '/^  [a-zA-Z_]/ || /gpu__time_duration|ERR/ || ($NF + 0 > 0.05 && /stalled/)'
    continue
  fi
  # shellcheck disable=SC2086  # the case's words are profile_case.py's arguments
  timeout 90 ncu --clock-control none --section SpeedOfLight --section Occupancy --section WarpStateStats \
    --section MemoryWorkloadAnalysis -k "regex:${KERNEL_REGEX:-conv_kernel}" -c 1 python3 profile_case.py $args 2>&1 |
    grep -E "^  [a-zA-Z_]|Throughput|Duration|Achieved Occupancy|Theoretical Occupancy|Registers Per|Cycles Per Issued|Hit Rate|Mem Busy|Max Bandwidth|Block Limit|ERR"
done
