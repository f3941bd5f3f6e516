#!/usr/bin/env python3
"""Writes Tests/EDMTests/Fixtures/training.safetensors: EDM's training losses and Heun sampler,
computed by NVlabs/edm's own code on the committed network fixtures.

Rerun from the repository root (after tools/make_edm_fixtures.py, whose model folders it loads):
    /work/venv/bin/python tools/make_edm_training_fixtures.py /path/to/NVlabs/edm
(any Python with torch, safetensors, click and tqdm; the argument is a checkout of
https://github.com/NVlabs/edm, whose `training.loss`, `training.networks` and `generate.edm_sampler`
are imported from there and never copied). `make test` reads only the written file.

For each of ddpmpp_edm (EDMLoss), skip_vp (VPLoss) and ncsnpp_ve (VELoss): the loss of a batch
of images with the draws torch.randn / torch.rand / torch.randn_like made inside the loss replaced
by recorded tensors (`<name>.normal`, `.uniform`, `.noise`), the network in eval mode (no
dropout), the mean of the per-element loss (`.loss`) and its gradient with respect to
model.map_layer0.weight (`.grad`). Then edm_sampler with 4 steps from recorded latents:
ddpmpp_edm with one-hot labels (`sampler.edm.*`) and the unconditional VE network, whose
sigma_min 0.02 clamps EDM's default 0.002 (`sampler.ve.*`).
"""
import json
import os
import sys

if len(sys.argv) != 2 or not os.path.isfile(os.path.join(sys.argv[1], "generate.py")):
    sys.exit("usage: make_edm_training_fixtures.py EDM_CHECKOUT_PATH (a checkout of NVlabs/edm)")
EDM = os.path.abspath(sys.argv[1])
sys.path.insert(0, EDM)

import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402
from training import loss as edm_loss, networks  # noqa: E402
from generate import edm_sampler  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "Tests", "EDMTests", "Fixtures")
PRECOND = {"edm": networks.EDMPrecond, "vp": networks.VPPrecond, "ve": networks.VEPrecond}
LOSS = {"edm": edm_loss.EDMLoss, "vp": edm_loss.VPLoss, "ve": edm_loss.VELoss}


def load(name):
    folder = os.path.join(FIXTURES, name)
    cfg = json.load(open(os.path.join(folder, "config.json")))
    precond = cfg.pop("precond")
    cfg = {k: (float(v) if v in ("inf", "-inf") else v) for k, v in cfg.items()}
    if precond == "vp":  # derived from beta_d, beta_min, epsilon_t; VPPrecond takes no such arguments
        cfg.pop("sigma_min"); cfg.pop("sigma_max")
    net = PRECOND[precond](**cfg)
    net.load_state_dict(load_file(os.path.join(folder, "model.safetensors")))
    return precond, net.eval(), cfg


class Recorded:
    """Replaces torch.randn / torch.rand / torch.randn_like by given tensors while the loss runs."""
    def __init__(self, normal, uniform, noise):
        self.values = dict(randn=normal, rand=uniform, randn_like=noise)

    def __enter__(self):
        self.saved = {k: getattr(torch, k) for k in self.values}
        for k, v in self.values.items():
            setattr(torch, k, lambda *a, v=v, **kw: v.clone())

    def __exit__(self, *exc):
        for k, f in self.saved.items():
            setattr(torch, k, f)


def main():
    out = {}
    gen = torch.Generator().manual_seed(20261204)
    for name in ("ddpmpp_edm", "skip_vp", "ncsnpp_ve"):
        precond, net, cfg = load(name)
        n, c, r, k = 5, cfg["img_channels"], cfg["img_resolution"], cfg["label_dim"]
        images = torch.rand(n, c, r, r, generator=gen) * 2 - 1
        ids = torch.arange(n) % max(k, 1)
        labels = torch.nn.functional.one_hot(ids, k).float() if k else None
        normal = torch.randn(n, 1, 1, 1, generator=gen)
        uniform = torch.rand(n, 1, 1, 1, generator=gen)
        noise = torch.randn(n, c, r, r, generator=gen)
        with Recorded(normal, uniform, noise):
            loss = LOSS[precond]()(net, images, labels).mean()
        net.zero_grad()
        loss.backward()
        grad = dict(net.named_parameters())["model.map_layer0.weight"].grad
        out.update({f"{name}.images": images, f"{name}.labels": ids.float(), f"{name}.normal": normal.flatten(),
                    f"{name}.uniform": uniform.flatten(), f"{name}.noise": noise, f"{name}.loss": loss.detach().reshape(1),
                    f"{name}.grad": grad.detach()})
        print(f"{name}: {precond} loss {loss.item():.6g}", file=sys.stderr)

    for key, name in (("edm", "ddpmpp_edm"), ("ve", "ncsnpp_ve")):
        precond, net, cfg = load(name)
        n, c, r, k = 3, cfg["img_channels"], cfg["img_resolution"], cfg["label_dim"]
        latents = torch.randn(n, c, r, r, generator=gen)
        labels = torch.nn.functional.one_hot(torch.arange(n) % k, k).float() if k else None
        with torch.no_grad():
            x = edm_sampler(net, latents, labels, num_steps=4)
        out.update({f"sampler.{key}.latents": latents, f"sampler.{key}.output": x.float()})
        print(f"sampler {key}: |x| max {x.abs().max():.4g}", file=sys.stderr)

    path = os.path.join(FIXTURES, "training.safetensors")
    save_file({k: v.contiguous() for k, v in out.items()}, path)
    print("wrote", path, file=sys.stderr)


if __name__ == "__main__":
    main()
