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

Bench mode (what `diffclass bench` runs; prints JSON: per-image predictions and per-class mean
errors, labels, accuracy, calls, seconds, cpu_seconds, images_per_second):
    python3 tools/reference_classifier.py --bench --model models/fashion-mnist --noise EPS.safetensors \
        [--n-images 10] [--stages 5:10,1:50] [--batch-size 32] [--threads 1] [--dataset-dir DIR] [--split test] [--out F]
It classifies the first N images of an MNIST-format folder (default Debian's Fashion-MNIST),
pixels mapped to [-1, 1] as byte / 127.5 - 1 (our Datasets module), classes 0..9 unless --classes,
under torch.set_num_threads(--threads); only the classification loop is timed.

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
import gzip
import json
import os
import time

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


def classify(unet, scheduler, x0, all_noise, classes, n_samples, to_keep, loss, batch_size=32):
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
        errors = eval_error(unet, scheduler, x0, all_noise, ts, noise_idxs, labels, loss, batch_size)
        for t, c, e in zip(ts, labels, errors.tolist()):
            data[c]["t"].append(t)
            data[c]["error"].append(e)
        evaluated.update(current)
        means = {c: sum(data[c]["error"]) / len(data[c]["error"]) for c in remaining}
        remaining = sorted(remaining, key=lambda c: means[c])[:keep]  # stable: ties keep the earlier class
    means = {c: sum(d["error"]) / len(d["error"]) for c, d in data.items() if d["error"]}
    prediction = min(remaining, key=lambda c: means[c])
    return grid, data, remaining, prediction


def read_idx(path):
    """An MNIST-format IDX file (gzipped or raw) as (dimensions, bytes)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    if data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise SystemExit(f"{path}: not an unsigned-byte IDX file")
    rank = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(rank)]
    return dims, data[4 + 4 * rank:]


def load_mnist_format(directory, split, n):
    """The first n images of a split as [n, 1, H, W] in [-1, 1] (byte / 127.5 - 1 in float32, as
    our Datasets module's ImageDataset.images) and their labels."""
    prefix = "train" if split == "train" else "t10k"
    def find(base):
        for name in (base + ".gz", base):
            if os.path.exists(os.path.join(directory, name)):
                return os.path.join(directory, name)
        raise SystemExit(f"{directory}: no {base}[.gz]")
    (count, h, w), pixels = read_idx(find(f"{prefix}-images-idx3-ubyte"))
    (lcount,), labels = read_idx(find(f"{prefix}-labels-idx1-ubyte"))
    n = min(n, count, lcount)
    raw = torch.frombuffer(bytearray(pixels[: n * h * w]), dtype=torch.uint8).reshape(n, 1, h, w)
    return raw.float() / 127.5 - 1, list(labels[:n])


def parse_stages(text):
    """'5:10,1:50' (keep:n_samples per stage, as diffclass --stages) -> (n_samples, to_keep)."""
    pairs = [part.split(":") for part in text.split(",")]
    return [int(n) for _, n in pairs], [int(k) for k, _ in pairs]


def bench(a, unet, scheduler):
    """Times the public algorithm on the first N images of a dataset (see the docstring)."""
    torch.set_num_threads(a.threads)
    torch.set_flush_denormal(True)
    n_samples, to_keep = parse_stages(a.stages)
    x, labels = load_mnist_format(a.dataset_dir, a.split, a.n_images)
    eps = load_file(a.noise)["eps"].float()
    classes = a.classes or list(range(10))
    # Warm-up (untimed): one forward pass at the batch size, as the Swift side does.
    warm = min(a.batch_size, len(classes) * n_samples[0])
    with torch.inference_mode():
        unet(x[:1].expand(warm, -1, -1, -1), torch.full((warm,), 500), class_labels=torch.zeros(warm, dtype=torch.long))
    predictions, mean_errors, calls = [], [], 0
    start, cpu_start = time.perf_counter(), time.process_time()
    for i in range(x.shape[0]):
        _, data, _, prediction = classify(unet, scheduler, x[i: i + 1], eps, classes, n_samples, to_keep, a.loss, a.batch_size)
        predictions.append(prediction)
        mean_errors.append([sum(data[c]["error"]) / len(data[c]["error"]) if data[c]["error"] else None for c in classes])
        calls += sum(len(data[c]["error"]) for c in classes)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    n = len(predictions)
    return {
        "torch": torch.__version__, "threads": torch.get_num_threads(), "n": n, "stages": a.stages,
        "batch_size": a.batch_size, "classes": classes, "labels": labels, "predictions": predictions,
        "mean_errors": mean_errors, "accuracy": sum(p == l for p, l in zip(predictions, labels)) / n,
        "calls": calls, "seconds": seconds, "cpu_seconds": cpu_seconds, "images_per_second": n / seconds, "calls_per_second": calls / seconds,
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--scheduler", help="folder with scheduler_config.json (default: MODEL/scheduler if present, else DDPMScheduler())")
    p.add_argument("--inputs")
    p.add_argument("--make-inputs", type=int, metavar="N")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--classes", type=ints)
    p.add_argument("--n-samples", type=ints, default=None)
    p.add_argument("--to-keep", type=ints, default=[1])
    p.add_argument("--loss", default="l2")
    p.add_argument("--out")
    p.add_argument("--bench", action="store_true", help="time the classification of a dataset's first --n-images images")
    p.add_argument("--dataset-dir", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--split", default="test", choices=["test", "train"])
    p.add_argument("--n-images", type=int, default=10)
    p.add_argument("--noise", help="safetensors file with eps [K, C, H, W] (bench mode)")
    p.add_argument("--stages", default="5:10,1:50", help="bench mode: keep:n_samples,... (as diffclass --stages)")
    p.add_argument("--batch-size", type=int, default=32, help="(class, timestep) pairs per U-Net call (the public code's default: 32)")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()

    unet = UNet2DModel.from_pretrained(a.model).eval()
    sched_dir = a.scheduler or os.path.join(a.model, "scheduler")
    scheduler = DDPMScheduler.from_pretrained(sched_dir) if os.path.exists(os.path.join(sched_dir, "scheduler_config.json")) else DDPMScheduler()
    if scheduler.config.prediction_type != "epsilon":
        raise SystemExit("only epsilon-prediction models are supported")
    if a.bench:
        if not a.noise:
            raise SystemExit("--bench needs --noise FILE")
        result = bench(a, unet, scheduler)
        text = json.dumps(result)
        if a.out:
            with open(a.out, "w") as f:
                f.write(text)
        else:
            print(text)
        return
    if not (a.inputs and a.classes and a.out):
        raise SystemExit("--inputs, --classes and --out are required (or --bench)")
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
    grid, data, survivors, prediction = classify(unet, scheduler, x0, eps, a.classes, n_samples, a.to_keep, a.loss, a.batch_size)
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
