"""Fixtures for tgpt-convert (test_convert.cpp): one small random CLIP (ViT) state dict with
OpenAI's names, written in every source format the converter reads.

Config: vision width 128 (2 heads), 2 layers, patch 8, image 32 (grid 4, 17 tokens); text width
128 (2 heads), 2 layers, context 77, vocab 1000; embed 64. Every tensor (LayerNorm gains/biases
included) is random. Files written under OUT/convert/:

  reference.safetensors      the state dict in f32 with OpenAI names (the expected values)
  openai_jit.pt              TorchScript archive as OpenAI's releases are made: our nn.Module CLIP
                             (clip_nn.py, OpenAI's attribute paths) traced with torch.jit.trace on
                             forward(image, text) and saved with torch.jit.save, its parameters in
                             OpenAI's mixed f16/f32 layout (clip.md section 1.8), plus the int64
                             buffers input_resolution, context_length, vocab_size
  state_dict.pt              torch.save(state_dict) in f32 with visual.proj saved as a transposed
                             (strided) view and the two ln_final tensors sharing one storage
  open_clip.pt               {'epoch', 'optimizer', 'state_dict': {'module.' + k: v}} (f32)
  hf/model.safetensors       Hugging Face CLIPModel names (clip.md section 2.2), f32, with the
  hf/config.json             position_ids buffers, a config with hidden_act quick_gelu and a
  hf/merges.txt              tiny synthetic merges file
  bf16_state_dict.pt         torch.save of the state dict in bf16
"""
import hashlib
import json

import torch

import gen_clip_model
import st

VW, VL, PATCH, IMAGE = 128, 2, 8, 32
TW, TL, CTX, VOCAB = 128, 2, 77, 1000
EMBED = 64
GRID = IMAGE // PATCH


CFG = {"embed_dim": EMBED, "image_resolution": IMAGE, "vision_layers": VL, "vision_width": VW,
       "vision_patch_size": PATCH, "vision_heads": VW // 64, "context_length": CTX,
       "vocab_size": VOCAB, "transformer_width": TW, "transformer_heads": TW // 64,
       "transformer_layers": TL}


def is_f16_in_openai_layout(name):
    """clip.md 1.8: Conv/Linear weights and biases, in_proj, visual.proj, text_projection are f16."""
    if name in ("visual.proj", "text_projection", "visual.conv1.weight"):
        return True
    return any(p in name for p in ("attn.in_proj_", "attn.out_proj.", "mlp.c_fc.", "mlp.c_proj."))


def make_reference():
    g = torch.Generator().manual_seed(20240611)
    sd = {}
    for name, shape in gen_clip_model.tensor_shapes(CFG).items():
        if name == "logit_scale":
            sd[name] = torch.tensor(4.6052, dtype=torch.float32)
        elif "ln_" in name and name.endswith(".weight"):
            sd[name] = 1.0 + 0.1 * torch.randn(shape, generator=g)
        else:
            sd[name] = 0.02 * torch.randn(shape, generator=g)
    return sd


def traced_openai_module(sd, cfg, images, tokens):
    """torch.jit.trace of clip_nn.ClipNN holding sd (f32), then its Conv/Linear/projection
    parameters cast to f16 in place (OpenAI's mixed layout; torch 1.13's CPU kernels cannot trace
    in f16). Before the cast, the traced forward is checked against clip_ref in f64."""
    import clip_nn
    import clip_ref
    model = clip_nn.ClipNN(cfg).eval()
    model.load_state_dict(sd, strict=True)
    model.register_buffer("input_resolution", torch.tensor(IMAGE))
    model.register_buffer("context_length", torch.tensor(CTX))
    model.register_buffer("vocab_size", torch.tensor(VOCAB))
    with torch.no_grad():
        traced = torch.jit.trace(model, (images, tokens.long()))
        logits, _ = traced(images, tokens.long())
    img = clip_ref.encode_image(sd, cfg, images, torch.float64)[0]
    txt = clip_ref.encode_text(sd, cfg, tokens, torch.float64)
    img, txt = img / img.norm(dim=1, keepdim=True), txt / txt.norm(dim=1, keepdim=True)
    want = sd["logit_scale"].double().exp() * img @ txt.t()
    err = ((logits.double() - want).abs().max() / want.abs().max()).item()
    assert err < 1e-5, f"traced ClipNN disagrees with clip_ref: {err:.3g}"
    with torch.no_grad():
        for name, p in traced.named_parameters():
            if is_f16_in_openai_layout(name):
                p.data = p.data.half()
    return traced


