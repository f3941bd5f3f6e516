#!/usr/bin/env python3
"""Converts an EDM network (NVlabs/edm) into an EDM model folder that `EDMModel.load(from:)` reads.

    python tools/convert_edm.py NETWORK.pkl OUT_DIR [--key ema] [--config CONFIG.json]
    python tools/convert_edm.py STATE_DICT.pt OUT_DIR (--config CONFIG.json | --preset NAME)

OUT_DIR gets `config.json` (the precond class's keyword arguments with EDM's names, plus
"precond": "edm" | "vp" | "ve", "model_type", and the precond's constants) and `model.safetensors`
(float32; keys exactly the precond module's `state_dict()` keys, buffers included).

Inputs:
- EDM's network pickles (`edm-cifar10-32x32-cond-vp.pkl` and the like, or a training run's
  `network-snapshot-*.pkl`): the network is `pickle.load(f)['ema']` (`--key` picks another entry).
  Their classes' source is embedded by `torch_utils.persistence`, and unpickling needs EDM's
  `dnnlib` and `torch_utils` packages: put a checkout of https://github.com/NVlabs/edm on
  PYTHONPATH, e.g. `PYTHONPATH=/path/to/edm python tools/convert_edm.py ...`. The config comes
  from the network's recorded constructor arguments (`init_kwargs`) and its attributes.
  Unpickling runs code from the pickle: convert only files you trust.
- State dicts (`torch.save(net.state_dict())`, e.g. RDC's `edm_cifar_cond.pt`, whose keys are
  EDMPrecond's `model.enc.32x32_conv.weight`, ...): they hold no config, so give `--config` (a JSON
  file with the keys above) or `--preset`:
    rdc-cifar10-cond      RDC's edm_cifar_cond.pt: EDM's CIFAR-10 conditional DDPM++ in
                          EDMPrecond (`train.py --cond=1 --arch=ddpmpp`: model_channels 128,
                          channel_mult [2,2,2], num_blocks 4, attention at 16, dropout 0.13,
                          augment_dim 9, label_dim 10)
    rdc-cifar10-uncond    RDC's edm_cifar_uncond_vp.pt, taken to be EDM's edm-cifar10-32x32-uncond-vp
                          network (the same in EDMPrecond, label_dim 0; "vp" is EDM's name for
                          the DDPM++ architecture there, not VPPrecond)
    edm-cifar10-{cond,uncond}-{vp,ve}   EDM's released CIFAR-10 networks (vp: DDPM++, ve: NCSN++),
                          all in EDMPrecond
  A state dict loads with `torch.load(weights_only=True)`; `--trust-pickle` allows a full pickle.
  A "state_dict" or "ema" entry holding the dict, and a "module." prefix (DDP), are unwrapped.

Needs torch and safetensors (`pip install torch safetensors`). When EDM's `training.networks` can
be imported (the checkout on PYTHONPATH), the converter also builds the precond class from the
config and checks that every key and shape of the state dict matches it.
"""
import argparse
import copy
import json
import math
import os
import pickle
import sys

import torch

PRECOND_NAMES = {"EDMPrecond": "edm", "VPPrecond": "vp", "VEPrecond": "ve"}
PRECOND_CLASSES = {v: k for k, v in PRECOND_NAMES.items()}

# EDM's constructor defaults (training/networks.py), so the written config is explicit.
PRECOND_DEFAULTS = {
    "edm": dict(sigma_min=0.0, sigma_max=float("inf"), sigma_data=0.5, model_type="DhariwalUNet"),
    "vp": dict(beta_d=19.9, beta_min=0.1, M=1000, epsilon_t=1e-5, model_type="SongUNet"),
    "ve": dict(sigma_min=0.02, sigma_max=100.0, model_type="SongUNet"),
}
COMMON_DEFAULTS = dict(label_dim=0, use_fp16=False)
MODEL_DEFAULTS = {
    "SongUNet": dict(augment_dim=0, model_channels=128, channel_mult=[1, 2, 2, 2], channel_mult_emb=4, num_blocks=4,
                     attn_resolutions=[16], dropout=0.10, label_dropout=0.0, embedding_type="positional",
                     channel_mult_noise=1, encoder_type="standard", decoder_type="standard", resample_filter=[1, 1]),
    "DhariwalUNet": dict(augment_dim=0, model_channels=192, channel_mult=[1, 2, 3, 4], channel_mult_emb=4, num_blocks=3,
                         attn_resolutions=[32, 16, 8], dropout=0.10, label_dropout=0.0),
}


