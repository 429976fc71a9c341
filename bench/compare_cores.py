#!/usr/bin/env python3
"""Prints a markdown table of tgpt's GEMM speed with two OpenBLAS cores: two Google Benchmark JSON
files of bench_cpu (bench/run_cpu_bench.sh runs it with OPENBLAS_CORETYPE=Prescott, the kernels
OpenBLAS 0.3.21 falls back to on a CPU it does not recognise, and with the kernels tgpt selects,
kernels/cpu/blas_setup.h). The core of each run is read from the JSON's context (blas_core).
Each case shows the best (shortest) of its repetitions: on a shared machine other work only ever
slows a run down, so the best is the closest to what the kernels do on their own.

usage: compare_cores.py BASELINE_JSON SELECTED_JSON
"""
import json
import sys


def load(path):
    doc = json.load(open(path))
    rows = [b for b in doc["benchmarks"] if not b.get("aggregate_name")]
    ctx = doc.get("context", {})
    best = {}
    for b in rows:
        name = b.get("run_name", b["name"])
        if name not in best or b["real_time"] < best[name][0]:
            best[name] = (b["real_time"], b.get("GFLOP/s", 0.0))
    return ctx.get("blas_core", "?"), ctx.get("blas_core_reason", ""), best


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: compare_cores.py BASELINE_JSON SELECTED_JSON")
    base_core, base_reason, base = load(sys.argv[1])
    sel_core, sel_reason, sel = load(sys.argv[2])
    print(f"baseline: {base_core} ({base_reason})")
    print(f"selected: {sel_core} ({sel_reason})")
    print()
    print(f"| case (best of repetitions) | {base_core} ms | {base_core} GFLOP/s | {sel_core} ms "
          f"| {sel_core} GFLOP/s | speed-up |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, (ms_b, gf_b) in base.items():
        if name not in sel:
            continue
        ms_s, gf_s = sel[name]
        case = name.replace("/real_time", "")
        print(f"| {case} | {ms_b:.2f} | {gf_b:.1f} | {ms_s:.2f} | {gf_s:.1f} | {ms_b / ms_s:.2f}x |")


if __name__ == "__main__":
    main()
