#!/usr/bin/env python3
"""Prints a markdown table comparing tgpt's Google Benchmark JSON with bench/torch_cpu.py's JSON.

usage: compare.py TGPT_JSON TORCH_JSON
"""
import json
import sys


def main():
    ours = json.load(open(sys.argv[1]))
    theirs = json.load(open(sys.argv[2]))
    ref = theirs["results"]
    print(f"threads: {theirs['threads']}, torch {theirs['torch']}")
    print()
    print("| case | tgpt ms | torch ms | tgpt GFLOP/s | torch GFLOP/s | speed-up (torch/tgpt) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for b in ours["benchmarks"]:
        name = b["name"]
        ms = b["real_time"]  # unit is ms (set in bench_cpu.cpp)
        gf = b.get("GFLOP/s", 0.0)
        r = ref.get(name)
        if r is None:
            print(f"| {name} | {ms:.3f} | - | {gf:.1f} | - | - |")
            continue
        print(f"| {name} | {ms:.3f} | {r['ms']:.3f} | {gf:.1f} | {r['gflops']:.1f} | {r['ms'] / ms:.2f}x |")


if __name__ == "__main__":
    main()
