"""The wall's lit column in the classifier's layers (volrecon.segment.layers, ``specimen_core``):
the first specimen voxels beside the frame read the wall's rim, which a pixel classifier labels as
a bright phase; they are not layer evidence."""

import numpy as np
import pytest
from scipy import ndimage as ndi

from volrecon.phases import PHASES
from volrecon.segment.layers import _lateral_sums

FRAME = PHASES["frame"]


def test_the_walls_lit_columns_are_not_counted():
    """A band of ``active`` three columns wide along the wall (its rim read as a particle, through
    the separator's electrolyte) survives the core opening of the particles; counted from the
    specimen's core, its column beside the frame is left out and the two-column rest is opened
    away, while the cathode's particles further from the wall keep their counts."""
    ph = np.full((4, 60, 40), PHASES["electrolyte"], np.uint8)
    ph[:, :, :12] = FRAME
    ph[:, 10:40, 12:15] = PHASES["active"]
    ph[:, 45:, 20:30] = PHASES["active"]
    values = {"active": [PHASES["active"]]}
    plain = _lateral_sums(ph, 1, 1, values, FRAME)
    core = _lateral_sums(ph, 1, 1, values, FRAME, specimen_core=True)
    assert plain["active"][:, 10:40, 12:15].sum() > 0
    assert core["active"][:, 10:40, 12:15].sum() == 0
    assert core["valid"][:, :, 12].sum() == 0 and (core["valid"][:, :, 13:] == 1).all()
    np.testing.assert_array_equal(core["active"][:, 45:, 20:30], plain["active"][:, 45:, 20:30])


@pytest.mark.parametrize("shape, chunks, factor", [((4, 64, 96), (4, 32, 40), 2), ((6, 40, 37), (3, 7, 9), 3)])
def test_specimen_core_counts_chunk_exact(shape, chunks, factor):
    """The blockwise (dask) counts of the specimen's core equal the whole array's."""
    import dask.array as da

    rng = np.random.default_rng(3)
    labels = np.argmax(ndi.gaussian_filter(rng.random((5, *shape)), [0, 0.7, 1.5, 1.5]), axis=0).astype(np.uint8)
    values = {"sodium": [1], "separator": [2], "active": [3]}
    want = _lateral_sums(labels, 1, factor, values, 4, specimen_core=True)
    got = _lateral_sums(da.from_array(labels, chunks=chunks), 1, factor, values, 4, specimen_core=True)
    plain = _lateral_sums(labels, 1, factor, values, 4)
    for k in want:
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)
    # fewer valid voxels: those beside the unassigned (0) and frame (4) voxels are left out
    assert want["valid"].sum() < plain["valid"].sum()
