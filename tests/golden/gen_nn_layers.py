"""Golden fixtures for the models/nn layers (PyTorch 1.13, CPU, float64).

generate(out_dir) writes out_dir/nn_layers.safetensors. For every case: the parameters under the
layer's own names ("<case>.p.<name>"), the inputs ("<case>.x", and "<case>.m" for a memory), a
fixed random upstream gradient "<case>.dy", and PyTorch's output "<case>.y" and gradients
("<case>.dx", "<case>.dm", "<case>.g.<name>" per parameter), all float64.

  linear.bias / linear.nobias   torch.nn.Linear(6, 5[, bias=False]), x [2,3,6]
  ln.default / ln.eps           torch.nn.LayerNorm(8[, eps=1e-3]) with random affine, x [2,3,8]
  mhsa.full / mhsa.causal       torch.nn.MultiheadAttention(16, 4, batch_first=True), x [2,5,16];
                                causal: CLIP's float -inf upper-triangular mask
  mhsa.nobias                   the same with bias=False
  cross.mh                      cross-attention written out: W 16, memory width 12, 4 heads, Q/K/V
                                and output projections with biases, x [2,3,16], m [2,7,12]
  cross.bonder                  TGP-T's Bonder CrossAttention (method.md section 2.2): one head,
                                no K/V projection, q without bias, scale (16/8)^-1/2, batch-1
                                queries x [1,3,16] over m [2,7,16]
  mlp.quick_gelu / mlp.gelu     c_fc 8 -> 32, activation, c_proj 32 -> 8, x [2,3,8]
  block.clip                    OpenAI CLIP's ResidualAttentionBlock (nn.MultiheadAttention,
                                QuickGELU, causal), W 16, 4 heads, x [2,5,16]
  block.bonder                  TGP-T's CrossAttnBlock written from method.md section 2.2 with
                                timm's names (norm1, attn.qkv, attn.proj, norm2_q, norm2_kv,
                                cross_attn.q, cross_attn.proj, norm_mlp, mlp.fc1, mlp.fc2), W 16,
                                4 self-attention heads, MLP ratio 1, exact GELU; x [1,3,16],
                                m [2,7,16]
"""
import math
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F

from st import save

DT = torch.float64


class QuickGELU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


def causal_mask(t):
    return torch.empty(t, t, dtype=DT).fill_(float("-inf")).triu_(1)


class MHSA(nn.Module):
    """nn.MultiheadAttention on [B, T, W] as self-attention (CLIP's call)."""

    def __init__(self, width, heads, causal, bias=True):
        super().__init__()
        self.mha = nn.MultiheadAttention(width, heads, bias=bias, batch_first=True)
        self.causal = causal

    def forward(self, x):
        mask = causal_mask(x.shape[1]) if self.causal else None
        return self.mha(x, x, x, need_weights=False, attn_mask=mask)[0]


class CrossMH(nn.Module):
    """Multi-head cross-attention with Q/K/V projections, written out."""

    def __init__(self, width, mem_width, heads):
        super().__init__()
        self.heads = heads
        self.q_proj = nn.Linear(width, width)
        self.k_proj = nn.Linear(mem_width, width)
        self.v_proj = nn.Linear(mem_width, width)
        self.out_proj = nn.Linear(width, width)

    def forward(self, x, m):
        B, Tq, W = x.shape
        Tk, H = m.shape[1], self.heads
        D = W // H
        q = self.q_proj(x).reshape(B, Tq, H, D).transpose(1, 2)
        k = self.k_proj(m).reshape(B, Tk, H, D).transpose(1, 2)
        v = self.v_proj(m).reshape(B, Tk, H, D).transpose(1, 2)
        p = torch.softmax((q @ k.transpose(-2, -1)) / math.sqrt(D), dim=-1)
        return self.out_proj((p @ v).transpose(1, 2).reshape(B, Tq, W))


