"""Marker-based watershed: split touching particles of one phase into instances."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import ndimage as ndi


def separate_particles(mask: np.ndarray, *, voxel_size_nm: Sequence[float], min_radius_nm: float = 50.0) -> np.ndarray:
    """Instance labels of the particles in ``mask`` (e.g. ``phases == active``).

    Markers are the maxima of the Euclidean distance map (in nm, so thick slices count
    correctly) that stand at least ``min_radius_nm`` deep inside the phase and are separated by
    at least that distance; the watershed of the negated distance map grows them to fill
    ``mask``.

    Parameters
    ----------
    mask : ndarray of bool (z, y, x)
        The phase to split.
    voxel_size_nm : 3 floats
        ``(z, y, x)`` voxel size.
    min_radius_nm : float
        Smallest particle radius kept as its own marker.

    Returns
    -------
    ndarray int32
        0 outside ``mask``, 1..N one value per particle.
    """
    from skimage.feature import peak_local_max
    from skimage.segmentation import watershed

    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return np.zeros(mask.shape, np.int32)
    vox = [float(v) for v in voxel_size_nm]
    dist = ndi.distance_transform_edt(mask, sampling=vox)
    footprint_r = [max(1, int(round(min_radius_nm / v))) for v in vox]
    footprint = np.ones([2 * r + 1 for r in footprint_r], dtype=bool)
    peaks = peak_local_max(dist, footprint=footprint, threshold_abs=min_radius_nm, labels=ndi.label(mask)[0],
                           exclude_border=False)
    markers = np.zeros(mask.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    return watershed(-dist, markers, mask=mask).astype(np.int32)
