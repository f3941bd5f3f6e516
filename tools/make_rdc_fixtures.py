#!/usr/bin/env python3
"""Writes the fixture of the Robust Diffusion Classifier's sigma-grid loss from NVlabs/edm's code.

Rerun from the repository root:
    /work/venv/bin/python tools/make_rdc_fixtures.py /path/to/NVlabs/edm
(any Python with torch, safetensors and pillow; the argument is a checkout of
https://github.com/NVlabs/edm, whose `training.networks` is imported from there, never copied).
It writes Tests/EDMTests/Fixtures/rdc_cond (small, committed); `make test` reads only those files.

1. A small class-conditional DDPM++-like SongUNet in EDMPrecond (RDC's precond, augment_dim 9 as
   RDC's network, label_dim 4) is built with EDM's constructor, every parameter redrawn at random,
   and saved as a state dict, the layout of RDC's `edm_cifar_cond.pt` (EDMPrecond's
   `state_dict()` keys). tools/convert_edm.py converts it with --config into the folder the tests
   load (config.json, model.safetensors).
2. rdc.safetensors holds two images `x` in [0, 1] (multiples of 1/255, so image0.png carries the
   first exactly), the noise `eps` [N, C, H, W] (level k uses eps[k], shared by every class), and
   RDC's loss on the grid linspace(A, B, N + 1)[:-1] computed as RDC's EDMEulerIntegralDC does
   (x0 = 2x - 1, w = (s^2 + sd^2) / (s sd)^2 * p(s) * ds, sd = 0.5, sum over levels of
   w mean_CHW (D(x0 + s eps; s, onehot(y)) - x0)^2), with EDM's EDMPrecond as the network:
   `loss_paper` [2, K] (the paper's log-normal density), `loss_code` [2, K] (the public code's
   expression exp(-((ln s - P_mean)^2) / 2 * P_std^2)), `loss_uncond` [2] (the zero label
   vector: class_labels=None), `grad_paper` = d loss_paper[0, 1] / d x[0] (through x0 = 2x - 1), and
   RDC's sigma-space likelihood-maximization loss at given sigmas `lm_sigma` [2] (noise
   `lm_eps` [2, C, H, W]): `lm_loss` = sum_n mean (D(x0_n + s_n e_n; s_n) - x0_n)^2 and its
   gradient `lm_grad` with respect to x.
"""
import json
import math
import os
import subprocess
import sys
import tempfile

if len(sys.argv) != 2 or not os.path.isfile(os.path.join(sys.argv[1], "training", "networks.py")):
    sys.exit("usage: make_rdc_fixtures.py EDM_CHECKOUT_PATH (a checkout of NVlabs/edm)")
EDM = os.path.abspath(sys.argv[1])
sys.path.insert(0, EDM)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402
from training import networks  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "Tests", "EDMTests", "Fixtures", "rdc_cond")
CONVERTER = os.path.join(ROOT, "tools", "convert_edm.py")

KWARGS = dict(img_resolution=8, img_channels=3, label_dim=4, sigma_data=0.5, model_type="SongUNet", augment_dim=9,
              model_channels=8, channel_mult=[1, 2], channel_mult_emb=4, num_blocks=1, attn_resolutions=[4], dropout=0.1,
              embedding_type="positional", channel_mult_noise=1, encoder_type="standard", decoder_type="standard",
              resample_filter=[1, 1])
GRID = (1e-4, 3.0, 12)  # A, B, N (RDC: 1e-4, 3, 1000 in the code, 125 in the demos)
P_MEAN, P_STD, SIGMA_DATA = -1.2, 1.2, 0.5


def perturb(module, gen):
    """Redraws every parameter (EDM zero-initialises some layers, which would make the test vacuous)."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, networks.GroupNorm):
                m.weight.copy_(1 + 0.2 * torch.randn(m.weight.shape, generator=gen))
                m.bias.copy_(0.2 * torch.randn(m.bias.shape, generator=gen))
            elif isinstance(m, (networks.Linear, networks.Conv2d)):
                if m.weight is not None:
                    m.weight.copy_(torch.randn(m.weight.shape, generator=gen) / m.weight[0].numel() ** 0.5)
                if m.bias is not None:
                    m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=gen))


def grid_and_weights(density):
    """RDC's EDMEulerIntegralDC.reset_param: levels, dt, p_x (float32, as torch computes them)."""
    a, b, n = GRID
    t = torch.linspace(a, b, n + 1)
    x, dt = t[:-1], t[1:] - t[:-1]
    if density == "paper":
        p = 1 / (x * P_STD * math.sqrt(2 * math.pi)) * torch.exp(-((torch.log(x) - P_MEAN) ** 2) / (2 * P_STD ** 2))
    else:  # the public code's expression, precedence and all
        p = 1 / (x * P_STD * math.sqrt(2 * math.pi)) * torch.exp(-((torch.log(x) - P_MEAN) ** 2) / 2 * P_STD ** 2)
    w = (x ** 2 + SIGMA_DATA ** 2) / (x * SIGMA_DATA) ** 2 * p * dt
    return x, w


