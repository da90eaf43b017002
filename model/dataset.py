"""Image-folder datasets (`DATA/<class>/*.jpg`), the train/validation split, preprocessing and augmentation.

numpy + Pillow only. Preprocessing is the contract's: RGB, 224x224, ``(pixel / 255 - mean) / std``, NCHW float32.
"""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from model.contract import HEIGHT, MEAN, SCALE, STD, WIDTH

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
_MEAN = np.array(MEAN, dtype=np.float32).reshape(3, 1, 1)
_STD = np.array(STD, dtype=np.float32).reshape(3, 1, 1)


class DatasetError(Exception):
    """The dataset folder cannot be used; the message says why."""


@dataclass(frozen=True)
class Sample:
    path: Path
    label: int


def list_images(root, classes) -> list:
    """Every image under ``root/<class>/`` for the given classes (label = index in ``classes``), sorted by path."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset folder not found (expected {root}/<class>/*.jpg)")
    missing = [c for c in classes if not (root / c).is_dir()]
    if missing:
        found = sorted(p.name for p in root.iterdir() if p.is_dir())
        raise DatasetError(f"{root}: no folder for class(es) {missing}; found folders {found}. "
                           f"Arrange images as {root}/<class>/*.jpg or pass --classes")
    samples: list[Sample] = []
    for label, cls in enumerate(classes):
        files = sorted(p for p in (root / cls).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not files:
            raise DatasetError(f"{root / cls}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        samples.extend(Sample(p, label) for p in files)
    return samples


SPLIT_DIRS = ("train", "val", "test")


def has_splits(root) -> bool:
    """A dataset laid out as ``root/{train,val[,test]}/<class>/`` (``python -m model dataset``: split by identity)."""
    root = Path(root)
    return (root / "train").is_dir() and (root / "val").is_dir()


def list_splits(root, classes) -> dict:
    """{"train": [...], "val": [...], "test": [...]} of a split dataset (test may be empty)."""
    root = Path(root)
    out = {name: list_images(root / name, classes) for name in ("train", "val")}
    out["test"] = list_images(root / "test", classes) if (root / "test").is_dir() else []
    return out


def identity_groups(data_dir, samples) -> tuple:
    """([identity group of each sample], what a group is) from the dataset's ``manifest.json`` (``python -m model
    dataset``). Without a manifest (a dataset arranged by hand) every image is its own group, which makes a decision
    offset easier to keep (the caller records what a group was); a manifest that does not name every sample is
    refused."""
    data_dir = Path(data_dir)
    path = data_dir / "manifest.json"
    if not path.exists():
        warnings.warn(f"{path}: no dataset manifest, so no identity groups: each image counts as its own group",
                      stacklevel=2)
        return [str(s.path) for s in samples], "groups of one image (no dataset manifest)"
    try:
        images = json.loads(path.read_text())["images"]
        group = {str(data_dir / im["path"]): im.get("group", im["identity"]) for im in images}
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DatasetError(f"{path}: cannot read the identity groups of the images ({e!r})") from None
    odd = sorted({repr(g) for g in group.values() if not (isinstance(g, str) and g)})
    if odd:
        raise DatasetError(f"{path}: identity groups must be non-empty strings, found {', '.join(odd[:3])}")
    missing = [str(s.path) for s in samples if str(s.path) not in group]
    if missing:
        raise DatasetError(f"{path} names no identity group for {len(missing)} image(s), e.g. {missing[0]}: the "
                           f"manifest is not this dataset's (rebuild it)")
    return [group[str(s.path)] for s in samples], "identity groups"


def balanced_order(samples, rng: np.random.RandomState) -> np.ndarray:
    """A shuffled epoch in which every class appears as often as the largest one (smaller classes are drawn again
    at random), so an imbalanced folder cannot teach the model to answer the majority class."""
    by_label: dict[int, list[int]] = {}
    for i, s in enumerate(samples):
        by_label.setdefault(s.label, []).append(i)
    most = max(len(v) for v in by_label.values())
    order = []
    for label in sorted(by_label):
        idx = by_label[label]
        extra = rng.choice(idx, most - len(idx), replace=True).tolist() if len(idx) < most else []
        order.extend(idx + extra)
    return rng.permutation(np.array(order, dtype=np.int64))


def split(samples, val_fraction: float, seed: int):
    """Stratified, seeded train/validation split: each class keeps at least one image on both sides."""
    if not 0.0 < val_fraction < 1.0:
        raise DatasetError(f"validation fraction must be between 0 and 1, got {val_fraction}")
    rng = np.random.RandomState(seed)
    train: list[Sample] = []
    val: list[Sample] = []
    for label in sorted({s.label for s in samples}):
        group = [s for s in samples if s.label == label]
        if len(group) < 2:
            raise DatasetError(f"class {label} has {len(group)} image(s); at least 2 are needed to split")
        order = rng.permutation(len(group))
        n_val = min(max(1, int(round(len(group) * val_fraction))), len(group) - 1)
        val.extend(group[i] for i in order[:n_val])
        train.extend(group[i] for i in order[n_val:])
    return train, val


_CACHE: dict[Path, Image.Image] = {}


def load_rgb(path: Path, cache: bool = False) -> Image.Image:
    """The image as RGB; with ``cache`` decoded once per process (the datasets here are a few MB of small crops)."""
    if cache and path in _CACHE:
        return _CACHE[path]
    try:
        with Image.open(path) as img:
            rgb = img.convert("RGB")
    except (UnidentifiedImageError, OSError) as e:
        raise DatasetError(f"{path}: cannot read image ({e})") from None
    if cache:
        _CACHE[path] = rgb
    return rgb


def to_tensor(img: Image.Image) -> np.ndarray:
    """RGB PIL image -> normalized CHW float32 at the model's input size."""
    if img.size != (WIDTH, HEIGHT):
        img = img.resize((WIDTH, HEIGHT), Image.Resampling.BILINEAR)
    arr = np.asarray(img, dtype=np.float32).transpose(2, 0, 1) * SCALE
    return (arr - _MEAN) / _STD


