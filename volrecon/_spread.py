"""Evenly spread sample indices, shared by the correction and segmentation stages.

A module of its own so that :mod:`volrecon.segment` can use it without importing
:mod:`volrecon.correct` (drift, SimpleITK), which itself imports from the segmentation.
"""

from __future__ import annotations

import numpy as np


def spread_indices(n_total: int, n_wanted: int) -> np.ndarray:
    """``n_wanted`` indices spread evenly over ``range(n_total)`` (all when fewer; none when ``n_total <= 0``)."""
    if n_wanted >= n_total:
        return np.arange(max(n_total, 0))
    return np.unique(np.round(np.linspace(0, n_total - 1, n_wanted)).astype(int))
