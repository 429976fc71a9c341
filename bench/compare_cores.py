#!/usr/bin/env python3
"""Prints a markdown table of tgpt's GEMM speed with two OpenBLAS cores: two Google Benchmark JSON
files of bench_cpu (bench/run_cpu_bench.sh runs it with OPENBLAS_CORETYPE=Prescott, the kernels
OpenBLAS 0.3.21 falls back to on a CPU it does not recognise, and with the kernels tgpt selects,
kernels/cpu/blas_setup.h). The core of each run is read from the JSON's context (blas_core).

usage: compare_cores.py BASELINE_JSON SELECTED_JSON
"""
import json
import sys


def load(path):
    doc = json.load(open(path))
    rows = doc["benchmarks"]
    if any(b.get("aggregate_name") for b in rows):
        rows = [b for b in rows if b.get("aggregate_name") == "median"]
    ctx = doc.get("context", {})
    core = ctx.get("blas_core", "?")
    return core, ctx.get("blas_core_reason", ""), {
        b.get("run_name", b["name"]): (b["real_time"], b.get("GFLOP/s", 0.0)) for b in rows}


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: compare_cores.py BASELINE_JSON SELECTED_JSON")
    base_core, base_reason, base = load(sys.argv[1])
    sel_core, sel_reason, sel = load(sys.argv[2])
    print(f"baseline: {base_core} ({base_reason})")
    print(f"selected: {sel_core} ({sel_reason})")
    print()
    print(f"| case | {base_core} ms | {base_core} GFLOP/s | {sel_core} ms | {sel_core} GFLOP/s "
          "| speed-up |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, (ms_b, gf_b) in base.items():
        if name not in sel:
            continue
        ms_s, gf_s = sel[name]
        case = name.replace("/real_time", "")
        print(f"| {case} | {ms_b:.2f} | {gf_b:.1f} | {ms_s:.2f} | {gf_s:.1f} | {ms_b / ms_s:.2f}x |")


if __name__ == "__main__":
    main()
