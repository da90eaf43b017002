"""`python -m model dataset OUT`: real faces from installed/registry packages, with and without masks, written as
``OUT/<split>/<class>/*.jpg`` (splits train, val, test) split BY IDENTITY, and ``OUT/manifest.json`` listing every
source photo (package, version, licence, identity group, split) and every image written.

Rules (tested in tests/test_faceset.py):
- an identity group is in exactly one split;
- the evaluation-only sources (``model.faces.EVAL_ONLY_RULE``) are always ``test``, never train or val;
- each face gives as many masked as unmasked images, so classes are balanced within every split and source.

Run it with the main venv (``.venv/bin/python -m model dataset``): it needs OpenCV, scikit-image and the edge
application's MTCNN detector, not MXNet.
"""
from __future__ import annotations

import json
import shutil
import time
from collections import Counter
from pathlib import Path

import numpy as np

from model import faces as fs
from model import identities

CLASSES = ("mask", "no_mask")
SPLITS = ("train", "val", "test")
MANIFEST = "manifest.json"
CROP_SIDE = 160   # images are stored at most this many pixels a side; training resizes to the model's 224x224


def assign_splits(groups_by_family: dict, eval_only: set, val_fraction: float, seed: int) -> dict:
    """identity group -> split. Evaluation-only groups go to test; of the others, per source family, a seeded
    ``val_fraction`` (at least one group when the family has two or more) goes to val, the rest to train."""
    owner: dict[str, str] = {}
    for family, groups in groups_by_family.items():
        for g in set(groups):
            if owner.setdefault(g, family) != family:
                raise ValueError(f"identity group {g!r} is in two source families ({owner[g]}, {family})")
    split = {}
    for family in sorted(groups_by_family):
        groups = sorted(set(groups_by_family[family]))
        free = [g for g in groups if g not in eval_only]
        for g in groups:
            if g in eval_only:
                split[g] = "test"
        order = np.random.RandomState(seed + sum(map(ord, family))).permutation(len(free))
        n_val = int(round(len(free) * val_fraction))
        if len(free) >= 2:
            n_val = min(max(1, n_val), len(free) - 1)
        else:
            n_val = 0
        for rank, i in enumerate(order):
            split[free[i]] = "val" if rank < n_val else "train"
    return split


def family(photo) -> str:
    """Split families: the 25x25 LFW crops apart from the full-size photos, so both are in val."""
    return "lfw" if photo.source == "lfw" else "photos"


def group_families(found, group_of) -> tuple[dict, set]:
    """({family: [group, ...]}, evaluation-only groups) of the merged identity groups: a group is ``lfw`` when all
    its faces are, else ``photos``; it is evaluation-only when any of its faces is."""
    families: dict[str, set[str]] = {}
    eval_only: set[str] = set()
    for f in found:
        g = group_of[f.identity]
        families.setdefault(g, set()).add(family(f.photo))
        if f.photo.eval_only:
            eval_only.add(g)
    by_family: dict[str, list[str]] = {}
    for g, fams in families.items():
        by_family.setdefault("lfw" if fams == {"lfw"} else "photos", []).append(g)
    return by_family, eval_only


def crop_face(image, box, rng, jitter=0.08, margin=0.1):
    """The face box with the edge app's margin, moved and scaled a little (detectors differ by that much)."""
    import cv2

    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    cx = (x0 + x1) / 2 + rng.uniform(-jitter, jitter) * w
    cy = (y0 + y1) / 2 + rng.uniform(-jitter, jitter) * h
    s = rng.uniform(1 - jitter, 1 + 1.5 * jitter)
    hw, hh = w * s * (0.5 + margin), h * s * (0.5 + margin)
    H, W = image.shape[:2]
    a, b = int(max(0, round(cx - hw))), int(max(0, round(cy - hh)))
    c, d = int(min(W, round(cx + hw))), int(min(H, round(cy + hh)))
    crop = image[b:d, a:c]
    side = max(crop.shape[:2])
    if side > CROP_SIDE:
        k = CROP_SIDE / side
        crop = cv2.resize(crop, (max(1, round(crop.shape[1] * k)), max(1, round(crop.shape[0] * k))),
                          interpolation=cv2.INTER_AREA)
    return crop


