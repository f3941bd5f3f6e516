#!/usr/bin/env python3
"""Writes the reference fixtures of the Diffusion layer's tests from diffusers (and torch).

Rerun from the repository root after changing what is checked:
    pip install torch diffusers safetensors
    python3 tools/make_diffusion_fixtures.py           # schedules and U-Nets
    python3 tools/make_diffusion_fixtures.py sampler   # DDIM sampling loops on unet_a (reads its folder)
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


UNET_CONFIGS = {
    # Two levels, class-conditional, attention on the low-resolution level, head dim 4.
    "unet_a": dict(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 16), layers_per_block=1,
                   down_block_types=("DownBlock2D", "AttnDownBlock2D"), up_block_types=("AttnUpBlock2D", "UpBlock2D"),
                   norm_num_groups=4, attention_head_dim=4, num_class_embeds=5),
    # Three levels, non-square input, attention everywhere with head dim = channels, centred input,
    # un-flipped embedding with a frequency shift, scaled mid block, separate attention groups.
    "unet_b": dict(sample_size=(12, 8), in_channels=3, out_channels=2, block_out_channels=(8, 16, 16), layers_per_block=2,
                   down_block_types=("AttnDownBlock2D", "AttnDownBlock2D", "DownBlock2D"),
                   up_block_types=("UpBlock2D", "AttnUpBlock2D", "AttnUpBlock2D"), norm_num_groups=4,
                   attention_head_dim=None, attn_norm_num_groups=2, center_input_sample=True, flip_sin_to_cos=False,
                   freq_shift=1, mid_block_scale_factor=1.5, norm_eps=1e-6),
}


def unet_fixtures():
    """For each config: a diffusers model folder with random weights, and io.safetensors holding
    inputs, the forward output, d(sum(out * weights))/d(input) and a few parameter gradients."""
    from diffusers import UNet2DModel
    from safetensors.torch import save_file
    for name, cfg in UNET_CONFIGS.items():
        torch.manual_seed(1)
        model = UNet2DModel(**cfg)
        with torch.no_grad():  # make norms' affine parameters non-trivial too
            for p in model.parameters():
                p.add_(torch.randn_like(p) * 0.05)
        folder = os.path.join(OUT, name)
        model.save_pretrained(folder, safe_serialization=True)
        h, w = (cfg["sample_size"], cfg["sample_size"]) if isinstance(cfg["sample_size"], int) else cfg["sample_size"]
        batch = 3
        x = torch.randn(batch, cfg["in_channels"], h, w, requires_grad=True)
        t = torch.tensor([3, 500, 999])
        labels = torch.tensor([0, 4, 2]) if cfg.get("num_class_embeds") else None
        out = model(x, t, class_labels=labels).sample
        weights = torch.randn_like(out)
        (out * weights).sum().backward()
        tensors = {"sample": x.detach(), "timesteps": t.float(), "output": out.detach(), "weights": weights,
                   "grad_sample": x.grad.detach()}
        if labels is not None:
            tensors["class_labels"] = labels.float()
        for key in ("conv_in.weight", "time_embedding.linear_1.weight", "down_blocks.1.resnets.0.conv1.weight",
                    "mid_block.attentions.0.to_q.weight", "up_blocks.0.resnets.0.norm1.bias", "conv_out.weight"):
            tensors["grad." + key] = dict(model.named_parameters())[key].grad.detach()
        save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(folder, "io.safetensors"))


def sampler_fixture():
    """DDIM sampling loops of diffusers' DDIMScheduler on the unet_a model from fixed initial noise,
    classifier-free guidance against the null class, in the variants our Sampler offers:
    use_clipped_model_output True (our default) and False (diffusers' default), clip_sample off,
    and no guidance. Outputs are clamped to [-1, 1] as our Sampler returns them."""
    from diffusers import DDIMScheduler, UNet2DModel
    from safetensors.torch import save_file
    model = UNet2DModel.from_pretrained(os.path.join(OUT, "unet_a")).eval()
    g = torch.Generator().manual_seed(7)
    x_t = torch.randn(4, 1, 8, 8, generator=g)
    classes = torch.tensor([0, 1, 2, 3])
    null = 4
    tensors = {"initial_noise": x_t, "classes": classes.float()}

    def loop(steps, guidance, clip_sample, clipped_output):
        s = DDIMScheduler(num_train_timesteps=1000, beta_schedule="linear", beta_start=1e-4, beta_end=0.02,
                          clip_sample=clip_sample, set_alpha_to_one=True, steps_offset=0, timestep_spacing="leading")
        s.set_timesteps(steps)
        x = x_t.clone()
        with torch.no_grad():
            for t in s.timesteps:
                if guidance == 1:
                    eps = model(x, t, class_labels=classes).sample
                else:
                    both = model(torch.cat([x, x]), t, class_labels=torch.cat([classes, torch.full_like(classes, null)])).sample
                    cond, uncond = both.chunk(2)
                    eps = uncond + guidance * (cond - uncond)
                x = s.step(eps, t, x, eta=0.0, use_clipped_model_output=clipped_output).prev_sample
        return x.clamp(-1, 1)

    tensors["ddim10_w2_clipped_eps"] = loop(10, 2.0, True, True)
    tensors["ddim10_w2_model_eps"] = loop(10, 2.0, True, False)
    tensors["ddim10_w2_no_clip"] = loop(10, 2.0, False, False)
    tensors["ddim7_w1_clipped_eps"] = loop(7, 1.0, True, True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(OUT, "sampler_ddim.safetensors"))


def main():
    os.makedirs(OUT, exist_ok=True)
    unet_fixtures()
    with open(os.path.join(OUT, "schedules.json"), "w") as f:
        json.dump(schedules(), f, indent=1)
    print("wrote", OUT, file=sys.stderr)


if __name__ == "__main__":
    torch.manual_seed(0)
    if sys.argv[1:] == ["sampler"]:
        sampler_fixture()
    else:
        main()
