#!/usr/bin/env python3
"""bf16 against f32 on the CPU for a tgpt CLIP: embeds the test images of the synthetic world's
datasets and their class prompts ("a photo of a {}.") with tgpt-embed twice (--precision f32 and
bf16, --device cpu), then prints the feature errors (max / mean |bf16 - f32|, relative to the
mean |f32|; cosine of each bf16 feature with its f32 one) and the zero-shot top-1 of both and
their per-image agreement (argmax of cosine similarity over each dataset's classes).

usage: bf16_agreement.py TGPT_EMBED WEIGHTS WORLD_DIR WORK_DIR
  WORLD_DIR: tgpt-data synth's output (synth_colors/, synth_scenes/, synth_shapes/ with
  split_zhou_*.json and classnames.txt). WORK_DIR receives the lists and the feature files.
"""
import glob
import json
import os
import subprocess
import sys

import struct

import torch


def load_file(path):
    """The f32 tensors of a safetensors file (the format tgpt-embed writes)."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        if t["dtype"] != "F32":  # e.g. the text tokens
            continue
        b0, b1 = t["data_offsets"]
        out[name] = torch.frombuffer(bytearray(data[b0:b1]), dtype=torch.float32).reshape(t["shape"])
    return out


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    embed, weights, world, work = sys.argv[1:]
    os.makedirs(work, exist_ok=True)
    images, labels, texts, groups = [], [], [], []  # groups: (image range, text range)
    for folder in sorted(glob.glob(os.path.join(world, "synth_*"))):
        split = glob.glob(os.path.join(folder, "split_zhou_*.json"))[0]
        test = json.load(open(split))["test"]
        classes = [c.strip() for c in open(os.path.join(folder, "classnames.txt")) if c.strip()]
        i0, t0 = len(images), len(texts)
        images += [os.path.join(folder, "images", p) for p, _, _ in test]
        labels += [y for _, y, _ in test]
        texts += [f"a photo of a {c}." for c in classes]
        groups.append((os.path.basename(folder), i0, len(images), t0, len(texts)))
    with open(os.path.join(work, "images.txt"), "w") as f:
        f.write("\n".join(images) + "\n")
    with open(os.path.join(work, "texts.txt"), "w") as f:
        f.write("\n".join(texts) + "\n")
    feats = {}
    for prec in ("f32", "bf16"):
        out = os.path.join(work, f"features_{prec}.safetensors")
        subprocess.run([embed, "--weights", weights, "--image-list", os.path.join(work, "images.txt"),
                        "--text-list", os.path.join(work, "texts.txt"), "--device", "cpu",
                        "--precision", prec, "-o", out], check=True, stdout=subprocess.DEVNULL)
        feats[prec] = load_file(out)
    for key in ("image_features", "text_features"):
        a, b = feats["f32"][key].double(), feats["bf16"][key].double()
        err = (b - a).abs()
        cos = torch.nn.functional.cosine_similarity(a, b, dim=1)
        print(f"{key}: max |bf16-f32| {err.max():.4g}, mean {err.mean():.4g} "
              f"(mean |f32| {a.abs().mean():.4g}); cosine min {cos.min():.6f}, mean {cos.mean():.6f}")
    total = agree = 0
    for name, i0, i1, t0, t1 in groups:
        y = torch.tensor(labels[i0:i1])
        pred = {}
        for prec in ("f32", "bf16"):
            im = torch.nn.functional.normalize(feats[prec]["image_features"][i0:i1].double(), dim=1)
            tx = torch.nn.functional.normalize(feats[prec]["text_features"][t0:t1].double(), dim=1)
            pred[prec] = (im @ tx.T).argmax(1)
        same = int((pred["f32"] == pred["bf16"]).sum())
        total += i1 - i0
        agree += same
        print(f"{name}: zero-shot top-1 f32 {100 * float((pred['f32'] == y).double().mean()):.2f}%, "
              f"bf16 {100 * float((pred['bf16'] == y).double().mean()):.2f}%, "
              f"same prediction {same}/{i1 - i0}")
    print(f"all: same zero-shot prediction for {agree}/{total} images ({100 * agree / total:.2f}%)")


if __name__ == "__main__":
    main()
