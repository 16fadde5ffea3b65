#!/usr/bin/env bash
# Nsight Compute summaries of one kernel launch per suite case (a development tool, for the GPU machine): for each
# argument "case mode layout pass [kernel]" (profile_case.py's arguments), the first launch whose name matches
# KERNEL_REGEX (default conv_kernel) under SpeedOfLight, Occupancy, WarpStateStats and MemoryWorkloadAnalysis, the
# clocks left alone (--clock-control none, as the device notes ask), the key lines only:
#   bash benchmarks/ncu_cases.sh "depthwise_3x3 fp32 nhwc forward" "depthwise_3x3 bf16 nchw forward"
#   KERNEL_REGEX=wgrad bash benchmarks/ncu_cases.sh "depthwise_3x3 fp32 nhwc backward_weight"
cd "$(dirname "$0")"
for args in "$@"; do
  echo "== $args"
  # shellcheck disable=SC2086  # the case's words are profile_case.py's arguments
  timeout 90 ncu --clock-control none --section SpeedOfLight --section Occupancy --section WarpStateStats \
    --section MemoryWorkloadAnalysis -k "regex:${KERNEL_REGEX:-conv_kernel}" -c 1 python3 profile_case.py $args 2>&1 |
    grep -E "^  [a-zA-Z_]|Throughput|Duration|Achieved Occupancy|Theoretical Occupancy|Registers Per|Cycles Per Issued|Hit Rate|Mem Busy|Max Bandwidth|Block Limit|ERR"
done
