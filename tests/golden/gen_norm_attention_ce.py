"""Golden fixtures for layer_norm, attention and cross_entropy (PyTorch 1.13, CPU).

generate(out_dir) writes out_dir/norm_attention_ce.safetensors: random float32 inputs, a fixed
random upstream gradient, and PyTorch's outputs and input gradients computed in float32 (name
"<case>.<out>") and, from the same float32 input values, in float64 ("<case>.<out>.f64"). The
float64 results are the accuracy reference: PyTorch's own float32 results carry rounding error
of up to ~1e-6 of the tensor's largest value (e.g. the row sum inside log_softmax's backward for
cross_entropy with label smoothing), so an exact-to-rounding implementation is compared with both.
  ln:    x [4,7,48], weight/bias [48], eps 1e-5, dy -> y, dx, dweight, dbias
  attn.T{7,77}.{full,causal}: qkv [2,T,192] (C=64, 4 heads), dy [2,T,64] -> y, dqkv, computed as
         CLIP's nn.MultiheadAttention does: F.multi_head_attention_forward on [T,B,C] with identity
         projections (exact) and CLIP's float -inf upper-triangular mask; cross-checked against
         explicit matmul + softmax + mask.
  ce.smooth: logits [64,1000], label_smoothing 0.1, ignore_index -100 (9 rows ignored);
  ce.plain:  logits [64,1000], label_smoothing 0, ignore_index 7; upstream gradient 0.75 ->
         loss [1], dlogits.
"""
import math
import pathlib

import torch
import torch.nn.functional as F

from st import save


def _run(fn, inputs, upstream, dtype):
    """fn(*inputs) in dtype; returns (output, [grad of each input]) as float32/float64 tensors."""
    leaves = [t.detach().to(dtype).clone().requires_grad_(True) for t in inputs]
    y = fn(*leaves)
    y.backward(upstream.to(dtype))
    return y.detach(), [t.grad for t in leaves]


def _store(out, prefix, names, f32, f64):
    for name, a, b in zip(names, [f32[0]] + f32[1], [f64[0]] + f64[1]):
        out[f"{prefix}.{name}"] = a
        out[f"{prefix}.{name}.f64"] = b


def _layernorm(g, out):
    x = torch.randn(4, 7, 48, generator=g) * 2.0 + 0.5
    w = torch.randn(48, generator=g)
    b = torch.randn(48, generator=g)
    dy = torch.randn(4, 7, 48, generator=g)
    fn = lambda x_, w_, b_: F.layer_norm(x_, (48,), w_, b_, 1e-5)  # noqa: E731
    r32 = _run(fn, [x, w, b], dy, torch.float32)
    r64 = _run(fn, [x, w, b], dy, torch.float64)
    out.update({"ln.x": x, "ln.weight": w, "ln.bias": b, "ln.dy": dy})
    _store(out, "ln", ["y", "dx", "dweight", "dbias"], r32, r64)


def _attention_mha(qkv, heads, causal):
    """CLIP's path: nn.MultiheadAttention's functional form on [T, B, C], identity projections."""
    B, T, C3 = qkv.shape
    C = C3 // 3
    dt = qkv.dtype
    q, k, v = (t.transpose(0, 1) for t in qkv.split(C, dim=-1))  # [T, B, C]
    eye = torch.eye(C, dtype=dt)
    mask = None
    if causal:  # CLIP build_attention_mask: -inf above the diagonal
        mask = torch.empty(T, T, dtype=dt).fill_(float("-inf")).triu_(1)
    o, _ = F.multi_head_attention_forward(
        q, k, v, C, heads, in_proj_weight=None, in_proj_bias=torch.zeros(3 * C, dtype=dt),
        bias_k=None, bias_v=None, add_zero_attn=False, dropout_p=0.0, out_proj_weight=eye,
        out_proj_bias=torch.zeros(C, dtype=dt), training=False, need_weights=False,
        attn_mask=mask, use_separate_proj_weight=True, q_proj_weight=eye, k_proj_weight=eye,
        v_proj_weight=eye)
    return o.transpose(0, 1)  # [B, T, C]


def _attention_explicit(qkv, heads, causal):
    B, T, C3 = qkv.shape
    C = C3 // 3
    D = C // heads
    q, k, v = (t.reshape(B, T, heads, D).transpose(1, 2) for t in qkv.split(C, dim=-1))
    s = (q / math.sqrt(D)) @ k.transpose(-2, -1)
    if causal:
        s = s + torch.empty(T, T, dtype=qkv.dtype).fill_(float("-inf")).triu_(1)
    p = torch.softmax(s, dim=-1)
    return (p @ v).transpose(1, 2).reshape(B, T, C)


def _attention(g, out):
    B, C, heads = 2, 64, 4
    for T in (7, 77):
        for causal in (False, True):
            name = f"attn.T{T}.{'causal' if causal else 'full'}"
            qkv = torch.randn(B, T, 3 * C, generator=g)
            dy = torch.randn(B, T, C, generator=g)
            fn = lambda q_: _attention_mha(q_, heads, causal)  # noqa: E731
            r32 = _run(fn, [qkv], dy, torch.float32)
            r64 = _run(fn, [qkv], dy, torch.float64)
            explicit = _attention_explicit(qkv.double(), heads, causal)
            assert torch.allclose(r64[0], explicit, rtol=1e-12, atol=1e-12), name
            out.update({f"{name}.qkv": qkv, f"{name}.dy": dy})
            _store(out, name, ["y", "dqkv"], r32, r64)


def _cross_entropy(g, out):
    N, V = 64, 1000
    for name, ls, ignore in (("ce.smooth", 0.1, -100), ("ce.plain", 0.0, 7)):
        logits = torch.randn(N, V, generator=g) * 3.0
        target = torch.randint(0, V, (N,), generator=g)
        target[torch.randperm(N, generator=g)[:9]] = ignore
        fn = lambda l_: F.cross_entropy(l_, target, ignore_index=ignore,  # noqa: E731
                                        label_smoothing=ls).reshape(1)
        up = torch.tensor([0.75])
        r32 = _run(fn, [logits], up, torch.float32)
        r64 = _run(fn, [logits], up, torch.float64)
        out.update({f"{name}.logits": logits, f"{name}.target": target,
                    f"{name}.label_smoothing": torch.tensor([ls], dtype=torch.float64),
                    f"{name}.ignore_index": torch.tensor([ignore], dtype=torch.int64),
                    f"{name}.upstream": up})
        _store(out, name, ["loss", "dlogits"], r32, r64)


def generate(out_dir):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        g = torch.Generator().manual_seed(20240611)
        out = {}
        _layernorm(g, out)
        _attention(g, out)
        _cross_entropy(g, out)
        save(pathlib.Path(out_dir) / "norm_attention_ce.safetensors", out,
             {"torch": torch.__version__})
    finally:
        torch.set_num_threads(threads)


if __name__ == "__main__":
    import sys
    generate(sys.argv[1] if len(sys.argv) > 1 else ".")
