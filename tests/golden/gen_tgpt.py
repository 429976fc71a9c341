"""Golden fixtures for TGP-T training: a small random CLIP, a TGP-T state, one batch and the
reference trace of a short replay run, from tgpt_ref.py computed in float64.

generate(out_dir) writes out_dir/tgpt/<case>{clip,init,batch,trace}.safetensors for each case in
CASES:
  ""       E = W = 64, text 8 heads x 2 layers, ViT 32 px / patch 8 / width 48 / 2 layers / 4 heads,
           quick_gelu, 32 + 64 queries (pooled at 34 and 66), C = 5, B = 4, labels [2, 0, 4, 2]
  "case2." E = W = 32, text 4 heads x 1 layer, ViT 48 px / patch 16 / width 32 / 1 layer / 2 heads,
           gelu, 16 + 8 queries (pooled at 18 and 10), C = 3, B = 3, labels [1, 1, 0]
  clip.safetensors   a random CLIP in the tgpt CLIP format (models/README.md; metadata tgpt.format
                     "clip", tgpt.config), all f32, embed_dim == transformer_width, vocab 49408 so the
                     real ids work (SOT 49406, EOT 49407, "." 269, "x" 343, pad 0), context 77;
                     random LayerNorm gains/biases; token embedding std TOKEN_EMB_STD.
  init.safetensors   the initial TGP-T state under the official names, all f32:
                       prompt_learner.query_category [1,Nc,W]   N(0, 0.02^2), slots 0..3 = the
                                                                token embeddings of "a photo of a"
                       prompt_learner.query_content  [1,Nn,W]   N(0, 0.02^2)
                       prompt_learner.bonder_{category,content}.*  (tgpt_ref.bonder_tensor_shapes):
                         Linear weights and biases U(+-1/sqrt(fan_in)) (PyTorch's default init),
                         attn.proj / cross_attn.proj / mlp.fc2 weights then x OUTPUT_GAIN (4) so
                         the vocabulary logits are not nearly uniform,
                         LayerNorm gains 1 + 0.2 N(0,1), biases 0.1 N(0,1) (random so a missing
                         one shows), including the unused cross_attn.norm_text / norm_img
                       zs_weights [C,2E]           rows [t_c; t_c] / |[t_c; t_c]| for random class
                                                   features t_c = base + 0.15 N(0,1) (correlated, as
                                                   CLIP's class features are, so logits stay unsaturated)
                       cls_head.fc.weight [C,2E]   a copy of zs_weights
  batch.safetensors  images f32 [B,3,R,R] (already normalised), labels i64 [B],
                     caption_tokens i64 [B,77] (SOT, ids in [1,49405], EOT, zeros; case "": 5, 23, 60
                     and 70 ids, so the last EOT is outside the 64 content targets; case2: 3, 7, 30
                     ids with Nn = 8: EOT inside, at the last target, outside),
                     category_sentence_tokens i64 [C,77] (SOT, "a photo of a" 320 1125 539 320, 1-3 name
                     ids, "." 269, EOT, zeros)
  trace.safetensors  tgpt_ref.replay on that batch at every step (metadata tgpt.replay = JSON
                     {"steps", "lr", "max_iter", "warmup_iter"}), computed in f64 and stored as f32
                     except step.lr (f64):
                       step.loss_cls, step.loss_category, step.loss_content, step.loss_total [N]
                       step.lr [N]                   lr of update k = 1..N
                       fwd1.image_cls [B,E], fwd1.t_cat [B,E], fwd1.t_con [B,E],
                       fwd1.fused_features [B,2E], fwd1.logits [B,C]      the first forward
                       grad1.<name>   every trainable tensor that gets a gradient (first backward;
                                      not the unused norms)
                       param1.<name> .. paramN.<name>   the same tensors after update K
                       eval.logits, eval.logits_wiseft [B,C]   after the last update, with the trained
                                      head and with 0.5 W + 0.5 zs_weights
Self-checks (asserts) before writing: the Bonder self-attention equals F.multi_head_attention_forward
and is identical for every batch item before the cross-attention; tgpt_ref.bonder equals the same
block written as nn.Modules under the official names (load_state_dict strict); the unused norms get
no gradient and stay at init; pooled indices are Nq + 2; losses are finite, the classification
softmax is not saturated (probabilities in (1e-4, 0.99)) and the vocabulary logits are not
degenerate (std over the vocabulary > 0.2); float64 central finite differences of query elements
(CASES[..]["fd"]) match autograd to 1e-6; the total loss falls over the replay.
"""
import json
import math
import pathlib

