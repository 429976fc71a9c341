#!/usr/bin/env python3
"""Side-by-side table of tgpt-bench and bench/torch_gpu.py results (TSV files of both).

Usage: compare_gpu.py TGPT.tsv TORCH.tsv  -> markdown table on stdout with, per case, both times,
the speed-up (torch ms / tgpt ms, > 1 means tgpt is faster), both rates with their percentage of
the measured device peak, both peak memories and the memory ratio (torch / tgpt).
"""
import sys


def load(path):
    head, rows = "", {}
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("#"):
                head = line[2:].replace("\t", " ")
                continue
            p = line.split("\t")
            if len(p) < 6:
                continue
            na = len(p) > 6 and p[6] == "n/a"
            rows[p[0]] = None if na else (float(p[1]), float(p[2]), p[3], float(p[4]), float(p[5]))
    return head, rows


def main():
    th, tg = load(sys.argv[1])
    ph, pt = load(sys.argv[2])
    print(f"tgpt:  {th}\ntorch: {ph}\n")
    print("| case | tgpt ms | torch ms | speed-up | tgpt rate (%peak) | torch rate (%peak) "
          "| tgpt MB | torch MB | mem ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in list(tg) + [n for n in pt if n not in tg]:
        a, b = tg.get(name), pt.get(name)
        fa = (f"{a[0]:.4f}", f"{a[1]:.1f} {a[2]} ({a[3]:.0f}%)", f"{a[4]:.1f}") if a else ("n/a",) * 3
        fb = (f"{b[0]:.4f}", f"{b[1]:.1f} {b[2]} ({b[3]:.0f}%)", f"{b[4]:.1f}") if b else ("n/a",) * 3
        sp = f"{b[0] / a[0]:.2f}x" if a and b and a[0] > 0 else "-"
        mr = f"{b[4] / a[4]:.1f}x" if a and b and a[4] > 0 else "-"
        print(f"| {name} | {fa[0]} | {fb[0]} | {sp} | {fa[1]} | {fb[1]} | {fa[2]} | {fb[2]} | {mr} |")


if __name__ == "__main__":
    main()
