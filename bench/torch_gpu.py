#!/usr/bin/env python3
"""PyTorch side of the GPU benchmark: the cases of bench/tgpt_bench.cu, same names and shapes.

Each case is timed like tgpt-bench (CUDA events, median, an L2-sized memset before every repeat)
and its peak memory is torch.cuda.max_memory_allocated() beyond what was allocated before it.
  attention_fb: packed qkv split into heads, F.scaled_dot_product_attention (FlashAttention /
                cuDNN / efficient backends as PyTorch picks), heads merged; forward + backward.
  vocab_ce_fb:  logits = hidden @ Eᵀ materialised, F.cross_entropy(label_smoothing=0.1,
                ignore_index=-100); forward + backward (E frozen).
  cosine_loss_fb: F.cross_entropy(100 * F.normalize(x) @ Wᵀ, t); forward + backward.
  layernorm_fb, softmax_fb (torch.softmax over the last dim + backward), embedding_fb
  (F.embedding + backward, ids on the device), adamw_step (torch.optim.AdamW(fused=True)),
  linear (F.linear, no grad).
Usage: torch_gpu.py OUT.tsv     (TSV: name, ms, value, unit, pct_of_peak, peak_mb)
"""
import sys

import torch
import torch.nn.functional as F

dev = "cuda"
props = torch.cuda.get_device_properties(0)
flush = torch.empty(int(props.L2_cache_size) * 2, dtype=torch.uint8, device=dev)


def time_ms(fn, repeats):
    fn()
    fn()
    torch.cuda.synchronize()
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    ts = []
    for r in range(repeats):
        flush.fill_(r & 0xFF)
        a.record()
        fn()
        b.record()
        b.synchronize()
        ts.append(a.elapsed_time(b))
    ts.sort()
    return ts[len(ts) // 2]


def peak_mb(fn):
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    fn()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - before) / 1e6


def measure_peaks():
    n = 1 << 30
    src = torch.ones(n, dtype=torch.uint8, device=dev)
    dst = torch.empty_like(src)
    ms = time_ms(lambda: dst.copy_(src), 10)
    copy = 2 * n / ms * 1e-6
    del src, dst
    a = torch.rand(8192, 8192, device=dev, dtype=torch.bfloat16) - 0.5
    b = torch.rand(8192, 8192, device=dev, dtype=torch.bfloat16) - 0.5
    ms = time_ms(lambda: a @ b, 10)
    return copy, 2 * 8192**3 / ms * 1e-9


DT = {"bf16": torch.bfloat16, "f32": torch.float32}