import torch
import torch.nn.functional as F

import clip_ref
import gen_clip_model
import tgpt_ref
from st import save

REPLAY = {"steps": 3, "lr": 1e-3, "max_iter": 10, "warmup_iter": 2}
TOKEN_EMB_STD = 0.04
QUERY_STD = 0.02
# The output Linears of the three Bonder sub-blocks are drawn OUTPUT_GAIN times larger than PyTorch's
# default, so the Bonder outputs (|out| ~ 15) give vocabulary logits with a spread of ~0.5 instead of
# a nearly uniform CE at ln(49408).
OUTPUT_WEIGHTS = ("attn.proj.weight", "cross_attn.proj.weight", "mlp.fc2.weight")
OUTPUT_GAIN = 4.0
ZS_NOISE = 0.15
A_PHOTO_OF_A = [320, 1125, 539, 320]
DT = torch.float64

CASES = {
    "": dict(
        clip=dict(embed_dim=64, image_resolution=32, vision_layers=2, vision_width=48, vision_patch_size=8,
                  vision_heads=4, context_length=77, vocab_size=49408, transformer_width=64,
                  transformer_heads=8, transformer_layers=2, activation="quick_gelu"),
        n_cat=32, n_con=64, labels=[2, 0, 4, 2], n_cls=5, caption_ids=[5, 23, 60, 70], seed=20261206,
        fd=[("prompt_learner.query_category", (0, 5, 3))]),
    "case2.": dict(
        clip=dict(embed_dim=32, image_resolution=48, vision_layers=1, vision_width=32, vision_patch_size=16,
                  vision_heads=2, context_length=77, vocab_size=49408, transformer_width=32,
                  transformer_heads=4, transformer_layers=1, activation="gelu"),
        n_cat=16, n_con=8, labels=[1, 1, 0], n_cls=3, caption_ids=[3, 7, 30], seed=20261207,
        fd=[("prompt_learner.query_category", (0, 7, 2)), ("prompt_learner.query_content", (0, 2, 1))]),
}


def random_clip(cfg, g):
    sd = gen_clip_model.random_state_dict(cfg, g)
    sd["token_embedding.weight"] = (TOKEN_EMB_STD * torch.randn(sd["token_embedding.weight"].shape,
                                                                generator=g)).float()
    sd["positional_embedding"] = (0.1 * torch.randn(sd["positional_embedding"].shape, generator=g)).float()
    return sd


def random_tgpt_state(sd, cfg, n_cat, n_con, n_cls, g):
    W, E = cfg["transformer_width"], cfg["embed_dim"]
    tg = {}
    for b in tgpt_ref.BONDERS:
        for suffix, shape in tgpt_ref.bonder_tensor_shapes(W).items():
            name = f"prompt_learner.{b}.{suffix}"
            if ".norm" in name:
                r = torch.randn(shape, generator=g)
                t = 1.0 + 0.2 * r if suffix.endswith("weight") else 0.1 * r
            else:
                bound = 1.0 / math.sqrt(W)  # every Bonder Linear has fan_in W
                t = (2 * torch.rand(shape, generator=g) - 1) * bound
                if suffix in OUTPUT_WEIGHTS:
                    t = t * OUTPUT_GAIN
            tg[name] = t
    q_cat = QUERY_STD * torch.randn(1, n_cat, W, generator=g)
    q_cat[0, :len(A_PHOTO_OF_A)] = sd["token_embedding.weight"][A_PHOTO_OF_A]
    tg["prompt_learner.query_category"] = q_cat
    tg["prompt_learner.query_content"] = QUERY_STD * torch.randn(1, n_con, W, generator=g)
    t = torch.randn(1, E, generator=g) + ZS_NOISE * torch.randn(n_cls, E, generator=g)  # [C,E]
    zs = F.normalize(torch.cat([t, t], dim=1), dim=-1)  # [C,2E]
    tg["zs_weights"] = zs
    tg["cls_head.fc.weight"] = zs.clone()
    return {k: v.float().contiguous() for k, v in tg.items()}


