"""Minimal safetensors writer for golden fixtures (format: ../shared/spec/clip.md section 3).

Written here rather than imported so fixtures need only python3-torch and python3-numpy.
"""
import json
import os
import struct

import numpy as np
import torch

_DTYPES = {
    torch.float32: ("F32", np.float32),
    torch.float64: ("F64", np.float64),
    torch.float16: ("F16", np.float16),
    torch.int32: ("I32", np.int32),
    torch.int64: ("I64", np.int64),
    torch.uint8: ("U8", np.uint8),
}


def save(path, tensors, metadata=None):
    """tensors: dict name -> torch.Tensor (bf16 stored via its raw 16-bit pattern)."""
    header = {}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        if t.dtype == torch.bfloat16:
            code, raw = "BF16", t.view(torch.int16).numpy().tobytes()
        else:
            code, npt = _DTYPES[t.dtype]
            raw = t.numpy().astype(npt, copy=False).tobytes()
        header[name] = {"dtype": code, "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    js = json.dumps(header, separators=(",", ":")).encode()
    js += b" " * ((8 - len(js) % 8) % 8)
    tmp = str(path) + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(js)))
        f.write(js)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)