def hf_state_dict(sd):
    hf = {}
    for tower, hf_tower, layers in (("visual.transformer", "vision_model", VL),
                                    ("transformer", "text_model", TL)):
        for i in range(layers):
            o = f"{tower}.resblocks.{i}."
            h = f"{hf_tower}.encoder.layers.{i}."
            w = sd[o + "attn.in_proj_weight"]
            b = sd[o + "attn.in_proj_bias"]
            for j, qkv in enumerate("qkv"):
                hf[h + f"self_attn.{qkv}_proj.weight"] = w.chunk(3, dim=0)[j].clone()
                hf[h + f"self_attn.{qkv}_proj.bias"] = b.chunk(3, dim=0)[j].clone()
            pairs = {"attn.out_proj": "self_attn.out_proj", "ln_1": "layer_norm1", "ln_2": "layer_norm2",
                     "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2"}
            for a, c in pairs.items():
                for wb in ("weight", "bias"):
                    hf[h + f"{c}.{wb}"] = sd[o + f"{a}.{wb}"]
    hf["vision_model.embeddings.patch_embedding.weight"] = sd["visual.conv1.weight"]
    hf["vision_model.embeddings.class_embedding"] = sd["visual.class_embedding"]
    hf["vision_model.embeddings.position_embedding.weight"] = sd["visual.positional_embedding"]
    hf["vision_model.embeddings.position_ids"] = torch.arange(GRID * GRID + 1).unsqueeze(0)
    for wb in ("weight", "bias"):
        hf[f"vision_model.pre_layrnorm.{wb}"] = sd[f"visual.ln_pre.{wb}"]
        hf[f"vision_model.post_layernorm.{wb}"] = sd[f"visual.ln_post.{wb}"]
        hf[f"text_model.final_layer_norm.{wb}"] = sd[f"ln_final.{wb}"]
    hf["visual_projection.weight"] = sd["visual.proj"].t().contiguous()
    hf["text_model.embeddings.token_embedding.weight"] = sd["token_embedding.weight"]
    hf["text_model.embeddings.position_embedding.weight"] = sd["positional_embedding"]
    hf["text_model.embeddings.position_ids"] = torch.arange(CTX).unsqueeze(0)
    hf["text_projection.weight"] = sd["text_projection"].t().contiguous()
    hf["logit_scale"] = sd["logit_scale"]
    return hf


def hf_config():
    return {
        "architectures": ["CLIPModel"],
        "model_type": "clip",
        "projection_dim": EMBED,
        "logit_scale_init_value": 2.6592,
        "text_config": {"hidden_size": TW, "intermediate_size": 4 * TW, "num_attention_heads": TW // 64,
                        "num_hidden_layers": TL, "max_position_embeddings": CTX, "vocab_size": VOCAB,
                        "hidden_act": "quick_gelu", "layer_norm_eps": 1e-05},
        "vision_config": {"hidden_size": VW, "intermediate_size": 4 * VW, "num_attention_heads": VW // 64,
                          "num_hidden_layers": VL, "patch_size": PATCH, "image_size": IMAGE,
                          "hidden_act": "quick_gelu", "layer_norm_eps": 1e-05},
    }


