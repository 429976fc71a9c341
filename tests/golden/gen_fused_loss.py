"""Golden fixtures for the fused losses vocab_cross_entropy and cosine_logit_loss (PyTorch 1.13).

generate(out_dir) writes out_dir/fused_loss.safetensors. Inputs are float32; each result is
computed by PyTorch from the same input values in float32 (name "<case>.<out>") and in float64
("<case>.<out>.f64", the accuracy reference), with the upstream gradient 0.75.
  vocab.smooth: hidden [24, 40], embedding [1000, 40], vocab.smooth.target [24] with 5 rows -100,
                cross_entropy(hidden @ embeddingᵀ, target, label_smoothing=0.1, ignore_index=-100)
                -> loss [], dhidden [24, 40]
  vocab.plain:  the same inputs with label_smoothing 0 and ignore_index 7 (vocab.plain.target:
                the -100 rows get class 999, row 5 has the ignored class 7)
  cos:          features [8, 96], weight [10, 96] (rows L2-normalised, then perturbed, as the
                zero-shot-initialised TGP-T head), target [8], scale 100:
                cross_entropy(100 * normalize(features) @ weightᵀ, target)
                -> loss [], dfeatures [8, 96], dweight [10, 96]
"""
import pathlib

import torch
import torch.nn.functional as F

from st import save

UPSTREAM = 0.75


def _run(fn, inputs, grad_mask, dtype):
    leaves = [t.detach().to(dtype).clone().requires_grad_(m) for t, m in zip(inputs, grad_mask)]
    y = fn(*leaves)
    y.backward(torch.tensor(UPSTREAM, dtype=dtype))
    return y.detach(), [t.grad for t, m in zip(leaves, grad_mask) if m]


def _vocab(g, out):
    N, W, V = 24, 40, 1000
    hidden = torch.randn(N, W, generator=g) * 0.5
    emb = torch.randn(V, W, generator=g) * 0.4
    target = torch.randint(0, V, (N,), generator=g)
    target[torch.tensor([2, 3, 11, 17, 23])] = -100
    target[5] = 7
    plain = torch.where(target < 0, torch.tensor(999), target)  # no -100 rows, row 5 ignored
    out.update({"vocab.hidden": hidden, "vocab.embedding": emb, "vocab.smooth.target": target,
                "vocab.plain.target": plain})
    for case, tgt, ls, ignore in [("smooth", target, 0.1, -100), ("plain", plain, 0.0, 7)]:
        fn = lambda h, e, tgt=tgt, ls=ls, ignore=ignore: F.cross_entropy(  # noqa: E731
            h @ e.t(), tgt, label_smoothing=ls, ignore_index=ignore)
        for dtype, suffix in [(torch.float32, ""), (torch.float64, ".f64")]:
            y, (dh,) = _run(fn, [hidden, emb], [True, False], dtype)
            out[f"vocab.{case}.loss{suffix}"] = y
            out[f"vocab.{case}.dhidden{suffix}"] = dh


def _cosine(g, out):
    N, Fd, K = 8, 96, 10
    feats = torch.randn(N, Fd, generator=g) * 3.0
    weight = F.normalize(torch.randn(K, Fd, generator=g), dim=-1)
    weight = weight + 0.01 * torch.randn(K, Fd, generator=g)
    target = torch.randint(0, K, (N,), generator=g)
    out.update({"cos.features": feats, "cos.weight": weight, "cos.target": target})
    fn = lambda x, w: F.cross_entropy(100.0 * F.normalize(x, dim=-1) @ w.t(), target)  # noqa: E731
    for dtype, suffix in [(torch.float32, ""), (torch.float64, ".f64")]:
        y, (dx, dw) = _run(fn, [feats, weight], [True, True], dtype)
        out[f"cos.loss{suffix}"] = y
        out[f"cos.dfeatures{suffix}"] = dx
        out[f"cos.dweight{suffix}"] = dw


def generate(out_dir):
    g = torch.Generator().manual_seed(20240611)
    out = {}
    _vocab(g, out)
    _cosine(g, out)
    save(pathlib.Path(out_dir) / "fused_loss.safetensors",
         {k: v.contiguous() for k, v in out.items()})


if __name__ == "__main__":
    import sys
    generate(sys.argv[1] if len(sys.argv) > 1 else ".")
