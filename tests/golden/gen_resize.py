"""Golden fixtures for the image pipeline (data/image, data/resize, data/preprocess).

Writes into OUT_DIR/image/:
  manifest.json        what was written (read by tests/test_image.cpp)
  <case>.in.u8         random RGB input, raw uint8 [h, w, 3]
  <case>.resized.u8    PIL Image.resize((rw, rh), Image.BICUBIC) of it, raw uint8 [rh, rw, 3]
  <case>.clip.f32      clip._transform(224) of the input as torchvision computes it, raw
                       float32 [3, 224, 224] (only when torchvision is importable)
  dec_*.{png,bmp,gif,jpg,webp,tif,ppm,pgm} + dec_*.rgb
                       small encoded files and PIL's decode (convert("RGB")): files PIL writes,
                       and TIFF / PPM / PGM variants PIL cannot write (tiles, planar, big-endian,
                       premultiplied alpha, orientations, maxval other than 255, ASCII) written
                       here byte by byte (tiff_bytes, pnm_bytes) and decoded by PIL

Resize targets follow torchvision Resize(224) (shorter side 224, longer int(224 * long / short));
center-crop offsets follow torchvision CenterCrop. Needs Pillow (python3-pil); without it nothing
is written and the C++ tests skip. torchvision (python3-torchvision) is optional.
"""
import json
import pathlib
import struct
import zlib

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


def tiff_bytes(arr, photometric, *, extra=None, tile=None, rows_per_strip=None, deflate=False,
               planar=1, colormap=None, orientation=None, big_endian=False):
    """A baseline TIFF of uint8 samples arr [h, w, spp], uncompressed or Adobe Deflate (zlib),
    in strips (rows_per_strip) or tiles ((tile_w, tile_h), edge tiles padded with zeros)."""
    h, w, spp = arr.shape
    bo = ">" if big_endian else "<"
    planes = [arr] if planar == 1 else [arr[..., s:s + 1] for s in range(spp)]
    chunks = []
    for plane in planes:
        if tile:
            tw, th = tile
            for ty in range(0, h, th):
                for tx in range(0, w, tw):
                    block = np.zeros((th, tw, plane.shape[2]), np.uint8)
                    part = plane[ty:ty + th, tx:tx + tw]
                    block[:part.shape[0], :part.shape[1]] = part
                    chunks.append(block.tobytes())
        else:
            rps = rows_per_strip or h
            for y in range(0, h, rps):
                chunks.append(np.ascontiguousarray(plane[y:y + rps]).tobytes())
    if deflate:
        chunks = [zlib.compress(c) for c in chunks]
    data = bytearray(b"MM\x00\x2a" if big_endian else b"II\x2a\x00")
    data += b"\x00\x00\x00\x00"  # IFD offset, patched below
    offsets = []
    for c in chunks:
        offsets.append(len(data))
        data += c
        if len(data) % 2:
            data += b"\x00"
    SHORT, LONG = 3, 4
    tags = {256: (LONG, [w]), 257: (LONG, [h]), 258: (SHORT, [8] * spp),
            259: (SHORT, [8 if deflate else 1]), 262: (SHORT, [photometric]),
            277: (SHORT, [spp]), 284: (SHORT, [planar])}
    if tile:
        tags.update({322: (LONG, [tile[0]]), 323: (LONG, [tile[1]]), 324: (LONG, offsets),
                     325: (LONG, [len(c) for c in chunks])})
    else:
        tags.update({273: (LONG, offsets), 278: (LONG, [rows_per_strip or h]),
                     279: (LONG, [len(c) for c in chunks])})
    if extra is not None:
        tags[338] = (SHORT, list(extra))
    if colormap is not None:
        tags[320] = (SHORT, list(colormap))
    if orientation is not None:
        tags[274] = (SHORT, [orientation])
    ifd_offset = len(data)
    struct.pack_into(bo + "I", data, 4, ifd_offset)
    n = len(tags)
    overflow_at = ifd_offset + 2 + 12 * n + 4
    ifd, overflow = bytearray(struct.pack(bo + "H", n)), bytearray()
    for tag in sorted(tags):
        typ, vals = tags[tag]
        packed = struct.pack(bo + ("H" if typ == SHORT else "I") * len(vals), *vals)
        if len(packed) <= 4:
            ifd += struct.pack(bo + "HHI", tag, typ, len(vals)) + packed.ljust(4, b"\x00")
        else:
            ifd += struct.pack(bo + "HHII", tag, typ, len(vals), overflow_at + len(overflow))
            overflow += packed
            if len(overflow) % 2:
                overflow += b"\x00"
    ifd += b"\x00\x00\x00\x00"
    return bytes(data + ifd + overflow)