def generate(out_dir):
    out = out_dir / "convert"
    out.mkdir(parents=True, exist_ok=True)
    sd = make_reference()
    st.save(out / "reference.safetensors", sd)

    cfg = dict(CFG)
    g = torch.Generator().manual_seed(11)
    images = torch.randn(3, 3, IMAGE, IMAGE, generator=g)
    tokens = torch.randint(1, VOCAB - 10, (4, CTX), generator=g)
    tokens[:, 0] = VOCAB - 2  # start token
    for row, eot in enumerate((1, 9, 40, CTX - 1)):
        tokens[row, eot] = VOCAB - 1  # end token: the largest id, pooled by argmax
        tokens[row, eot + 1:] = 0

    # (a) TorchScript archive in OpenAI's mixed layout, traced.
    mixed = {k: (v.half() if is_f16_in_openai_layout(k) else v) for k, v in sd.items()}
    traced = traced_openai_module(sd, dict(cfg, activation="quick_gelu"), images, tokens)
    assert all(torch.equal(traced.state_dict()[k], v) for k, v in mixed.items())
    torch.jit.save(traced, str(out / "openai_jit.pt"))

    # (b) torch.save(state_dict) with a strided view and a shared storage.
    plain = dict(sd)
    plain["visual.proj"] = sd["visual.proj"].t().contiguous().t()  # stride (1, VW)
    assert not plain["visual.proj"].is_contiguous()
    lnf = torch.stack([sd["ln_final.weight"], sd["ln_final.bias"]])  # [2, TW], one storage
    plain["ln_final.weight"], plain["ln_final.bias"] = lnf[0], lnf[1]
    torch.save(plain, out / "state_dict.pt")

    # (c) open_clip training checkpoint.
    ckpt = {
        "epoch": 7,
        "name": "tiny",
        "state_dict": {"module." + k: v for k, v in sd.items()},
        "optimizer": {"state": {}, "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.98), "eps": 1e-6,
                                                     "weight_decay": 0.2, "params": [0, 1, 2]}]},
    }
    torch.save(ckpt, out / "open_clip.pt")

    # (d) Hugging Face folder.
    hf_dir = out / "hf"
    hf_dir.mkdir(exist_ok=True)
    st.save(hf_dir / "model.safetensors", hf_state_dict(sd), metadata={"format": "pt"})
    with open(hf_dir / "config.json", "w") as f:
        json.dump(hf_config(), f, indent=2)
    with open(hf_dir / "merges.txt", "w") as f:
        f.write("#version: 0.2\ni n\nt h\na n\n")

    # bf16 state dict (dtype histogram / conversion checks).
    torch.save({k: v.bfloat16() for k, v in sd.items()}, out / "bf16_state_dict.pt")

    # What the converter must report: build_model's config, the file hashes, the mixed layout.
    def sha(path):
        return hashlib.sha256(path.read_bytes()).hexdigest()
    expected = {
        "config": cfg,
        "sha256": {n: sha(out / n) for n in ("openai_jit.pt", "state_dict.pt", "open_clip.pt",
                                              "bf16_state_dict.pt", "reference.safetensors",
                                              "hf/model.safetensors")},
        "openai_f16": sorted(k for k in sd if is_f16_in_openai_layout(k)),
        "parameter_count": sum(v.numel() for v in sd.values()),
    }
    with open(out / "expected.json", "w") as f:
        json.dump(expected, f, indent=1)

    # Reference features (our PyTorch CLIP, clip_ref.py, in f64) for the end-to-end test: every
    # source format, converted and loaded by the C++ model, must give these. The TorchScript
    # archive holds the OpenAI mixed layout, so its reference uses the f16-rounded weights.
    import clip_ref
    cfg = dict(cfg, activation="quick_gelu")
    feats = {"images": images, "tokens": tokens}
    for tag, weights in (("f32", sd), ("mixed", mixed)):
        pooled, _ = clip_ref.encode_image(weights, cfg, images, torch.float64)
        feats[f"{tag}.image_features"] = pooled
        feats[f"{tag}.text_features"] = clip_ref.encode_text(weights, cfg, tokens, torch.float64)
    st.save(out / "features.safetensors", feats)


if __name__ == "__main__":
    import pathlib
    import sys
    generate(pathlib.Path(sys.argv[1]))
