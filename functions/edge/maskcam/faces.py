"""Face boxes from either detector into frame pixel coordinates, and crops (pure numpy).

- DeepLens SSD: ``model.parseResult("ssd", raw)["ssd"]`` is a list of ``{"label", "prob", "xmin", "ymin", "xmax",
  "ymax"}`` in the pixel coordinates of the model input (300x300 for the face sample), best first.
- OpenCV detectors return ``(x, y, w, h)`` rectangles in frame pixels."""
from collections import namedtuple

import numpy as np

Box = namedtuple("Box", "xmin ymin xmax ymax score")


def clip(box, width, height):
    """The part of ``box`` inside a ``width`` x ``height`` frame, as integers; None when nothing is left."""
    xmin, ymin = max(0, int(round(box.xmin))), max(0, int(round(box.ymin)))
    xmax, ymax = min(width, int(round(box.xmax))), min(height, int(round(box.ymax)))
    if xmax - xmin < 2 or ymax - ymin < 2:
        return None
    return Box(xmin, ymin, xmax, ymax, float(box.score))


def from_ssd(objects, frame_shape, input_size=(300, 300), threshold=0.25, labels=None):
    """SSD ``parseResult`` objects -> boxes in frame pixels, above ``threshold`` (and of ``labels`` if given)."""
    height, width = frame_shape[:2]
    sx, sy = float(width) / input_size[0], float(height) / input_size[1]
    boxes = []
    for obj in objects or ():
        if float(obj["prob"]) < threshold or (labels is not None and obj.get("label") not in labels):
            continue
        box = clip(Box(obj["xmin"] * sx, obj["ymin"] * sy, obj["xmax"] * sx, obj["ymax"] * sy, obj["prob"]),
                   width, height)
        if box is not None:
            boxes.append(box)
    return sorted(boxes, key=lambda b: -b.score)


def from_rects(rects, frame_shape, score=1.0):
    """OpenCV ``(x, y, w, h)`` rectangles -> boxes, largest first."""
    height, width = frame_shape[:2]
    boxes = []
    for x, y, w, h in rects if rects is not None else ():
        box = clip(Box(x, y, x + w, y + h, score), width, height)
        if box is not None:
            boxes.append(box)
    return sorted(boxes, key=lambda b: -(b.xmax - b.xmin) * (b.ymax - b.ymin))


def crop(frame, box, margin=0.0):
    """The frame region of ``box`` grown by ``margin`` (fraction of its size) on each side, clipped to the frame."""
    height, width = frame.shape[:2]
    dx, dy = (box.xmax - box.xmin) * margin, (box.ymax - box.ymin) * margin
    grown = clip(Box(box.xmin - dx, box.ymin - dy, box.xmax + dx, box.ymax + dy, box.score), width, height)
    return frame[grown.ymin:grown.ymax, grown.xmin:grown.xmax]


def _as_uint8(frame):
    """bool -> 0/255, other numbers clipped into 0-255 (NaN and infinities -> 0); None for what is no number."""
    if frame.dtype == np.bool_:
        return frame.astype(np.uint8) * 255
    if not np.issubdtype(frame.dtype, np.number) or np.iscomplexobj(frame):
        return None
    values = frame.astype(np.float64)
    return np.clip(np.where(np.isfinite(values), values, 0.0), 0, 255).astype(np.uint8)


def as_bgr(frame):
    """Any frame a source or a caller may hand over -> a C-contiguous HxWx3 uint8 BGR array, or None when it holds
    no image: None, not an array, no pixels, a shape that is no image; grey (HxW, HxWx1) becomes 3 channels, BGRA
    loses alpha, float/int/bool values are clipped into 0-255 (NaN -> 0)."""
    if frame is None:
        return None
    try:
        frame = np.asarray(frame)
    except Exception:
        return None
    if frame.dtype == object or frame.ndim not in (2, 3) or frame.size == 0:
        return None
    if frame.ndim == 3:
        channels = {1: lambda f: f[:, :, 0], 3: lambda f: f, 4: lambda f: f[:, :, :3]}.get(frame.shape[2])
        if channels is None:
            return None
        frame = channels(frame)
    if frame.dtype != np.uint8:
        frame = _as_uint8(frame)
        if frame is None:
            return None
    if frame.ndim == 2:
        frame = np.repeat(frame[:, :, None], 3, axis=2)
    return np.ascontiguousarray(frame)
