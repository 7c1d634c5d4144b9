"""The cathode|collector cut sits on the foil's grey step, not a row into the foil."""

from __future__ import annotations

import numpy as np

from volrecon.phases import REGIONS
from volrecon.segment import segment_volume


def test_collector_cut_not_a_row_into_the_foil(diglyme):
    """The collector's first row along y against the truth's, over the columns.

    The cut from the layer shares read the foil's blurred first row as cathode: 0.4 rows late on the
    benchmark phantoms (43 % of the columns one row into the foil), cathode|collector 0.55-0.92
    voxels from the truth; moved onto the foil's grey step (``refine_interface``, rims corrected) it
    is 0.23-0.32 voxels."""
    ph, img = diglyme
    res = segment_volume(img, voxel_size_nm=ph.voxel_size_nm, method="auto")
    col = REGIONS["collector"]
    found, true = np.asarray(res.regions) == col, ph.regions == col
    ok = found.any(axis=1) & true.any(axis=1)
    offset = (found.argmax(axis=1) - true.argmax(axis=1))[ok]
    assert abs(offset.mean()) < 0.25 and np.abs(offset).mean() < 0.35, (offset.mean(), np.abs(offset).mean())