def pnm_bytes(magic, values, w, h, maxval, header_comment=False):
    """A PGM / PPM: values [h, w] or [h, w, 3] (ints); binary for P5/P6 (2 bytes big-endian when
    maxval > 255), ASCII for P2/P3 with irregular whitespace and comments."""
    flat = np.asarray(values).reshape(-1)
    if header_comment:
        head = b"%s\n# written by gen_resize.py\n%d  %d\t# size\n%d\n" % (magic, w, h, maxval)
    else:
        head = b"%s\n%d %d\n%d\n" % (magic, w, h, maxval)
    if magic in (b"P5", b"P6"):
        return head + flat.astype(">u2" if maxval > 255 else np.uint8).tobytes()
    words = [str(int(v)).encode() for v in flat]
    lines, line = [], []
    for i, word in enumerate(words):
        line.append(word)
        if len(line) == 7 or i == len(words) - 1:
            sep = b"  " if i % 3 else b"\t"
            lines.append(sep.join(line))
            line = []
    body = b"\n".join(lines[:2]) + b"\n# a comment between values\n" + b"\r\n".join(lines[2:])
    return head + body + b"\n"


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
    from PIL import features
    if features.check("webp"):  # Debian's python3-pil has it (libwebp)
        frame2 = Image.fromarray(np.ascontiguousarray(rgb[::-1]), "RGB")
        files += [
            ("dec_rgb_lossy.webp", lambda: Image.fromarray(rgb, "RGB"), {"quality": 80}, True),
            ("dec_rgb_lossless.webp", lambda: Image.fromarray(rgb, "RGB"), {"lossless": True}, True),
            ("dec_rgba_lossy.webp", lambda: Image.fromarray(rgba, "RGBA"), {"quality": 70}, True),
            ("dec_rgba_lossless.webp", lambda: Image.fromarray(rgba, "RGBA"),
             {"lossless": True, "exact": True}, True),
            ("dec_grey.webp", lambda: Image.fromarray(grey, "L"), {"quality": 90}, True),
            ("dec_anim.webp", lambda: Image.fromarray(rgb, "RGB"),
             {"save_all": True, "append_images": [frame2], "duration": 100, "quality": 85}, True),
            ("dec_anim_rgba.webp", lambda: Image.fromarray(rgba, "RGBA"),
             {"save_all": True, "append_images": [frame2.convert("RGBA")], "duration": 50,
              "lossless": True}, True),
        ]
    else:
        print("gen_resize: this Pillow has no WebP support; WebP decode fixtures skipped")
    # TIFF written by PIL: its own writer for raw data, libtiff for compressed data.
    big = random_image(rng, 150, 200, smooth=True)  # several strips (PIL: 64 KiB per strip)
    tiff_files = [
        ("dec_rgb.tif", lambda: Image.fromarray(rgb, "RGB"), {}, True),
        ("dec_rgb_lzw.tif", lambda: Image.fromarray(rgb, "RGB"), {"compression": "tiff_lzw"}, True),
        ("dec_rgb_deflate.tif", lambda: Image.fromarray(rgb, "RGB"),
         {"compression": "tiff_adobe_deflate"}, True),
        ("dec_rgb_packbits.tif", lambda: Image.fromarray(rgb, "RGB"), {"compression": "packbits"}, True),
        ("dec_rgba.tif", lambda: Image.fromarray(rgba, "RGBA"), {}, True),
        ("dec_rgba_lzw.tif", lambda: Image.fromarray(rgba, "RGBA"), {"compression": "tiff_lzw"}, True),
        ("dec_grey.tif", lambda: Image.fromarray(grey, "L"), {}, True),
        ("dec_grey_deflate.tif", lambda: Image.fromarray(grey, "L"),
         {"compression": "tiff_deflate"}, True),
        ("dec_la.tif", lambda: la, {}, True),
        ("dec_p.tif", p_image, {}, True),
        ("dec_p_lzw.tif", p_image, {"compression": "tiff_lzw"}, True),
        ("dec_big_strips.tif", lambda: Image.fromarray(big, "RGB"), {}, True),
        ("dec_big_strips_lzw.tif", lambda: Image.fromarray(big, "RGB"),
         {"compression": "tiff_lzw"}, True),
        # first page of two (the second is small, so that the file cut at 3/5 lacks first-page data)
        ("dec_multipage.tif", lambda: Image.fromarray(rgb, "RGB"),
         {"save_all": True, "append_images": [Image.fromarray(rgb[:2, :2].copy())]}, True),
    ]
    if not features.check("libtiff"):  # Debian's python3-pil has it
        print("gen_resize: this Pillow has no libtiff; compressed TIFF decode fixtures skipped")
        tiff_files = [f for f in tiff_files if "compression" not in f[2]]
    files += tiff_files + [
        # PPM / PGM with maxval 255, as PIL writes them
        ("dec_rgb.ppm", lambda: Image.fromarray(rgb, "RGB"), {}, True),
        ("dec_grey.pgm", lambda: Image.fromarray(grey, "L"), {}, True),
    ]

    # Variants PIL does not write, written byte by byte; PIL's decode is the reference.
    colormap = [v * 257 for v in palette]  # 16-bit colormap, R then G then B
    straight = rgba.copy()
    straight[0, :5, 3] = 0  # a few fully transparent pixels
    straight[1, :5, 3] = 255
    premul = straight.copy()
    premul[..., :3] = (straight[..., :3].astype(np.int32) * straight[..., 3:4] // 255).astype(np.uint8)
    rgb3 = np.ascontiguousarray(rgb)
    raw_files = [
        ("dec_tiled.tif", tiff_bytes(rgb3, 2, tile=(16, 16))),
        ("dec_tiled_deflate.tif", tiff_bytes(rgb3, 2, tile=(16, 16), deflate=True)),
        ("dec_tiled_grey.tif", tiff_bytes(grey[..., None], 1, tile=(32, 16), deflate=True)),
        ("dec_tiled_planar.tif", tiff_bytes(rgb3, 2, tile=(16, 16), planar=2, deflate=True)),
        ("dec_strips_planar.tif", tiff_bytes(rgb3, 2, rows_per_strip=5, planar=2)),
        ("dec_strips_deflate_be.tif", tiff_bytes(rgb3, 2, rows_per_strip=4, deflate=True,
                                                big_endian=True)),
        ("dec_rgba_premultiplied.tif", tiff_bytes(premul, 2, extra=[1], rows_per_strip=8)),
        ("dec_rgbx.tif", tiff_bytes(straight, 2, extra=[0])),
        ("dec_miniswhite.tif", tiff_bytes(grey[..., None], 0, rows_per_strip=3)),
        ("dec_p_tiled.tif", tiff_bytes(palette_idx[..., None], 3, tile=(16, 16), colormap=colormap)),
    ]
    raw_files += [(f"dec_orient{o}.tif", tiff_bytes(rgb3, 2, orientation=o)) for o in range(1, 9)]
    # PPM / PGM: maxval != 255 (scaled as PIL does), 16-bit samples, ASCII
    v8 = lambda hi, shape: rng.integers(0, hi + 1, size=shape)  # noqa: E731
    raw_files += [
        ("dec_maxval100.ppm", pnm_bytes(b"P6", np.minimum(v8(130, (h, w, 3)), 255), w, h, 100)),
        ("dec_maxval15.pgm", pnm_bytes(b"P5", v8(15, (h, w)), w, h, 15)),
        ("dec_maxval10.pgm", pnm_bytes(b"P5", v8(10, (h, w)), w, h, 10, header_comment=True)),
        ("dec_maxval1000.ppm", pnm_bytes(b"P6", v8(1000, (h, w, 3)), w, h, 1000)),
        ("dec_maxval65535.ppm", pnm_bytes(b"P6", v8(65535, (h, w, 3)), w, h, 65535)),
        ("dec_maxval300.pgm", pnm_bytes(b"P5", v8(3, (h, w)), w, h, 300)),
        ("dec_maxval65535.pgm", pnm_bytes(b"P5", v8(400, (h, w)), w, h, 65535)),
        ("dec_ascii.ppm", pnm_bytes(b"P3", v8(255, (h, w, 3)), w, h, 255, header_comment=True)),
        ("dec_ascii_maxval2.ppm", pnm_bytes(b"P3", v8(2, (h, w, 3)), w, h, 2)),
        ("dec_ascii.pgm", pnm_bytes(b"P2", v8(7, (h, w)), w, h, 7)),
        ("dec_ascii_maxval1000.pgm", pnm_bytes(b"P2", v8(300, (h, w)), w, h, 1000)),
    ]
    written = []
    for name, make, opts, exact in files:
        make().save(out / name, **opts)
        written.append((name, exact))
    for name, data in raw_files:
        (out / name).write_bytes(data)
        written.append((name, True))
    for name, exact in written:
        path = out / name
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
