#!/usr/bin/env python3
"""Writes the parity fixtures of the EDM target's tests from NVlabs/edm's own code.

Rerun from the repository root after changing what is checked:
    /work/venv/bin/python tools/make_edm_fixtures.py /path/to/NVlabs/edm
(any Python with torch and safetensors; the argument is a checkout of https://github.com/NVlabs/edm,
whose `training.networks`, `dnnlib` and `torch_utils` are imported from there and never copied).
It writes Tests/EDMTests/Fixtures (small, committed); `make test` reads only those files.

For each network fixture: an EDM precond module (EDMPrecond / VPPrecond / VEPrecond around a small
SongUNet or DhariwalUNet) is built with EDM's constructor, every parameter is redrawn at random (EDM
zero-initialises some layers, which would make parity vacuous), and it is pickled the way EDM's
training loop does (`pickle.dump(dict(ema=..., ...))`, classes embedded by torch_utils.persistence).
tools/convert_edm.py converts that pickle into the fixture's model folder (config.json,
model.safetensors), so the folder the Swift tests load is the converter's output. One fixture is
also converted from its state dict with --config, and must come out identical. io.safetensors holds
the inputs (x, sigma, class_labels, augment_labels), D(x; sigma, class_labels) (`output`), D with
class_labels=None (`output_uncond`, conditional models), a fixed random projection R and the
gradient of sum(D * R) with respect to x and a few parameters. layers.safetensors holds single
layers (UNetBlock with adaptive scale and two heads, fused up/down-sampling convolutions) the
networks do not exercise. Finally the preset rdc-cifar10-cond is checked against EDM's full
CIFAR-10 DDPM++ (a random state dict converted with --preset; nothing of it is written).
"""
import copy
import json
import os
import pickle
import subprocess
import sys
import tempfile

if len(sys.argv) != 2 or not os.path.isfile(os.path.join(sys.argv[1], "training", "networks.py")):
    sys.exit("usage: make_edm_fixtures.py EDM_CHECKOUT_PATH (a checkout of NVlabs/edm)")
EDM = os.path.abspath(sys.argv[1])
sys.path.insert(0, EDM)

import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402
from training import networks  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "Tests", "EDMTests", "Fixtures")
CONVERTER = os.path.join(ROOT, "tools", "convert_edm.py")

NETWORKS = {
    # DDPM++-like: positional embedding, standard encoder/decoder, [1,1] filter, attention at 16x16
    # (and the 8x8 bottleneck), conditional, augmentation labels.
    "ddpmpp_edm": dict(precond="edm", sigma=[0.02, 0.6, 20.0], kwargs=dict(
        img_resolution=16, img_channels=3, label_dim=4, sigma_data=0.5, model_type="SongUNet", augment_dim=3,
        model_channels=8, channel_mult=[1, 2], channel_mult_emb=4, num_blocks=1, attn_resolutions=[16], dropout=0.13,
        embedding_type="positional", channel_mult_noise=1, encoder_type="standard", decoder_type="standard",
        resample_filter=[1, 1])),
    # NCSN++-like: Fourier embedding, channel_mult_noise 2, residual encoder (fused down-sampling),
    # skip decoder (resampling-only up convolutions), [1,3,3,1], three levels, unconditional.
    "ncsnpp_ve": dict(precond="ve", sigma=[0.05, 1.5, 40.0], kwargs=dict(
        img_resolution=16, img_channels=2, label_dim=0, sigma_min=0.02, sigma_max=100, model_type="SongUNet",
        model_channels=8, channel_mult=[1, 2, 2], channel_mult_emb=2, num_blocks=1, attn_resolutions=[8], dropout=0.1,
        embedding_type="fourier", channel_mult_noise=2, encoder_type="residual", decoder_type="skip",
        resample_filter=[1, 3, 3, 1])),
    # VP preconditioning (large positional noise labels), skip encoder (resampling-only down
    # convolutions), [1,3,3,1], two blocks per level, no attention resolution, conditional.
    "skip_vp": dict(precond="vp", sigma=[0.01, 0.8, 10.0], kwargs=dict(
        img_resolution=8, img_channels=3, label_dim=3, beta_d=19.9, beta_min=0.1, M=1000, epsilon_t=1e-5,
        model_type="SongUNet", augment_dim=2, model_channels=8, channel_mult=[1, 2], channel_mult_emb=4, num_blocks=2,
        attn_resolutions=[], dropout=0.1, embedding_type="positional", channel_mult_noise=1, encoder_type="skip",
        decoder_type="standard", resample_filter=[1, 3, 3, 1])),
    # ADM in EDMPrecond: adaptive scale, resampling-only skips on up/down blocks, [cos, sin]
    # embedding, label embedding without bias. Blocks are narrower than 64 channels, so (as in
    # EDM) they have no attention; layers.safetensors covers multi-head attention.
    "adm_edm": dict(precond="edm", sigma=[0.1, 1.0, 5.0], kwargs=dict(
        img_resolution=8, img_channels=3, label_dim=3, sigma_data=0.5, model_type="DhariwalUNet", augment_dim=2,
        model_channels=8, channel_mult=[1, 2], channel_mult_emb=4, num_blocks=1, attn_resolutions=[8], dropout=0.1)),
}