def rdc_loss(net, x, eps, label, density):
    """RDC's unet_loss for one image x [1, C, H, W] in [0, 1] and one class (None: unconditional)."""
    sigma, w = grid_and_weights(density)
    x0 = (x - 0.5) * 2
    noisy = x0.repeat(len(sigma), 1, 1, 1) + eps * sigma.view(-1, 1, 1, 1)
    labels = None
    if label is not None:
        labels = torch.zeros(len(sigma), KWARGS["label_dim"])
        labels[:, label] = 1
    d = net(noisy, sigma, labels)
    return torch.sum(w * torch.mean((d - x0) ** 2, dim=[1, 2, 3]))


def main():
    os.makedirs(OUT, exist_ok=True)
    gen = torch.Generator().manual_seed(15)
    torch.manual_seed(15)
    net = networks.EDMPrecond(**KWARGS)
    perturb(net, gen)
    net.eval()

    with tempfile.TemporaryDirectory() as tmp:
        pt = os.path.join(tmp, "edm_cond.pt")
        torch.save(net.state_dict(), pt)  # RDC's checkpoint layout
        cfg = os.path.join(tmp, "config.json")
        with open(cfg, "w") as f:
            json.dump(dict(KWARGS, precond="edm"), f)
        env = dict(os.environ, PYTHONPATH=EDM + os.pathsep + os.environ.get("PYTHONPATH", ""))
        subprocess.run([sys.executable, CONVERTER, pt, OUT, "--config", cfg], check=True, env=env)
    converted = load_file(os.path.join(OUT, "model.safetensors"))
    state = net.state_dict()
    assert converted.keys() == state.keys() and all(torch.equal(converted[k], state[k]) for k in state)

    c, r, k = KWARGS["img_channels"], KWARGS["img_resolution"], KWARGS["label_dim"]
    n = GRID[2]
    x = torch.randint(0, 256, (2, c, r, r), generator=gen).float() / 255
    eps = torch.randn(n, c, r, r, generator=gen)
    io = {"x": x, "eps": eps}
    with torch.no_grad():
        for density in ("paper", "code"):
            io["loss_" + density] = torch.tensor([[rdc_loss(net, x[i:i + 1], eps, y, density).item() for y in range(k)]
                                                  for i in range(2)])
        io["loss_uncond"] = torch.tensor([rdc_loss(net, x[i:i + 1], eps, None, "paper").item() for i in range(2)])
    xg = x[0:1].clone().requires_grad_(True)
    rdc_loss(net, xg, eps, 1, "paper").backward()
    io["grad_paper"] = xg.grad.detach()

    # RDC's LM loss (EDMEulerIntegralLM.likelihood_maximization_T1, summed over images instead of
    # averaged) at given sigmas and noise.
    lm_sigma = torch.tensor([0.45, 0.55])
    lm_eps = torch.randn(2, c, r, r, generator=gen)
    xl = x.clone().requires_grad_(True)
    x0 = (xl - 0.5) * 2
    d = net(x0 + lm_eps * lm_sigma.view(-1, 1, 1, 1), lm_sigma, None)
    lm_loss = torch.mean((d - x0) ** 2, dim=[1, 2, 3]).sum()
    lm_loss.backward()
    io.update(lm_sigma=lm_sigma, lm_eps=lm_eps, lm_loss=lm_loss.detach().reshape(1), lm_grad=xl.grad.detach())
    save_file({key: v.contiguous() for key, v in io.items()}, os.path.join(OUT, "rdc.safetensors"))

    pixels = (x[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    Image.fromarray(pixels, "RGB").save(os.path.join(OUT, "image0.png"))
    print("loss_paper", io["loss_paper"].tolist(), "\nloss_code", io["loss_code"].tolist(),
          "\nloss_uncond", io["loss_uncond"].tolist(), "\nlm_loss", lm_loss.item(), file=sys.stderr)

    # How the two densities distribute RDC's weight over sigma (RDC's own grid, 1e-4:3:1000).
    for density in ("paper", "code"):
        a, b, _ = GRID
        t = torch.linspace(1e-4, 3, 1001, dtype=torch.float64)
        s, ds = t[:-1], t[1:] - t[:-1]
        if density == "paper":
            p = torch.exp(-((torch.log(s) - P_MEAN) ** 2) / (2 * P_STD ** 2)) / (s * P_STD * math.sqrt(2 * math.pi))
        else:
            p = torch.exp(-((torch.log(s) - P_MEAN) ** 2) / 2 * P_STD ** 2) / (s * P_STD * math.sqrt(2 * math.pi))
        mass = p * ds
        print(f"{density}: integral of p over [1e-4, 3] {mass.sum():.4f}; share of it in sigma < 0.1 "
              f"{mass[s < 0.1].sum() / mass.sum():.3f}, 0.1-1 {mass[(s >= 0.1) & (s < 1)].sum() / mass.sum():.3f}, "
              f">= 1 {mass[s >= 1].sum() / mass.sum():.3f}", file=sys.stderr)


if __name__ == "__main__":
    main()