def cifar10(cond, arch):
    cfg = dict(precond="edm", img_resolution=32, img_channels=3, label_dim=10 if cond else 0, augment_dim=9,
               dropout=0.13, model_type="SongUNet", model_channels=128, channel_mult=[2, 2, 2])
    if arch == "ddpmpp":
        cfg.update(embedding_type="positional", encoder_type="standard", decoder_type="standard",
                   channel_mult_noise=1, resample_filter=[1, 1])
    else:
        cfg.update(embedding_type="fourier", encoder_type="residual", decoder_type="standard",
                   channel_mult_noise=2, resample_filter=[1, 3, 3, 1])
    return cfg


PRESETS = {
    "rdc-cifar10-cond": cifar10(True, "ddpmpp"),
    "rdc-cifar10-uncond": cifar10(False, "ddpmpp"),
    "edm-cifar10-cond-vp": cifar10(True, "ddpmpp"),
    "edm-cifar10-uncond-vp": cifar10(False, "ddpmpp"),
    "edm-cifar10-cond-ve": cifar10(True, "ncsnpp"),
    "edm-cifar10-uncond-ve": cifar10(False, "ncsnpp"),
}


def fail(message):
    print(f"convert_edm.py: {message}", file=sys.stderr)
    sys.exit(1)


def vp_sigma(beta_d, beta_min, t):
    t = torch.as_tensor(t)  # float32, as VPPrecond.sigma
    return float(((0.5 * beta_d * (t ** 2) + beta_min * t).exp() - 1).sqrt())


def complete_config(cfg, source):
    """Fills EDM's defaults, checks the keys, derives VP's sigma range. `source` names the origin."""
    cfg = copy.deepcopy(cfg)
    precond = cfg.get("precond")
    if precond not in PRECOND_CLASSES:
        fail(f"{source}: precond must be one of edm, vp, ve (got {precond!r})")
    for key in ("img_resolution", "img_channels"):
        if key not in cfg:
            fail(f"{source}: {key} is missing")
    pdefaults = PRECOND_DEFAULTS[precond]
    model_type = cfg.get("model_type", pdefaults["model_type"])
    if model_type not in MODEL_DEFAULTS:
        fail(f"{source}: model_type must be SongUNet or DhariwalUNet (got {model_type!r})")
    allowed = {"precond", "img_resolution", "img_channels", "model_type"} | set(COMMON_DEFAULTS) | set(pdefaults) \
        | set(MODEL_DEFAULTS[model_type])
    if precond == "vp":
        allowed |= {"sigma_min", "sigma_max"}
    for key in sorted(cfg):
        if key not in allowed:
            fail(f"{source}: {key} is not an argument of {PRECOND_CLASSES[precond]} with {model_type}")
    out = dict(precond=precond, model_type=model_type, img_resolution=int(cfg["img_resolution"]),
               img_channels=int(cfg["img_channels"]))
    for table in (COMMON_DEFAULTS, {k: v for k, v in pdefaults.items() if k != "model_type"}, MODEL_DEFAULTS[model_type]):
        for key, default in table.items():
            out[key] = cfg.get(key, default)
    if precond == "vp":
        out["sigma_min"] = vp_sigma(out["beta_d"], out["beta_min"], out["epsilon_t"])
        out["sigma_max"] = vp_sigma(out["beta_d"], out["beta_min"], 1)
    return out


def config_from_network(net, override):
    """The config of an unpickled EDM precond module: its recorded init_kwargs and attributes."""
    name = type(net).__name__
    if name not in PRECOND_NAMES:
        fail(f"the network is a {name}; supported: {', '.join(PRECOND_NAMES)} (iDDPMPrecond is not)")
    if override is not None:
        cfg = dict(override)
        cfg.setdefault("precond", PRECOND_NAMES[name])
        return cfg
    try:
        kwargs = dict(net.init_kwargs)
    except Exception:
        fail(f"the {name} in the pickle has no recorded init_kwargs; pass --config with its arguments")
    cfg = dict(kwargs, precond=PRECOND_NAMES[name])
    cfg.setdefault("model_type", type(net.model).__name__)
    for attr in ("img_resolution", "img_channels", "label_dim", "use_fp16"):
        cfg.setdefault(attr, getattr(net, attr))
    constants = {"edm": ("sigma_min", "sigma_max", "sigma_data"), "ve": ("sigma_min", "sigma_max"),
                 "vp": ("beta_d", "beta_min", "M", "epsilon_t")}[cfg["precond"]]
    for attr in constants:
        cfg.setdefault(attr, getattr(net, attr))
    return cfg


def unwrap_state_dict(obj, source):
    if isinstance(obj, torch.nn.Module):
        return obj.state_dict()
    if isinstance(obj, dict):
        for key in ("state_dict", "ema", "model_state_dict"):
            if key in obj and isinstance(obj[key], (dict, torch.nn.Module)) and not torch.is_tensor(obj[key]):
                return unwrap_state_dict(obj[key], source)
        if all(torch.is_tensor(v) for v in obj.values()):
            keys = list(obj)
            if keys and all(k.startswith("module.") for k in keys):
                obj = {k[len("module."):]: v for k, v in obj.items()}
            return obj
    fail(f"{source}: not a state dict (a dict of tensors) or a module")


