#!/usr/bin/env python3
"""The roofline table of benchmarks/NOTES.md from a compare.py results JSON (no GPU needed):

    python benchmarks/roofline.py benchmarks/results/latest.json > /tmp/roofline.md

floor = max(FLOPs / ceiling, minimum bytes / bandwidth); ceilings on the H200 (NOTES, "Ceilings and floors"): 790
TFLOP/s fp16/bf16 (cuBLAS), 395 TF32, 51 fp32 on CUDA cores (also for the FFMA depthwise and grouped kernels in every
mode, except rows whose kernels are all tiled:grouped_mma, on tensor cores), 4.3 TB/s. Backward rows carry both passes' FLOPs and bytes; "of floor" = floor / ours; kernels as the
heuristics chose them (ig: implicit_gemm; backward: backward-data + backward-weight); limit: whichever term sets
the floor.
"""
import json
import sys

CEILING = {"fp32": 51e12, "tf32": 395e12, "fp16": 790e12, "bf16": 790e12}
BANDWIDTH = 4.3e12
FFMA_CASES = ("depthwise", "grouped")  # CUDA-core kernels in every mode


def kernels(row):
    picks = dict(line.split(": ", 1) for line in (row.get("explain") or "").split("\n") if ": " in line)
    short = {p: picks.get(p, "?").split(" ")[0].replace("implicit_gemm:", "ig:") for p in
             ("forward", "backward_data", "backward_weight")}
    return short["forward"] if row["pass"] == "forward" else f'{short["backward_data"]} + {short["backward_weight"]}'


def main(path):
    rows = json.load(open(path))["rows"]
    print("| case | mode | layout | pass | GFLOP | MB | floor ms | ours ms | of floor | cuDNN ms | speedup | kernel(s) "
          "| limit |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        names = kernels(r).split(" + ")
        cuda_cores = r["case"].startswith(FFMA_CASES) and not all(n == "tiled:grouped_mma" for n in names)
        ceiling = CEILING["fp32"] if cuda_cores else CEILING[r["dtype"]]
        math_ms, memory_ms = r["flops"] / ceiling * 1e3, r["bytes"] / BANDWIDTH * 1e3
        floor = max(math_ms, memory_ms)
        print(f'| {r["case"]} | {r["dtype"]} | {r["layout"]} | {r["pass"][:3]} | {r["flops"] / 1e9:.1f} | '
              f'{r["bytes"] / 1e6:.0f} | {floor:.3f} | {r["ours_ms"]:.3f} | {floor / r["ours_ms"]:.0%} | '
              f'{r["cudnn_ms"]:.3f} | {r["speedup"]:.2f}x | {kernels(r)} | {"math" if math_ms >= memory_ms else "memory"} |')


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "benchmarks/results/latest.json")
