"""Empty pores (void) versus electrolyte-filled pores.

Physics: in a FIB-SEM face an empty pore is not simply dark.  The beam sees through it to the
material below the face (shine-through), so a void shows a blurred, attenuated image of what lies
deeper, and its rim is brightened by edge effects.  Single voxels are therefore ambiguous; the
cues that separate voids from frozen electrolyte are (a) texture and depth features (the
classifier's ``depth``/``texture``/``gradient`` channels compare the face with what lies deeper)
and (b) 3D continuity: a void is a contiguous gas-filled space, so the void/electrolyte decision
is taken over the pore neighbourhood, never across solid.

:func:`refine_pores` implements (b) as a pore-restricted vote: inside the pore space
(void ∪ electrolyte), each voxel becomes void when the Gaussian-weighted share of void among the
*pore* voxels around it exceeds one half.  Solid voxels neither vote nor change.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy import ndimage as ndi

_TRUNCATE = 3.0


def pore_vote_reach(sigma_nm: float, voxel_size_nm: Sequence[float]) -> tuple[int, int, int]:
    """Voxels of context :func:`refine_pores` needs per axis."""
    return tuple(int(math.ceil(_TRUNCATE * sigma_nm / float(v))) + 1 for v in voxel_size_nm)  # type: ignore[return-value]


def refine_pores(
    labels: np.ndarray, *, void: int, electrolyte: int, sigma_nm: float, voxel_size_nm: Sequence[float]
) -> np.ndarray:
    """Pore-restricted 3D vote between void and electrolyte.

    Parameters
    ----------
    labels : ndarray (z, y, x)
        Phase labels.
    void, electrolyte : int
        Label values of the two pore phases.
    sigma_nm : float
        Gaussian scale of the vote (nm); 0 returns ``labels`` unchanged.
    voxel_size_nm : 3 floats
        ``(z, y, x)`` voxel size.

    Returns
    -------
    ndarray
        Labels with the pore voxels re-decided.
    """
    if sigma_nm <= 0:
        return labels
    is_void = labels == void
    pore = is_void | (labels == electrolyte)
    if not pore.any():
        return labels
    sigma = [sigma_nm / float(v) for v in voxel_size_nm]
    num = ndi.gaussian_filter(is_void.astype(np.float32), sigma, mode="reflect", truncate=_TRUNCATE)
    den = ndi.gaussian_filter(pore.astype(np.float32), sigma, mode="reflect", truncate=_TRUNCATE)
    share = num / np.maximum(den, 1e-6)
    out = labels.copy()
    out[pore] = np.where(share[pore] > 0.5, void, electrolyte).astype(labels.dtype)
    return out
