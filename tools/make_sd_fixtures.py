#!/usr/bin/env python3
"""Writes the reference fixtures of the StableDiffusion layer's tests (CLIP tokenizer and text encoder).

Two steps, because the reference tokenizer is transformers' *slow* CLIPTokenizer (Python BPE,
no ftfy), which transformers 5 no longer ships, while the text model comes from the installed
transformers:
    pip install --no-deps --target /tmp/tf4 transformers==4.46.3   # (relax its tokenizers pin in
                                                                   #  dependency_versions_table.py)
    pip install --no-deps open_clip_torch                          # for the real CLIP merges file
    PYTHONPATH=/tmp/tf4 python3 tools/make_sd_fixtures.py tokenizer
    python3 tools/make_sd_fixtures.py model
It writes Tests/StableDiffusionTests/Fixtures/{sd1,sd2}/ (small, committed): a pipeline-style folder
with tokenizer/ (vocab.json, merges.txt, tokenizer_config.json, special_tokens_map.json: the first
K merges of the real CLIP merges and the matching vocabulary subset), text_encoder/ (config.json,
model.safetensors with random weights) and expected.json / io.safetensors.

A third step writes the U-Net and VAE fixtures (random weights, the installed diffusers):
    python3 tools/make_sd_fixtures.py unet
into Fixtures/unet_sd1/, unet_sd2/ and vae/ (config.json, diffusion_pytorch_model.safetensors,
io.safetensors with inputs and diffusers' outputs) and prints the parameter counts of the real
SD configs in Fixtures/configs/ (built on the meta device, no weights allocated).

A fourth step, after the others, assembles Fixtures/pipeline/ (a pipeline folder linking the tiny
pieces, a scheduler config, an image and the public algorithm's per-class errors):
    python3 tools/make_sd_fixtures.py pipeline
"""
import gzip
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "Tests", "StableDiffusionTests", "Fixtures")
MERGES = 400  # first K real CLIP merges

PROMPTS = [
    "a photo of a cat.",
    "A Photo of a DOG!",
    "a photo of a {}.".format("golden retriever"),
    "an image of the number 1234567, 3.14 and 1st/2nd",
    "it's a dog's life; they're here, we've gone, I'm sure, you'll see, he'd go",
    "  lots   of\tspaces\n\nand\r\nnewlines  ",
    "",
    "café naïve résumé Ångström ÉCOLE",
    "emoji 🐶🐱 and 👍🏽 and ❤️",
    "punctuation!!! ?? ... --- (brackets) [x] {y} <z> \"quotes\" 'single' @#$%^&*",
    "CJK 猫の写真 한국어 日本語 mixed",
    "control\x00chars\x07here\ufffd and zero\u200bwidth and nbsp\u00a0here",
    "<|startoftext|>special<|endoftext|> tokens inside",
    "superlongwordthatneedsmanymergestoencodeprobablyhundredsofthem",
    " ".join(["word"] * 90),
    " ".join("a photo of a {}, a type of pet.".format(c) for c in ["cat", "dog", "hamster", "parrot", "goldfish", "rabbit", "turtle", "snake"]),
    "Σίσυφος ΟΔΥΣΣΕΥΣ straße İstanbul",
    "tab\tseparated\u3000ideographic space",
    "x²³ ½ ⅷ ٣ digits",
]


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def real_merges_path():
    import importlib.util
    spec = importlib.util.find_spec("open_clip")
    return os.path.join(os.path.dirname(spec.origin), "bpe_simple_vocab_16e6.txt.gz")