def photometric(crop, rng):
    """Lighting and camera: gamma, brightness, a colour cast, sometimes blur or noise; a mirror image half the time."""
    import cv2

    img = crop.astype(np.float32) / 255.0
    img = img ** rng.uniform(0.6, 1.6)
    img = img * rng.uniform(0.65, 1.25) + rng.uniform(-0.08, 0.08)
    img = img * rng.uniform(0.88, 1.12, size=3)[None, None, :]
    if rng.rand() < 0.3:
        k = int(rng.choice([3, 5]))
        img = cv2.GaussianBlur(img, (k, k), 0)
    if rng.rand() < 0.3:
        img = img + rng.normal(0, rng.uniform(0.01, 0.04), img.shape)
    out = np.clip(img * 255, 0, 255).astype(np.uint8)
    return out[:, ::-1] if rng.rand() < 0.5 else out


def region(face, grow=1.0):
    """A copy of the photo around the face (box grown by ``grow`` on each side) and the face in its coordinates."""
    x0, y0, x1, y1 = face.box
    w, h = x1 - x0, y1 - y0
    H, W = face.image.shape[:2]
    a, b = int(max(0, x0 - grow * w)), int(max(0, y0 - grow * h))
    c, d = int(min(W, x1 + grow * w)), int(min(H, y1 + grow * h))
    return face.image[b:d, a:c].copy(), (x0 - a, y0 - b, x1 - a, y1 - b), face.landmarks - np.array([a, b])


def is_grey(image) -> bool:
    """A greyscale photo stored as BGR (LFW, the cameraman): every pixel's three channels equal."""
    if image.ndim != 3:
        return False
    return bool((image[:, :, 0] == image[:, :, 1]).all() and (image[:, :, 1] == image[:, :, 2]).all())


