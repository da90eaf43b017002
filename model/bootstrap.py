"""Resampling by identity group: one person's images (their masked and unmasked variants) are not independent, so
how sure a figure is comes from drawing whole groups with replacement, not images. Shared by the accuracy interval
(model/evaluate.py) and the decision offset's agreement check (model/calibration.py). numpy only."""
from __future__ import annotations

import numpy as np


def group_picks(groups, resamples: int, seed: int = 0) -> tuple:
    """(each item's group number, ``resamples`` x groups array of group numbers drawn with replacement). Group
    numbers follow the sorted group names; the draws are seeded, so a figure is reproduced exactly."""
    names, index = np.unique(np.asarray(groups), return_inverse=True)
    picks = np.random.RandomState(seed).randint(len(names), size=(resamples, len(names)))
    return index.reshape(-1), picks


def central(values, level: float) -> tuple:
    """(low, high) of the central ``level`` share of ``values``."""
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)