def write_small_vocab(folder):
    """vocab.json / merges.txt: 256 byte symbols, the same with </w>, the first MERGES merges, specials
    (the real CLIP vocabulary's order, so ids agree with the real one below 512)."""
    lines = gzip.open(real_merges_path()).read().decode("utf-8").split("\n")
    merges = [tuple(l.split()) for l in lines[1:1 + MERGES]]
    vocab = bytes_to_unicode()
    vocab = vocab + [v + "</w>" for v in vocab] + ["".join(m) for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump({v: i for i, v in enumerate(vocab)}, f, ensure_ascii=False)
    with open(os.path.join(folder, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n")
    return len(vocab)


def tokenizer_fixtures():
    from transformers.models.clip.tokenization_clip import CLIPTokenizer
    for name, pad in (("sd1", "<|endoftext|>"), ("sd2", "!")):
        folder = os.path.join(OUT, name, "tokenizer")
        write_small_vocab(folder)
        tok = CLIPTokenizer(os.path.join(folder, "vocab.json"), os.path.join(folder, "merges.txt"), pad_token=pad,
                            model_max_length=77)
        assert tok.fix_text is None, "ftfy is installed: the reference must be the ftfy-less path"
        tok.save_pretrained(folder)
        tok = CLIPTokenizer.from_pretrained(folder)
        assert tok.pad_token == pad and not tok.is_fast
        expected = []
        for p in PROMPTS:
            expected.append({
                "text": p,
                "tokens": tok.tokenize(p),
                "ids": tok(p).input_ids,
                "padded": tok(p, padding="max_length", max_length=tok.model_max_length, truncation=True).input_ids,
            })
        json.dump({"pad_token": pad, "pad_id": tok.pad_token_id, "model_max_length": tok.model_max_length,
                   "prompts": expected}, open(os.path.join(OUT, name, "tokenizer_expected.json"), "w", encoding="utf-8"),
                  ensure_ascii=False, indent=0)
        # Files transformers writes that we do not read.
        for extra in ("added_tokens.json",):
            if os.path.exists(os.path.join(folder, extra)):
                os.remove(os.path.join(folder, extra))

    # A check against the full real merges (ids only; the vocabulary is not committed): the folder is
    # left in /tmp/clip_full_tokenizer, and the Swift test uses it when CLIP_FULL_TOKENIZER names it.
    d = "/tmp/clip_full_tokenizer"
    os.makedirs(d, exist_ok=True)
    if True:
        lines = gzip.open(real_merges_path()).read().decode("utf-8").split("\n")
        merges = lines[1:49152 - 256 - 2 + 1]
        vocab = bytes_to_unicode()
        vocab = vocab + [v + "</w>" for v in vocab] + ["".join(m.split()) for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
        json.dump({v: i for i, v in enumerate(vocab)}, open(os.path.join(d, "vocab.json"), "w"))
        open(os.path.join(d, "merges.txt"), "w").write("#version: 0.2\n" + "\n".join(merges) + "\n")
        tok = CLIPTokenizer(os.path.join(d, "vocab.json"), os.path.join(d, "merges.txt"))
        full = [{"text": p, "ids": tok(p).input_ids} for p in PROMPTS]
        json.dump(full, open(os.path.join(OUT, "full_vocab_ids.json"), "w", encoding="utf-8"), ensure_ascii=False, indent=0)


def model_fixtures():
    import torch
    from safetensors.torch import save_file
    from transformers import CLIPTextConfig, CLIPTextModel
    for name, act, layers in (("sd1", "quick_gelu", 2), ("sd2", "gelu", 3)):
        vocab = json.load(open(os.path.join(OUT, name, "tokenizer", "vocab.json")))
        torch.manual_seed(3)
        cfg = CLIPTextConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_attention_heads=4,
                             num_hidden_layers=layers, max_position_embeddings=77, hidden_act=act, layer_norm_eps=1e-5,
                             bos_token_id=vocab["<|startoftext|>"], eos_token_id=vocab["<|endoftext|>"],
                             pad_token_id=1, projection_dim=32)
        model = CLIPTextModel(cfg).eval()
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p) * 0.05)
        folder = os.path.join(OUT, name, "text_encoder")
        model.save_pretrained(folder, safe_serialization=True)
        expected = json.load(open(os.path.join(OUT, name, "tokenizer_expected.json"), encoding="utf-8"))
        ids = torch.tensor([expected["prompts"][i]["padded"] for i in (0, 4, 15)])
        with torch.no_grad():
            out = model(input_ids=ids, output_hidden_states=True)
        tensors = {"input_ids": ids.float(), "last_hidden_state": out.last_hidden_state,
                   "penultimate_hidden_state": out.hidden_states[-2]}
        short = torch.tensor([[vocab["<|startoftext|>"], 5, 300, 17, vocab["<|endoftext|>"]]])
        with torch.no_grad():
            tensors["short_ids"] = short.float()
            tensors["short_last_hidden_state"] = model(input_ids=short).last_hidden_state
        save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(OUT, name, "io.safetensors"))


def perturb(model, seed):
    """Moves every parameter off its default (norm affines included) so keys cannot be confused,
    then rounds it to float16: the weights are saved as F16 (half the size, and the Swift loader's
    F16 path is exercised) while the reference runs in float32 on exactly those values."""
    import torch
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
            p.copy_(p.half().float())


def save_half(model, folder):
    import copy
    import torch
    copy.deepcopy(model).to(torch.float16).save_pretrained(folder, safe_serialization=True)


