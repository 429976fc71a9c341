"""Our own PyTorch reference of the CLIP ViT forward passes (../shared/spec/clip.md section 1).

Written from the spec with plain torch ops (not copied from openai/CLIP). Every function takes a
state dict under OpenAI's names (any float dtypes), a config dict (the keys of the tgpt.config
metadata, models/README.md) and a compute dtype (torch.float32 or torch.float64); weights and
inputs are converted to that dtype first.

  encode_image(sd, cfg, images, dt) -> (pooled [B,E], tokens [B,T,E])
      pooled = ln_post(CLS) @ visual.proj; tokens = every output token @ visual.proj WITHOUT
      ln_post (TGP-T, ../shared/spec/method.md section 1.2).
  encode_text(sd, cfg, tokens, dt) -> [N,E], pooled at the first argmax of each token row.
  text_from_embeddings(sd, cfg, x, eot, dt) -> [N,E]; x [N,ctx,W] replaces the token lookup.
  embed_tokens(sd, tokens, dt) -> [N,ctx,W]

Attention runs through F.multi_head_attention_forward (what CLIP's nn.MultiheadAttention calls)
with CLIP's additive causal mask (full -inf, triu(1)); explicit=True computes it with explicit
matmul/softmax instead, so the two can be cross-checked.
"""
import math

import torch
import torch.nn.functional as F


def quick_gelu(x):
    return x * torch.sigmoid(1.702 * x)


def _activation(cfg):
    act = cfg["activation"]
    if act == "quick_gelu":
        return quick_gelu
    if act == "gelu":
        return F.gelu  # exact erf form
    raise ValueError(f"unknown activation {act!r}")


def _w(sd, name, dt):
    return sd[name].to(dt)


def _layer_norm(x, sd, prefix, dt):
    return F.layer_norm(x, (x.shape[-1],), _w(sd, prefix + ".weight", dt), _w(sd, prefix + ".bias", dt),
                        1e-5)


def causal_mask(T, dt):
    return torch.full((T, T), float("-inf"), dtype=dt).triu_(1)


def _attention(h, sd, p, heads, causal, dt, explicit):
    """h [B,T,W] (already ln_1-normalised) -> out_proj(MHA(h)) [B,T,W]."""
    B, T, W = h.shape
    in_w, in_b = _w(sd, p + ".in_proj_weight", dt), _w(sd, p + ".in_proj_bias", dt)
    out_w, out_b = _w(sd, p + ".out_proj.weight", dt), _w(sd, p + ".out_proj.bias", dt)
    mask = causal_mask(T, dt) if causal else None
    if not explicit:
        ht = h.transpose(0, 1)  # [T,B,W], nn.MultiheadAttention's default layout
        out, _ = F.multi_head_attention_forward(
            ht, ht, ht, W, heads, in_w, in_b, None, None, False, 0.0, out_w, out_b,
            training=False, need_weights=False, attn_mask=mask)
        return out.transpose(0, 1)
    D = W // heads
    qkv = F.linear(h, in_w, in_b)  # [B,T,3W]
    q, k, v = (t.reshape(B, T, heads, D).transpose(1, 2) for t in qkv.split(W, dim=-1))  # [B,H,T,D]
    s = (q / math.sqrt(D)) @ k.transpose(-2, -1)  # [B,H,T,T]
    if mask is not None:
        s = s + mask
    o = torch.softmax(s, dim=-1) @ v  # [B,H,T,D]
    o = o.transpose(1, 2).reshape(B, T, W)
    return F.linear(o, out_w, out_b)


def _block(x, sd, p, heads, act, causal, dt, explicit):
    """Pre-LN residual attention block: x [B,T,W] -> [B,T,W]."""
    x = x + _attention(_layer_norm(x, sd, p + ".ln_1", dt), sd, p + ".attn", heads, causal, dt, explicit)
    h = _layer_norm(x, sd, p + ".ln_2", dt)
    h = F.linear(h, _w(sd, p + ".mlp.c_fc.weight", dt), _w(sd, p + ".mlp.c_fc.bias", dt))
    h = F.linear(act(h), _w(sd, p + ".mlp.c_proj.weight", dt), _w(sd, p + ".mlp.c_proj.bias", dt))
    return x + h


def encode_image(sd, cfg, images, dt, explicit=False):
    P, W = cfg["vision_patch_size"], cfg["vision_width"]
    act = _activation(cfg)
    B = images.shape[0]
    x = F.conv2d(images.to(dt), _w(sd, "visual.conv1.weight", dt), stride=P)  # [B,W,G,G]
    x = x.reshape(B, W, -1).permute(0, 2, 1)  # [B,G*G,W], token 1 + r*G + c = patch (r, c)
    cls = _w(sd, "visual.class_embedding", dt).reshape(1, 1, W).expand(B, 1, W)
    x = torch.cat([cls, x], dim=1) + _w(sd, "visual.positional_embedding", dt)  # [B,T,W]
    x = _layer_norm(x, sd, "visual.ln_pre", dt)
    for i in range(cfg["vision_layers"]):
        x = _block(x, sd, f"visual.transformer.resblocks.{i}", cfg["vision_heads"], act, False, dt,
                   explicit)
    proj = _w(sd, "visual.proj", dt)  # [W,E], used as x @ proj
    pooled = _layer_norm(x[:, 0, :], sd, "visual.ln_post", dt) @ proj  # [B,E]
    tokens = x @ proj  # [B,T,E], no ln_post
    return pooled, tokens


def embed_tokens(sd, tokens, dt):
    return _w(sd, "token_embedding.weight", dt)[tokens.long()]


def eot_positions(tokens):
    """First position of each row's maximum id (torch.argmax returns the first maximal index)."""
    return tokens.long().argmax(dim=-1)


def text_from_embeddings(sd, cfg, x, eot, dt, explicit=False):
    act = _activation(cfg)
    x = x.to(dt) + _w(sd, "positional_embedding", dt)  # [N,ctx,W]
    for i in range(cfg["transformer_layers"]):
        x = _block(x, sd, f"transformer.resblocks.{i}", cfg["transformer_heads"], act, True, dt,
                   explicit)
    x = _layer_norm(x, sd, "ln_final", dt)
    pooled = x[torch.arange(x.shape[0]), eot.long()]  # [N,W]
    return pooled @ _w(sd, "text_projection", dt)  # [N,E]


def encode_text(sd, cfg, tokens, dt, explicit=False):
    return text_from_embeddings(sd, cfg, embed_tokens(sd, tokens, dt), eot_positions(tokens), dt,
                                explicit)
