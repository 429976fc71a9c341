"""Golden fixtures for the linear probe (train/linear_probe.h), PyTorch 1.13 in float64.

generate(out_dir) writes out_dir/linear_probe.safetensors. For each case, features x [N, E]
(rows L2-normalised, as the probe sees CLIP features), labels y [N] (int64) and a penalty l2,
the minimiser of
    L(W, b) = cross_entropy(x @ W.T + b, y) + (l2 / 2) * ||W||^2      (mean over rows)
found by torch.optim.LBFGS (strong Wolfe line search, history 20) from W = 0, b = 0 until the
gradient vanishes at float64 precision: "<case>.weight" [C, E], "<case>.bias" [C],
"<case>.objective" [] and "<case>.l2" [].
  blobs: N 60, E 8, C 4, l2 1e-2 (class means plus noise)
  small: N 21, E 5, C 3, l2 1e-3 (weak penalty: large weights)
  wide:  N 12, E 16, C 5, l2 1e-1 (more dimensions than rows)
"""
import pathlib

import torch
import torch.nn.functional as F

from st import save


def fit(x, y, c, l2):
    w = torch.zeros(c, x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(c, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1, max_iter=5000, tolerance_grad=1e-14,
                            tolerance_change=1e-18, history_size=20, line_search_fn="strong_wolfe")

    def objective():
        return F.cross_entropy(x @ w.t() + b, y) + 0.5 * l2 * (w * w).sum()

    def closure():
        opt.zero_grad()
        loss = objective()
        loss.backward()
        return loss

    for _ in range(5):
        opt.step(closure)
    with torch.no_grad():
        return w.detach(), b.detach(), objective().detach()


def _case(name, g, n, e, c, l2, spread, out):
    means = torch.randn(c, e, generator=g, dtype=torch.float64) * spread
    y = torch.arange(n) % c
    x = means[y] + torch.randn(n, e, generator=g, dtype=torch.float64)
    x = x / x.norm(dim=1, keepdim=True)
    w, b, obj = fit(x, y, c, l2)
    out.update({f"{name}.x": x, f"{name}.y": y.to(torch.int64), f"{name}.l2": torch.tensor(l2,
                dtype=torch.float64), f"{name}.weight": w, f"{name}.bias": b,
                f"{name}.objective": obj})


def generate(out_dir):
    g = torch.Generator().manual_seed(20261206)
    out = {}
    _case("blobs", g, 60, 8, 4, 1e-2, 1.5, out)
    _case("small", g, 21, 5, 3, 1e-3, 1.0, out)
    _case("wide", g, 12, 16, 5, 1e-1, 0.8, out)
    save(pathlib.Path(out_dir) / "linear_probe.safetensors",
         {k: v.contiguous() for k, v in out.items()})


if __name__ == "__main__":
    import sys
    generate(sys.argv[1] if len(sys.argv) > 1 else ".")