def check_against_edm(cfg, state, source):
    """Builds the precond class from cfg when EDM's code is importable; compares keys and shapes."""
    try:
        from training import networks
    except Exception:
        print("convert_edm.py: EDM's training.networks is not importable; keys and shapes are checked when loading",
              file=sys.stderr)
        return
    kwargs = {k: v for k, v in cfg.items() if k != "precond"}
    if cfg["precond"] == "vp":
        kwargs.pop("sigma_min")
        kwargs.pop("sigma_max")
    kwargs = {k: (float(v) if isinstance(v, float) else v) for k, v in kwargs.items()}
    ref = getattr(networks, PRECOND_CLASSES[cfg["precond"]])(**kwargs).state_dict()
    missing = sorted(set(ref) - set(state))
    unused = sorted(set(state) - set(ref))
    if missing or unused:
        fail(f"{source}: the state dict does not fit the config: missing {missing[:8]}, unused {unused[:8]}")
    for key, value in ref.items():
        if tuple(value.shape) != tuple(state[key].shape):
            fail(f"{source}: {key} has shape {tuple(state[key].shape)}, the config gives {tuple(value.shape)}")


def json_value(v):
    if isinstance(v, float) and math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if isinstance(v, (list, tuple)):
        return [json_value(x) for x in v]
    return v


def write_folder(cfg, state, out_dir, source):
    from safetensors.torch import save_file
    os.makedirs(out_dir, exist_ok=True)
    tensors = {}
    for key, value in state.items():
        if not torch.is_tensor(value):
            fail(f"{source}: entry {key} is not a tensor")
        if not value.is_floating_point():
            fail(f"{source}: {key} has dtype {value.dtype}; EDM's parameters and buffers are floating point")
        tensors[key] = value.detach().to(torch.float32).contiguous().cpu()
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump({k: json_value(v) for k, v in sorted(cfg.items())}, f, indent=2, sort_keys=True)
        f.write("\n")
    save_file(tensors, os.path.join(out_dir, "model.safetensors"),
              metadata={"format": "pt", "source": os.path.basename(source)})


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("network", help="EDM network pickle (.pkl) or state dict (.pt/.pth)")
    parser.add_argument("out_dir", help="folder to write config.json and model.safetensors into")
    parser.add_argument("--config", help="JSON file with the precond's keyword arguments and \"precond\"")
    parser.add_argument("--preset", choices=sorted(PRESETS), help="a known configuration for a state dict")
    parser.add_argument("--key", default="ema", help="entry of a network pickle's dict to convert (default: ema)")
    parser.add_argument("--trust-pickle", action="store_true", help="load a .pt that is not a plain state dict")
    args = parser.parse_args(argv)
    if args.config and args.preset:
        fail("give --config or --preset, not both")
    override = None
    if args.config:
        try:
            with open(args.config) as f:
                override = json.load(f)
        except (OSError, ValueError) as e:
            fail(f"{args.config}: {e}")
    elif args.preset:
        override = PRESETS[args.preset]

    if args.network.endswith(".pkl"):
        try:
            with open(args.network, "rb") as f:
                data = pickle.load(f)
        except ModuleNotFoundError as e:
            fail(f"{args.network}: {e}; unpickling EDM's networks needs a checkout of NVlabs/edm on PYTHONPATH")
        except (OSError, pickle.UnpicklingError) as e:
            fail(f"{args.network}: {e}")
        net = data[args.key] if isinstance(data, dict) else data
        if not isinstance(net, torch.nn.Module):
            fail(f"{args.network}: entry {args.key!r} is not a network")
        cfg = config_from_network(net, override)
        state = net.state_dict()
    else:
        if override is None:
            fail(f"{args.network}: a state dict holds no config; give --config or --preset")
        try:
            obj = torch.load(args.network, map_location="cpu", weights_only=not args.trust_pickle)
        except Exception as e:
            fail(f"{args.network}: cannot load ({e}); a file that is more than a state dict needs --trust-pickle")
        state = unwrap_state_dict(obj, args.network)
        cfg = dict(override)
    cfg = complete_config(cfg, args.config or args.preset or args.network)
    check_against_edm(cfg, state, args.network)
    write_folder(cfg, state, args.out_dir, args.network)
    print(f"wrote {args.out_dir}: {len(state)} tensors, precond {cfg['precond']}, {cfg['model_type']}", file=sys.stderr)


if __name__ == "__main__":
    main()
