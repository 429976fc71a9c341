"""Golden fixtures for CoOp (models/coop): a small random CLIP and CoOp's forward and backward.

generate(out_dir) writes into out_dir/coop/:
  clip.safetensors   a random ViT CLIP (tgpt CLIP weight file, f32) with CLIP's real vocabulary
                     size 49408, so real token ids index it: text width 64, 2 heads, 2 layers,
                     embed 32; a tiny image tower (unused by CoOp, needed by the file format).
  coop.io.safetensors, metadata coop.class_names (JSON list), coop.tokenizer ("bpe" when the
  prompts were tokenized by clip_tokenizer_ref.py with ../shared/clip/bpe_simple_vocab_16e6.txt.gz,
  "synthetic" when the merges file is absent: ids made up as SOT, X=343 per context slot, random
  name ids, '.'=269, EOT), and for each case P in
     "generic." n_ctx 16, ctx ~ N(0, 0.02^2) (CoOp's default),
     "init."    init text "a photo of a" (n_ctx 4, ctx = its token embeddings; only with "bpe"):
    P tokens [C,77] i64, P ctx [n_ctx,W] f32, and the references from coop_ref.py computed in float32
    ("...") and float64 ("....f64") from the same values: P text_features [C,E], P logits [B,C],
    P loss [], P dctx [n_ctx,W] = d loss / d ctx;
  image_features [B,E] f32 (unnormalised), labels [B] i64 (shared by the cases).
The reference checks itself (f64) before writing: with ctx = the X tokens' own embeddings the
CoOp text features equal clip_ref.encode_text of the tokens, and dctx agrees with a central
finite difference of the loss along a random direction.
"""
import json
import os
import pathlib

import torch

import clip_ref
import coop_ref
import gen_clip_model
from st import save

CFG = dict(embed_dim=32, image_resolution=16, vision_layers=1, vision_width=32,
           vision_patch_size=8, vision_heads=1, context_length=77, vocab_size=49408,
           transformer_width=64, transformer_heads=2, transformer_layers=2,
           activation="quick_gelu")
CLASS_NAMES = ["cat", "golden_retriever", "Yorkshire terrier", "sea_lion", "hot-air balloon",
               "The Great Wall of China"]
SOT, EOT, X_ID, DOT_ID = 49406, 49407, 343, 269
N_CTX = 16
INIT_TEXT = "a photo of a"
B = 5
LABELS = [1, 5, 0, 1, 3]
MERGES_NAME = "clip/bpe_simple_vocab_16e6.txt.gz"


def _bpe_tokenizer():
    """clip_tokenizer_ref's tokenizer on the real merges, or None when they (or ftfy) are absent."""
    if os.environ.get("TGPT_SHARED_DIR"):
        path = pathlib.Path(os.environ["TGPT_SHARED_DIR"]) / MERGES_NAME
    elif os.environ.get("TGPT_SOURCE_DIR"):
        path = pathlib.Path(os.environ["TGPT_SOURCE_DIR"]).parent / "shared" / MERGES_NAME
    else:
        path = pathlib.Path(__file__).resolve().parents[2].parent / "shared" / MERGES_NAME
    if not path.exists():
        return None
    try:
        import clip_tokenizer_ref as ref  # needs ftfy (scripts/install-deps.sh)
    except ImportError:
        return None
    return ref.Tokenizer(ref.read_merges_text(path))


def _synthetic_tokens(g, n_ctx):
    rows = []
    for name in CLASS_NAMES:
        n = len(name.replace("_", " ").split())
        ids = [SOT] + [X_ID] * n_ctx + torch.randint(1, SOT, (n,), generator=g).tolist()
        ids += [DOT_ID, EOT]
        rows.append(ids + [0] * (77 - len(ids)))
    return torch.tensor(rows, dtype=torch.int64)


