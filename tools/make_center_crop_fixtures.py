"""Fixtures for `Image.centerCropArr` (ADM / DiT preprocessing): random RGB PNGs and the bytes
PIL's `center_crop_arr` (as in facebookresearch/DiT's train.py and the Diffusion Classifier's
eval_prob_dit.py) makes of them.

    /work/venv/bin/python tools/make_center_crop_fixtures.py Tests/DatasetsTests/Fixtures/center_crop
"""
import sys, os
import numpy as np
from PIL import Image


def center_crop_arr(pil_image, image_size):
    # The reference semantics, written from the DiT repository's description: halve with BOX while
    # the short side is at least twice the target, BICUBIC so the short side is the target
    # (sizes rounded half to even by Python's round), crop the centre (offsets floored).
    while min(*pil_image.size) >= 2 * image_size:
        pil_image = pil_image.resize(tuple(x // 2 for x in pil_image.size), resample=Image.BOX)
    scale = image_size / min(*pil_image.size)
    pil_image = pil_image.resize(tuple(round(x * scale) for x in pil_image.size), resample=Image.BICUBIC)
    arr = np.array(pil_image)
    crop_y = (arr.shape[0] - image_size) // 2
    crop_x = (arr.shape[1] - image_size) // 2
    return arr[crop_y: crop_y + image_size, crop_x: crop_x + image_size]


def main(out):
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(0)
    # (width, height, size): box halving twice with odd sides, then a copy; one halving then
    # bicubic down; bicubic up (short side below the target).
    for w, h, size in [(101, 67, 16), (53, 37, 16), (12, 9, 16)]:
        smooth = rng.integers(0, 256, (h, w, 3)).astype(np.float64)
        img = Image.fromarray(smooth.astype(np.uint8), "RGB")
        name = f"{w}x{h}_{size}"
        img.save(os.path.join(out, name + ".png"))
        crop = center_crop_arr(img, size)
        assert crop.shape == (size, size, 3)
        crop.astype(np.uint8).tofile(os.path.join(out, name + ".bin"))


if __name__ == "__main__":
    main(sys.argv[1])