class BonderCrossAttn(nn.Module):
    """TGP-T's CrossAttention: K = V = memory, one head over all dims, scale (W/8)^-1/2."""

    def __init__(self, width):
        super().__init__()
        self.scale = (width // 8) ** -0.5
        self.q = nn.Linear(width, width, bias=False)
        self.proj = nn.Linear(width, width)

    def forward(self, x, m):
        q = self.q(x)  # [1 or B, Tq, W], broadcast against m's batch
        attn = torch.softmax((q @ m.transpose(-2, -1)) * self.scale, dim=-1)
        return self.proj(attn @ m)


class BonderSelfAttn(nn.Module):
    """timm's Attention: packed qkv without bias, proj with bias."""

    def __init__(self, width, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width, bias=False)
        self.proj = nn.Linear(width, width)

    def forward(self, x):
        B, N, C = x.shape
        H = self.heads
        qkv = self.qkv(x).reshape(B, N, 3, H, C // H).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = torch.softmax((q @ k.transpose(-2, -1)) * (C // H) ** -0.5, dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(B, N, C))


class Mlp(nn.Module):
    def __init__(self, width, hidden, act, names=("c_fc", "c_proj")):
        super().__init__()
        self.names = names
        setattr(self, names[0], nn.Linear(width, hidden))
        setattr(self, names[1], nn.Linear(hidden, width))
        self.act = act

    def forward(self, x):
        return getattr(self, self.names[1])(self.act(getattr(self, self.names[0])(x)))


class ClipBlock(nn.Module):
    """OpenAI CLIP's ResidualAttentionBlock (batch-first)."""

    def __init__(self, width, heads, causal):
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.ln_1 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(OrderedDict([("c_fc", nn.Linear(width, 4 * width)),
                                              ("gelu", QuickGELU()),
                                              ("c_proj", nn.Linear(4 * width, width))]))
        self.ln_2 = nn.LayerNorm(width)
        self.causal = causal

    def forward(self, x):
        mask = causal_mask(x.shape[1]) if self.causal else None
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False, attn_mask=mask)[0]
        return x + self.mlp(self.ln_2(x))


class BonderBlock(nn.Module):
    """TGP-T's CrossAttnBlock (method.md section 2.2)."""

    def __init__(self, width, heads):
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.attn = BonderSelfAttn(width, heads)
        self.norm2_q = nn.LayerNorm(width)
        self.norm2_kv = nn.LayerNorm(width)
        self.cross_attn = BonderCrossAttn(width)
        self.norm_mlp = nn.LayerNorm(width)
        self.mlp = Mlp(width, width, nn.GELU(), names=("fc1", "fc2"))

    def forward(self, q, img):
        q = q + self.attn(self.norm1(q))
        q = q + self.cross_attn(self.norm2_q(q), self.norm2_kv(img))
        return q + self.mlp(self.norm_mlp(q))


def _case(out, g, name, module, x_shape, m_shape=None):
    module = module.to(DT)
    with torch.no_grad():  # random values everywhere (LayerNorm affine too), so every grad matters
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=DT) * 0.5)
    x = torch.randn(*x_shape, generator=g, dtype=DT).requires_grad_(True)
    m = None
    if m_shape is not None:
        m = torch.randn(*m_shape, generator=g, dtype=DT).requires_grad_(True)
    y = module(x) if m is None else module(x, m)
    dy = torch.randn(y.shape, generator=g, dtype=DT)
    y.backward(dy)
    out[f"{name}.x"] = x.detach()
    out[f"{name}.dy"] = dy
    out[f"{name}.y"] = y.detach()
    out[f"{name}.dx"] = x.grad
    if m is not None:
        out[f"{name}.m"] = m.detach()
        out[f"{name}.dm"] = m.grad
    for pname, p in module.named_parameters():
        pname = pname.removeprefix("mha.")  # MHSA wraps nn.MultiheadAttention
        out[f"{name}.p.{pname}"] = p.detach()
        out[f"{name}.g.{pname}"] = p.grad


def generate(out_dir):
    g = torch.Generator().manual_seed(20261206)
    out = {}
    _case(out, g, "linear.bias", nn.Linear(6, 5), (2, 3, 6))
    _case(out, g, "linear.nobias", nn.Linear(6, 5, bias=False), (2, 3, 6))
    _case(out, g, "ln.default", nn.LayerNorm(8), (2, 3, 8))
    _case(out, g, "ln.eps", nn.LayerNorm(8, eps=1e-3), (2, 3, 8))
    _case(out, g, "mhsa.full", MHSA(16, 4, False), (2, 5, 16))
    _case(out, g, "mhsa.causal", MHSA(16, 4, True), (2, 5, 16))
    _case(out, g, "mhsa.nobias", MHSA(16, 4, True, bias=False), (2, 5, 16))
    _case(out, g, "cross.mh", CrossMH(16, 12, 4), (2, 3, 16), (2, 7, 12))
    _case(out, g, "cross.bonder", BonderCrossAttn(16), (1, 3, 16), (2, 7, 16))
    _case(out, g, "mlp.quick_gelu", Mlp(8, 32, QuickGELU()), (2, 3, 8))
    _case(out, g, "mlp.gelu", Mlp(8, 32, nn.GELU()), (2, 3, 8))
    _case(out, g, "block.clip", ClipBlock(16, 4, True), (2, 5, 16))
    _case(out, g, "block.bonder", BonderBlock(16, 4), (1, 3, 16), (2, 7, 16))
    # the explicit cross-attention agrees with nn.MultiheadAttention's own (kdim/vdim) form
    ref = CrossMH(16, 12, 4).to(DT)
    mha = nn.MultiheadAttention(16, 4, kdim=12, vdim=12, batch_first=True).to(DT)
    with torch.no_grad():
        mha.q_proj_weight.copy_(ref.q_proj.weight)
        mha.k_proj_weight.copy_(ref.k_proj.weight)
        mha.v_proj_weight.copy_(ref.v_proj.weight)
        mha.in_proj_bias.copy_(torch.cat([ref.q_proj.bias, ref.k_proj.bias, ref.v_proj.bias]))
        mha.out_proj.weight.copy_(ref.out_proj.weight)
        mha.out_proj.bias.copy_(ref.out_proj.bias)
    x = torch.randn(2, 3, 16, generator=g, dtype=DT)
    m = torch.randn(2, 7, 12, generator=g, dtype=DT)
    err = (ref(x, m) - mha(x, m, m, need_weights=False)[0]).abs().max().item()
    assert err < 1e-12, f"explicit cross-attention disagrees with nn.MultiheadAttention: {err}"
    save(f"{out_dir}/nn_layers.safetensors", out)