def _self_check(sd, tokens, n_ctx, image_features, labels):
    d = torch.float64
    emb = clip_ref.embed_tokens(sd, tokens, d)
    own = emb[0, 1:1 + n_ctx]  # the context tokens' own embeddings (the same in every row)
    with torch.no_grad():
        a = coop_ref.text_features(sd, CFG, tokens, n_ctx, own, d)
        b = clip_ref.encode_text(sd, CFG, tokens, d)
    err = (a - b).abs().max().item() / b.abs().max().item()
    assert err < 1e-12, f"coop reference vs encode_text: {err}"

    g = torch.Generator().manual_seed(7)
    ctx = torch.randn(n_ctx, CFG["transformer_width"], generator=g, dtype=d) * 0.02
    _, _, _, dctx = coop_ref.forward(sd, CFG, tokens, n_ctx, ctx, image_features, labels, d)
    direction = torch.randn(ctx.shape, generator=g, dtype=d)
    h = 1e-6
    with torch.no_grad():
        def loss_at(c):
            txt = coop_ref.text_features(sd, CFG, tokens, n_ctx, c, d)
            lg = coop_ref.logits(image_features, txt, sd["logit_scale"], d)
            return torch.nn.functional.cross_entropy(lg, labels).item()
        numeric = (loss_at(ctx + h * direction) - loss_at(ctx - h * direction)) / (2 * h)
    analytic = (dctx * direction).sum().item()
    assert abs(numeric - analytic) <= 1e-6 * max(1.0, abs(analytic)), (numeric, analytic)


def _case(sd, prefix, tokens, n_ctx, ctx, image_features, labels):
    out = {f"{prefix}tokens": tokens, f"{prefix}ctx": ctx.float().contiguous()}
    for dt, suffix in ((torch.float32, ""), (torch.float64, ".f64")):
        txt, lg, loss, dctx = coop_ref.forward(sd, CFG, tokens, n_ctx, ctx, image_features, labels,
                                               dt)
        out.update({f"{prefix}text_features{suffix}": txt, f"{prefix}logits{suffix}": lg,
                    f"{prefix}loss{suffix}": loss, f"{prefix}dctx{suffix}": dctx})
    return out


def generate(out_dir):
    out = pathlib.Path(out_dir) / "coop"
    out.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(20240801)
    sd = gen_clip_model.random_state_dict(CFG, g)
    W, E = CFG["transformer_width"], CFG["embed_dim"]
    image_features = torch.randn(B, E, generator=g)
    labels = torch.tensor(LABELS, dtype=torch.int64)
    tok = _bpe_tokenizer()
    io = {"image_features": image_features, "labels": labels}

    if tok is not None:
        tokens = torch.tensor(tok.tokenize(coop_ref.prompt_texts(CLASS_NAMES, N_CTX)),
                              dtype=torch.int64)
    else:
        tokens = _synthetic_tokens(g, N_CTX)
    assert (tokens[:, 1:1 + N_CTX] == X_ID).all(), "every context slot must hold 'X'"
    _self_check(sd, tokens, N_CTX, image_features, labels)
    ctx = torch.randn(N_CTX, W, generator=g) * 0.02
    io.update(_case(sd, "generic.", tokens, N_CTX, ctx, image_features, labels))

    if tok is not None:
        n_init = len(INIT_TEXT.split())
        tokens = torch.tensor(tok.tokenize(coop_ref.prompt_texts(CLASS_NAMES, n_init, INIT_TEXT)),
                              dtype=torch.int64)
        init_ids = tok.tokenize([INIT_TEXT])[0][1:1 + n_init]
        assert len(tok.encode(INIT_TEXT)) == n_init
        assert tokens[:, 1:1 + n_init].tolist() == [init_ids] * len(CLASS_NAMES)
        ctx = clip_ref.embed_tokens(sd, torch.tensor(init_ids), torch.float32)  # [n_ctx,W]
        io.update(_case(sd, "init.", tokens, n_init, ctx, image_features, labels))

    meta = {"tgpt.format": "clip", "tgpt.format_version": "1", "tgpt.config": json.dumps(CFG),
            "tgpt.source_format": "torch-state-dict"}
    save(out / "clip.safetensors", sd, meta)
    save(out / "coop.io.safetensors", io,
         {"coop.class_names": json.dumps(CLASS_NAMES),
          "coop.tokenizer": "bpe" if tok is not None else "synthetic",
          "coop.init_text": INIT_TEXT, "coop.n_ctx": str(N_CTX)})


if __name__ == "__main__":
    import sys

    generate(sys.argv[1] if len(sys.argv) > 1 else ".")
