"""The decision offset of a two-class export: a constant added to the ``mask`` logit, chosen on the validation split
(people the model never trained on) so that neither class is missed more than the other.

Why: the compliance a camera reports is masked / (masked + unmasked). With recalls ``r_mask`` and ``r_no_mask`` the
reported share is off by up to ``max(1 - r_mask, 1 - r_no_mask)`` (all faces masked, or none); a model that errs
towards one class biases every figure that way. The offset that minimizes the worse of the two miss rates on val
(ties: the fewest misses in all, then the middle of the run of tied offsets nearest 0, so the boundary keeps its
distance from the validation faces on both sides) is folded into the exported graph as a fixed layer before the
softmax, so every runtime (ONNX Runtime, MXNet, the DeepLens optimizer's graph) makes the same decisions. It moves
the decision boundary; it does not make the probabilities calibrated in the statistical sense. The validation split
also picked the checkpoint, so its recalls after the offset are optimistic: only the test figures are unbiased.
numpy only.
"""
from __future__ import annotations

import numpy as np

LIMIT = 2.0       # at most this much either way: a larger shift says the validation split is too small to trust
STEP = 0.05


def finite_rows(logits, labels) -> tuple:
    """(logits, labels) without the rows whose logits are not all finite (a broken model output is no answer)."""
    logits, labels = np.asarray(logits, dtype=np.float64), np.asarray(labels)
    finite = np.isfinite(logits).all(axis=1)
    return logits[finite], labels[finite]


def recalls(logits, labels, offset: float) -> tuple:
    """(recall of class 0, recall of class 1) with ``offset`` added to class 0's logit, over the finite rows."""
    logits, labels = finite_rows(logits, labels)
    shifted = logits + np.array([offset, 0.0])
    predicted = shifted.argmax(axis=1)
    return tuple(float((predicted[labels == c] == c).mean()) if (labels == c).any() else 1.0 for c in (0, 1))


def choose_offset(logits, labels) -> dict:
    """The offset for class 0 and the recalls before and after, from N x 2 logits and labels (0/1). Rows that are not
    finite are left out (``dropped``); without images of both classes the offset is 0."""
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 2 or logits.shape[1] != 2:
        raise ValueError(f"expected N x 2 logits, got shape {logits.shape}")
    rows = len(logits)
    logits, labels = finite_rows(logits, labels)
    kept = {"images": int(len(labels)), "dropped": rows - int(len(labels))}
    before = recalls(logits, labels, 0.0) if len(labels) else (None, None)
    if not ((labels == 0).any() and (labels == 1).any()):
        return dict(kept, offset=0.0, recall_before=before, recall_after=before, at_limit=False)
    grid = np.round(np.arange(-LIMIT, LIMIT + STEP / 2, STEP), 6)

    def cost(b):
        r = recalls(logits, labels, b)
        return (round(1 - min(r), 9), round(2 - sum(r), 9))
    costs = [cost(b) for b in grid]
    best = min(costs)
    # the run of consecutive best offsets nearest 0, and its middle
    i = min((i for i, c in enumerate(costs) if c == best), key=lambda i: abs(grid[i]))
    lo, hi = i, i
    while lo > 0 and costs[lo - 1] == best:
        lo -= 1
    while hi < len(grid) - 1 and costs[hi + 1] == best:
        hi += 1
    middle = (grid[lo] + grid[hi]) / 2
    chosen = float(min(grid[lo:hi + 1], key=lambda b: (round(abs(b - middle), 6), abs(b)))) + 0.0   # no -0.0
    return dict(kept, offset=chosen, recall_before=before, recall_after=recalls(logits, labels, chosen),
                at_limit=bool(abs(chosen) >= LIMIT))
