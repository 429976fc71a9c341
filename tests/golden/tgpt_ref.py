"""Our own PyTorch reference of TGP-T training (../shared/spec/method.md sections 1-4), on clip_ref.py.

Written from the spec with plain torch ops, never from the C++ code, so the C++ model and its replay
mode can be tested against it. Every function takes
  tg   the TGP-T state dict under the official names (prompt_learner.*, cls_head.fc.weight,
       zs_weights), tensors of any float dtype (the trainable ones may be autograd leaves);
  sd   a CLIP state dict under OpenAI's names and cfg its config (the tgpt.config keys);
  dt   the compute dtype (torch.float64 for the fixtures); inputs are converted to it.

Shapes: B images, E = CLIP embed_dim, W = text width (TGP-T needs E == W), T image tokens,
Nc / Nn category / content queries (the second dim of prompt_learner.query_*), ctx = 77, C classes.

  bonder(tg, prefix, query [1,Nq,W], img [B,T,W], dt) -> [B,Nq,W]       (method.md section 2.2)
      q = q + SelfAttn(norm1(q))                     8 heads, qkv no bias, proj bias, scale (W/8)^-1/2,
                                                      on the batch-1 queries (same for every image)
      q = q + CrossAttn(norm2_q(q), norm2_kv(img))   single head over all W dims: Q = q-Linear (no
                                                      bias), K = V = norm2_kv(img) (no projection),
                                                      softmax(Q K^T (W/8)^-1/2) V -> proj (bias);
                                                      [1,Nq] broadcasts against [B,T] here
      q = q + fc2(GELU(fc1(norm_mlp(q))))            exact-erf GELU, hidden = W
      LayerNorm eps 1e-5. cross_attn.norm_text / norm_img exist in the state and are never used.
  prompt_ids(nq, ctx) -> [ctx] ids of the fake sentence "X X .. X." : [SOT, 343 x nq, 269, EOT, 0..]
  forward(tg, sd, cfg, images, dt) -> dict:
      image_cls [B,E] = ln_post(CLS) @ proj;  image_tokens [B,T,E] = every token @ proj, no ln_post
      out_cat [B,Nc,W], out_con [B,Nn,W]       the two Bonders on image_tokens
      prompt = [emb(SOT), Bonder output, emb("."), emb(EOT), emb(0) ...] [B,ctx,W] through the
      frozen text encoder, pooled at argmax(prompt ids) = Nq + 2 -> t_cat, t_con [B,E]
      t = (t_cat + t_con) / 2;  fused_features f = [image_cls, t] [B,2E]
      logits [B,C] = 100 * normalize(f) @ cls_head.fc.weight^T
  losses(fwd, tg, sd, labels, caption_tokens, category_sentence_tokens, dt) -> dict
      loss_cls = CE(logits, labels)
      loss_category = CE(out_cat @ E_tok^T, category_sentence_tokens[labels][:, 1:1+Nc]) and
      loss_content  = CE(out_con @ E_tok^T, caption_tokens[:, 1:1+Nn]), both with label smoothing
      0.1 and pad 0 -> ignore (-100), mean over the valid tokens of the batch; E_tok = CLIP
      token_embedding.weight [V,W] (the frozen vocab head); loss_total = the sum of the three.
  eval_logits(fwd-or-features, tg, dt) -> (logits with W, logits with 0.5 W + 0.5 zs_weights)
  lr_at(k, base, warmup, max_iter) -> lr of the k-th update (k = 1..N, method.md section 4.1)
  replay(tg, sd, cfg, batch, steps, lr, max_iter, warmup_iter, dt) -> trace dict: the training
      loop of the official code on one fixed batch: torch.optim.AdamW(betas (0.9, 0.999),
      eps 1e-7, weight_decay 1e-4) over every trainable tensor, lr set before each update, tensors
      without a gradient skipped (torch does that when .grad is None: the unused norms).
"""
import math

import torch
import torch.nn.functional as F

