"""A CLIP ViT as a tree of torch.nn modules whose attribute paths are OpenAI's parameter names
(../shared/spec/clip.md section 1), written from the spec for the TorchScript fixture: it is traced
with torch.jit.trace and saved as OpenAI's released .pt files are. clip_ref.py stays the numeric
reference; ClipNN's forward is checked against it by the fixture generator.

  ClipNN(cfg)                    cfg: the tgpt.config keys (models/README.md)
  forward(image, text)           image [B,3,R,R], text [N,ctx] int64
                                 -> (logits_per_image [B,N], logits_per_text [N,B])
  encode_image / encode_text     pooled features [B,E] / [N,E]
"""
from collections import OrderedDict

import torch
import torch.nn as nn


class QuickGELU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class LayerNorm(nn.LayerNorm):
    """Computes in f32 whatever the input dtype (what OpenAI's traced code does)."""

    def forward(self, x):
        return super().forward(x.float()).to(x.dtype)


class ResidualAttentionBlock(nn.Module):
    def __init__(self, width, heads, act, attn_mask):
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads)
        self.ln_1 = LayerNorm(width)
        self.mlp = nn.Sequential(OrderedDict([
            ("c_fc", nn.Linear(width, 4 * width)),
            ("gelu", QuickGELU() if act == "quick_gelu" else nn.GELU()),
            ("c_proj", nn.Linear(4 * width, width)),
        ]))
        self.ln_2 = LayerNorm(width)
        self.attn_mask = attn_mask  # plain attribute: traced as a constant, as in OpenAI's files

    def forward(self, x):  # x [T,B,W]
        h = self.ln_1(x)
        mask = None if self.attn_mask is None else self.attn_mask.to(dtype=x.dtype)
        x = x + self.attn(h, h, h, need_weights=False, attn_mask=mask)[0]
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, width, layers, heads, act, attn_mask=None):
        super().__init__()
        self.resblocks = nn.Sequential(
            *[ResidualAttentionBlock(width, heads, act, attn_mask) for _ in range(layers)])

    def forward(self, x):
        return self.resblocks(x)


class VisionTransformer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        W, P, R = cfg["vision_width"], cfg["vision_patch_size"], cfg["image_resolution"]
        self.conv1 = nn.Conv2d(3, W, kernel_size=P, stride=P, bias=False)
        self.class_embedding = nn.Parameter(torch.zeros(W))
        self.positional_embedding = nn.Parameter(torch.zeros((R // P) ** 2 + 1, W))
        self.ln_pre = LayerNorm(W)
        self.transformer = Transformer(W, cfg["vision_layers"], cfg["vision_heads"], cfg["activation"])
        self.ln_post = LayerNorm(W)
        self.proj = nn.Parameter(torch.zeros(W, cfg["embed_dim"]))

    def forward(self, x):  # x [B,3,R,R]
        x = self.conv1(x.to(self.conv1.weight.dtype))  # [B,W,G,G]
        x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)  # [B,G*G,W]
        cls = self.class_embedding.to(x.dtype) + torch.zeros(x.shape[0], 1, x.shape[-1], dtype=x.dtype)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)  # [B,T,W]
        x = self.ln_pre(x)
        x = self.transformer(x.permute(1, 0, 2)).permute(1, 0, 2)
        return self.ln_post(x[:, 0, :]) @ self.proj


class ClipNN(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        ctx, W = cfg["context_length"], cfg["transformer_width"]
        self.visual = VisionTransformer(cfg)
        mask = torch.full((ctx, ctx), float("-inf")).triu_(1)
        self.transformer = Transformer(W, cfg["transformer_layers"], cfg["transformer_heads"],
                                       cfg["activation"], mask)
        self.token_embedding = nn.Embedding(cfg["vocab_size"], W)
        self.positional_embedding = nn.Parameter(torch.zeros(ctx, W))
        self.ln_final = LayerNorm(W)
        self.text_projection = nn.Parameter(torch.zeros(W, cfg["embed_dim"]))
        self.logit_scale = nn.Parameter(torch.zeros([]))

    def encode_image(self, image):
        return self.visual(image)

    def encode_text(self, text):  # text [N,ctx]
        x = self.token_embedding(text) + self.positional_embedding  # [N,ctx,W]
        x = self.transformer(x.permute(1, 0, 2)).permute(1, 0, 2)
        x = self.ln_final(x)
        return x[torch.arange(x.shape[0]), text.argmax(dim=-1)] @ self.text_projection

    def forward(self, image, text):
        img = self.encode_image(image)
        txt = self.encode_text(text)
        img = img / img.norm(dim=1, keepdim=True)
        txt = txt / txt.norm(dim=1, keepdim=True)
        logits_per_image = self.logit_scale.exp() * img @ txt.t()
        return logits_per_image, logits_per_image.t()