def make_batch(cfg, case, g):
    R, ctx = cfg["image_resolution"], cfg["context_length"]
    B, C = len(case["labels"]), case["n_cls"]
    caps = []
    for n in case["caption_ids"]:
        ids = [tgpt_ref.SOT] + torch.randint(1, tgpt_ref.SOT, (n,), generator=g).tolist() + [tgpt_ref.EOT]
        caps.append(ids + [0] * (ctx - len(ids)))
    cats = []
    for c in range(C):
        name = torch.randint(1, tgpt_ref.SOT, (1 + c % 3,), generator=g).tolist()
        ids = [tgpt_ref.SOT] + A_PHOTO_OF_A + name + [tgpt_ref.DOT_ID, tgpt_ref.EOT]
        cats.append(ids + [0] * (ctx - len(ids)))
    return {
        "images": torch.randn(B, 3, R, R, generator=g),
        "labels": torch.tensor(case["labels"], dtype=torch.int64),
        "caption_tokens": torch.tensor(caps, dtype=torch.int64),
        "category_sentence_tokens": torch.tensor(cats, dtype=torch.int64),
    }


def _total_loss(tg, sd, cfg, batch):
    fwd = tgpt_ref.forward(tg, sd, cfg, batch["images"], DT)
    ls = tgpt_ref.losses(fwd, sd, batch["labels"], batch["caption_tokens"], batch["category_sentence_tokens"],
                         DT)
    return fwd, ls


