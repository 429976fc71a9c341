#!/usr/bin/env python3
"""PyTorch side of bench/clip_gpu_bench.cu: CLIP ViT-B/16 encode_image at batch 256 and encode_text
at 256 x 77 tokens (EOT last), random weights of the real shapes, the model an nn.Module CLIP with
OpenAI's structure (tests/golden/clip_nn.py: nn.MultiheadAttention, LayerNorm in f32) converted
to bf16 or f16 as a user would run it, under torch.no_grad(), inputs on the device.

Timing like the tgpt runner (CUDA events, median, an L2-sized memset before every repeat); peak
memory is torch.cuda.max_memory_allocated() beyond what was allocated before the call.
Usage: torch_clip_gpu.py OUT.tsv     (TSV: name, ms, value, unit, pct_of_peak, peak_mb)
"""
import math
import pathlib
import sys

import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "tests" / "golden"))
import clip_nn  # noqa: E402
import gen_clip_model  # noqa: E402
from torch_gpu import measure_peaks, peak_mb, time_ms  # noqa: E402

CFG = dict(embed_dim=512, image_resolution=224, vision_layers=12, vision_width=768,
           vision_patch_size=16, vision_heads=12, context_length=77, vocab_size=49408,
           transformer_width=512, transformer_heads=8, transformer_layers=12,
           activation="quick_gelu")
B = 256


def tower_flops(T, W, layers):
    return layers * (2.0 * T * W * W * (3 + 1 + 8) + 4.0 * T * T * W)


def image_flops(c):
    grid = c["image_resolution"] // c["vision_patch_size"]
    patch = 2.0 * grid * grid * c["vision_width"] * 3 * c["vision_patch_size"] ** 2
    return (patch + tower_flops(grid * grid + 1, c["vision_width"], c["vision_layers"])
            + 2.0 * c["vision_width"] * c["embed_dim"])


def text_flops(c):
    return (tower_flops(c["context_length"], c["transformer_width"], c["transformer_layers"])
            + 2.0 * c["transformer_width"] * c["embed_dim"])


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else None
    copy_gbs, gemm_tflops = measure_peaks()
    g = torch.Generator().manual_seed(0)
    sd = gen_clip_model.random_state_dict(CFG, g)
    images = torch.randn(B, 3, 224, 224, generator=g).cuda()
    tokens = torch.randint(1, 49406, (B, 77), generator=g)
    tokens[:, 0] = 49406
    tokens[:, 76] = 49407
    tokens = tokens.cuda()
    rows = []
    for dt, tag in ((torch.bfloat16, "bf16"), (torch.float16, "f16")):
        model = clip_nn.ClipNN(CFG).eval()
        model.load_state_dict(sd)
        model = model.to("cuda", dt)
        with torch.no_grad():
            for name, fn, flops, unit in (
                    (f"clip_encode_image {tag} vitb16 b256", lambda: model.encode_image(images),
                     image_flops(CFG), "img/s"),
                    (f"clip_encode_text {tag} vitb16 256x77", lambda: model.encode_text(tokens),
                     text_flops(CFG), "seq/s")):
                ms = time_ms(fn, 10)
                pct = 100.0 * (B * flops / ms * 1e-9) / gemm_tflops
                rows.append((name, ms, B / ms * 1e3, unit, pct, peak_mb(fn)))
        del model
        torch.cuda.empty_cache()
    print(f"{'case':40s} {'ms':>10s} {'rate':>10s} unit     %peak")
    for r in rows:
        print(f"{r[0]:40s} {r[1]:10.4f} {r[2]:10.2f} {r[3]:8s} {r[4]:5.1f}% {r[5]:9.1f} MB")
    if out:
        with open(out, "w") as f:
            f.write(f"# device\t{torch.cuda.get_device_name(0)}\tcopy_gbs\t{copy_gbs:.1f}"
                    f"\tgemm_tflops\t{gemm_tflops:.1f}\ttorch\t{torch.__version__}\n")
            for r in rows:
                f.write(f"{r[0]}\t{r[1]:.5f}\t{r[2]:.3f}\t{r[3]}\t{r[4]:.2f}\t{r[5]:.2f}\t\n")


if __name__ == "__main__":
    main()
