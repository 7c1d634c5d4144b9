"""Where a line through the cathode ends, for the connectivity of its clusters (analysis and phantom truth).

Along the stacking axis a line through the cathode ends where another layer lies beyond it (the
separator, the collector) or where the frame caps the stack (an electrode-only field under its
protective cap), not where it runs into a trench wall.  Across the stacking axis it ends at the
frame or the volume's face, not at a rough layer interface it happens to cross.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from volrecon.phases import REGIONS

CAP_SHARE = 0.5
"""Least share of frame voxels across the stacking axis for a frame row to be a cap (a trench wall holds a few)."""


def _other_layers(names: Mapping[str, int]) -> list[int]:
    return [v for k, v in names.items() if k not in ("cathode", "frame")]


def stack_ends(regions: np.ndarray, across: int, names: Mapping[str, int] = REGIONS) -> np.ndarray:
    """True where a cathode line along the stacking axis ends when it reaches it.

    Parameters
    ----------
    regions : ndarray of int
        Region labels (:data:`volrecon.phases.REGIONS`), any dimensionality.
    across : int
        The axis of ``regions`` across the stacking axis in the image plane: a frame row is a cap
        where at least :data:`CAP_SHARE` of it along this axis is frame.
    names : mapping of str to int
        The region values (default :data:`volrecon.phases.REGIONS`).

    Returns
    -------
    ndarray of bool
        The other layers (not the cathode, not the frame), and the frame's cap rows.
    """
    reg = np.asarray(regions)
    frame = reg == names["frame"] if "frame" in names else np.zeros(reg.shape, bool)
    cap = frame & (frame.mean(axis=across, keepdims=True) >= CAP_SHARE)
    return np.isin(reg, _other_layers(names)) | cap


def side_ends(regions: np.ndarray, names: Mapping[str, int] = REGIONS) -> np.ndarray:
    """True where a cathode line across the stacking axis ends when it reaches it: anything but another layer."""
    return ~np.isin(np.asarray(regions), _other_layers(names))
