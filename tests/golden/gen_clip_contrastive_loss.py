"""Golden fixtures for clip_contrastive_loss, CLIP's symmetric InfoNCE loss (PyTorch 1.13).

generate(out_dir) writes out_dir/clip_contrastive_loss.safetensors. The reference is open_clip's
ClipLoss (single device) with OpenAI's clamp of the logit-scale parameter in the forward:
    s = logit_scale.clamp(max=ln 100).exp()
    logits = s * normalize(image) @ normalize(text).T
    loss = (cross_entropy(logits, arange(N)) + cross_entropy(logits.T, arange(N))) / 2
Inputs are float32; each result is computed from the same values in float32 ("<case>.<out>")
and in float64 ("<case>.<out>.f64", the accuracy reference), with the upstream gradient 0.75.
  init:    image [16, 32], text [16, 32] (text = image-correlated noise), logit_scale ln(1/0.07)
           (CLIP's initial value) -> loss [], dimage [16, 32], dtext [16, 32], dscale []
  clamped: the same features, logit_scale 5.0 > ln 100 -> the same outputs; dscale is 0 and s = 100
  small:   image [5, 7], text [5, 7], logit_scale 0.3 (s close to 1, soft probabilities)
"""
import math
import pathlib

import torch
import torch.nn.functional as F

from st import save

UPSTREAM = 0.75


def clip_loss(image, text, logit_scale):
    s = logit_scale.clamp(max=math.log(100.0)).exp()
    logits = s * F.normalize(image, dim=-1) @ F.normalize(text, dim=-1).t()
    labels = torch.arange(image.shape[0])
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)) / 2


def _case(name, image, text, scale, out):
    out.update({f"{name}.image": image, f"{name}.text": text,
                f"{name}.logit_scale": torch.tensor(scale, dtype=torch.float32)})
    for dtype, suffix in [(torch.float32, ""), (torch.float64, ".f64")]:
        leaves = [t.detach().to(dtype).clone().requires_grad_(True)
                  for t in (image, text, torch.tensor(scale, dtype=torch.float32))]
        y = clip_loss(*leaves)
        y.backward(torch.tensor(UPSTREAM, dtype=dtype))
        out[f"{name}.loss{suffix}"] = y.detach()
        out[f"{name}.dimage{suffix}"] = leaves[0].grad
        out[f"{name}.dtext{suffix}"] = leaves[1].grad
        out[f"{name}.dscale{suffix}"] = leaves[2].grad


def generate(out_dir):
    g = torch.Generator().manual_seed(20261206)
    out = {}
    N, E = 16, 32
    image = torch.randn(N, E, generator=g) * 2.0
    text = 0.3 * image + torch.randn(N, E, generator=g)
    _case("init", image, text, math.log(1 / 0.07), out)
    _case("clamped", image, text, 5.0, out)
    _case("small", torch.randn(5, 7, generator=g), torch.randn(5, 7, generator=g), 0.3, out)
    save(pathlib.Path(out_dir) / "clip_contrastive_loss.safetensors",
         {k: v.contiguous() for k, v in out.items()})


if __name__ == "__main__":
    import sys
    generate(sys.argv[1] if len(sys.argv) > 1 else ".")