import clip_ref

SOT, EOT, PAD, X_ID, DOT_ID = 49406, 49407, 0, 343, 269
BONDER_HEADS = 8
LN_EPS = 1e-5
LABEL_SMOOTHING = 0.1
LOGIT_SCALE = 100.0
ADAMW = dict(betas=(0.9, 0.999), eps=1e-7, weight_decay=1e-4)
BONDERS = ("bonder_category", "bonder_content")
UNUSED_NORMS = ("cross_attn.norm_text", "cross_attn.norm_img")


def bonder_tensor_shapes(W):
    """Every tensor of one Bonder (suffix after prompt_learner.bonder_*.) with its shape."""
    s = {}
    for ln in ("norm1", "norm2_q", "norm2_kv", "norm_mlp") + UNUSED_NORMS:
        s[f"{ln}.weight"], s[f"{ln}.bias"] = [W], [W]
    s["attn.qkv.weight"] = [3 * W, W]
    s["attn.proj.weight"], s["attn.proj.bias"] = [W, W], [W]
    s["cross_attn.q.weight"] = [W, W]
    s["cross_attn.proj.weight"], s["cross_attn.proj.bias"] = [W, W], [W]
    s["mlp.fc1.weight"], s["mlp.fc1.bias"] = [W, W], [W]
    s["mlp.fc2.weight"], s["mlp.fc2.bias"] = [W, W], [W]
    return s


def trainable_names(tg):
    """Every trainable tensor of a TGP-T state (zs_weights is a frozen buffer)."""
    return [n for n in sorted(tg) if n.startswith("prompt_learner.") or n.startswith("cls_head.")]


def receives_gradient(name):
    return not any(f".{u}." in name for u in UNUSED_NORMS)


def _w(tg, name, dt):
    return tg[name].to(dt)


def _ln(x, tg, p, dt):
    return F.layer_norm(x, (x.shape[-1],), _w(tg, p + ".weight", dt), _w(tg, p + ".bias", dt), LN_EPS)


def self_attention(tg, p, x, dt):
    """x [b,N,W] (already norm1-normalised) -> proj(MHA(x)) [b,N,W]; 8 heads, qkv without bias."""
    b, N, W = x.shape
    D = W // BONDER_HEADS
    qkv = F.linear(x, _w(tg, p + ".attn.qkv.weight", dt))  # [b,N,3W]
    q, k, v = (t.reshape(b, N, BONDER_HEADS, D).transpose(1, 2) for t in qkv.split(W, dim=-1))
    a = torch.softmax((q @ k.transpose(-2, -1)) * D ** -0.5, dim=-1)  # [b,H,N,N]
    o = (a @ v).transpose(1, 2).reshape(b, N, W)  # [b,N,W]
    return F.linear(o, _w(tg, p + ".attn.proj.weight", dt), _w(tg, p + ".attn.proj.bias", dt))


