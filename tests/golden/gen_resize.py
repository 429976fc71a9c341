"""Golden fixtures for the image pipeline (data/image, data/resize, data/preprocess).

Writes into OUT_DIR/image/:
  manifest.json        what was written (read by tests/test_image.cpp)
  <case>.in.u8         random RGB input, raw uint8 [h, w, 3]
  <case>.resized.u8    PIL Image.resize((rw, rh), Image.BICUBIC) of it, raw uint8 [rh, rw, 3]
  <case>.clip.f32      clip._transform(224) of the input as torchvision computes it, raw
                       float32 [3, 224, 224] (only when torchvision is importable)
  dec_*.{png,bmp,gif,jpg} + dec_*.rgb   small encoded files and PIL's decode (convert("RGB"))

Resize targets follow torchvision Resize(224) (shorter side 224, longer int(224 * long / short));
center-crop offsets follow torchvision CenterCrop. Needs Pillow (python3-pil); without it nothing
is written and the C++ tests skip. torchvision (python3-torchvision) is optional.
"""
import json
import pathlib

import numpy as np

try:
    from PIL import Image
except ImportError:  # pragma: no cover - depends on the machine
    Image = None

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

# (h, w) inputs for the CLIP pipeline: landscape/portrait downscale, upscale, round-half-even crop
# offsets (227, 225, 229), identity, odd sizes, extreme aspect ratios, a large downscale.
CLIP_CASES = [
    (240, 320), (320, 240), (37, 50), (224, 227), (224, 225), (229, 224), (224, 224),
    (333, 500), (7, 1000), (500, 3), (1, 1), (97, 131), (1080, 1920), (226, 226), (448, 448),
]
# Extra plain resizes (h, w) -> (out_h, out_w), including shrinking one dim while growing the other.
RESIZE_PAIRS = [
    ((100, 100), (13, 77)), ((5, 5), (300, 2)), ((64, 48), (64, 300)), ((61, 47), (20, 47)),
    ((256, 256), (336, 336)), ((1000, 7), (1, 1)),
]


def torchvision_resize_size(h, w, size):
    """torchvision _compute_resized_output_size for an int size (returns h, w)."""
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = size, int(size * long / short)
    return (new_long, new_short) if w <= h else (new_short, new_long)


def center_crop_offsets(h, w, n):
    return int(round((h - n) / 2.0)), int(round((w - n) / 2.0))


def random_image(rng, h, w, smooth):
    if not smooth:
        return rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    # smooth content (gradients + a few blobs) so that not every pixel saturates in resizing
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.zeros((h, w, 3))
    for c in range(3):
        fy, fx, ph = rng.uniform(0.5, 6.0), rng.uniform(0.5, 6.0), rng.uniform(0, 6.3)
        img[..., c] = 127.5 + 120 * np.sin(fy * yy / max(h, 1) * 6.3 + ph) * np.cos(fx * xx / max(w, 1) * 6.3)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def pil_resize(arr, out_h, out_w):
    return np.asarray(Image.fromarray(arr, "RGB").resize((out_w, out_h), Image.BICUBIC))