def unet_fixtures():
    import torch
    from safetensors.torch import save_file
    from diffusers import AutoencoderKL, UNet2DConditionModel
    common = dict(sample_size=8, in_channels=4, out_channels=4, layers_per_block=2, norm_num_groups=4,
                  cross_attention_dim=32, block_out_channels=[8, 16, 16],
                  down_block_types=["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
                  up_block_types=["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"])
    configs = {
        # SD 1.x-like: 1x1 convolution projections, one head count for every block.
        "unet_sd1": dict(common, attention_head_dim=2, use_linear_projection=False),
        # SD 2.x-like: linear projections, per-block head counts (reversed for the up blocks).
        "unet_sd2": dict(common, attention_head_dim=[1, 2, 4], use_linear_projection=True),
    }
    for seed, (name, cfg) in enumerate(configs.items()):
        torch.manual_seed(10 + seed)
        model = UNet2DConditionModel(**cfg).eval()
        perturb(model, 20 + seed)
        folder = os.path.join(OUT, name)
        save_half(model, folder)
        sample = torch.randn(2, 4, 8, 8)
        states = torch.randn(2, 7, 32)
        timesteps = torch.tensor([10.0, 500.0])
        with torch.no_grad():
            out = model(sample, timesteps, encoder_hidden_states=states).sample
        save_file({"sample": sample, "timesteps": timesteps, "encoder_hidden_states": states, "output": out.contiguous(),
                   "parameter_count": torch.tensor([float(sum(p.numel() for p in model.parameters()))])},
                  os.path.join(folder, "io.safetensors"))

    torch.manual_seed(30)
    vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 2,
                        up_block_types=["UpDecoderBlock2D"] * 2, block_out_channels=[8, 16], layers_per_block=1,
                        latent_channels=4, norm_num_groups=4, sample_size=16).eval()
    perturb(vae, 31)
    folder = os.path.join(OUT, "vae")
    save_half(vae, folder)
    images = torch.rand(2, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        dist = vae.encode(images).latent_dist
        latents = dist.mean * vae.config.scaling_factor
        decoded = vae.decode(latents / vae.config.scaling_factor).sample
    save_file({"images": images, "latents": latents.contiguous(), "logvar": dist.logvar.contiguous(),
               "decoded": decoded.contiguous()}, os.path.join(folder, "io.safetensors"))

    for f in sorted(os.listdir(os.path.join(OUT, "configs"))):
        cfg = json.load(open(os.path.join(OUT, "configs", f)))
        cls = UNet2DConditionModel if cfg["_class_name"] == "UNet2DConditionModel" else AutoencoderKL
        with torch.device("meta"):
            m = cls.from_config(cfg)
        print(f, sum(p.numel() for p in m.parameters()), file=sys.stderr)


LABELS = ["cat", "dog", "bird"]
TEMPLATE = "a photo of a {}."
PIPELINE_TIMESTEPS = [10, 250, 500, 900]
PIPELINE_IMAGE_SIZE = 16


def public_preprocess(img, size):
    """The public code's transform without torchvision (not installed here): torchvision's
    Resize(size, BICUBIC) on a PIL image is img.resize((w', h'), Image.BICUBIC) with the shorter
    side = size and the longer int(size * long / short); CenterCrop rounds the offsets with Python's
    round; ToTensor + Normalize([0.5], [0.5]) is (x / 255 - 0.5) / 0.5."""
    import numpy as np
    import torch
    from PIL import Image
    w, h = img.size
    if w <= h:
        nw, nh = size, int(size * h / w)
    else:
        nw, nh = int(size * w / h), size
    img = img.resize((nw, nh), Image.BICUBIC)
    top, left = int(round((nh - size) / 2.0)), int(round((nw - size) / 2.0))
    img = img.crop((left, top, left + size, top + size))
    x = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1).float() / 255
    return ((x - 0.5) / 0.5).unsqueeze(0)