def face_images(face, n_each: int, seed: int, textures) -> list:
    """``n_each`` masked and ``n_each`` unmasked images of one face: [(class, image, style, colour)]."""
    import cv2

    out = []
    base, box, landmarks = region(face)
    grey = is_grey(base)
    if fs.is_low_res(base):   # LFW: mask and crop at 4x, then back to the photo's own resolution
        k = 4
        base = cv2.resize(base, None, fx=k, fy=k, interpolation=cv2.INTER_CUBIC)
        box, landmarks = tuple(v * k for v in box), landmarks * k
    else:
        k = 1
    styles = [s for s in fs.MASK_STYLES if s != "surgical-photo" or textures]
    colours = list(fs.MASK_COLOURS)
    for v in range(n_each):
        rng = fs.seeded_rng(seed, face.key, v)
        style, colour = styles[rng.randint(len(styles))], colours[rng.randint(len(colours))]
        masked = fs.put_mask(base, landmarks, rng, style, colour, textures)
        if grey:   # a greyscale photo shows a grey mask: a coloured one would teach "colour means mask"
            masked = cv2.cvtColor(cv2.cvtColor(masked, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
        for cls, img, st, co in (("mask", masked, style, colour), ("no_mask", base, "", "")):
            crop = crop_face(img, box, rng)
            if k != 1:
                crop = cv2.resize(crop, (max(1, crop.shape[1] // k), max(1, crop.shape[0] // k)),
                                  interpolation=cv2.INTER_AREA)
            out.append((cls, photometric(crop, rng), st, co))
    return out


def _find_faces(all_photos, landmarker, progress):
    """Every face of every photo, and the manifest's source list."""
    from tqdm import tqdm

    found, sources = [], []
    for photo in tqdm(all_photos, desc="faces", unit="photo", disable=not progress):
        image = photo.load()
        faces = landmarker.faces(photo, image)
        found.extend(faces)
        sources.append({"source": photo.source, "package": fs.PACKAGES[photo.package][0],
                        "version": fs.PACKAGES[photo.package][1], "package_licence": fs.PACKAGES[photo.package][2],
                        "file": photo.file, "photo_licence": photo.licence, "eval_only": photo.eval_only,
                        "faces_expected": photo.faces, "faces": len(faces),
                        "identity_groups": sorted({f.identity for f in faces})})
    return found, sources


def _write_images(found, group_of, split_of, tmp, seed, variants, lfw_variants, textures, progress):
    """The images of every face into ``tmp/<split>/<class>/``; returns the manifest's image list."""
    import cv2
    from tqdm import tqdm

    images = []
    for f in tqdm(found, desc="images", unit="face", disable=not progress):
        split = split_of[group_of[f.identity]]
        n = lfw_variants if f.photo.source == "lfw" else variants
        for i, (cls, img, style, colour) in enumerate(face_images(f, n, seed, textures)):
            rel = Path(split) / cls / f"{f.key}-{i:02d}.jpg"
            if (tmp / rel).exists():
                raise FileExistsError(f"{rel}: two faces with the same key {f.key!r}")
            quality = int(fs.seeded_rng(seed, f.key, i, "q").randint(60, 96))
            if not cv2.imwrite(str(tmp / rel), img, [cv2.IMWRITE_JPEG_QUALITY, quality]):
                raise OSError(f"cannot write {tmp / rel}")
            images.append({"path": str(rel), "split": split, "class": cls, "source": f.photo.source,
                           "photo": f.photo.file, "face": f.index, "identity": f.identity,
                           "group": group_of[f.identity], "mask_style": style,
                           "mask_colour": colour})
    return images


def build(out_dir, cache_dir, seed: int = 0, variants: int = 6, lfw_variants: int = 3, val_fraction: float = 0.25,
          log=print, progress: bool = True) -> dict:
    """Writes the dataset and returns the manifest."""
    started = time.perf_counter()
    out_dir, cache_dir = Path(out_dir), Path(cache_dir)
    tmp = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    for split in SPLITS:
        for cls in CLASSES:
            (tmp / split / cls).mkdir(parents=True)
    all_photos, missing = fs.photos(cache_dir, log)
    textures = fs.mask_textures(cache_dir)
    landmarker = fs.Landmarker()

    found, sources = _find_faces(all_photos, landmarker, progress)
    group_of, identity_check = identities.check(found, cache_dir, log, progress=progress)
    split_of = assign_splits(*group_families(found, group_of), val_fraction, seed)
    for s in sources:
        s["identity_groups"] = sorted({group_of[g] for g in s["identity_groups"]})
        s["splits"] = sorted({split_of[g] for g in s["identity_groups"]})

    images = _write_images(found, group_of, split_of, tmp, seed, variants, lfw_variants, textures, progress)
    counts = Counter((im["split"], im["class"]) for im in images)
    manifest = {
        "created_by": "python -m model dataset", "seed": seed, "variants": variants, "lfw_variants": lfw_variants,
        "val_fraction": val_fraction, "classes": list(CLASSES), "splits": list(SPLITS),
        "rules": {"split_by": "identity group, merged by the face-descriptor check (identity_check)",
                  "eval_only": fs.EVAL_ONLY_RULE,
                  "identity_caveats": "lfw_subset gives no names: each of its faces starts as its own group and "
                                      "only the closest look-alikes are merged (the descriptor is weak at 25x25 "
                                      "pixels), so one LFW person may still be in two splits; the face-api "
                                      "samples start as one group per photo, insightface t1.jpg one per face"},
        "identity_check": identity_check,
        "mask_styles": list(fs.MASK_STYLES), "mask_textures": [n for n, _ in textures],
        "counts": {f"{s}/{c}": counts[(s, c)] for s in SPLITS for c in CLASSES},
        "identities": {s: len({im["identity"] for im in images if im["split"] == s}) for s in SPLITS},
        "groups": {s: len({im["group"] for im in images if im["split"] == s}) for s in SPLITS},
        "missing_sources": missing, "sources": sources, "images": images,
        "seconds": round(time.perf_counter() - started, 1),
    }
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    return manifest


def load_manifest(data_dir) -> dict:
    return json.loads((Path(data_dir) / MANIFEST).read_text())
