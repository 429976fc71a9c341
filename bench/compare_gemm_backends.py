#!/usr/bin/env python3
"""Prints a markdown table of the GEMM libraries at CLIP's shapes from two Google Benchmark JSON
files of bench_cpu's BM_gemm_backend (bench/run_cpu_bench.sh): one run with the OpenBLAS core tgpt
selects, one with OPENBLAS_CORETYPE=Prescott forced (OpenBLAS 0.3.21's fallback on a CPU it does
not recognise; only its OpenBLAS column is used). Columns: GFLOP/s of OpenBLAS (selected core),
OpenBLAS Prescott, oneDNN f32, oneDNN bf16, each with its share of the measured peak: the highest
f32 GFLOP/s of any case and backend in the run. Each case shows the best (shortest) of its
repetitions (on a shared machine other work only slows a run down).

usage: compare_gemm_backends.py SELECTED_JSON PRESCOTT_JSON
"""
import json
import sys


def load(path):
    doc = json.load(open(path))
    best = {}
    for b in doc["benchmarks"]:
        if b.get("aggregate_name") or b.get("error_occurred"):
            continue
        name = b.get("run_name", b["name"]).replace("/real_time", "")
        parts = name.split("/")
        if parts[0] != "BM_gemm_backend":
            continue
        shape, backend = "x".join(parts[1:4]), int(parts[4])
        key = (shape, backend)
        if key not in best or b["real_time"] < best[key][0]:
            best[key] = (b["real_time"], b.get("GFLOP/s", 0.0))
    return doc.get("context", {}), best


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: compare_gemm_backends.py SELECTED_JSON PRESCOTT_JSON")
    ctx, sel = load(sys.argv[1])
    pctx, pre = load(sys.argv[2])
    shapes = list(dict.fromkeys(s for s, _ in sel))
    peak = max(gf for (s, b), (_, gf) in sel.items() if b in (0, 1))
    print(f"OpenBLAS core: {ctx.get('blas_core', '?')} (selected), "
          f"{pctx.get('blas_core', '?')} (forced); measured f32 peak {peak:.0f} GFLOP/s")
    print()
    print("| M x K x N | OpenBLAS | OpenBLAS Prescott | oneDNN f32 | oneDNN bf16 | oneDNN f32 / OpenBLAS |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")

    def cell(d, key):
        if key not in d:
            return "—"
        gf = d[key][1]
        return f"{gf:.0f} ({100 * gf / peak:.0f}%)"

    for s in shapes:
        ratio = ""
        if (s, 0) in sel and (s, 1) in sel:
            ratio = f"{sel[(s, 0)][0] / sel[(s, 1)][0]:.2f}x"
        print(f"| {s} | {cell(sel, (s, 0))} | {cell(pre, (s, 0))} | {cell(sel, (s, 1))} "
              f"| {cell(sel, (s, 2))} | {ratio} |")


if __name__ == "__main__":
    main()
