"""The decision offset of a two-class export: a constant added to the ``mask`` logit, chosen on the validation split
(people the model never trained on) so that neither class is missed more than the other.

Why: the compliance a camera reports is masked / (masked + unmasked). With recalls ``r_mask`` and ``r_no_mask`` the
reported share is off by up to ``max(1 - r_mask, 1 - r_no_mask)`` (all faces masked, or none); a model that errs
towards one class biases every figure that way. The offset that minimizes the worse of the two miss rates on val
(ties: the smallest offset) is folded into the exported graph as a fixed layer before the softmax, so every runtime
(ONNX Runtime, MXNet, the DeepLens optimizer's graph) gives the same, calibrated probabilities. numpy only.
"""
from __future__ import annotations

import numpy as np

LIMIT = 2.0       # at most this much either way: a larger shift says the validation split is too small to trust
STEP = 0.05


def recalls(logits, labels, offset: float) -> tuple:
    """(recall of class 0, recall of class 1) with ``offset`` added to class 0's logit."""
    logits, labels = np.asarray(logits, dtype=np.float64), np.asarray(labels)
    shifted = logits + np.array([offset, 0.0])
    predicted = shifted.argmax(axis=1)
    return tuple(float((predicted[labels == c] == c).mean()) if (labels == c).any() else 1.0 for c in (0, 1))


def choose_offset(logits, labels) -> dict:
    """The offset for class 0 and the recalls before and after, from N x 2 logits and labels (0/1). Rows that are not
    finite are left out; without images of both classes the offset is 0."""
    logits, labels = np.asarray(logits, dtype=np.float64), np.asarray(labels)
    finite = np.isfinite(logits).all(axis=1)
    logits, labels = logits[finite], labels[finite]
    before = recalls(logits, labels, 0.0) if len(labels) else (None, None)
    if logits.ndim != 2 or logits.shape[1] != 2 or not ((labels == 0).any() and (labels == 1).any()):
        return {"offset": 0.0, "recall_before": before, "recall_after": before, "images": int(len(labels))}
    grid = np.round(np.arange(-LIMIT, LIMIT + STEP / 2, STEP), 6)
    best = min(grid, key=lambda b: (1 - min(recalls(logits, labels, b)), abs(b)))
    return {"offset": float(best), "recall_before": before, "recall_after": recalls(logits, labels, best),
            "images": int(len(labels))}
