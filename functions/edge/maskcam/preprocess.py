"""Crop -> model input tensor, exactly as the training pipeline normalizes (pure numpy, no OpenCV).

Frames arrive as BGR uint8 (OpenCV and awscam both deliver BGR). The export manifest's ``input`` spec says the size,
channel order, scale and mean/std the model was trained with."""
import numpy as np

from .manifest import DEFAULT_INPUT


def _axis(in_size, out_size):
    # Half-pixel centres, clamped at the borders: the same sampling as cv2.resize(..., INTER_LINEAR).
    pos = (np.arange(out_size, dtype=np.float32) + 0.5) * (float(in_size) / out_size) - 0.5
    pos = np.clip(pos, 0, in_size - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, in_size - 1)
    return lo, hi, (pos - lo).astype(np.float32)


def resize_bilinear(image, width, height):
    """Bilinear resize of an HxW(xC) image to ``height`` x ``width``; returns float32."""
    if image.ndim < 2 or image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError("cannot resize an empty image of shape %r" % (image.shape,))
    img = image.astype(np.float32)
    y0, y1, wy = _axis(img.shape[0], height)
    x0, x1, wx = _axis(img.shape[1], width)
    if img.ndim == 3:
        wy = wy[:, None, None]
        wx = wx[None, :, None]
    else:
        wy = wy[:, None]
        wx = wx[None, :]
    top = img[y0][:, x0] * (1 - wx) + img[y0][:, x1] * wx
    bottom = img[y1][:, x0] * (1 - wx) + img[y1][:, x1] * wx
    return top * (1 - wy) + bottom * wy


def _affine(spec):
    """Per-channel (multiplier, offset) with ``x * multiplier + offset == (x * scale - mean) / std``."""
    scale = float(spec.get("scale", 1.0))
    mean = np.asarray(spec.get("mean", (0.0, 0.0, 0.0)), dtype=np.float64)
    std = np.asarray(spec.get("std", (1.0, 1.0, 1.0)), dtype=np.float64)
    return (scale / std).astype(np.float32), (-mean / std).astype(np.float32)


def make_batch(crops_bgr, spec=None, resize=resize_bilinear):
    """BGR uint8 crops -> one N x C x H x W (or N x H x W x C) float32 batch normalized per ``spec`` (the manifest's
    ``input``).

    ``resize(image, width, height)`` must sample like ``resize_bilinear``; adapters pass OpenCV's where it exists
    (about 20x faster than this numpy version). Each face is resized, then written into the batch in one
    multiply-add with the channel order and layout as views (no intermediate float copies)."""
    spec = spec or DEFAULT_INPUT
    width, height = int(spec["width"]), int(spec["height"])
    rgb = str(spec.get("color", "RGB")).upper() == "RGB"
    nchw = str(spec.get("layout", "NCHW")).upper() == "NCHW"
    multiplier, offset = _affine(spec)
    if nchw:
        multiplier, offset = multiplier[:, None, None], offset[:, None, None]
    batch = np.empty((len(crops_bgr), 3, height, width) if nchw else (len(crops_bgr), height, width, 3), np.float32)
    for i, crop in enumerate(crops_bgr):
        if crop.ndim != 3 or crop.shape[2] != 3:
            raise ValueError("expected an HxWx3 BGR image, got shape %r" % (crop.shape,))
        image = resize(crop, width, height)
        if rgb:
            image = image[:, :, ::-1]
        if nchw:
            image = image.transpose(2, 0, 1)
        np.multiply(image, multiplier, out=batch[i])
        batch[i] += offset
    return batch


def to_tensor(crop_bgr, spec=None, resize=resize_bilinear):
    """One BGR uint8 crop -> CHW (or HWC) float32, as ``make_batch`` does for each face."""
    return make_batch([crop_bgr], spec, resize)[0]
