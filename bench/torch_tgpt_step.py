#!/usr/bin/env python3
"""PyTorch CPU side of bench/bench_tgpt_step.cpp: one TGP-T (or CoOp) training iteration at CLIP
ViT-B/16 shapes with random weights, in f32, from our PyTorch references (tests/golden/tgpt_ref.py,
coop_ref.py: the official code's math with plain torch ops).

TGP-T iteration, as tgpt_ref.replay runs it: zero_grad; image encoder under no_grad (cls [B,E],
tokens [B,197,E]); both Bonders; the text encoder on the 2·B prompts (the reference, like the
official code, runs all 77 positions); fused head logits; the three losses (the vocabulary CEs
materialise [B·N, 49408] logits); backward; torch.optim.AdamW (betas 0.9/0.999, eps 1e-7,
wd 1e-4) on every trainable tensor.
CoOp iteration (--method coop): image encoder under no_grad, text encoder on all C class prompts
(77 positions each) forward and backward, cosine logits, CE, SGD (momentum 0.9, wd 5e-4) on ctx.

--device cuda runs it on the GPU (f32; cuda_peak_allocated_mb: torch.cuda.max_memory_allocated
over the timed iterations). Prints JSON lines like the C++ benchmark: {"kind":"iter",...} per timed iteration and one
{"kind":"summary",...} with median_s, min_s, phases_median_s and peak_rss_mb (VmHWM over the
timed iterations, reset through /proc/self/clear_refs; over the whole run if that is refused) and
cpu_s_median (process CPU time per iteration, all threads).

Usage: /usr/bin/python3 bench/torch_tgpt_step.py [--method tgpt|coop] [--device cpu|cuda]
         [--threads N] [--batch 8]
         [--classes 1000] [--category-queries 32] [--content-queries 64] [--warmup 1] [--iters 3]
         [--sentence-words N] [--caption-words N]   (as the C++ benchmark; 0 = every target a word)
"""
import argparse
import json
import pathlib
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "tests" / "golden"))
import clip_ref  # noqa: E402
import coop_ref  # noqa: E402
import gen_clip_model  # noqa: E402
import gen_tgpt  # noqa: E402
import tgpt_ref  # noqa: E402

CFG = dict(embed_dim=512, image_resolution=224, vision_layers=12, vision_width=768,
           vision_patch_size=16, vision_heads=12, context_length=77, vocab_size=49408,
           transformer_width=512, transformer_heads=8, transformer_layers=12,
           activation="quick_gelu")
SOT, EOT, PERIOD, X = 49406, 49407, 269, 343
DT = torch.float32


def sentence_tokens(g, rows, words):
    """[rows, 77]: SOT, `words` random word ids, EOT, padding (as the C++ benchmark)."""
    t = torch.zeros(rows, 77, dtype=torch.int64)
    t[:, 0] = SOT
    t[:, 1:1 + words] = torch.randint(1, 49405, (rows, words), generator=g)
    t[:, 1 + words] = EOT
    return t


def reset_peak_rss():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return -1.0


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def tgpt_setup(a, g):
    dev = torch.device(a.device)
    sd = gen_clip_model.random_state_dict(CFG, g)
    tg = tgpt_ref.leaves(gen_tgpt.random_tgpt_state(sd, CFG, a.category_queries, a.content_queries,
                                                    a.classes, g), DT)
    sd = {k: v.to(dev) for k, v in sd.items()}
    tg = {k: v.detach().to(dev).requires_grad_(v.requires_grad) for k, v in tg.items()}
    names = tgpt_ref.trainable_names(tg)
    opt = torch.optim.AdamW([tg[n] for n in names], lr=1e-4, **tgpt_ref.ADAMW)
    B, C = a.batch, a.classes
    images = torch.randn(B, 3, 224, 224, generator=g).to(dev)
    labels = torch.randint(0, C, (B,), generator=g).to(dev)
    captions = sentence_tokens(g, B, a.caption_words).to(dev)
    sentences = sentence_tokens(g, C, a.sentence_words).to(dev)

    def step():
        ph = {}
        t = time.perf_counter()

        def mark(name):
            nonlocal t
            sync(dev)
            t1 = time.perf_counter()
            ph[name] = t1 - t
            t = t1

        opt.zero_grad(set_to_none=True)
        with torch.no_grad():
            image_cls, image_tokens = clip_ref.encode_image(sd, CFG, images, DT)
        mark("encode_images")
        # tgpt_ref.forward after its image encoder
        out_cat = tgpt_ref.bonder(tg, "prompt_learner.bonder_category",
                                  tg["prompt_learner.query_category"], image_tokens, DT)
        out_con = tgpt_ref.bonder(tg, "prompt_learner.bonder_content",
                                  tg["prompt_learner.query_content"], image_tokens, DT)
        t_cat, _ = tgpt_ref.text_features(sd, CFG, out_cat, DT)
        t_con, _ = tgpt_ref.text_features(sd, CFG, out_con, DT)
        fused = torch.cat([image_cls, (t_cat + t_con) / 2], dim=-1)
        fwd = dict(out_cat=out_cat, out_con=out_con,
                   logits=tgpt_ref.head_logits(fused, tg["cls_head.fc.weight"], DT))
        mark("forward")
        ls = tgpt_ref.losses(fwd, sd, labels, captions, sentences, DT)
        mark("losses")
        ls["loss_total"].backward()
        mark("backward")
        opt.step()
        mark("optimizer")
        return ph

    return step, sum(tg[n].numel() for n in names)


