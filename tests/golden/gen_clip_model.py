"""Golden fixtures for the C++ CLIP model (models/clip): small random ViT CLIPs and reference outputs.

generate(out_dir) writes into out_dir/clip_model/, for each config NAME in CONFIGS:
  NAME.safetensors        the canonical tgpt CLIP weight file (models/README.md), all float32
  NAME.mixed.safetensors  the same weights in OpenAI's mixed layout (clip.md section 1.8): every
                          Conv/Linear weight and bias, in_proj_*, visual.proj, text_projection in
                          MIXED_DTYPE[NAME] (f16 for A as in OpenAI's files, bf16 for B), the rest f32
  NAME.io.safetensors     inputs and reference outputs:
     images [B,3,R,R] f32, tokens [N,ctx] i64 (SOT=V-2, EOT=V-1, pad 0; EOT at various positions
     incl. 1 and ctx-1, and one row with two EOTs so pooling must take the first),
     text_x [N,ctx,W] f32 (token embeddings plus noise), text_eot [N] i64, text_dy [N,E] f32,
     and, from clip_ref.py, for the canonical weights ("<out>") and the mixed ones ("mixed.<out>"),
     each computed in float32 ("...") and float64 ("....f64") from the same values:
       image_features [B,E], image_tokens [B,T,E] (no ln_post), text_features [N,E],
       text_emb_features [N,E] = text_from_embeddings(text_x, text_eot),
       text_emb_dx [N,ctx,W] = d sum(text_dy * text_emb_features) / d text_x.
Random weights: LayerNorm gains/biases and every bias are random, so a missing or misplaced one
shows. The reference is checked against itself before writing: F.multi_head_attention_forward vs
explicit attention math (f64), and encode_text vs text_from_embeddings of the token embeddings.
"""
import json
import math
import pathlib

import torch

import clip_ref
from st import save

CONFIGS = {
    "A": dict(embed_dim=64, image_resolution=32, vision_layers=2, vision_width=128,
              vision_patch_size=8, vision_heads=2, context_length=77, vocab_size=1000,
              transformer_width=128, transformer_heads=2, transformer_layers=2,
              activation="quick_gelu"),
    "B": dict(embed_dim=32, image_resolution=48, vision_layers=1, vision_width=64,
              vision_patch_size=16, vision_heads=1, context_length=77, vocab_size=500,
              transformer_width=96, transformer_heads=3, transformer_layers=3, activation="gelu"),
}
MIXED_DTYPE = {"A": torch.float16, "B": torch.bfloat16}
BPE_MERGES = {"A": "t h\nth e</w>\na n", "B": None}  # B has no embedded merges


def _block_shapes(prefix, w):
    return {
        f"{prefix}.ln_1.weight": [w], f"{prefix}.ln_1.bias": [w],
        f"{prefix}.attn.in_proj_weight": [3 * w, w], f"{prefix}.attn.in_proj_bias": [3 * w],
        f"{prefix}.attn.out_proj.weight": [w, w], f"{prefix}.attn.out_proj.bias": [w],
        f"{prefix}.ln_2.weight": [w], f"{prefix}.ln_2.bias": [w],
        f"{prefix}.mlp.c_fc.weight": [4 * w, w], f"{prefix}.mlp.c_fc.bias": [4 * w],
        f"{prefix}.mlp.c_proj.weight": [w, 4 * w], f"{prefix}.mlp.c_proj.bias": [w],
    }


def tensor_shapes(cfg):
    """Every tensor of a ViT CLIP state dict with its shape, from the config."""
    W, P, E = cfg["vision_width"], cfg["vision_patch_size"], cfg["embed_dim"]
    Wt = cfg["transformer_width"]
    G = cfg["image_resolution"] // P
    s = {
        "visual.conv1.weight": [W, 3, P, P], "visual.class_embedding": [W],
        "visual.positional_embedding": [G * G + 1, W],
        "visual.ln_pre.weight": [W], "visual.ln_pre.bias": [W],
        "visual.ln_post.weight": [W], "visual.ln_post.bias": [W], "visual.proj": [W, E],
        "token_embedding.weight": [cfg["vocab_size"], Wt],
        "positional_embedding": [cfg["context_length"], Wt],
        "ln_final.weight": [Wt], "ln_final.bias": [Wt], "text_projection": [Wt, E],
        "logit_scale": [],
    }
    for i in range(cfg["vision_layers"]):
        s.update(_block_shapes(f"visual.transformer.resblocks.{i}", W))
    for i in range(cfg["transformer_layers"]):
        s.update(_block_shapes(f"transformer.resblocks.{i}", Wt))
    return s


def random_state_dict(cfg, g):
    sd = {}
    for name, shape in tensor_shapes(cfg).items():
        r = torch.randn(shape, generator=g)
        if name == "logit_scale":
            t = torch.tensor(math.log(100.0)) + 0.1 * r
        elif ".ln" in name or name.startswith("ln_"):
            t = 1.0 + 0.2 * r if name.endswith(".weight") else 0.1 * r
        elif name.endswith("bias"):
            t = 0.2 * r
        elif name.endswith("embedding") or name == "token_embedding.weight":
            t = 0.5 * r
        elif name == "visual.conv1.weight":
            t = r / math.sqrt(3 * shape[2] * shape[3])
        elif name in ("visual.proj", "text_projection"):
            t = r / math.sqrt(shape[0])  # [in, out]
        else:
            t = r / math.sqrt(shape[1])  # nn.Linear [out, in]
        sd[name] = t.float().contiguous()
    return sd


