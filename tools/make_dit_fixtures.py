#!/usr/bin/env python3
"""Writes the reference fixtures of the DiT tests (Tests/DiTTests/Fixtures), from the installed
diffusers (PyPI) in float32 on the CPU. Rerun from the repository root:
    /work/venv/bin/python tools/make_dit_fixtures.py models     # dit_sigma/, dit_plain/, configs/
    /work/venv/bin/python tools/make_dit_fixtures.py pipeline   # pipeline/
    /work/venv/bin/python tools/make_dit_fixtures.py pipeline1000   # pipeline1000/
(any Python with torch, diffusers and safetensors works). Nothing here is needed by `make test`.

models: two small DiTTransformer2DModel folders with random weights (config.json,
diffusion_pytorch_model.safetensors stored F16) and io.safetensors (inputs, diffusers' outputs, the
input gradient of sum(output * weights)):
  dit_sigma: learned sigma (in 4, out 8), sample 8, patch 2, 4 heads of 8, 2 layers, 5 classes,
             gelu-approximate, attention biases, no norm affine; labels include the null class.
  dit_plain: in 3, out_channels null (= 3), sample 12, patch 4, 3 heads of 4, 3 layers, 7 classes,
             exact gelu, no attention biases, norm_elementwise_affine with norm_eps 1e-6; also a
             16x16 input (a rebuilt positional table).
Every parameter is moved off its initial value (diffusers leaves no zero-initialised layer in
DiT, but the perturbation also separates norm affines and embeddings) and rounded to float16, and
the reference runs in float32 on exactly those values. configs/ gets DiT-XL/2's config as
diffusers writes it for a `Transformer2DModel` (the class name published DiT folders carry) and
for `DiTTransformer2DModel`, with the parameter count (meta device, nothing allocated).

pipeline: a DiTPipeline folder saved by diffusers' `DiTPipeline.save_pretrained` (tiny DiT with
learned sigma, a tiny AutoencoderKL, DDIMScheduler with DiT's linear betas), then `id2label`
added to model_index.json as the published DiT folders have it (diffusers 0.42's save_pretrained
does not write it; `DiTPipeline.from_pretrained` reads it, checked below), and io.safetensors
with an image in [-1, 1], its latent (posterior mean x scaling_factor), noise, timesteps and the
Diffusion Classifier's per-class errors computed with the reloaded pipeline: for class k and
probe j, mean((eps_j - eps_theta(sqrt(abar_t) x0 + sqrt(1 - abar_t) eps_j, t_j, k))^2) with
eps_theta the first in_channels output channels (the public code's `torch.split`).

pipeline1000: a DiTPipeline folder over 1,000 classes, as small as diffusers allows (for the CLI's
1,000-class runs, which check run folders, merge and reports at ImageNet's class count, not
numbers): DiTTransformer2DModel with num_embeds_ada_norm 1000 (so 1,001 label rows with the null
class), 1 layer, 1 head of 8, sample 4, patch 2, learned sigma; an AutoencoderKL of 4 and 8
channels (downsampling 2: images of 8 x 8); the DDIMScheduler above; id2label
"synthetic class k, sk" for k = 0..999 (class folders named sk match by synonym).
"""
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "Tests", "DiTTests", "Fixtures")


def perturb(model, seed, scale=0.1):
    """Adds N(0, scale^2) to every parameter, then rounds it to float16 (the weights are saved as
    F16; the reference runs in float32 on exactly the rounded values)."""
    import torch
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale)
            p.copy_(p.half().float())


def save_half(model, folder):
    import copy
    import torch
    copy.deepcopy(model).to(torch.float16).save_pretrained(folder, safe_serialization=True)