def main():
    out_path = sys.argv[1] if len(sys.argv) > 1 else None
    torch.manual_seed(0)
    copy_gbs, gemm_tflops = measure_peaks()
    print(f"device {props.name}: measured D2D copy {copy_gbs:.0f} GB/s, "
          f"bf16 GEMM {gemm_tflops:.0f} TFLOP/s")
    rows = []

    def case(name, flops, work, repeats, fn):
        try:
            ms = time_ms(fn, repeats)
            value = work / ms * 1e-9 if flops else work / ms * 1e-6
            peak = gemm_tflops if flops else copy_gbs
            rows.append((name, ms, value, "TFLOP/s" if flops else "GB/s", 100 * value / peak,
                         peak_mb(fn)))
        except Exception as e:  # noqa: BLE001 — report and go on
            rows.append((name, 0, 0, "", 0, 0))
            print(f"{name}: failed: {e}")

    for tag, B, T, H, causal, dt in [("text16x77h8", 16, 77, 8, True, "bf16"),
                                     ("text256x77h8", 256, 77, 8, True, "bf16"),
                                     ("vitb16_64x197h12", 64, 197, 12, False, "bf16"),
                                     ("vitl14_32x257h16", 32, 257, 16, False, "bf16"),
                                     ("text16x77h8", 16, 77, 8, True, "f32")]:
        C = H * 64
        qkv = torch.randn(B, T, 3 * C, device=dev, dtype=DT[dt], requires_grad=True)
        g = torch.randn(B, T, C, device=dev, dtype=DT[dt])

        def att(qkv=qkv, g=g, B=B, T=T, H=H, C=C, causal=causal):
            qkv.grad = None
            q, k, v = (t.reshape(B, T, H, 64).transpose(1, 2) for t in qkv.split(C, dim=-1))
            o = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
            o.transpose(1, 2).reshape(B, T, C).backward(g)

        flops = 3.5 * 4.0 * B * T * T * C * (0.5 if causal else 1.0)
        case(f"attention_fb {dt} {tag}", True, flops, 30, att)

    for dt in ["bf16", "f32"]:
        N, W, V = 768, 512, 49408
        h = (torch.randn(N, W, device=dev) * 0.5).to(DT[dt]).requires_grad_(True)
        E = (torch.randn(V, W, device=dev) * 0.05).to(DT[dt])
        t = torch.randint(0, V, (N,), device=dev)
        t[::3] = -100

        def vce(h=h, E=E, t=t):
            h.grad = None
            F.cross_entropy(h @ E.t(), t, label_smoothing=0.1, ignore_index=-100).backward()

        case(f"vocab_ce_fb {dt} 768x512x49408", True, 4.0 * N * W * V, 20, vce)

    N, Fd, K = 8, 1024, 1000
    x = (torch.randn(N, Fd, device=dev) * 2).requires_grad_(True)
    w = (torch.randn(K, Fd, device=dev) * 0.03).requires_grad_(True)
    t = torch.randint(0, K, (N,), device=dev)

    def cos():
        x.grad = None
        w.grad = None
        F.cross_entropy(100.0 * F.normalize(x, dim=-1) @ w.t(), t).backward()

    case("cosine_loss_fb f32 8x1024x1000", False, 3.0 * (N * Fd + K * Fd) * 4, 50, cos)

    for tag, N, C in [("1232x512", 16 * 77, 512), ("12608x768", 64 * 197, 768)]:
        x = torch.randn(N, C, device=dev, dtype=torch.bfloat16, requires_grad=True)
        w = torch.randn(C, device=dev, dtype=torch.bfloat16, requires_grad=True)
        b = torch.randn(C, device=dev, dtype=torch.bfloat16, requires_grad=True)
        dy = torch.randn(N, C, device=dev, dtype=torch.bfloat16)

        def ln(x=x, w=w, b=b, dy=dy, C=C):
            x.grad = w.grad = b.grad = None
            F.layer_norm(x, (C,), w, b, 1e-5).backward(dy)

        case(f"layernorm_fb bf16 {tag}", False, 5.0 * N * C * 2, 50, ln)

    for tag, N, C, dt in [("151296x197", 64 * 12 * 197, 197, "bf16"),
                          ("768x49408", 768, 49408, "f32")]:
        x = (torch.randn(N, C, device=dev) * 3).to(DT[dt]).requires_grad_(True)
        dy = torch.randn(N, C, device=dev, dtype=DT[dt])

        def sm(x=x, dy=dy):
            x.grad = None
            torch.softmax(x, dim=-1).backward(dy)

        case(f"softmax_fb {dt} {tag}", False, 5.0 * N * C * x.element_size(), 30, sm)

    V, C, B, T = 49408, 512, 16, 77
    w = (torch.randn(V, C, device=dev) * 0.02).requires_grad_(True)
    ids = torch.randint(0, V, (B, T), device=dev)
    g = torch.randn(B, T, C, device=dev)

    def emb():
        w.grad = None
        F.embedding(ids, w).backward(g)

    case("embedding_fb f32 1232x49408x512", False, 4.0 * (3.0 * B * T * C + V * C), 30, emb)

    params = [torch.nn.Parameter(torch.randn(4 << 20, device=dev) * 0.02) for _ in range(4)]
    for p in params:
        p.grad = torch.randn_like(p) * 1e-3
    opt = torch.optim.AdamW(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-7, weight_decay=1e-4,
                            fused=True)
    case("adamw_step f32 16M", False, 7.0 * 4 * 16 * (1 << 20), 50, opt.step)

    for tag, M, K, N in [("1232x512x2048", 1232, 512, 2048), ("12608x768x3072", 12608, 768, 3072)]:
        x = torch.randn(M, K, device=dev, dtype=torch.bfloat16)
        w = torch.randn(N, K, device=dev, dtype=torch.bfloat16) * 0.02

        def lin(x=x, w=w):
            with torch.no_grad():
                F.linear(x, w)

        case(f"linear bf16 {tag}", True, 2.0 * M * K * N, 50, lin)

    for r in rows:
        print(f"{r[0]:36s} {r[1]:10.4f} {r[2]:10.2f} {r[3]:8s} {r[4]:6.1f}% {r[5]:9.1f}")
    if out_path:
        with open(out_path, "w") as f:
            f.write(f"# device\t{props.name}\tcopy_gbs\t{copy_gbs:.1f}\tgemm_tflops\t{gemm_tflops:.1f}\n")
            for r in rows:
                f.write("\t".join([r[0], f"{r[1]:.5f}", f"{r[2]:.3f}", r[3], f"{r[4]:.2f}",
                                   f"{r[5]:.2f}", "" if r[1] else "n/a"]) + "\n")


if __name__ == "__main__":
    main()
