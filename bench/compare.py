#!/usr/bin/env python3
"""Prints a markdown table comparing tgpt's Google Benchmark JSON with a PyTorch JSON
(bench/torch_cpu.py, bench/torch_clip_cpu.py). Cases with an items/s counter are shown as
throughput, the others as GFLOP/s. With repetitions, the medians are compared (both sides report
the median of their repetitions).

usage: compare.py TGPT_JSON TORCH_JSON [TGPT_JSON TORCH_JSON ...]
Several pairs are rounds of the same benchmark run one after the other (bench/run_cpu_bench.sh
alternates tgpt and PyTorch): the table then shows the median time of each side over the rounds,
and the median and range of the per-round speed-ups, so that a slow stretch of a shared machine
that falls on one side shows as a wide range instead of deciding the ratio.

A tgpt case whose name holds "_bf16" (bench_clip_cpu's --precision bf16 model) is compared with
PyTorch's case of the same name without it (PyTorch's f32).
"""
import json
import statistics
import sys


def tgpt_rows(path):
    rows = json.load(open(path))["benchmarks"]
    if any(b.get("aggregate_name") for b in rows):
        rows = [b for b in rows if b.get("aggregate_name") == "median"]
    out = {}
    for b in rows:
        if "items/s" in b:
            rate, unit, key = b["items/s"], "items/s", "items_per_s"
        else:
            rate, unit, key = b.get("GFLOP/s", 0.0), "GFLOP/s", "gflops"
        out[b.get("run_name", b["name"])] = (b["real_time"], rate, unit, key)  # ms
    return out


def torch_name(name, torch_results):
    """The PyTorch case a tgpt case is compared with (its f32 twin for a *_bf16 case)."""
    if name in torch_results or "_bf16" not in name:
        return name
    return name.replace("_bf16", "")


def main():
    args = sys.argv[1:]
    if len(args) < 2 or len(args) % 2:
        sys.exit("usage: compare.py TGPT_JSON TORCH_JSON [TGPT_JSON TORCH_JSON ...]")
    rounds = [(tgpt_rows(args[i]), json.load(open(args[i + 1]))) for i in range(0, len(args), 2)]
    theirs = rounds[0][1]
    print(f"threads: {theirs['threads']}, torch {theirs['torch']}, rounds: {len(rounds)}")
    print()
    multi = len(rounds) > 1
    head = "| case | tgpt ms | torch ms | tgpt rate | torch rate | speed-up (torch ms / tgpt ms) |"
    if multi:
        head += " speed-up range |"
    print(head)
    print("| --- | ---: | ---: | ---: | ---: | ---: |" + (" ---: |" if multi else ""))
    for name in rounds[0][0]:
        ours = [r[0][name] for r in rounds if name in r[0]]
        refs = [r[1]["results"].get(torch_name(name, r[1]["results"])) for r in rounds
                if name in r[0]]
        ms = statistics.median(o[0] for o in ours)
        rate = statistics.median(o[1] for o in ours)
        unit, key = ours[0][2], ours[0][3]
        if any(r is None for r in refs):
            print(f"| {name} | {ms:.3f} | - | {rate:.1f} {unit} | - | - |" + (" - |" if multi else ""))
            continue
        ref_ms = statistics.median(r["ms"] for r in refs)
        ref_rate = statistics.median(r[key] for r in refs)
        ratios = [r["ms"] / o[0] for o, r in zip(ours, refs)]
        line = (f"| {name} | {ms:.3f} | {ref_ms:.3f} | {rate:.1f} {unit} | {ref_rate:.1f} {unit} "
                f"| {statistics.median(ratios):.2f}x |")
        if multi:
            line += f" {min(ratios):.2f}–{max(ratios):.2f}x |"
        print(line)


if __name__ == "__main__":
    main()
