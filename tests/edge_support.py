"""Shared helpers of the edge tests: real photos from scikit-image's bundled data, the 640x480 test stream frame,
and path setup so ``maskcam`` also imports as a top-level package (as on a device)."""
import os
import sys

import numpy as np

from tests.conftest import ROOT

EDGE_DIR = ROOT / "functions" / "edge"


def edge_on_path():
    if str(EDGE_DIR) not in sys.path:
        sys.path.insert(0, str(EDGE_DIR))


def astronaut_bgr():
    """skimage's astronaut photo (Eileen Collins), shipped inside the wheel (skimage/data/astronaut.png)."""
    import skimage.data
    assert os.path.isfile(os.path.join(os.path.dirname(skimage.data.__file__), "astronaut.png"))
    return np.ascontiguousarray(skimage.data.astronaut()[:, :, ::-1])


def stream_frame():
    """A 640x480 BGR frame with two real faces (the astronaut's head, and mirrored) on a grey background."""
    head = astronaut_bgr()[0:256, 96:352]
    frame = np.full((480, 640, 3), 90, np.uint8)
    frame[100:356, 20:276] = head
    frame[120:376, 360:616] = head[:, ::-1]
    return frame


# Where the faces of stream_frame() are (xmin, ymin, xmax, ymax), from the astronaut's face at ~(177,66)-(272,161).
STREAM_FACES = ((101, 166, 196, 261), (440, 186, 535, 281))


def overlaps(box, expected, min_iou=0.5):
    ax0, ay0, ax1, ay1 = box
    bx0, by0, bx1, by1 = expected
    iw, ih = max(0, min(ax1, bx1) - max(ax0, bx0)), max(0, min(ay1, by1) - max(ay0, by0))
    inter = iw * ih
    union = (ax1 - ax0) * (ay1 - ay0) + (bx1 - bx0) * (by1 - by0) - inter
    return inter / float(union) >= min_iou