GREY_SHARE = 0.25


def augment(img: Image.Image, rng: np.random.RandomState) -> Image.Image:
    """Mild augmentation for face crops: random crop (80-100% of the side), horizontal flip, a grey copy a quarter
    of the time, brightness/contrast (the face dataset adds lighting, blur, noise and placement of its own)."""
    w, h = img.size
    side = rng.uniform(0.8, 1.0)
    cw, ch = max(1, int(w * side)), max(1, int(h * side))
    x0, y0 = rng.randint(0, w - cw + 1), rng.randint(0, h - ch + 1)
    img = img.crop((x0, y0, x0 + cw, y0 + ch)).resize((WIDTH, HEIGHT), Image.Resampling.BILINEAR)
    if rng.rand() < 0.5:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    arr = np.asarray(img, dtype=np.float32)
    if rng.rand() < GREY_SHARE:   # most training faces are grey LFW crops: colour must not be what decides
        arr = np.repeat((arr @ np.array([0.299, 0.587, 0.114], np.float32))[:, :, None], 3, axis=2)
    contrast, brightness = rng.uniform(0.8, 1.2), rng.uniform(-20, 20)
    arr = (arr - arr.mean()) * contrast + arr.mean() + brightness
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def batches(samples, batch_size: int, rng=None, train: bool = False, cache: bool = False, balance: bool = False):
    """Yields (x NCHW float32, y int) batches; shuffled and augmented when ``train`` (needs ``rng``), every class as
    often as the largest with ``balance``; ``cache`` keeps decoded images in memory."""
    if train:
        order = balanced_order(samples, rng) if balance else rng.permutation(len(samples))
    else:
        order = np.arange(len(samples))
    for start in range(0, len(order), batch_size):
        chunk = [samples[i] for i in order[start:start + batch_size]]
        images = [load_rgb(s.path, cache) for s in chunk]
        if train:
            images = [augment(img, rng) for img in images]
        x = np.stack([to_tensor(img) for img in images])
        y = np.array([s.label for s in chunk], dtype=np.int64)
        yield x, y
