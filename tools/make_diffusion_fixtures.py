#!/usr/bin/env python3
"""Writes the reference fixtures of the Diffusion layer's tests from diffusers (and torch).

Rerun from the repository root after changing what is checked:
    pip install torch diffusers safetensors
    python3 tools/make_diffusion_fixtures.py
It writes Tests/DiffusionTests/Fixtures/*.json|*.safetensors (small, committed). Python is needed
only to regenerate them; `make test` reads the committed files.
"""
import json
import os
import sys

import torch
from diffusers import DDPMScheduler

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "Tests", "DiffusionTests", "Fixtures")


def schedules():
    probe = [0, 1, 17, 250, 499, 500, 750, 998, 999]
    out = {}
    for name, kw in {
        "linear": dict(beta_schedule="linear"),
        "scaled_linear": dict(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012),
        "squaredcos_cap_v2": dict(beta_schedule="squaredcos_cap_v2"),
    }.items():
        s = DDPMScheduler(num_train_timesteps=1000, **kw)
        out[name] = {
            "config": {k: v for k, v in s.config.items() if k in ("beta_schedule", "beta_start", "beta_end", "num_train_timesteps")},
            "timesteps": probe,
            "betas": [float(s.betas[t]) for t in probe],
            "alphas_cumprod": [float(s.alphas_cumprod[t]) for t in probe],
        }
    return out


def main():
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "schedules.json"), "w") as f:
        json.dump(schedules(), f, indent=1)
    print("wrote", OUT, file=sys.stderr)


if __name__ == "__main__":
    torch.manual_seed(0)
    main()