def pipeline_fixtures():
    """Fixtures/pipeline/: a diffusers pipeline folder made of the existing tiny pieces (symlinks:
    tokenizer and text_encoder of sd2/ (hidden 32), unet_sd2/ (cross_attention_dim 32), vae/
    (4 latent channels, one 2x downsampling)) plus scheduler/scheduler_config.json (SD 2.0-base's
    PNDMScheduler betas); image.png (a 24x20 RGB image); pipeline_io.safetensors with the public
    algorithm's intermediate values and per-class errors for given (t, eps), computed with
    diffusers / transformers in float32."""
    import numpy as np
    import torch
    from PIL import Image
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from safetensors.torch import save_file
    from transformers import CLIPTextModel, CLIPTokenizer

    folder = os.path.join(OUT, "pipeline")
    os.makedirs(os.path.join(folder, "scheduler"), exist_ok=True)
    for name, target in [("tokenizer", "../sd2/tokenizer"), ("text_encoder", "../sd2/text_encoder"),
                         ("unet", "../unet_sd2"), ("vae", "../vae")]:
        link = os.path.join(folder, name)
        if not os.path.islink(link):
            os.symlink(target, link)
    sched = {"_class_name": "PNDMScheduler", "_diffusers_version": "0.8.0", "beta_end": 0.012,
             "beta_schedule": "scaled_linear", "beta_start": 0.00085, "num_train_timesteps": 1000,
             "set_alpha_to_one": False, "skip_prk_steps": True, "steps_offset": 1, "trained_betas": None,
             "clip_sample": False}
    with open(os.path.join(folder, "scheduler", "scheduler_config.json"), "w") as f:
        json.dump(sched, f, indent=2, sort_keys=True)

    rng = np.random.default_rng(6)
    yy, xx = np.mgrid[0:20, 0:24]
    base = np.stack([xx * 10, yy * 12, (xx + yy) * 5], axis=-1).astype(np.float64)
    pixels = np.clip(base + rng.integers(-40, 40, size=base.shape), 0, 255).astype(np.uint8)
    Image.fromarray(pixels, "RGB").save(os.path.join(folder, "image.png"))

    tok = CLIPTokenizer.from_pretrained(os.path.join(folder, "tokenizer"))
    te = CLIPTextModel.from_pretrained(os.path.join(folder, "text_encoder")).float().eval()
    unet = UNet2DConditionModel.from_pretrained(os.path.join(folder, "unet")).float().eval()
    vae = AutoencoderKL.from_pretrained(os.path.join(folder, "vae")).float().eval()
    scheduler = DDPMScheduler.from_config(sched)  # add_noise and alphas_cumprod as the PNDM scheduler's
    with torch.no_grad():
        img = public_preprocess(Image.open(os.path.join(folder, "image.png")).convert("RGB"), PIPELINE_IMAGE_SIZE)
        latent = vae.encode(img).latent_dist.mean * 0.18215
        prompts = [TEMPLATE.format(c) for c in LABELS]
        ids = tok(prompts, padding="max_length", max_length=tok.model_max_length, truncation=True, return_tensors="pt").input_ids
        embeds = te(ids)[0]
        g = torch.Generator().manual_seed(0)
        ts = torch.tensor(PIPELINE_TIMESTEPS)
        eps = torch.randn((len(ts),) + tuple(latent.shape[1:]), generator=g)
        # The public code's eval_error: x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps, eps_hat from the
        # U-Net with the class's prompt embedding, error = mean squared error per (class, t).
        abar = scheduler.alphas_cumprod
        errors = torch.zeros(len(LABELS), len(ts))
        for k in range(len(LABELS)):
            xt = latent * abar[ts].sqrt().view(-1, 1, 1, 1) + eps * (1 - abar[ts]).sqrt().view(-1, 1, 1, 1)
            pred = unet(xt, ts, encoder_hidden_states=embeds[k:k + 1].expand(len(ts), -1, -1)).sample
            errors[k] = ((eps - pred) ** 2).mean(dim=(1, 2, 3))
    # Upsampling too (24x20 -> 38x32, crop 32): PIL's bicubic without the widened support.
    img32 = public_preprocess(Image.open(os.path.join(folder, "image.png")).convert("RGB"), 32)
    save_file({"image": img.contiguous(), "image32": img32.contiguous(), "latent": latent.contiguous(), "embeddings": embeds.contiguous(),
               "eps": eps.contiguous(), "timesteps": ts.float(), "errors": errors.contiguous()},
              os.path.join(folder, "pipeline_io.safetensors"))
    print("errors", errors, file=sys.stderr)


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    step = sys.argv[1] if len(sys.argv) > 1 else ""
    if step == "tokenizer":
        tokenizer_fixtures()
    elif step == "model":
        model_fixtures()
    elif step == "unet":
        unet_fixtures()
    elif step == "pipeline":
        pipeline_fixtures()
    else:
        sys.exit("usage: make_sd_fixtures.py tokenizer|model|unet|pipeline")
    print("wrote", OUT, file=sys.stderr)
