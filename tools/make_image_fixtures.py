#!/usr/bin/env python3
"""Writes the small image fixtures of the Datasets tests (Pillow only).

Rerun from the repository root:  pip install pillow && python3 tools/make_image_fixtures.py
Writes Tests/DatasetsTests/Fixtures/{gradient.jpg, gradient_gray.png, truncated.jpg}.
"""
import os

from PIL import Image

OUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "Tests", "DatasetsTests", "Fixtures")
os.makedirs(OUT, exist_ok=True)
w, h = 12, 8
rgb = Image.new("RGB", (w, h))
rgb.putdata([(x * 20, y * 30, 128) for y in range(h) for x in range(w)])
rgb.save(os.path.join(OUT, "gradient.jpg"), quality=95)
gray = Image.new("L", (w, h))
gray.putdata([(x * 20 + y) % 256 for y in range(h) for x in range(w)])
gray.save(os.path.join(OUT, "gradient_gray.png"))
data = open(os.path.join(OUT, "gradient.jpg"), "rb").read()
open(os.path.join(OUT, "truncated.jpg"), "wb").write(data[: len(data) // 2])