GRAD_KEYS = ("model.map_layer0.weight", "model.enc.{r}x{r}_conv.weight", "model.dec.{r}x{r}_block0.conv0.weight")

PRECOND = {"edm": networks.EDMPrecond, "vp": networks.VPPrecond, "ve": networks.VEPrecond}


def perturb(module, gen):
    """Redraws every parameter: weights N(0, 1/fan_in), biases N(0, 0.1^2), norms 1 + N(0, 0.2^2)."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, networks.GroupNorm):
                m.weight.copy_(1 + 0.2 * torch.randn(m.weight.shape, generator=gen))
                m.bias.copy_(0.2 * torch.randn(m.bias.shape, generator=gen))
            elif isinstance(m, (networks.Linear, networks.Conv2d)):
                if m.weight is not None:
                    fan_in = m.weight[0].numel()
                    m.weight.copy_(torch.randn(m.weight.shape, generator=gen) / fan_in ** 0.5)
                if m.bias is not None:
                    m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=gen))


def convert(source, out_dir, *extra):
    env = dict(os.environ, PYTHONPATH=EDM + os.pathsep + os.environ.get("PYTHONPATH", ""))
    subprocess.run([sys.executable, CONVERTER, source, out_dir, *extra], check=True, env=env)


def network_fixture(name, spec, tmp):
    gen = torch.Generator().manual_seed(sum(map(ord, name)))
    torch.manual_seed(sum(map(ord, name)))  # EDM's own initialisation (Fourier frequencies)
    kwargs = spec["kwargs"]
    net = PRECOND[spec["precond"]](**kwargs)
    perturb(net, gen)
    net.eval()

    # Pickle as EDM's training loop does, then convert.
    pkl = os.path.join(tmp, f"{name}.pkl")
    with open(pkl, "wb") as f:
        pickle.dump(dict(ema=copy.deepcopy(net).eval().requires_grad_(False), loss_fn=None, augment_pipe=None,
                         dataset_kwargs={}), f)
    folder = os.path.join(OUT, name)
    convert(pkl, folder)

    # The state-dict route gives the same folder.
    if name == "ncsnpp_ve":
        pt = os.path.join(tmp, f"{name}.pt")
        torch.save(net.state_dict(), pt)
        cfg = os.path.join(tmp, f"{name}.json")
        with open(cfg, "w") as f:
            json.dump(dict(kwargs, precond=spec["precond"]), f)
        again = os.path.join(tmp, f"{name}_from_state_dict")
        convert(pt, again, "--config", cfg)
        for file in ("config.json",):
            assert open(os.path.join(folder, file)).read() == open(os.path.join(again, file)).read(), file
        a, b = load_file(os.path.join(folder, "model.safetensors")), load_file(os.path.join(again, "model.safetensors"))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), "state-dict route differs"

    # The converted tensors are the state dict, buffers included.
    converted = load_file(os.path.join(folder, "model.safetensors"))
    state = net.state_dict()
    assert converted.keys() == state.keys(), sorted(set(converted) ^ set(state))
    assert all(torch.equal(converted[k], state[k]) for k in state)

    res, ch, label_dim = kwargs["img_resolution"], kwargs["img_channels"], kwargs["label_dim"]
    batch = len(spec["sigma"])
    x = torch.randn(batch, ch, res, res, generator=gen) * torch.tensor(spec["sigma"]).clamp(min=0.5).reshape(-1, 1, 1, 1)
    x.requires_grad_(True)
    sigma = torch.tensor(spec["sigma"], dtype=torch.float32)
    io = {"x": x.detach().clone(), "sigma": sigma}
    labels = None
    if label_dim:
        labels = torch.zeros(batch, label_dim)
        labels[0, 1] = 1
        labels[1, label_dim - 1] = 1
        labels[2] = torch.rand(label_dim, generator=gen)  # any vector, not only one-hot
        io["class_labels"] = labels
    aug = None
    if kwargs.get("augment_dim"):
        aug = torch.randn(batch, kwargs["augment_dim"], generator=gen)
        io["augment_labels"] = aug
    extra = {} if aug is None else {"augment_labels": aug}
    out = net(x, sigma, labels, **extra)
    proj = torch.randn(out.shape, generator=gen)
    (out * proj).sum().backward()
    io.update(output=out.detach(), projection=proj, grad_x=x.grad.detach())
    params = dict(net.named_parameters())
    for key in GRAD_KEYS:
        key = key.format(r=res)
        io["grad." + key] = params[key].grad.detach()
    if label_dim:
        with torch.no_grad():
            io["output_uncond"] = net(x.detach(), sigma, None, **extra)
    save_file({k: v.contiguous() for k, v in io.items()}, os.path.join(folder, "io.safetensors"))
    n = sum(p.numel() for p in net.parameters())
    print(f"{name}: {n} parameters, |D| max {out.abs().max():.3g}, |grad x| max {x.grad.abs().max():.3g}", file=sys.stderr)


def layer_fixtures():
    """Single layers: `<case>.<state key>` weights and buffers, `<case>.x` (`.emb`), `.output`, `.projection`, `.grad_x`."""
    gen = torch.Generator().manual_seed(7)
    cases = {
        # Adaptive scale, two heads given explicitly, down-sampling with [1,3,3,1], 1x1 resampling skip.
        "block_down": (networks.UNetBlock(in_channels=8, out_channels=16, emb_channels=12, down=True, attention=True,
                                          num_heads=2, resample_filter=[1, 3, 3, 1], adaptive_scale=True,
                                          skip_scale=0.8, eps=1e-5), (3, 8, 8, 8)),
        # Heads from channels_per_head (16 / 8 = 2), up-sampling with [1,1], resampling-only skip.
        "block_up": (networks.UNetBlock(in_channels=16, out_channels=16, emb_channels=12, up=True, attention=True,
                                        channels_per_head=8, resample_filter=[1, 1], adaptive_scale=True), (2, 16, 4, 4)),
        "conv_fused_up": (networks.Conv2d(6, 5, kernel=3, up=True, fused_resample=True, resample_filter=[1, 3, 3, 1]), (2, 6, 5, 5)),
        "conv_fused_up_1x1": (networks.Conv2d(6, 5, kernel=1, up=True, fused_resample=True, resample_filter=[1, 3, 3, 1]), (2, 6, 4, 4)),
        "conv_fused_down": (networks.Conv2d(6, 5, kernel=3, down=True, fused_resample=True, resample_filter=[1, 1]), (2, 6, 8, 8)),
        "conv_down": (networks.Conv2d(6, 5, kernel=3, down=True, resample_filter=[1, 3, 3, 1]), (2, 6, 8, 8)),
        "conv_up": (networks.Conv2d(6, 5, kernel=3, up=True, resample_filter=[1, 3, 3, 1]), (2, 6, 4, 4)),
    }
    tensors = {}
    for name, (module, shape) in cases.items():
        perturb(module, gen)
        module.eval()
        x = torch.randn(shape, generator=gen, requires_grad=True)
        if isinstance(module, networks.UNetBlock):
            emb = torch.randn(shape[0], 12, generator=gen)
            out = module(x, emb)
            tensors[f"{name}.emb"] = emb
        else:
            out = module(x)
        proj = torch.randn(out.shape, generator=gen)
        (out * proj).sum().backward()
        for key, value in module.state_dict().items():
            tensors[f"{name}.{key}"] = value
        tensors.update({f"{name}.x": x.detach(), f"{name}.output": out.detach(), f"{name}.projection": proj,
                        f"{name}.grad_x": x.grad.detach()})
    save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(OUT, "layers.safetensors"))


def check_preset(tmp):
    """--preset rdc-cifar10-cond fits EDM's full CIFAR-10 conditional DDPM++ (key for key, shape for shape)."""
    torch.manual_seed(0)
    net = networks.EDMPrecond(img_resolution=32, img_channels=3, label_dim=10, model_type="SongUNet", augment_dim=9,
                              dropout=0.13, embedding_type="positional", encoder_type="standard", decoder_type="standard",
                              channel_mult_noise=1, resample_filter=[1, 1], model_channels=128, channel_mult=[2, 2, 2])
    pt = os.path.join(tmp, "cifar.pt")
    torch.save(net.state_dict(), pt)
    convert(pt, os.path.join(tmp, "cifar"), "--preset", "rdc-cifar10-cond")
    converted = load_file(os.path.join(tmp, "cifar", "model.safetensors"))
    assert converted.keys() == net.state_dict().keys()
    print(f"rdc-cifar10-cond: {sum(p.numel() for p in net.parameters())} parameters, {len(converted)} tensors",
          file=sys.stderr)


def main():
    os.makedirs(OUT, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name, spec in NETWORKS.items():
            network_fixture(name, spec, tmp)
        layer_fixtures()
        check_preset(tmp)
    print("wrote", OUT, file=sys.stderr)


if __name__ == "__main__":
    main()
