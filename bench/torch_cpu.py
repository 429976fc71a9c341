#!/usr/bin/env python3
"""PyTorch CPU side of the CPU benchmark: the same cases as bench/bench_cpu.cpp.

Prints JSON {case_name: {"ms": ..., "gflops": ...}} with names matching Google Benchmark's
(e.g. "BM_linear/197/768/2304/real_time"). Attention is CLIP's: packed qkv split into heads,
softmax(q kᵀ / sqrt(d) + mask) v, heads merged (torch 1.13 has no fused SDPA on the CPU).
"""
import json
import statistics
import sys
import time

import torch


def timeit(fn, min_time=0.5, repetitions=3, min_calls=3):
    """Median over `repetitions` of the mean time per call over at least min_time seconds (and
    min_calls calls), after one warm-up call: what run_cpu_bench.sh asks of Google Benchmark."""
    fn()
    means = []
    for _ in range(repetitions):
        n, t0 = 0, time.perf_counter()
        while True:
            fn()
            n += 1
            dt = time.perf_counter() - t0
            if dt >= min_time and n >= min_calls:
                means.append(dt / n)
                break
    return statistics.median(means)


def attention(qkv, heads, causal):
    B, T, C3 = qkv.shape
    C = C3 // 3
    D = C // heads
    q, k, v = qkv.split(C, dim=-1)
    q = q.reshape(B, T, heads, D).transpose(1, 2) / D**0.5
    k = k.reshape(B, T, heads, D).transpose(1, 2)
    v = v.reshape(B, T, heads, D).transpose(1, 2)
    s = q @ k.transpose(-1, -2)
    if causal:
        mask = torch.full((T, T), float("-inf")).triu(1)
        s = s + mask
    p = s.softmax(-1)
    return (p @ v).transpose(1, 2).reshape(B, T, C)


def main():
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else torch.get_num_threads()
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    out = {}
    for M, K, N in [(197, 768, 2304), (197, 768, 3072), (1576, 768, 2304), (1576, 768, 768),
                    (1576, 768, 3072), (1576, 3072, 768), (77, 512, 1536), (77, 512, 2048),
                    (1232, 512, 1536), (2048, 2048, 2048)]:
        x, w, b = torch.randn(M, K), torch.randn(N, K) * 0.02, torch.randn(N)
        with torch.no_grad():
            t = timeit(lambda: torch.nn.functional.linear(x, w, b))
        out[f"BM_linear/{M}/{K}/{N}/real_time"] = {"ms": t * 1e3, "gflops": 2 * M * K * N / t * 1e-9}
    for B, T, C, H, causal, bwd in [(16, 77, 512, 8, 1, 0), (16, 77, 512, 8, 1, 1),
                                    (8, 197, 768, 12, 0, 0), (8, 197, 768, 12, 0, 1)]:
        qkv = torch.randn(B, T, 3 * C, requires_grad=bool(bwd))
        g = torch.randn(B, T, C)
        if bwd:
            def step():
                qkv.grad = None
                attention(qkv, H, causal).backward(g)
        else:
            def step():
                with torch.no_grad():
                    attention(qkv, H, causal)
        t = timeit(step)
        flops = 4.0 * B * T * T * C * (3.5 if bwd else 1.0)
        out[f"BM_attention/{B}/{T}/{C}/{H}/{causal}/{bwd}/real_time"] = {"ms": t * 1e3, "gflops": flops / t * 1e-9}
    json.dump({"threads": threads, "torch": torch.__version__, "results": out}, sys.stdout, indent=1)


if __name__ == "__main__":
    main()
