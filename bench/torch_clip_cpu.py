#!/usr/bin/env python3
"""PyTorch CPU side of the CLIP benchmark: ViT-B/16 encode_image (batch 8) and encode_text
(16 x 77 tokens, EOT last) with random weights of the real shapes, using our PyTorch reference
model (tests/golden/clip_ref.py: the same operations as openai/CLIP's modules, in f32).

Prints JSON like bench/torch_cpu.py with names matching bench/bench_clip_cpu.cpp.
"""
import json
import pathlib
import sys

import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "tests" / "golden"))
import clip_ref  # noqa: E402
import gen_clip_model  # noqa: E402
from torch_cpu import timeit  # noqa: E402  (same rule as the op benchmarks)

CFG = dict(embed_dim=512, image_resolution=224, vision_layers=12, vision_width=768,
           vision_patch_size=16, vision_heads=12, context_length=77, vocab_size=49408,
           transformer_width=512, transformer_heads=8, transformer_layers=12,
           activation="quick_gelu")


def main():
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else torch.get_num_threads()
    torch.set_num_threads(threads)
    g = torch.Generator().manual_seed(0)
    sd = gen_clip_model.random_state_dict(CFG, g)
    images = torch.randn(8, 3, 224, 224, generator=g)
    tokens = torch.randint(1, 49406, (16, 77), generator=g)
    tokens[:, 0] = 49406
    tokens[:, 76] = 49407
    out = {}
    with torch.no_grad():
        t = timeit(lambda: clip_ref.encode_image(sd, CFG, images, torch.float32), min_time=1.0, min_calls=1)
        out["BM_clip_encode_image/8/real_time"] = {"ms": t * 1e3, "gflops": 0.0, "items_per_s": 8 / t}
        t = timeit(lambda: clip_ref.encode_text(sd, CFG, tokens, torch.float32), min_time=1.0, min_calls=1)
        out["BM_clip_encode_text/16/real_time"] = {"ms": t * 1e3, "gflops": 0.0, "items_per_s": 16 / t}
    json.dump({"threads": threads, "torch": torch.__version__, "results": out}, sys.stdout, indent=1)


if __name__ == "__main__":
    main()