class _SelfAttention(torch.nn.Module):
    def __init__(self, W):
        super().__init__()
        self.qkv = torch.nn.Linear(W, 3 * W, bias=False)
        self.proj = torch.nn.Linear(W, W)

    def forward(self, x):  # [b,N,W]
        b, N, W = x.shape
        H = tgpt_ref.BONDER_HEADS
        q, k, v = self.qkv(x).reshape(b, N, 3, H, W // H).permute(2, 0, 3, 1, 4)  # each [b,H,N,D]
        a = (q @ k.transpose(-2, -1) * (W // H) ** -0.5).softmax(dim=-1)
        return self.proj((a @ v).transpose(1, 2).reshape(b, N, W))


class _CrossAttention(torch.nn.Module):
    def __init__(self, W):
        super().__init__()
        self.q = torch.nn.Linear(W, W, bias=False)
        self.proj = torch.nn.Linear(W, W)
        self.norm_text, self.norm_img = torch.nn.LayerNorm(W), torch.nn.LayerNorm(W)  # never used

    def forward(self, x, kv):  # [1,N,W], [B,T,W]
        scale = (x.shape[-1] // tgpt_ref.BONDER_HEADS) ** -0.5
        a = (self.q(x) @ kv.transpose(-2, -1) * scale).softmax(dim=-1)  # [B,N,T]
        return self.proj(a @ kv)


class _Mlp(torch.nn.Module):
    def __init__(self, W):
        super().__init__()
        self.fc1, self.act, self.fc2 = torch.nn.Linear(W, W), torch.nn.GELU(), torch.nn.Linear(W, W)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class _BonderModule(torch.nn.Module):
    """method.md section 2.2 written as nn.Modules under the official names, a second form of
    tgpt_ref.bonder; load_state_dict(strict=True) also checks the tensor names and shapes."""

    def __init__(self, W):
        super().__init__()
        self.norm1, self.attn = torch.nn.LayerNorm(W), _SelfAttention(W)
        self.norm2_q, self.norm2_kv = torch.nn.LayerNorm(W), torch.nn.LayerNorm(W)
        self.cross_attn = _CrossAttention(W)
        self.norm_mlp, self.mlp = torch.nn.LayerNorm(W), _Mlp(W)

    def forward(self, q, img):
        q = q + self.attn(self.norm1(q))
        q = q + self.cross_attn(self.norm2_q(q), self.norm2_kv(img))
        return q + self.mlp(self.norm_mlp(q))


def check_bonders(tg0, sd, cfg, batch):
    """Self-attention vs torch's MHA; the batch-1 queries give one self-attention output for all
    images (computed here on queries expanded to the batch)."""
    tg = {k: v.to(DT) for k, v in tg0.items()}
    B = batch["images"].shape[0]
    with torch.no_grad():
        _, img = clip_ref.encode_image(sd, cfg, batch["images"], DT)
        for b in tgpt_ref.BONDERS:
            p = f"prompt_learner.{b}"
            q = tg[f"prompt_learner.query_{b.split('_')[1]}"]  # [1,N,W]
            W = q.shape[-1]
            x = F.layer_norm(q, (W,), tg[p + ".norm1.weight"], tg[p + ".norm1.bias"], tgpt_ref.LN_EPS)
            mine = tgpt_ref.self_attention(tg, p, x, DT)
            xt = x.transpose(0, 1)
            ref, _ = F.multi_head_attention_forward(
                xt, xt, xt, W, tgpt_ref.BONDER_HEADS, tg[p + ".attn.qkv.weight"], None, None, None, False,
                0.0,
                tg[p + ".attn.proj.weight"], tg[p + ".attn.proj.bias"], training=False, need_weights=False)
            err = (mine - ref.transpose(0, 1)).abs().max().item()
            assert err < 1e-12, f"{b} self-attention vs MHA: {err}"
            expanded, one = {}, {}
            out_b = tgpt_ref.bonder(tg, p, q.expand(B, -1, -1), img, DT, trace=expanded)
            out_1 = tgpt_ref.bonder(tg, p, q, img, DT, trace=one)
            s = expanded["after_self_attn"]  # [B,N,W]
            assert all(torch.equal(s[0], s[i]) for i in range(B)), f"{b}: self-attention differs per image"
            assert (one["after_self_attn"][0] - s[0]).abs().max().item() < 1e-13, b
            assert out_1.shape == (B, q.shape[1], W) and (out_1 - out_b).abs().max().item() < 1e-12, b
            m = _BonderModule(W).to(DT)
            m.load_state_dict({k[len(p) + 1:]: v for k, v in tg.items() if k.startswith(p + ".")},
                              strict=True)
            err = (m(q, img) - out_1).abs().max().item()
            assert err < 1e-12, f"{b}: module form differs by {err}"


def check_first_step(tg, fwd, ls, sd, cfg, batch, case):
    """Called by the replay after the first backward, on its live state."""
    assert fwd["pool_cat"] == case["n_cat"] + 2 and fwd["pool_con"] == case["n_con"] + 2, \
        (fwd["pool_cat"], fwd["pool_con"])
    for k, v in ls.items():
        assert math.isfinite(v.item()), f"{k} = {v.item()}"
    prob = torch.softmax(fwd["logits"].detach(), dim=-1)
    assert prob.max().item() < 0.99 and prob.min().item() > 1e-4, f"classification logits saturated: {prob}"
    for n in tgpt_ref.trainable_names(tg):
        has = tg[n].grad is not None
        assert has == tgpt_ref.receives_gradient(n), f"{n}: gradient {'present' if has else 'missing'}"
        if has:
            assert torch.isfinite(tg[n].grad).all() and tg[n].grad.abs().max() > 0, n
    with torch.no_grad():  # vocabulary logits neither flat nor dominated by one token
        E_tok = sd["token_embedding.weight"].to(DT)
        for key in ("out_cat", "out_con"):
            lg = fwd[key] @ E_tok.t()  # [B,N,V]
            spread = lg.std(dim=-1).min().item()
            pmax = torch.softmax(lg, dim=-1).max().item()
            assert spread > 0.2 and pmax < 0.5, f"{key}: vocab logit std {spread}, max prob {pmax}"
    # central finite differences in float64 of the total loss w.r.t. single query elements
    for name, idx in case["fd"]:
        analytic = tg[name].grad[idx].item()
        h = 1e-5
        vals = []
        for sign in (1, -1):
            t2 = {k: v.detach() for k, v in tg.items()}
            x = t2[name].clone()
            x[idx] += sign * h
            t2[name] = x
            with torch.no_grad():
                vals.append(_total_loss(t2, sd, cfg, batch)[1]["loss_total"].item())
        numeric = (vals[0] - vals[1]) / (2 * h)
        err = abs(numeric - analytic) / max(abs(analytic), 1e-3)
        assert err < 1e-6, f"finite difference {name}{idx}: numeric {numeric} analytic {analytic}"


def write_case(out, prefix, case):
    g = torch.Generator().manual_seed(case["seed"])
    cfg = case["clip"]
    sd = random_clip(cfg, g)
    tg0 = random_tgpt_state(sd, cfg, case["n_cat"], case["n_con"], case["n_cls"], g)
    batch = make_batch(cfg, case, g)

    sd64 = {k: v.to(DT) for k, v in sd.items()}  # converted once; clip_ref's .to(DT) is then free
    check_bonders(tg0, sd64, cfg, batch)
    trace, tg = tgpt_ref.replay(
        tg0, sd64, cfg, batch, REPLAY["steps"], REPLAY["lr"], REPLAY["max_iter"], REPLAY["warmup_iter"], DT,
        on_first_step=lambda t, fwd, ls: check_first_step(t, fwd, ls, sd64, cfg, batch, case))
    for n in tgpt_ref.trainable_names(tg):
        if not tgpt_ref.receives_gradient(n):
            assert torch.equal(tg[n].detach(), tg0[n].to(DT)), f"{n} changed without a gradient"
            assert f"grad1.{n}" not in trace and f"param1.{n}" not in trace
    assert trace["step.loss_total"][-1] < trace["step.loss_total"][0], trace["step.loss_total"]

    tensors = {}
    for k, v in trace.items():
        if k == "step.lr":
            tensors[k] = torch.tensor(v, dtype=torch.float64)
        elif k.startswith("step."):
            tensors[k] = torch.tensor(v, dtype=torch.float64).float()
        else:
            tensors[k] = v.detach().float()

    meta = {"tgpt.format": "clip", "tgpt.format_version": "1", "tgpt.config": json.dumps(cfg),
            "tgpt.source_format": "torch-state-dict"}
    save(out / f"{prefix}clip.safetensors", sd, meta)
    save(out / f"{prefix}init.safetensors", tg0)
    save(out / f"{prefix}batch.safetensors", batch)
    save(out / f"{prefix}trace.safetensors", tensors,
         {"tgpt.replay": json.dumps(REPLAY), "tgpt.reference_dtype": "float64"})
    if prefix == "":
        write_official_checkpoints(out, tg, sd)
    return trace


def write_official_checkpoints(out, tg, sd):
    """The state after the replay as the official code saves it (trainable tensors only):
    Dassl-style dicts {'state_dict': ..., 'epoch': ...} per registered module, keys relative to the
    module (official/prompt_learner/model-best.pth.tar, official/cls_head/model-best.pth.tar),
    and torch.save of a whole state dict under the full names with frozen extras
    (official_full.pth). eval.logits of the trace are what these weights give."""
    final = {n: tg[n].detach().float().contiguous() for n in tgpt_ref.trainable_names(tg)}
    pl = {n[len("prompt_learner."):]: t for n, t in final.items() if n.startswith("prompt_learner.")}
    head = {n[len("cls_head."):]: t for n, t in final.items() if n.startswith("cls_head.")}
    assert len(pl) + len(head) == len(final)
    for folder, state in (("prompt_learner", pl), ("cls_head", head)):
        d = out / "official" / folder
        d.mkdir(parents=True, exist_ok=True)
        torch.save({"state_dict": state, "epoch": REPLAY["steps"], "optimizer": None,
                    "scheduler": None, "val_result": 50.0}, d / "model-best.pth.tar")
    full = dict(final)
    full["prompt_learner.vocab_head.weight"] = sd["token_embedding.weight"].float()
    full["prompt_learner.token_prefix"] = sd["token_embedding.weight"][:1].float().unsqueeze(0)
    full["logit_scale"] = torch.tensor(4.60517)
    full["wiseft_head.fc.weight"] = 0.5 * final["cls_head.fc.weight"] + 0.5 * tg["zs_weights"].float()
    full["zs_weights"] = tg["zs_weights"].detach().float()
    torch.save(full, out / "official_full.pth")


def generate(out_dir):
    out = pathlib.Path(out_dir) / "tgpt"
    out.mkdir(parents=True, exist_ok=True)
    for prefix, case in CASES.items():
        write_case(out, prefix, case)


if __name__ == "__main__":
    import sys
    import time

    t0 = time.time()
    generate(sys.argv[1] if len(sys.argv) > 1 else ".")
    print(f"gen_tgpt: {time.time() - t0:.1f} s")
