#!/usr/bin/env python3
"""PyTorch CPU reference timings for the engine's image ops (conv2d 3x3 forward and
forward+backward), to compare with the Swift engine on the same machine in the same run.

Usage: python3 tools/torch_conv_bench.py [--threads 1 2] [--reps 10]
Prints one line per (threads, shape, mode): milliseconds (median) and GFLOP/s.
"""
import argparse, time, statistics
import torch
import torch.nn.functional as F

SHAPES = [  # (N, C, H, W, O, k, stride, pad)
    (64, 32, 28, 28, 32, 3, 1, 1),
    (64, 64, 14, 14, 64, 3, 1, 1),
    (64, 128, 7, 7, 128, 3, 1, 1),
]
EXTRA = [  # other paths of the engine (im2col, 1x1), for information
    (64, 64, 28, 28, 64, 3, 2, 1),
    (64, 3, 32, 32, 32, 3, 1, 1),
    (64, 128, 14, 14, 64, 1, 1, 0),
    (16, 128, 32, 32, 64, 1, 1, 0),
]

def flops(N, C, H, W, O, k, s, p):
    Ho = (H + 2 * p - k) // s + 1
    Wo = (W + 2 * p - k) // s + 1
    return 2.0 * N * O * Ho * Wo * C * k * k

def timeit(fn, reps):
    fn(); fn()
    ts = []
    for _ in range(reps):
        t = time.perf_counter(); fn(); ts.append(time.perf_counter() - t)
    return statistics.median(ts)

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--extra", action="store_true", help="also time the shapes of the other paths")
    a = ap.parse_args()
    torch.manual_seed(0)
    for t in a.threads:
        torch.set_num_threads(t)
        for (N, C, H, W, O, k, s, p) in SHAPES + (EXTRA if a.extra else []):
            x = torch.randn(N, C, H, W)
            w = torch.randn(O, C, k, k) * 0.1
            b = torch.randn(O)
            f = flops(N, C, H, W, O, k, s, p)
            with torch.no_grad():
                fwd = timeit(lambda: F.conv2d(x, w, b, stride=s, padding=p), a.reps)
            xg = x.clone().requires_grad_(True)
            wg = w.clone().requires_grad_(True)
            bg = b.clone().requires_grad_(True)
            def fb():
                y = F.conv2d(xg, wg, bg, stride=s, padding=p)
                gy = torch.ones_like(y)
                y.backward(gy)
                xg.grad = None; wg.grad = None; bg.grad = None
            fbt = timeit(fb, a.reps)
            shape = f"{N}x{C}x{H}x{W}->{O} k{k} s{s} p{p}"
            print(f"torch threads={t} {shape:32s} fwd {fwd*1e3:8.2f} ms {f/fwd/1e9:7.1f} GFLOP/s   "
                  f"fwd+bwd {fbt*1e3:8.2f} ms {3*f/fbt/1e9:7.1f} GFLOP/s", flush=True)

if __name__ == "__main__":
    main()
