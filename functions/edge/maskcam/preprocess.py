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


def to_tensor(crop_bgr, spec=None, resize=resize_bilinear):
    """One BGR uint8 crop -> CHW (or HWC) float32 normalized per ``spec`` (the manifest's ``input``).

    ``resize(image, width, height)`` must sample like ``resize_bilinear``; adapters pass OpenCV's where it exists
    (about 20x faster than this numpy version)."""
    spec = spec or DEFAULT_INPUT
    if crop_bgr.ndim != 3 or crop_bgr.shape[2] != 3:
        raise ValueError("expected an HxWx3 BGR image, got shape %r" % (crop_bgr.shape,))
    img = np.asarray(resize(crop_bgr, int(spec["width"]), int(spec["height"])), dtype=np.float32)
    if str(spec.get("color", "RGB")).upper() == "RGB":
        img = img[:, :, ::-1]
    img = img * float(spec.get("scale", 1.0))
    mean = np.asarray(spec.get("mean", (0.0, 0.0, 0.0)), dtype=np.float32)
    std = np.asarray(spec.get("std", (1.0, 1.0, 1.0)), dtype=np.float32)
    img = (img - mean) / std
    if str(spec.get("layout", "NCHW")).upper() == "NCHW":
        img = img.transpose(2, 0, 1)
    return np.ascontiguousarray(img, dtype=np.float32)


def make_batch(crops_bgr, spec=None, resize=resize_bilinear):
    """Crops -> one N x C x H x W float32 batch."""
    return np.stack([to_tensor(c, spec, resize) for c in crops_bgr]).astype(np.float32)
