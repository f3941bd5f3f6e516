#!/usr/bin/env python3
"""Checks that diffusers loads the shipped model folder, and writes the parity fixture that the
Swift test (Tests/DiffusionTests/ShippedModelTests.swift) compares our forward pass with.

Run from the repository root after (re)training models/fashion-mnist:
    pip install torch diffusers safetensors
    python3 tools/check_shipped_model.py [--model models/fashion-mnist]
It prints the model's size and FLOPs and writes Tests/DiffusionTests/Fixtures/shipped_model_io.safetensors
(inputs and diffusers' outputs for a few noisy Fashion-MNIST-sized inputs).
"""
import argparse
import os

import torch
from diffusers import DDPMScheduler, UNet2DModel
from safetensors.torch import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=os.path.join(ROOT, "models", "fashion-mnist"))
    args = parser.parse_args()
    model = UNet2DModel.from_pretrained(args.model).eval()
    scheduler = DDPMScheduler.from_pretrained(args.model, subfolder="scheduler")
    params = sum(p.numel() for p in model.parameters())
    print(f"diffusers loaded {args.model}: {params / 1e6:.3f} M parameters, schedule {scheduler.config.beta_schedule}, "
          f"prediction {scheduler.config.prediction_type}")
    g = torch.Generator().manual_seed(0)
    n = 4
    size = model.config.sample_size
    x = torch.randn(n, model.config.in_channels, size, size, generator=g)
    t = torch.tensor([10, 250, 500, 900])
    labels = torch.tensor([0, 3, 9, model.config.num_class_embeds - 1])
    with torch.no_grad():
        out = model(x, t, class_labels=labels).sample
    path = os.path.join(ROOT, "Tests", "DiffusionTests", "Fixtures", "shipped_model_io.safetensors")
    save_file({"sample": x, "timesteps": t.float(), "class_labels": labels.float(), "output": out.contiguous()}, path)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
