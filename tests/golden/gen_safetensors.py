"""Writes st_python.safetensors with tests/golden/st.py: every dtype tgpt reads, a scalar, an empty
tensor and metadata. test_safetensors.cpp recomputes the same values and compares them exactly.

st.py orders tensors by name without alignment padding, so "a_u8" (3 bytes) first leaves the
tensors after it unaligned and the reader must copy them.
"""
import torch

import st


def generate(out_dir):
    i = torch.arange(6, dtype=torch.float64)
    tensors = {
        "a_u8": torch.tensor([0, 127, 255], dtype=torch.uint8),
        "b_f32": ((i - 3) * 0.25).to(torch.float32).reshape(2, 3),
        "c_f64": (i / 3.0).reshape(3, 2),  # not exactly representable: checks all 64 bits
        "d_f16": (i * 0.5 - 1).to(torch.float16),
        "e_bf16": (i * 2 - 5).to(torch.bfloat16).reshape(1, 2, 3),
        "f_i32": torch.tensor([-2147483648, -1, 0, 2147483647], dtype=torch.int32),
        "g_i64": torch.tensor([-(2**62), -1, 2**40 + 7], dtype=torch.int64),
        "h_scalar": torch.tensor(3.5, dtype=torch.float32),
        "i_empty": torch.zeros(0, 3, dtype=torch.float32),
    }
    st.save(out_dir / "st_python.safetensors", tensors, metadata={"format": "pt", "note": "golden"})