def is_half_in_openai(name):
    """Tensors that clip.model.convert_weights makes half precision (clip.md section 1.8)."""
    return (name == "visual.conv1.weight" or ".attn.in_proj_" in name or ".attn.out_proj." in name
            or ".mlp.c_fc." in name or ".mlp.c_proj." in name
            or name in ("visual.proj", "text_projection"))


def make_tokens(cfg, g):
    V, ctx = cfg["vocab_size"], cfg["context_length"]
    sot, eot = V - 2, V - 1
    lengths = [1, 5, 17, ctx - 2, 40]  # content tokens; ctx - 2 puts EOT at position ctx - 1
    rows = []
    for n in lengths:
        ids = [sot] + torch.randint(1, V - 2, (n,), generator=g).tolist() + [eot]
        rows.append(ids + [0] * (ctx - len(ids)))
    rows[-1][10] = eot  # a literal EOT inside the text: pooling must take this first one
    return torch.tensor(rows, dtype=torch.int64)


def _text_grad(sd, cfg, x, eot, dy, dt):
    leaf = x.detach().to(dt).clone().requires_grad_(True)
    y = clip_ref.text_from_embeddings(sd, cfg, leaf, eot, dt)
    y.backward(dy.to(dt))
    return y.detach(), leaf.grad


def reference_outputs(sd, cfg, io, prefix):
    out = {}
    for dt, suffix in ((torch.float32, ""), (torch.float64, ".f64")):
        with torch.no_grad():
            pooled, tokens = clip_ref.encode_image(sd, cfg, io["images"], dt)
            text = clip_ref.encode_text(sd, cfg, io["tokens"], dt)
        y, dx = _text_grad(sd, cfg, io["text_x"], io["text_eot"], io["text_dy"], dt)
        for key, t in (("image_features", pooled), ("image_tokens", tokens), ("text_features", text),
                       ("text_emb_features", y), ("text_emb_dx", dx)):
            out[f"{prefix}{key}{suffix}"] = t
    return out


def self_check(sd, cfg, io):
    """The reference agrees with itself: MHA path vs explicit math, tokens vs embeddings path."""
    d = torch.float64
    with torch.no_grad():
        p1, t1 = clip_ref.encode_image(sd, cfg, io["images"], d)
        p2, t2 = clip_ref.encode_image(sd, cfg, io["images"], d, explicit=True)
        x1 = clip_ref.encode_text(sd, cfg, io["tokens"], d)
        x2 = clip_ref.encode_text(sd, cfg, io["tokens"], d, explicit=True)
        emb = clip_ref.embed_tokens(sd, io["tokens"], d)
        x3 = clip_ref.text_from_embeddings(sd, cfg, emb, clip_ref.eot_positions(io["tokens"]), d)
    for a, b, what in ((p1, p2, "pooled"), (t1, t2, "tokens"), (x1, x2, "text"), (x1, x3, "emb")):
        err = (a - b).abs().max().item() / b.abs().max().item()
        assert err < 1e-12, f"clip reference self-check {what}: {err}"
    eot = clip_ref.eot_positions(io["tokens"])
    assert eot[-1].item() == 10 and eot[3].item() == cfg["context_length"] - 1, eot


def generate(out_dir):
    out = pathlib.Path(out_dir) / "clip_model"
    out.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(20240611)
    for name, cfg in CONFIGS.items():
        sd = random_state_dict(cfg, g)
        R, W, E, ctx = (cfg["image_resolution"], cfg["transformer_width"], cfg["embed_dim"],
                        cfg["context_length"])
        tokens = make_tokens(cfg, g)
        N = tokens.shape[0]
        io = {
            "images": torch.randn(3, 3, R, R, generator=g),
            "tokens": tokens,
            "text_x": (clip_ref.embed_tokens(sd, tokens, torch.float32)
                       + 0.1 * torch.randn(N, ctx, W, generator=g)),
            "text_eot": clip_ref.eot_positions(tokens),
            "text_dy": torch.randn(N, E, generator=g),
        }
        self_check(sd, cfg, io)
        mixed_dt = MIXED_DTYPE[name]
        mixed = {k: (v.to(mixed_dt) if is_half_in_openai(k) else v) for k, v in sd.items()}
        refs = reference_outputs(sd, cfg, io, "")
        refs.update(reference_outputs(mixed, cfg, io, "mixed."))

        meta = {"tgpt.format": "clip", "tgpt.format_version": "1",
                "tgpt.config": json.dumps(cfg), "tgpt.source_format": "torch-state-dict"}
        if BPE_MERGES[name] is not None:
            meta["tgpt.bpe_merges"] = BPE_MERGES[name]
        save(out / f"{name}.safetensors", sd, meta)
        save(out / f"{name}.mixed.safetensors", mixed, meta)
        io.update(refs)
        save(out / f"{name}.io.safetensors", io)


if __name__ == "__main__":
    import sys

    generate(sys.argv[1] if len(sys.argv) > 1 else ".")