def coop_setup(a, g):
    dev = torch.device(a.device)
    sd = {k: v.to(dev) for k, v in gen_clip_model.random_state_dict(CFG, g).items()}
    B, C, n_ctx = a.batch, a.classes, 16
    tokens = torch.zeros(C, 77, dtype=torch.int64)
    name_len = torch.randint(1, 4, (C,), generator=g)
    name_ids = torch.randint(1, 49405, (C, 3), generator=g)
    for c in range(C):
        row = [SOT] + [X] * n_ctx + name_ids[c, :int(name_len[c])].tolist() + [PERIOD, EOT]
        tokens[c, :len(row)] = torch.tensor(row)
    tokens = tokens.to(dev)
    ctx = (0.02 * torch.randn(n_ctx, CFG["transformer_width"], generator=g)).to(dev).requires_grad_(True)
    opt = torch.optim.SGD([ctx], lr=0.002, momentum=0.9, weight_decay=5e-4)
    images = torch.randn(B, 3, 224, 224, generator=g).to(dev)
    labels = torch.randint(0, C, (B,), generator=g).to(dev)

    def step():
        ph = {}
        t = time.perf_counter()

        def mark(name):
            nonlocal t
            sync(dev)
            t1 = time.perf_counter()
            ph[name] = t1 - t
            t = t1

        opt.zero_grad(set_to_none=True)
        with torch.no_grad():
            feats, _ = clip_ref.encode_image(sd, CFG, images, DT)
        mark("encode_images")
        txt = coop_ref.text_features(sd, CFG, tokens, n_ctx, ctx, DT)
        loss = F.cross_entropy(coop_ref.logits(feats, txt, sd["logit_scale"], DT), labels)
        mark("forward_and_loss")
        loss.backward()
        mark("backward")
        opt.step()
        mark("optimizer")
        return ph

    return step, ctx.numel()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--method", choices=("tgpt", "coop"), default="tgpt")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--classes", type=int, default=1000)
    p.add_argument("--category-queries", type=int, default=32)
    p.add_argument("--content-queries", type=int, default=64)
    p.add_argument("--sentence-words", type=int, default=0,
                   help="words per category sentence (0: every category target a word)")
    p.add_argument("--caption-words", type=int, default=0,
                   help="words per caption (0: every content target a word)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--iters", type=int, default=3)
    a = p.parse_args()
    a.sentence_words = a.sentence_words or min(a.category_queries, 75)
    a.caption_words = a.caption_words or min(a.content_queries, 75)
    if not (1 <= a.sentence_words <= 75 and 1 <= a.caption_words <= 75):
        p.error("--sentence-words and --caption-words are 1..75")
    torch.set_num_threads(a.threads)
    g = torch.Generator().manual_seed(0)
    step, trainable = (tgpt_setup if a.method == "tgpt" else coop_setup)(a, g)
    for _ in range(a.warmup):
        step()
    rss_reset = reset_peak_rss()
    if a.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    secs, cpus, phases = [], [], {}
    for i in range(a.iters):
        t0, c0 = time.perf_counter(), time.process_time()
        ph = step()
        s = time.perf_counter() - t0
        secs.append(s)
        cpus.append(time.process_time() - c0)
        for k, v in ph.items():
            phases.setdefault(k, []).append(v)
        print(json.dumps({"kind": "iter", "method": a.method, "i": i, "seconds": round(s, 4),
                          "phases": {k: round(v, 4) for k, v in ph.items()}}), flush=True)
    print(json.dumps({
        "kind": "summary", "bench": "tgpt_step", "impl": "torch", "torch": torch.__version__,
        "method": a.method, "device": a.device, "threads": torch.get_num_threads(), "B": a.batch,
        "C": a.classes, "Nc": a.category_queries, "Nn": a.content_queries,
        "sentence_words": a.sentence_words, "caption_words": a.caption_words,
        "trainable_params": trainable, "warmup": a.warmup, "iters": a.iters,
        "median_s": round(statistics.median(secs), 4), "min_s": round(min(secs), 4),
        "phases_median_s": {k: round(statistics.median(v), 4) for k, v in phases.items()},
        "cpu_s_median": round(statistics.median(cpus), 4), "peak_rss_mb": round(peak_rss_mb(), 1),
        "peak_rss_over": "timed_iterations" if rss_reset else "whole_run",
        "cuda_peak_allocated_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1)
        if a.device == "cuda" else None}), flush=True)


if __name__ == "__main__":
    main()
