#!/usr/bin/env python3
"""A PyTorch reference of the diffusion classifier (Li et al. 2023), for checking our Swift one.

It follows the public code (github.com/diffusion-classifier/diffusion-classifier,
eval_prob_adaptive.py: eval_prob_adaptive and eval_error) with a class-conditional diffusers
UNet2DModel in place of Stable Diffusion's text conditioning:
  - timesteps: max_n = max(n_samples); start = T // max_n // 2;
    grid = range(start, T, T // max_n)[:max_n]; stage s scores the centred sub-grid
    grid[len // n_s // 2 :: len // n_s][:n_s] minus timesteps already evaluated; after each
    stage the `to_keep` classes of lowest mean error over every timestep they saw stay;
  - noise: eps row k goes with the k-th timestep evaluated (their noise_idxs, n_trials = 1),
    shared by every class; rows come from a safetensors file (`eps` [N, C, H, W]), as our
    `--noise FILE` does, instead of the public code's unseeded torch.randn;
  - x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps, error = F.mse_loss / l1_loss / huber_loss
    (eps, eps_pred, reduction='none').mean(dim=(1, 2, 3)), in float32.
It does not do: latents (VAE), fp16, prompts, or non-epsilon prediction types (only epsilon models).

Output JSON: the grid, per class the timesteps it was scored on (in evaluation order) with their
errors and its mean error, the survivors and the prediction (lowest mean error among survivors).

Usage (from the repository root; needs torch, diffusers, safetensors):
    python3 tools/reference_classifier.py --model DIR --inputs IN.safetensors --classes 0,1,2,3 \
        [--n-samples 10] [--to-keep 1] [--loss l2] [--scheduler DIR] --out OUT.json
`--make-inputs N [--seed S]` first writes IN.safetensors with a random image `x0` [1, C, H, W]
(uniform in [-1, 1]) and `eps` [N, C, H, W] (standard normal) for the model's shape.

The Swift test's fixture (Tests/DiffusionClassifierTests/Fixtures/reference/) was made with:
    python3 tools/reference_classifier.py --model Tests/DiffusionTests/Fixtures/unet_a \
        --inputs Tests/DiffusionClassifierTests/Fixtures/reference/inputs.safetensors --make-inputs 10 --seed 0 \
        --classes 0,1,2,3 --n-samples 10 --to-keep 1 --out Tests/DiffusionClassifierTests/Fixtures/reference/fixed.json
    python3 tools/reference_classifier.py --model Tests/DiffusionTests/Fixtures/unet_a \
        --inputs Tests/DiffusionClassifierTests/Fixtures/reference/inputs.safetensors \
        --classes 0,1,2,3 --n-samples 4,10 --to-keep 2,1 --out Tests/DiffusionClassifierTests/Fixtures/reference/staged.json
(the scheduler is diffusers' default DDPMScheduler: linear betas 1e-4..0.02, T = 1000).
"""
import argparse
import json
import os

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, UNet2DModel
from safetensors.torch import load_file, save_file


def ints(text):
    return [int(v) for v in text.split(",")]


def eval_error(unet, scheduler, x0, all_noise, ts, noise_idxs, labels, loss, batch_size=32):
    """The public code's eval_error, with class labels instead of text embeddings."""
    errors = torch.zeros(len(ts))
    idx = 0
    with torch.inference_mode():
        while idx < len(ts):
            batch_ts = torch.tensor(ts[idx: idx + batch_size])
            noise = all_noise[noise_idxs[idx: idx + batch_size]]
            abar = scheduler.alphas_cumprod[batch_ts]
            noised = x0 * (abar ** 0.5).view(-1, 1, 1, 1) + noise * ((1 - abar) ** 0.5).view(-1, 1, 1, 1)
            batch_labels = torch.tensor(labels[idx: idx + batch_size])
            pred = unet(noised, batch_ts, class_labels=batch_labels).sample
            if loss == "l2":
                e = F.mse_loss(noise, pred, reduction="none").mean(dim=(1, 2, 3))
            elif loss == "l1":
                e = F.l1_loss(noise, pred, reduction="none").mean(dim=(1, 2, 3))
            elif loss == "huber":
                e = F.huber_loss(noise, pred, reduction="none").mean(dim=(1, 2, 3))
            else:
                raise ValueError(f"--loss: {loss}")
            errors[idx: idx + len(batch_ts)] = e
            idx += len(batch_ts)
    return errors


