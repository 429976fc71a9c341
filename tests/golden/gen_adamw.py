"""Golden fixture for the optimizers and schedules: torch.optim.AdamW / SGD over 10 steps.

Writes OUT_DIR/adamw.safetensors with:
  lr.tgpt             f64[10]   TGP-T warm-up + cosine lr for k = 1..10 (method.md section 4.1),
                                base 2e-3, WARMUP_ITER 4, MAX_ITER 10, from the spec formula
  lr.cosine_torch     f64[11]   torch CosineAnnealingLR(T_max=10, eta_min=0) lr after k = 0..10
                                scheduler.step() calls, base 2e-3
  has_grad            i32[10,3] 1 where parameter i gets a gradient at step t (param2 skips 3, 7)
  param{i}.init       f32       initial values of 3 parameters of different shapes
  param{i}.grad       f32[10,...] the gradient fed at each step (fixed random tensors)
  adamw.param{i}.after              f32[10,...] values after each AdamW step (eps 1e-7, wd 1e-4,
                                    lr from lr.tgpt)
  adamw.param{i}.exp_avg/.exp_avg_sq/.step   final AdamW state
  sgd.param{i}.after, sgd.param{i}.momentum_buffer   SGD momentum 0.9, dampening 0.1, wd 1e-3,
                                    lr = 50 * lr.tgpt
  nesterov.param{i}.after           SGD Nesterov momentum 0.9, wd 1e-3, lr = 50 * lr.tgpt
  adamw64.init/.grad/.after         one f64 parameter, AdamW with torch's default eps/wd, lr.tgpt
"""
import math
import pathlib

import torch

from st import save

BASE_LR = 2e-3
WARMUP = 4
MAX_ITER = 10
STEPS = 10
SHAPES = [(7, 13), (64,), (3, 5, 17)]
GRAD_SCALES = [1.0, 1e-6, 10.0]  # 1e-6: sqrt(v) comparable to eps
NO_GRAD_STEPS = {2: {3, 7}}  # parameter index -> 1-based steps without a gradient


def tgpt_lr(k):
    """method.md section 4.1: k < W: base*k/W; k >= W: base*(1+cos(pi*(k-W)/T))/2."""
    if k < WARMUP:
        return BASE_LR * k / WARMUP
    return BASE_LR * (1 + math.cos(math.pi * (k - WARMUP) / MAX_ITER)) / 2


def torch_cosine_lrs(base, t_max, n):
    """lr of torch's CosineAnnealingLR after 0..n scheduler.step() calls."""
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=base)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=t_max, eta_min=0)
    lrs = [opt.param_groups[0]["lr"]]
    for _ in range(n):
        opt.step()
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    return lrs


def run(opt_factory, inits, grads, has_grad, lrs):
    """Runs STEPS optimizer steps; returns (params, per-step values [STEPS, ...] per param)."""
    params = [x.clone().requires_grad_(True) for x in inits]
    opt = opt_factory(params)
    after = [[] for _ in params]
    for t in range(STEPS):
        for group in opt.param_groups:
            group["lr"] = lrs[t]
        for i, p in enumerate(params):
            p.grad = grads[i][t].clone() if has_grad[t, i] else None
        opt.step()
        for i, p in enumerate(params):
            after[i].append(p.detach().clone())
    return opt, params, [torch.stack(a) for a in after]


def generate(out_dir):
    out_dir = pathlib.Path(out_dir)
    g = torch.Generator().manual_seed(20240601)
    lrs = [tgpt_lr(k) for k in range(1, STEPS + 1)]

    # The spec formula's cosine phase must agree with torch's CosineAnnealingLR(T_max=MAX_ITER)
    # started at base at k = W (what TGP-T's warm-up wrapper hands over to).
    ref = torch_cosine_lrs(BASE_LR, MAX_ITER, STEPS - WARMUP)
    for k in range(WARMUP, STEPS + 1):
        assert abs(lrs[k - 1] - ref[k - WARMUP]) <= 1e-15 * BASE_LR, (k, lrs[k - 1], ref[k - WARMUP])

    inits = [torch.randn(s, generator=g) for s in SHAPES]
    grads = [torch.randn((STEPS,) + s, generator=g) * c for s, c in zip(SHAPES, GRAD_SCALES)]
    has_grad = torch.ones(STEPS, len(SHAPES), dtype=torch.int32)
    for i, steps in NO_GRAD_STEPS.items():
        for k in steps:
            has_grad[k - 1, i] = 0

    tensors = {
        "lr.tgpt": torch.tensor(lrs, dtype=torch.float64),
        "lr.cosine_torch": torch.tensor(torch_cosine_lrs(BASE_LR, MAX_ITER, STEPS), dtype=torch.float64),
        "has_grad": has_grad,
    }
    for i in range(len(SHAPES)):
        tensors[f"param{i}.init"] = inits[i]
        tensors[f"param{i}.grad"] = grads[i]

    adamw, params, after = run(
        lambda ps: torch.optim.AdamW(ps, lr=BASE_LR, betas=(0.9, 0.999), eps=1e-7, weight_decay=1e-4,
                                     foreach=False),
        inits, grads, has_grad, lrs)
    for i, p in enumerate(params):
        st = adamw.state[p]
        tensors[f"adamw.param{i}.after"] = after[i]
        tensors[f"adamw.param{i}.exp_avg"] = st["exp_avg"]
        tensors[f"adamw.param{i}.exp_avg_sq"] = st["exp_avg_sq"]
        tensors[f"adamw.param{i}.step"] = torch.tensor([int(st["step"].item())], dtype=torch.int64)

    sgd_lrs = [50 * lr for lr in lrs]
    sgd, params, after = run(
        lambda ps: torch.optim.SGD(ps, lr=1.0, momentum=0.9, dampening=0.1, weight_decay=1e-3,
                                   foreach=False),
        inits, grads, has_grad, sgd_lrs)
    for i, p in enumerate(params):
        tensors[f"sgd.param{i}.after"] = after[i]
        tensors[f"sgd.param{i}.momentum_buffer"] = sgd.state[p]["momentum_buffer"]

    _, _, after = run(
        lambda ps: torch.optim.SGD(ps, lr=1.0, momentum=0.9, weight_decay=1e-3, nesterov=True,
                                   foreach=False),
        inits, grads, has_grad, sgd_lrs)
    for i in range(len(SHAPES)):
        tensors[f"nesterov.param{i}.after"] = after[i]

    init64 = torch.randn(5, 6, generator=g, dtype=torch.float64)
    grad64 = torch.randn(STEPS, 5, 6, generator=g, dtype=torch.float64)
    _, _, after = run(lambda ps: torch.optim.AdamW(ps, lr=BASE_LR, foreach=False), [init64], [grad64],
                      torch.ones(STEPS, 1, dtype=torch.int32), lrs)
    tensors["adamw64.init"] = init64
    tensors["adamw64.grad"] = grad64
    tensors["adamw64.after"] = after[0]

    save(out_dir / "adamw.safetensors", tensors,
         {"base_lr": BASE_LR, "warmup_iters": WARMUP, "max_iter": MAX_ITER, "steps": STEPS})


if __name__ == "__main__":
    import sys
    generate(sys.argv[1] if len(sys.argv) > 1 else ".")
