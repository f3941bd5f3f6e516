#!/usr/bin/env python3
"""Writes the binary seed files of the fuzz corpora (Fuzzing/corpus/*): small safetensors, IDX
(raw and gzipped), PNG and JPEG files, and the CLIP tokenizer and run-folder seeds. The text seeds
(configs, calibration) are copies of shipped files and were copied by hand.

Rerun: /work/venv/bin/python tools/make_fuzz_seeds.py   (needs numpy, safetensors, pillow)
Outputs are committed; rerunning rewrites them (the PNG/JPEG bytes may differ across Pillow versions).
"""
import gzip
import io
import json
import os
import struct
import sys

import numpy as np
from PIL import Image
from safetensors.numpy import save

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "Fuzzing", "corpus")


def write(target, name, data):
    folder = os.path.join(CORPUS, target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


def safetensors_seeds():
    rng = np.random.default_rng(0)
    write("fuzz-safetensors", "mixed.safetensors", save({
        "conv.weight": rng.standard_normal((2, 1, 3, 3)).astype(np.float32),
        "half": rng.standard_normal((3,)).astype(np.float16),
        "ids": np.arange(4, dtype=np.int64),
        "mask": np.array([True, False, True]),
        "bytes": np.arange(5, dtype=np.uint8),
        "scalar": np.array(2.5, dtype=np.float64),
        "empty": np.zeros((0, 3), dtype=np.float32),
    }, metadata={"format": "pt"}))
    # bfloat16 has no numpy type: write it by hand (header padded to 8 bytes, as the writer does).
    header = {"bf": {"dtype": "BF16", "shape": [2, 2], "data_offsets": [0, 8]},
              "i32": {"dtype": "I32", "shape": [1], "data_offsets": [8, 12]},
              "u16": {"dtype": "U16", "shape": [2], "data_offsets": [12, 16]}}
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    data = struct.pack("<4H", 0x3F80, 0xBF80, 0x4000, 0x0000) + struct.pack("<i", -7) + struct.pack("<2H", 1, 65535)
    write("fuzz-safetensors", "bf16-int.safetensors", struct.pack("<Q", len(text)) + text + data)
    write("fuzz-safetensors", "empty.safetensors", save({}))


def idx(array):
    dims = array.shape
    return bytes([0, 0, 8, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + array.astype(np.uint8).tobytes()


def idx_seeds():
    images = (np.arange(2 * 4 * 4) * 7 % 256).reshape(2, 4, 4)
    labels = np.array([3, 9], dtype=np.uint8)
    write("fuzz-idx", "images-idx3-ubyte", idx(images))
    write("fuzz-idx", "labels-idx1-ubyte", idx(labels))
    write("fuzz-idx", "images-idx3-ubyte.gz", gzip.compress(idx(images), mtime=0))
    write("fuzz-idx", "labels-idx1-ubyte.gz", gzip.compress(idx(labels), mtime=0))


def image_bytes(image, fmt, **options):
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def image_seeds():
    gray = Image.fromarray((np.arange(8 * 6) * 5 % 256).astype(np.uint8).reshape(6, 8), "L")
    rgb = Image.fromarray((np.arange(5 * 7 * 3) * 11 % 256).astype(np.uint8).reshape(5, 7, 3), "RGB")
    write("fuzz-png", "gray.png", image_bytes(gray, "PNG"))
    write("fuzz-png", "rgb.png", image_bytes(rgb, "PNG"))
    write("fuzz-png", "rgb-interlaced.png", image_bytes(rgb, "PNG", interlace=1))
    write("fuzz-png", "palette.png", image_bytes(rgb.convert("P"), "PNG"))
    write("fuzz-png", "rgba.png", image_bytes(rgb.convert("RGBA"), "PNG"))
    write("fuzz-png", "gray16.png", image_bytes(Image.fromarray((np.arange(12) * 5000).astype(np.uint16).reshape(3, 4)), "PNG"))
    write("fuzz-jpeg", "gray.jpg", image_bytes(gray, "JPEG", quality=90))
    write("fuzz-jpeg", "rgb.jpg", image_bytes(rgb, "JPEG", quality=75))
    write("fuzz-jpeg", "rgb-progressive.jpg", image_bytes(rgb, "JPEG", quality=75, progressive=True))
    write("fuzz-jpeg", "rgb-420.jpg", image_bytes(rgb.resize((17, 9)), "JPEG", quality=50, subsampling=2))
    write("fuzz-jpeg", "cmyk.jpg", image_bytes(rgb.convert("CMYK"), "JPEG"))


def clip_seeds():
    fixture = os.path.join(ROOT, "Tests", "StableDiffusionTests", "Fixtures")
    for sd in ["sd1", "sd2"]:
        folder = os.path.join(fixture, sd, "tokenizer")
        vocab = json.load(open(os.path.join(folder, "vocab.json"), encoding="utf-8"))
        merges = open(os.path.join(folder, "merges.txt"), encoding="utf-8").read().split("\n")
        # A few KB: the first merges, the vocabulary entries of the byte symbols they use, the specials.
        kept_merges = merges[:41]
        wanted = set()
        for line in kept_merges[1:]:
            a, b = line.split(" ")
            wanted.update([a, b, a + b])
        small = {k: v for k, v in vocab.items() if k in wanted or k.startswith("<|") or len(k) == 1 or k == "!"}
        special = open(os.path.join(folder, "special_tokens_map.json"), "rb").read()
        config = open(os.path.join(folder, "tokenizer_config.json"), "rb").read()
        pieces = [json.dumps(small, ensure_ascii=False).encode(), "\n".join(kept_merges).encode(), special, config]
        write("fuzz-clip-vocab", f"{sd}-small", b"\x00".join(pieces))
        write("fuzz-clip-vocab", f"{sd}-vocab-merges-only", b"\x00".join(pieces[:2]))
    prompts = ["a photo of a t-shirt/top", "A PHOTO OF AN Ankle boot!!", "it's 2 o'clock, isn't it?",
               "<|startoftext|>dog<|endoftext|> cat", "ünïcødé 東京 🙂  tabs\tand\nnewlines", "!!!hello!!!",
               "a " * 60 + "very long prompt"]
    for i, p in enumerate(prompts):
        write("fuzz-clip-text", f"prompt-{i}", bytes([i % 2]) + p.encode())


def run_seeds():
    base = {"index": 0, "label": 3, "prediction": 3, "mean_errors": [0.5, 0.2, None], "paired_errors": [0.5, 0.2, None],
            "probabilities": [0.2, 0.8, 0.0], "scores": [2, 2, 0], "calls": 4, "seconds": 0.25}
    recorded = dict(base, index=1, label=1, prediction=1, probe_timesteps=[10, 500],
                    probe_errors=[[0.6, 0.4], [0.1, 0.3], [None, None]])
    reused = dict(base, index=2, model_calls=1)
    lines = [json.dumps(r, sort_keys=True) for r in (base, recorded, reused)]
    write("fuzz-run-results", "eval-results.jsonl", ("\n".join(lines) + "\n").encode())
    write("fuzz-run-results", "eval-torn-last-line.jsonl", ("\n".join(lines) + "\n" + lines[0][:20]).encode())
    attack = {"name": "apgd-ce", "success": True, "forward_calls": 10, "backward_calls": 5, "queries": 0}
    robust = {"index": 0, "label": 2, "clean_prediction": 2, "clean_correct": True, "attacks": [attack],
              "verdict": "broken", "broken_by": "apgd-ce", "unet_passes": 40, "seconds": 1.5}
    write("fuzz-run-results", "robust-results.jsonl", (json.dumps(robust, sort_keys=True) + "\n").encode())
    settings = {"model": "/m", "dataset": "fashion-mnist", "split": "test", "classes": 10, "num_train_timesteps": 1000,
                "prediction_type": "epsilon", "method": "staged", "stages": "5:50,1:500", "timesteps": "grid",
                "t_range": [0, 1000], "loss": "l2", "weighting": "uniform", "tau": 1, "seed": 0}
    write("fuzz-run-settings", "eval-staged.json", json.dumps(settings, indent=2, sort_keys=True).encode())
    ttest = dict(settings, method="ttest", stages=None, timesteps="uniform", n_timesteps=2000, min_scores=20,
                 p_value=0.002, test_every=1, noise_by="timestep", save_errors=True, weighting="exp:7")
    write("fuzz-run-settings", "eval-ttest.json", json.dumps(ttest, sort_keys=True).encode())
    explicit = dict(settings, method="fixed", stages=None, timesteps="explicit", timestep_list=[100, 500, 900],
                    noise="/n.safetensors", prompts=["a photo of a cat", "a photo of a dog"], image_size=512,
                    weights_dtype="fp16", gap=2.0, max_probes=10)
    write("fuzz-run-settings", "eval-explicit.json", json.dumps(explicit, sort_keys=True).encode())
    robust_settings = {"model": "/m", "dataset": "fashion-mnist", "split": "test", "norm": "linf", "eps_text": "8/255",
                       "epsilon": 8 / 255, "attacks": ["apgd-ce", "square"], "iterations": 100, "square_queries": 5000,
                       "eot_draws": 1, "timesteps": 10, "lm": "variant=paper,steps=5,eta=0.03,norm=linf,grad=exact,step=0.006,sigma=0.4:0.6",
                       "seed": 0}
    write("fuzz-run-settings", "robust.json", json.dumps(robust_settings, sort_keys=True).encode())


def option_seeds():
    options = [(0, "5:50,1:500"), (0, "1:10"), (0, "3:4,2:8,1:1000"), (1, "uniform"), (1, "exp"), (1, "exp:2.5"), (1, "elbo"),
               (2, "steps=5,eta=8/255"), (2, "variant=code,lr=0.1,norm=l2,grad=bpda,t=100:200"), (2, "sigma=0.4:0.6,step=0.01"),
               (3, "grid\n10"), (3, "grid:500\n50"), (3, "uniform\n20"), (3, "stratified\n7"), (3, "explicit\n\n1,500,999"),
               (4, "0/2"), (4, "3/4"), (5, "8/255"), (5, "0.5"), (6, "10,500,900"), (6, "stratified\n7"), (6, "grid:500\n50")]
    for i, (selector, text) in enumerate(options):
        write("fuzz-options", f"option-{i}", bytes([selector]) + text.encode())


if __name__ == "__main__":
    safetensors_seeds()
    idx_seeds()
    image_seeds()
    clip_seeds()
    run_seeds()
    option_seeds()
    print("wrote", CORPUS, file=sys.stderr)