def cross_attention(tg, p, xq, kv, dt):
    """xq [1,N,W] (norm2_q'd queries), kv [B,T,W] (norm2_kv'd image tokens) -> [B,N,W].

    Single head over all W dims, no K/V projection, scale (W/8)^-1/2 (0.125 for W = 512)."""
    W = xq.shape[-1]
    q = F.linear(xq, _w(tg, p + ".cross_attn.q.weight", dt))  # [1,N,W]
    a = torch.softmax((q @ kv.transpose(-2, -1)) * (W // BONDER_HEADS) ** -0.5, dim=-1)  # [B,N,T]
    return F.linear(a @ kv, _w(tg, p + ".cross_attn.proj.weight", dt),
                    _w(tg, p + ".cross_attn.proj.bias", dt))


def bonder(tg, p, query, img, dt, trace=None):
    """query [1,N,W], img [B,T,W] -> [B,N,W]. trace (a dict) gets the self-attention stage."""
    q = query.to(dt)
    q = q + self_attention(tg, p, _ln(q, tg, p + ".norm1", dt), dt)  # [1,N,W]
    if trace is not None:
        trace["after_self_attn"] = q
    q = q + cross_attention(tg, p, _ln(q, tg, p + ".norm2_q", dt), _ln(img.to(dt), tg, p + ".norm2_kv", dt),
                            dt)  # [B,N,W]
    h = _ln(q, tg, p + ".norm_mlp", dt)
    h = F.linear(F.gelu(F.linear(h, _w(tg, p + ".mlp.fc1.weight", dt), _w(tg, p + ".mlp.fc1.bias", dt))),
                 _w(tg, p + ".mlp.fc2.weight", dt), _w(tg, p + ".mlp.fc2.bias", dt))
    return q + h


def prompt_ids(nq, ctx):
    """ids of "X X .. X." with nq X's, as clip.tokenize gives them: [SOT, 343 x nq, 269, EOT, 0 ..]."""
    if nq + 3 > ctx:
        raise ValueError(f"{nq} queries do not fit a context of {ctx}")
    ids = [SOT] + [X_ID] * nq + [DOT_ID, EOT]
    return torch.tensor(ids + [PAD] * (ctx - len(ids)), dtype=torch.int64)


def text_features(sd, cfg, out, dt):
    """out [B,Nq,W] Bonder output -> (t [B,E], pooled index) through the frozen text encoder."""
    B, nq, W = out.shape
    ids = prompt_ids(nq, cfg["context_length"])
    emb = clip_ref.embed_tokens(sd, ids, dt)  # [ctx,W]
    prefix = emb[:1].expand(B, 1, W)  # SOT
    suffix = emb[1 + nq:].expand(B, emb.shape[0] - 1 - nq, W)  # ".", EOT, emb(0) ...
    x = torch.cat([prefix, out, suffix], dim=1)  # [B,ctx,W]
    eot = clip_ref.eot_positions(ids)  # argmax of the ids, as the official TextEncoder pools
    t = clip_ref.text_from_embeddings(sd, cfg, x, eot.expand(B), dt)
    return t, int(eot)


def head_logits(f, weight, dt):
    """f [B,2E], weight [C,2E] -> 100 * normalize(f) @ weight^T [B,C] (weight not re-normalised)."""
    return LOGIT_SCALE * F.normalize(f.to(dt), dim=-1) @ weight.to(dt).t()


def forward(tg, sd, cfg, images, dt):
    if cfg["embed_dim"] != cfg["transformer_width"]:
        raise ValueError("TGP-T needs embed_dim == transformer_width")
    with torch.no_grad():  # the image encoder is frozen and gets no gradient
        image_cls, image_tokens = clip_ref.encode_image(sd, cfg, images, dt)
    out_cat = bonder(tg, "prompt_learner.bonder_category", tg["prompt_learner.query_category"],
                     image_tokens, dt)  # [B,Nc,W]
    out_con = bonder(tg, "prompt_learner.bonder_content", tg["prompt_learner.query_content"],
                     image_tokens, dt)  # [B,Nn,W]
    t_cat, pool_cat = text_features(sd, cfg, out_cat, dt)
    t_con, pool_con = text_features(sd, cfg, out_con, dt)
    fused = torch.cat([image_cls, (t_cat + t_con) / 2], dim=-1)  # [B,2E]
    return dict(image_cls=image_cls, image_tokens=image_tokens, out_cat=out_cat, out_con=out_con,
                t_cat=t_cat, t_con=t_con, fused_features=fused,
                logits=head_logits(fused, tg["cls_head.fc.weight"], dt),
                pool_cat=pool_cat, pool_con=pool_con)


def text_targets(tokens, n):
    """tokens [B,ctx] -> targets [B,n] = tokens[:, 1:1+n] with pad 0 -> -100."""
    t = tokens.long()[:, 1:1 + n].clone()
    t[t == PAD] = -100
    return t


def vocab_loss(out, sd, targets, dt):
    """CE over the whole vocabulary: out [B,N,W] @ E_tok^T [W,V], smoothing 0.1, ignore -100."""
    logits = out @ sd["token_embedding.weight"].to(dt).t()  # [B,N,V]
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100,
                           label_smoothing=LABEL_SMOOTHING)


def losses(fwd, sd, labels, caption_tokens, category_sentence_tokens, dt):
    labels = labels.long()
    nc, nn_ = fwd["out_cat"].shape[1], fwd["out_con"].shape[1]
    l_cls = F.cross_entropy(fwd["logits"], labels)
    l_cat = vocab_loss(fwd["out_cat"], sd, text_targets(category_sentence_tokens[labels], nc), dt)
    l_con = vocab_loss(fwd["out_con"], sd, text_targets(caption_tokens, nn_), dt)
    return dict(loss_cls=l_cls, loss_category=l_cat, loss_content=l_con, loss_total=l_cls + l_cat + l_con)


def eval_logits(fused, tg, dt):
    """fused [B,2E] -> (logits with the trained head, logits with the WiSE-FT(0.5) head)."""
    w = tg["cls_head.fc.weight"].to(dt)
    w_wise = 0.5 * w + 0.5 * tg["zs_weights"].to(dt)
    return head_logits(fused, w, dt), head_logits(fused, w_wise, dt)


def lr_at(k, base, warmup, max_iter):
    """lr of the k-th update (1-based), method.md section 4.1."""
    if k < warmup:
        return base * k / warmup
    return base * (1 + math.cos(math.pi * (k - warmup) / max_iter)) / 2


def leaves(tg, dt):
    """A copy of tg in dt whose trainable tensors are autograd leaves."""
    out = {}
    for n, t in tg.items():
        x = t.detach().to(dt).clone()
        out[n] = x.requires_grad_(True) if n in trainable_names(tg) else x
    return out


def replay(tg0, sd, cfg, batch, steps, lr, max_iter, warmup_iter, dt, on_first_step=None):
    """Trains `steps` AdamW updates on one fixed batch; returns (trace dict, final state).
    on_first_step(tg, fwd, losses) is called after the first backward, before the update.

    trace: step.<loss> [steps] and step.lr [steps] (python floats in lists), fwd1.* and grad1.*
    (first forward / backward), param<K>.* after update K, eval.logits / eval.logits_wiseft."""
    tg = leaves(tg0, dt)
    names = trainable_names(tg)
    opt = torch.optim.AdamW([tg[n] for n in names], lr=lr, **ADAMW)
    trace = {f"step.{k}": [] for k in ("loss_cls", "loss_category", "loss_content", "loss_total", "lr")}
    for k in range(1, steps + 1):
        lr_k = lr_at(k, lr, warmup_iter, max_iter)
        for g in opt.param_groups:
            g["lr"] = lr_k
        opt.zero_grad(set_to_none=True)
        fwd = forward(tg, sd, cfg, batch["images"], dt)
        ls = losses(fwd, sd, batch["labels"], batch["caption_tokens"], batch["category_sentence_tokens"], dt)
        ls["loss_total"].backward()
        for key, v in ls.items():
            trace[f"step.{key}"].append(v.item())
        trace["step.lr"].append(lr_k)
        if k == 1:
            for key in ("image_cls", "t_cat", "t_con", "fused_features", "logits"):
                trace[f"fwd1.{key}"] = fwd[key].detach().clone()
            for n in names:
                if tg[n].grad is not None:
                    trace[f"grad1.{n}"] = tg[n].grad.detach().clone()
            if on_first_step is not None:
                on_first_step(tg, fwd, ls)
        opt.step()
        for n in names:
            if receives_gradient(n):
                trace[f"param{k}.{n}"] = tg[n].detach().clone()
    with torch.no_grad():
        fwd = forward(tg, sd, cfg, batch["images"], dt)
        trace["eval.logits"], trace["eval.logits_wiseft"] = eval_logits(fwd["fused_features"], tg, dt)
    return trace, tg