def model_fixtures():
    import torch
    from safetensors.torch import save_file
    from diffusers import DiTTransformer2DModel, Transformer2DModel
    configs = {
        "dit_sigma": dict(num_attention_heads=4, attention_head_dim=8, in_channels=4, out_channels=8, num_layers=2,
                          sample_size=8, patch_size=2, num_embeds_ada_norm=5, norm_num_groups=1,
                          activation_fn="gelu-approximate", attention_bias=True),
        "dit_plain": dict(num_attention_heads=3, attention_head_dim=4, in_channels=3, out_channels=None, num_layers=3,
                          sample_size=12, patch_size=4, num_embeds_ada_norm=7, norm_num_groups=1,
                          activation_fn="gelu", attention_bias=False, norm_elementwise_affine=True, norm_eps=1e-6),
    }
    for seed, (name, cfg) in enumerate(configs.items()):
        torch.manual_seed(40 + seed)
        model = DiTTransformer2DModel(**cfg).eval()
        perturb(model, 50 + seed)
        folder = os.path.join(OUT, name)
        save_half(model, folder)
        c, s, k = cfg["in_channels"], cfg["sample_size"], cfg["num_embeds_ada_norm"]
        g = torch.Generator().manual_seed(60 + seed)
        sample = torch.randn(3, c, s, s, generator=g).requires_grad_(True)
        timesteps = torch.tensor([3.0, 421.0, 999.0])
        labels = torch.tensor([0, k - 1, k])  # the last is the null class
        out = model(sample, timestep=timesteps, class_labels=labels).sample
        weights = torch.randn(out.shape, generator=g)
        (out * weights).sum().backward()
        tensors = {"sample": sample.detach(), "timesteps": timesteps, "class_labels": labels.float(),
                   "output": out.detach().contiguous(), "weights": weights, "grad_sample": sample.grad.contiguous(),
                   "parameter_count": torch.tensor([float(sum(p.numel() for p in model.parameters()))])}
        if name == "dit_plain":
            big = torch.randn(2, c, 16, 16, generator=g)
            with torch.no_grad():
                tensors["sample_16"] = big
                tensors["output_16"] = model(big, timestep=torch.tensor([7.0, 640.0]),
                                             class_labels=torch.tensor([2, 5])).sample.contiguous()
        save_file(tensors, os.path.join(folder, "io.safetensors"))
        print(name, "output", tuple(out.shape), "max", float(out.abs().max()), file=sys.stderr)

    # DiT-XL/2 (256x256) as published: the Transformer2DModel keys, and as DiTTransformer2DModel.
    xl = dict(num_attention_heads=16, attention_head_dim=72, in_channels=4, out_channels=8, num_layers=28,
              sample_size=32, patch_size=2, num_embeds_ada_norm=1000, norm_type="ada_norm_zero",
              norm_elementwise_affine=False, activation_fn="gelu-approximate", attention_bias=True)
    os.makedirs(os.path.join(OUT, "configs"), exist_ok=True)
    with torch.device("meta"):
        legacy = Transformer2DModel(**xl)  # the class the published folders name
        dit = DiTTransformer2DModel(**{k: v for k, v in xl.items() if k != "norm_type"})
    count = sum(p.numel() for p in dit.parameters())
    for fname, m in [("dit_xl_2_256_transformer2d.json", legacy), ("dit_xl_2_256.json", dit)]:
        cfg = dict(m.config)
        cfg["_class_name"] = type(m).__name__
        cfg["_diffusers_version"] = "0.42.1"
        cfg = {k: v for k, v in cfg.items() if not k.startswith("_use_default_values")}
        with open(os.path.join(OUT, "configs", fname), "w") as f:
            json.dump(cfg, f, indent=2, sort_keys=True)
    with open(os.path.join(OUT, "configs", "dit_xl_2_256_parameter_count.txt"), "w") as f:
        f.write(f"{count}\n")
    print("DiT-XL/2 parameters", count, "legacy class parameters", sum(p.numel() for p in legacy.parameters()), file=sys.stderr)


LABELS = {"0": "tench, Tinca tinca", "1": "goldfish, Carassius auratus",
          "2": "great white shark, white shark, man-eater", "3": "tiger shark, Galeocerdo cuvieri"}
PIPELINE_TIMESTEPS = [50, 300, 600, 900]


