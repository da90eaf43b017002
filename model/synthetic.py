"""A small synthetic face-crop dataset for tests and benchmarks (the real one comes from the internet).

Each image is a skin-coloured oval on a random background; `mask` images have a surgical-mask-coloured band over the
lower half of the face, `no_mask` images show a mouth there. Seeded, so the same seed gives the same files.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

_MASK_COLOURS = [(170, 200, 230), (235, 235, 240), (40, 40, 45), (120, 160, 210)]


def _face(rng: np.random.RandomState, masked: bool, size: int) -> Image.Image:
    bg = tuple(int(v) for v in rng.randint(0, 256, 3))
    img = Image.new("RGB", (size, size), bg)
    draw = ImageDraw.Draw(img)
    cx, cy = size / 2 + rng.uniform(-0.08, 0.08) * size, size / 2 + rng.uniform(-0.08, 0.08) * size
    rx, ry = size * rng.uniform(0.28, 0.36), size * rng.uniform(0.36, 0.44)
    skin = tuple(int(v) for v in np.array([225, 180, 150]) * rng.uniform(0.55, 1.05))
    draw.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=skin)
    eye_y, eye_dx, eye_r = cy - ry * 0.3, rx * 0.4, size * 0.03
    for sign in (-1, 1):
        draw.ellipse([cx + sign * eye_dx - eye_r, eye_y - eye_r, cx + sign * eye_dx + eye_r, eye_y + eye_r],
                     fill=(30, 30, 30))
    if masked:
        colour = _MASK_COLOURS[rng.randint(len(_MASK_COLOURS))]
        draw.rounded_rectangle([cx - rx * 0.95, cy - ry * 0.05, cx + rx * 0.95, cy + ry * 0.75],
                               radius=size * 0.05, fill=colour)
    else:
        draw.polygon([(cx, cy - ry * 0.1), (cx - rx * 0.12, cy + ry * 0.2), (cx + rx * 0.12, cy + ry * 0.2)],
                     fill=tuple(max(0, c - 40) for c in skin))
        draw.ellipse([cx - rx * 0.35, cy + ry * 0.4, cx + rx * 0.35, cy + ry * 0.55], fill=(150, 50, 60))
    noise = rng.normal(0, 8, (size, size, 3))
    return Image.fromarray(np.clip(np.asarray(img, dtype=np.float32) + noise, 0, 255).astype(np.uint8))


def make_dataset(root, per_class: int = 8, seed: int = 0, size: int = 96, classes=("mask", "no_mask")) -> Path:
    """Writes ``root/<class>/<i>.jpg`` for the two classes (the first is drawn masked) and returns ``root``."""
    if len(classes) != 2:
        raise ValueError("the synthetic dataset draws exactly two classes: masked and unmasked faces")
    root = Path(root)
    rng = np.random.RandomState(seed)
    for label, cls in enumerate(classes):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            _face(rng, masked=label == 0, size=size).save(root / cls / f"{i:04d}.jpg", quality=92)
    return root
