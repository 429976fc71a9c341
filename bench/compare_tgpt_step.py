#!/usr/bin/env python3
"""Table of bench/run_tgpt_step_bench.sh's JSON lines: per round, tgpt and PyTorch seconds per
iteration (median and min of the timed iterations), their ratio (PyTorch / tgpt, above 1: tgpt is
faster), process CPU time per iteration and its ratio, both peak RSS, and the phase medians. Usage: compare_tgpt_step.py FILE.jsonl"""
import json
import statistics
import sys


def main():
    rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
    rounds = sorted({r["round"] for r in rows})
    precision = sorted({r.get("precision", "f32") for r in rows if r["impl"] == "tgpt"})
    print(f"tgpt frozen-CLIP precision: {', '.join(precision)}; PyTorch: f32\n")
    print("| round | tgpt s/iter (median, min) | torch s/iter (median, min) | speed-up (median) "
          "| tgpt CPU s/iter | torch CPU s/iter | CPU-time ratio | tgpt peak RSS MB | torch peak RSS MB |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    ratios = []
    for r in rounds:
        t = next(x for x in rows if x["round"] == r and x["impl"] == "tgpt")
        p = next(x for x in rows if x["round"] == r and x["impl"] == "torch")
        ratio = p["median_s"] / t["median_s"]
        ratios.append(ratio)
        print(f"| {r} | {t['median_s']:.2f}, {t['min_s']:.2f} | {p['median_s']:.2f}, {p['min_s']:.2f} "
              f"| {ratio:.2f}x | {t['cpu_s_median']:.2f} | {p['cpu_s_median']:.2f} "
              f"| {p['cpu_s_median'] / t['cpu_s_median']:.2f}x "
              f"| {t['peak_rss_mb']:.0f} | {p['peak_rss_mb']:.0f} |")
    print(f"\nspeed-up median {statistics.median(ratios):.2f}x, range {min(ratios):.2f}-{max(ratios):.2f}x")
    for impl in ("tgpt", "torch"):
        ph = {}
        for x in rows:
            if x["impl"] == impl:
                for k, v in x["phases_median_s"].items():
                    ph.setdefault(k, []).append(v)
        print(f"{impl} phases (median over rounds, s): " +
              ", ".join(f"{k} {statistics.median(v):.2f}" for k, v in ph.items()))


if __name__ == "__main__":
    main()