def classify(unet, scheduler, x0, all_noise, classes, n_samples, to_keep, loss):
    """The public code's eval_prob_adaptive (n_trials = 1); returns per-class (t, error) lists."""
    T = scheduler.config.num_train_timesteps
    max_n = max(n_samples)
    start = T // max_n // 2
    grid = list(range(start, T, T // max_n))[:max_n]
    data = {c: {"t": [], "error": []} for c in classes}
    remaining = list(classes)
    evaluated = set()
    for n_s, keep in zip(n_samples, to_keep):
        current = grid[len(grid) // n_s // 2::len(grid) // n_s][:n_s]
        current = [t for t in current if t not in evaluated]
        ts, noise_idxs, labels = [], [], []
        for c in remaining:
            for t_idx, t in enumerate(current, start=len(evaluated)):
                ts.append(t)
                noise_idxs.append(t_idx)
                labels.append(c)
        if len(noise_idxs) and max(noise_idxs) >= all_noise.shape[0]:
            raise SystemExit(f"eps has {all_noise.shape[0]} rows, {max(noise_idxs) + 1} needed")
        errors = eval_error(unet, scheduler, x0, all_noise, ts, noise_idxs, labels, loss)
        for t, c, e in zip(ts, labels, errors.tolist()):
            data[c]["t"].append(t)
            data[c]["error"].append(e)
        evaluated.update(current)
        means = {c: sum(data[c]["error"]) / len(data[c]["error"]) for c in remaining}
        remaining = sorted(remaining, key=lambda c: means[c])[:keep]  # stable: ties keep the earlier class
    means = {c: sum(d["error"]) / len(d["error"]) for c, d in data.items() if d["error"]}
    prediction = min(remaining, key=lambda c: means[c])
    return grid, data, remaining, prediction


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--scheduler", help="folder with scheduler_config.json (default: MODEL/scheduler if present, else DDPMScheduler())")
    p.add_argument("--inputs", required=True)
    p.add_argument("--make-inputs", type=int, metavar="N")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--classes", type=ints, required=True)
    p.add_argument("--n-samples", type=ints, default=None)
    p.add_argument("--to-keep", type=ints, default=[1])
    p.add_argument("--loss", default="l2")
    p.add_argument("--out", required=True)
    a = p.parse_args()

    unet = UNet2DModel.from_pretrained(a.model).eval()
    sched_dir = a.scheduler or os.path.join(a.model, "scheduler")
    scheduler = DDPMScheduler.from_pretrained(sched_dir) if os.path.exists(os.path.join(sched_dir, "scheduler_config.json")) else DDPMScheduler()
    if scheduler.config.prediction_type != "epsilon":
        raise SystemExit("only epsilon-prediction models are supported")
    if a.make_inputs:
        g = torch.Generator().manual_seed(a.seed)
        c, s = unet.config.in_channels, unet.config.sample_size
        h, w = (s, s) if isinstance(s, int) else s
        x0 = torch.rand(1, c, h, w, generator=g) * 2 - 1
        eps = torch.randn(a.make_inputs, c, h, w, generator=g)
        save_file({"x0": x0.contiguous(), "eps": eps.contiguous()}, a.inputs)
    tensors = load_file(a.inputs)
    x0, eps = tensors["x0"].float(), tensors["eps"].float()
    n_samples = a.n_samples or [eps.shape[0]]
    if len(n_samples) != len(a.to_keep):
        raise SystemExit("--n-samples and --to-keep need the same number of stages")
    grid, data, survivors, prediction = classify(unet, scheduler, x0, eps, a.classes, n_samples, a.to_keep, a.loss)
    out = {
        "classes": a.classes, "n_samples": n_samples, "to_keep": a.to_keep, "loss": a.loss, "grid": grid,
        "timesteps": [data[c]["t"] for c in a.classes],
        "errors": [data[c]["error"] for c in a.classes],
        "mean_errors": [sum(data[c]["error"]) / len(data[c]["error"]) if data[c]["error"] else None for c in a.classes],
        "survivors": survivors, "prediction": prediction,
    }
    with open(a.out, "w") as f:
        json.dump(out, f, indent=1)
    print(f"wrote {a.out}: prediction {prediction}, mean errors {out['mean_errors']}")


if __name__ == "__main__":
    main()
