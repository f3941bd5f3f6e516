"""Prints the fixed Float32 -> F16 / BF16 vectors of Tests/TensorEngineTests/HalfPrecisionTests.swift:
each input's Float32 bits and torch's `.half()` and `.bfloat16()` bits (numpy's astype(float16)
is checked to agree on F16). Inputs: signed zeros, ones, ties at both ends of the F16 and BF16
mantissas (even and odd neighbours), the F16 overflow edge (65504, 65519.99, 65520), F16
subnormals and their ties, the smallest F16 subnormal's half (a tie to zero), Float32
subnormals, infinities, canonical NaNs, and a few ordinary values."""
import numpy as np
import torch

def f32(bits):
    return np.array([bits], dtype=np.uint32).view(np.float32)[0]

inputs = [
    0x00000000, 0x80000000, 0x3F800000, 0xBF800000,           # +-0, +-1
    0x3F801000, 0x3F803000, 0x3F801001, 0x3F800FFF,           # F16 ties at 1 (even/odd), just above/below
    0x3F808000, 0x3F818000, 0x3F808001, 0x3F807FFF,           # BF16 ties at 1, just above/below
    0x477FE000, 0x477FEFFF, 0x477FF000, 0x47800000,           # 65504, below 65520, 65520 (-> inf), 65536
    0x7F7FFFFF, 0xFF7FFFFF,                                   # Float32 max: F16 inf, BF16 inf (rounds up)
    0x7F7F7FFF, 0x7F7F8000,                                   # BF16: below the tie to inf, the tie (-> inf)
    0x38800000, 0x387FC000, 0x33800000, 0x33000000,           # F16 min normal, largest subnormal, min subnormal, its half
    0x33000001, 0x33C00000, 0x34200000, 0x34400000,           # just over the half, 1.5 and 2.5 and 3 min subnormals (ties)
    0xB3800000, 0x36000000, 0x3680A000,                       # -min subnormal, more subnormals
    0x00000001, 0x807FFFFF, 0x00400000,                       # Float32 subnormals
    0x7F800000, 0xFF800000, 0x7FC00000, 0xFFC00000,           # +-inf, canonical NaNs
    0x40490FDB, 0xC2F6E979, 0x3DCCCCCD, 0x461C4000, 0x3E2AAAAB, # pi, -123.456, 0.1, 10000, 1/3
]
xs = np.array([f32(b) for b in inputs], dtype=np.float32)
t = torch.from_numpy(xs.copy())
h = t.half().view(torch.int16).numpy().view(np.uint16)
b = t.bfloat16().view(torch.int16).numpy().view(np.uint16)
hn = xs.astype(np.float16).view(np.uint16)
assert (h == hn).all(), "torch and numpy disagree on F16"
for bits, hh, bb in zip(inputs, h, b):
    print(f"        (0x{bits:08X}, 0x{int(hh):04X}, 0x{int(bb):04X}),")