def pipeline_fixtures():
    import torch
    from safetensors.torch import save_file
    from diffusers import AutoencoderKL, DDIMScheduler, DiTPipeline, DiTTransformer2DModel
    folder = os.path.join(OUT, "pipeline")
    torch.manual_seed(70)
    transformer = DiTTransformer2DModel(num_attention_heads=2, attention_head_dim=8, in_channels=4, out_channels=8,
                                        num_layers=2, sample_size=8, patch_size=2, num_embeds_ada_norm=len(LABELS),
                                        norm_num_groups=1).eval()
    perturb(transformer, 71)
    vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 2,
                        up_block_types=["UpDecoderBlock2D"] * 2, block_out_channels=[8, 16], layers_per_block=1,
                        latent_channels=4, norm_num_groups=4, sample_size=16).eval()
    perturb(vae, 72, scale=0.05)
    # DiT's scheduler: DDIM with the original DiT's linear betas (1e-4 .. 0.02 over 1000 steps).
    scheduler = DDIMScheduler(num_train_timesteps=1000, beta_start=0.0001, beta_end=0.02, beta_schedule="linear",
                              clip_sample=False, set_alpha_to_one=True, steps_offset=0)
    import copy
    DiTPipeline(copy.deepcopy(transformer).half(), copy.deepcopy(vae).half(), scheduler).save_pretrained(
        folder, safe_serialization=True)
    index_path = os.path.join(folder, "model_index.json")
    index = json.load(open(index_path))
    assert "id2label" not in index, "this diffusers writes id2label itself; drop the step below"
    index["id2label"] = LABELS
    with open(index_path, "w") as f:
        json.dump(index, f, indent=2, sort_keys=True)

    pipe = DiTPipeline.from_pretrained(folder, dtype=torch.float32)
    assert pipe.labels["goldfish"] == 1 and pipe.labels["white shark"] == 2, pipe.labels
    dit, ae, sched = pipe.transformer.eval(), pipe.vae.eval(), pipe.scheduler
    g = torch.Generator().manual_seed(73)
    yy, xx = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    base = torch.stack([xx / 15, yy / 15, (xx + yy) / 30]) * 2 - 1
    image = (base + 0.3 * torch.randn(3, 16, 16, generator=g)).clamp(-1, 1).unsqueeze(0)
    ts = torch.tensor(PIPELINE_TIMESTEPS)
    with torch.no_grad():
        latent = ae.encode(image).latent_dist.mean * ae.config.scaling_factor
        eps = torch.randn((len(ts),) + tuple(latent.shape[1:]), generator=g)
        abar = sched.alphas_cumprod[ts].view(-1, 1, 1, 1)
        xt = latent * abar.sqrt() + eps * (1 - abar).sqrt()
        c = dit.config.in_channels
        errors = torch.zeros(len(LABELS), len(ts))
        for k in range(len(LABELS)):
            out = dit(xt, timestep=ts, class_labels=torch.full((len(ts),), k)).sample
            noise_pred, _ = torch.split(out, c, dim=1)
            errors[k] = ((eps - noise_pred) ** 2).mean(dim=(1, 2, 3))
    save_file({"image": image.contiguous(), "latent": latent.contiguous(), "eps": eps.contiguous(),
               "timesteps": ts.float(), "errors": errors.contiguous(),
               "alphas_cumprod": sched.alphas_cumprod.float().contiguous()},
              os.path.join(folder, "io.safetensors"))
    print("errors", errors, file=sys.stderr)


def pipeline1000_fixture():
    import copy
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, DiTPipeline, DiTTransformer2DModel
    folder = os.path.join(OUT, "pipeline1000")
    torch.manual_seed(80)
    transformer = DiTTransformer2DModel(num_attention_heads=1, attention_head_dim=8, in_channels=4, out_channels=8,
                                        num_layers=1, sample_size=4, patch_size=2, num_embeds_ada_norm=1000,
                                        norm_num_groups=1).eval()
    perturb(transformer, 81)
    vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 2,
                        up_block_types=["UpDecoderBlock2D"] * 2, block_out_channels=[4, 8], layers_per_block=1,
                        latent_channels=4, norm_num_groups=4, sample_size=8).eval()
    perturb(vae, 82, scale=0.05)
    scheduler = DDIMScheduler(num_train_timesteps=1000, beta_start=0.0001, beta_end=0.02, beta_schedule="linear",
                              clip_sample=False, set_alpha_to_one=True, steps_offset=0)
    DiTPipeline(copy.deepcopy(transformer).half(), copy.deepcopy(vae).half(), scheduler).save_pretrained(
        folder, safe_serialization=True)
    index_path = os.path.join(folder, "model_index.json")
    index = json.load(open(index_path))
    index["id2label"] = {str(k): f"synthetic class {k}, s{k}" for k in range(1000)}
    with open(index_path, "w") as f:
        json.dump(index, f, indent=2, sort_keys=True)
    pipe = DiTPipeline.from_pretrained(folder, dtype=torch.float32)
    assert pipe.labels["s999"] == 999 and len(pipe.labels) == 2000, len(pipe.labels)
    with torch.no_grad():
        out = pipe.transformer(torch.zeros(2, 4, 4, 4), timestep=torch.tensor([10, 900]),
                               class_labels=torch.tensor([0, 999])).sample
    assert out.shape == (2, 8, 4, 4), out.shape


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    step = sys.argv[1] if len(sys.argv) > 1 else ""
    if step == "models":
        model_fixtures()
    elif step == "pipeline":
        pipeline_fixtures()
    elif step == "pipeline1000":
        pipeline1000_fixture()
    else:
        sys.exit("usage: make_dit_fixtures.py models|pipeline|pipeline1000")
    print("wrote", OUT, file=sys.stderr)
