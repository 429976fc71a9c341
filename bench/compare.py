#!/usr/bin/env python3
"""Prints a markdown table comparing tgpt's Google Benchmark JSON with a PyTorch JSON
(bench/torch_cpu.py, bench/torch_clip_cpu.py). Cases with an items/s counter are shown as
throughput, the others as GFLOP/s. With repetitions, the medians are compared (both sides report
the median of 5 repetitions).

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
    print("| case | tgpt ms | torch ms | tgpt rate | torch rate | speed-up (torch ms / tgpt ms) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    rows = ours["benchmarks"]
    if any(b.get("aggregate_name") for b in rows):  # repetitions: compare the medians
        rows = [b for b in rows if b.get("aggregate_name") == "median"]
    for b in rows:
        name = b.get("run_name", b["name"])
        ms = b["real_time"]  # the benchmarks report milliseconds
        if "items/s" in b:
            rate, unit, key = b["items/s"], "items/s", "items_per_s"
        else:
            rate, unit, key = b.get("GFLOP/s", 0.0), "GFLOP/s", "gflops"
        r = ref.get(name)
        if r is None:
            print(f"| {name} | {ms:.3f} | - | {rate:.1f} {unit} | - | - |")
            continue
        print(f"| {name} | {ms:.3f} | {r['ms']:.3f} | {rate:.1f} {unit} | {r[key]:.1f} {unit} "
              f"| {r['ms'] / ms:.2f}x |")


if __name__ == "__main__":
    main()
