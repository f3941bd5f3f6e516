#!/usr/bin/env python3
"""PyTorch side of `diffclass bench` (make bench).

diffclass writes a JSON list of case specs on stdin ({"name", "op", shape parameters...}); this
script runs each case in PyTorch on the CPU with the same thread count and prints
{"torch": version, "milliseconds": {name: median ms}} on stdout. Cases whose op it does not know
are left out. Timing mirrors the Swift side: one warm-up run, then the median of at least 3 runs
and at least --min-seconds of timing.

Run by hand:  echo '[{"name":"mm","op":"matmul","m":512,"n":512,"k":512}]' | python3 tools/bench_torch.py --threads 1
Needs: pip install torch (CPU build is enough). Used for benchmarks only, never by the tests.
"""
import argparse
import json
import statistics
import sys
import time


def median_ms(fn, min_seconds):
    fn()
    times = []
    start = time.perf_counter()
    while len(times) < 3 or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
        if len(times) >= 200:
            break
    return statistics.median(times)


def make_case(torch, spec):
    F = torch.nn.functional
    op = spec["op"]
    g = torch.Generator().manual_seed(0)

    def rand(*shape, grad=False):
        t = torch.rand(*shape, generator=g) * 2 - 1
        return t.requires_grad_(grad)

    if op == "matmul":
        a, b = rand(spec["m"], spec["k"]), rand(spec["k"], spec["n"])
        return lambda: torch.mm(a, b)
    if op == "randn":
        return lambda: torch.randn(spec["n"], generator=g)
    if op in ("conv2d", "conv2d_fwdbwd"):
        n, c, o, h, w, k = (spec[x] for x in ("n", "c", "o", "h", "w", "k"))
        stride, pad = spec.get("stride", 1), spec.get("padding", k // 2)
        backward = op == "conv2d_fwdbwd"
        x = rand(n, c, h, w, grad=backward)
        wt, bias = rand(o, c, k, k, grad=backward), rand(o, grad=backward)
        if not backward:
            def fwd():
                with torch.no_grad():
                    F.conv2d(x, wt, bias, stride=stride, padding=pad)
            return fwd
        def fwdbwd():
            y = F.conv2d(x, wt, bias, stride=stride, padding=pad)
            y.backward(torch.ones_like(y))
            x.grad = wt.grad = bias.grad = None
        return fwdbwd
    if op == "groupnorm_silu":
        n, c, h, w, groups = (spec[x] for x in ("n", "c", "h", "w", "groups"))
        x, weight, bias = rand(n, c, h, w), rand(c), rand(c)
        def gn():
            with torch.no_grad():
                F.silu(F.group_norm(x, groups, weight, bias, 1e-5))
        return gn
    if op == "attention":
        b, heads, l, d = (spec[x] for x in ("b", "heads", "l", "d"))
        q, k, v = rand(b, heads, l, d), rand(b, heads, l, d), rand(b, heads, l, d)
        def attn():
            with torch.no_grad():
                F.scaled_dot_product_attention(q, k, v)
        return attn
    if op in ("unet_input_grad", "unet_input_hvp"):
        from diffusers import UNet2DModel
        config = json.loads(spec["config"])
        config = {k: v for k, v in config.items() if not k.startswith("_")}
        model = UNet2DModel(**config)
        if op == "unet_input_hvp":
            # The fused CPU attention (scaled_dot_product_attention) has no double backward.
            from diffusers.models.attention_processor import Attention, AttnProcessor
            for m in model.modules():
                if isinstance(m, Attention):
                    m.set_processor(AttnProcessor())
        model.requires_grad_(False)
        n = spec["batch"]
        x = torch.randn(n, 1, 28, 28, generator=g).requires_grad_(True)
        v = torch.randn(n, 1, 28, 28, generator=g)
        t = torch.tensor([(i * 37) % 1000 for i in range(n)])
        labels = torch.tensor([i % 11 for i in range(n)])
        def input_grad():
            loss = model(x, t, class_labels=labels).sample.pow(2).mean()
            return torch.autograd.grad(loss, x, create_graph=op == "unet_input_hvp")[0]
        def input_hvp():
            gx = input_grad()
            torch.autograd.grad((gx * v).sum(), x)
        return input_hvp if op == "unet_input_hvp" else input_grad
    if op in ("unet_train", "unet_forward"):
        from diffusers import UNet2DModel
        config = json.loads(spec["config"])
        config = {k: v for k, v in config.items() if not k.startswith("_")}
        model = UNet2DModel(**config)
        n = spec["batch"]
        x = torch.randn(n, 1, 28, 28, generator=g)
        t = torch.tensor([(i * 37) % 1000 for i in range(n)])
        labels = torch.tensor([i % 11 for i in range(n)])
        if op == "unet_forward":
            model.eval()
            if spec.get("autocast") == "bf16":
                # CPU autocast: matmuls and convolutions in bfloat16 (oneDNN), the rest float32.
                def fwd_bf16():
                    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
                        model(x, t, class_labels=labels)
                return fwd_bf16
            def fwd():
                with torch.no_grad():
                    model(x, t, class_labels=labels)
            return fwd
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        target = torch.zeros_like(x)
        def step():
            loss = (model(x, t, class_labels=labels).sample - target).pow(2).mean()
            loss.backward()
            opt.step()
            opt.zero_grad()
        return step
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--min-seconds", type=float, default=0.5)
    args = parser.parse_args()
    import torch
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    specs = json.load(sys.stdin)
    out = {}
    for spec in specs:
        fn = make_case(torch, spec)
        if fn is not None:
            out[spec["name"]] = median_ms(fn, args.min_seconds)
    json.dump({"torch": torch.__version__, "threads": torch.get_num_threads(), "milliseconds": out}, sys.stdout)


if __name__ == "__main__":
    main()