def write_decode_fixtures(out, rng, entries):
    """Small encoded files in several layouts and PIL's convert("RGB") of each."""
    h, w = 23, 37
    rgb = random_image(rng, h, w, smooth=True)
    rgba = np.concatenate([rgb, rng.integers(0, 256, size=(h, w, 1), dtype=np.uint8)], axis=2)
    grey = rgb[..., 0].copy()
    palette_idx = rng.integers(0, 16, size=(h, w), dtype=np.uint8)
    palette = rng.integers(0, 256, size=(256 * 3,), dtype=np.uint8).tolist()

    def p_image():
        im = Image.fromarray(palette_idx, "P")
        im.putpalette(palette)
        return im

    def p_image_trns():
        im = p_image()
        im.info["transparency"] = 3
        return im

    la = Image.merge("LA", [Image.fromarray(grey, "L"), Image.fromarray(rgba[..., 3].copy(), "L")])
    files = [
        ("dec_rgb.png", lambda: Image.fromarray(rgb, "RGB"), {}, True),
        ("dec_rgba.png", lambda: Image.fromarray(rgba, "RGBA"), {}, True),
        ("dec_grey.png", lambda: Image.fromarray(grey, "L"), {}, True),
        ("dec_la.png", lambda: la, {}, True),
        ("dec_p.png", p_image, {}, True),
        ("dec_p_trns.png", p_image_trns, {"transparency": 3}, True),
        ("dec_interlaced.png", lambda: Image.fromarray(rgb, "RGB"), {"interlace": 1}, True),
        ("dec_rgb.bmp", lambda: Image.fromarray(rgb, "RGB"), {}, True),
        ("dec_grey.bmp", lambda: Image.fromarray(grey, "L"), {}, True),
        ("dec_p.bmp", p_image, {}, True),
        ("dec_p.gif", p_image, {}, True),
        # JPEG: tgpt decodes with the libjpeg-turbo PIL uses, so these are exact too.
        ("dec_rgb_q95.jpg", lambda: Image.fromarray(rgb, "RGB"), {"quality": 95}, True),
        ("dec_rgb_444.jpg", lambda: Image.fromarray(rgb, "RGB"), {"quality": 90, "subsampling": 0}, True),
        ("dec_rgb_422.jpg", lambda: Image.fromarray(rgb, "RGB"), {"quality": 75, "subsampling": 1}, True),
        ("dec_grey.jpg", lambda: Image.fromarray(grey, "L"), {"quality": 90}, True),
        ("dec_progressive.jpg", lambda: Image.fromarray(rgb, "RGB"), {"quality": 85, "progressive": True}, True),
        ("dec_cmyk.jpg", lambda: Image.fromarray(rgba, "RGBA").convert("CMYK"), {"quality": 90}, True),
    ]
    for name, make, opts, exact in files:
        path = out / name
        make().save(path, **opts)
        with Image.open(path) as im:
            dec = np.asarray(im.convert("RGB"))
        raw = name.replace(".", "_") + ".rgb"
        (out / raw).write_bytes(np.ascontiguousarray(dec).tobytes())
        entries.append({"file": name, "decoded": raw, "h": int(dec.shape[0]), "w": int(dec.shape[1]),
                        "exact": exact})


def generate(out_dir):
    if Image is None:
        print("gen_resize: Pillow (python3-pil) is not installed; image fixtures skipped")
        return
    try:
        from torchvision import transforms as T
    except ImportError:
        T = None
        print("gen_resize: torchvision not installed; clip tensors skipped (resize/crop still written)")
    out = pathlib.Path(out_dir) / "image"
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20240519)
    n = 224
    clip_tf = None
    if T is not None:
        clip_tf = T.Compose([
            T.Resize(n, interpolation=T.InterpolationMode.BICUBIC),
            T.CenterCrop(n),
            lambda im: im.convert("RGB"),
            T.ToTensor(),
            T.Normalize(CLIP_MEAN, CLIP_STD),
        ])

    cases = []
    for h, w in CLIP_CASES:
        # both content kinds, except for the very large fixtures (extreme aspect ratios, 1080p)
        big = max(h, w) > 20 * min(h, w) or h * w > 1_000_000
        for smooth in ((False,) if big else (False, True)):
            name = f"clip_{h}x{w}_{'smooth' if smooth else 'noise'}"
            arr = random_image(rng, h, w, smooth)
            rh, rw = torchvision_resize_size(h, w, n)
            resized = pil_resize(arr, rh, rw)
            top, left = center_crop_offsets(rh, rw, n)
            case = {"name": name, "h": h, "w": w, "out_h": rh, "out_w": rw, "crop": n,
                    "crop_top": top, "crop_left": left,
                    "input": f"{name}.in.u8", "resized": f"{name}.resized.u8"}
            (out / case["input"]).write_bytes(arr.tobytes())
            (out / case["resized"]).write_bytes(np.ascontiguousarray(resized).tobytes())
            if clip_tf is not None:
                t = clip_tf(Image.fromarray(arr, "RGB")).numpy().astype(np.float32)
                assert t.shape == (3, n, n)
                case["clip"] = f"{name}.clip.f32"
                (out / case["clip"]).write_bytes(np.ascontiguousarray(t).tobytes())
            cases.append(case)
    for (h, w), (oh, ow) in RESIZE_PAIRS:
        name = f"resize_{h}x{w}_to_{oh}x{ow}"
        arr = random_image(rng, h, w, smooth=False)
        resized = pil_resize(arr, oh, ow)
        case = {"name": name, "h": h, "w": w, "out_h": oh, "out_w": ow,
                "input": f"{name}.in.u8", "resized": f"{name}.resized.u8"}
        (out / case["input"]).write_bytes(arr.tobytes())
        (out / case["resized"]).write_bytes(np.ascontiguousarray(resized).tobytes())
        cases.append(case)

    decode = []
    write_decode_fixtures(out, rng, decode)
    manifest = {"cases": cases, "decode": decode, "torchvision": T is not None}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))


if __name__ == "__main__":
    import sys
    generate(sys.argv[1] if len(sys.argv) > 1 else ".")
