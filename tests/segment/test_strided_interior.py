"""The classifier's interior levels on a sample of every few rows (issue 7, review rev20 L6).

On a big stack the levels' sample is every few rows (:func:`volrecon.segment.api._sample_index`):
the rows beside each other in it lie that many rows apart in the stack, and the interior test
must read each sampled row's true neighbours."""

import dask.array as da
import numpy as np
import pytest

from volrecon.phases import PHASES
from volrecon.segment import api
from volrecon.segment.classifier import boundary_voxels, sampled_interior


def _whole_interior(labels: np.ndarray) -> np.ndarray:
    return ~np.array([boundary_voxels(s) for s in labels])


@pytest.mark.parametrize("ny", [23, 24])
@pytest.mark.parametrize("stride", [1, 2, 3, 8])
def test_sampled_interior_is_the_whole_interior_at_the_sampled_rows(stride, ny):
    """Exact: the strided sample's interior is the whole slices' interior at those rows; the
    interior of the sample taken alone (rows ``stride`` apart read as neighbours) is not."""
    rng = np.random.default_rng(0)
    labels = (rng.random((3, ny, 17)) < 0.3).astype(np.uint8) + (rng.random((3, ny, 17)) < 0.2)
    rows, at = api._rows_beside(ny, stride)
    assert rows.size <= 3 * -(-ny // stride)
    got = sampled_interior(labels[:, rows], rows, rows[at])
    np.testing.assert_array_equal(got, _whole_interior(labels)[:, ::stride])
    if stride > 1:
        assert (_whole_interior(labels[:, ::stride]) != got).any()


def _levels(ph, img, stride: int, monkeypatch) -> dict:
    """``_boundaries_redecided``'s levels on the true labels with the sample forced to ``stride``."""
    shape = img.shape
    monkeypatch.setattr(api, "_sample_index", lambda s, max_slices=64: (np.arange(shape[0]), stride))
    params: dict = {}
    g = da.from_array(img, chunks=(4, *shape[1:]))
    api._boundaries_redecided(g, da.from_array(ph.regions, chunks=g.chunks), da.from_array(ph.labels, chunks=g.chunks),
                              image=g, names=PHASES, vox=ph.voxel_size_nm, smooth_nm=0.0, params=params)
    cb = params["classifier_boundaries"]
    return {(r, k): v for r in ("cathode", "separator") for k, v in cb[r]["levels"].items()}


def test_strided_levels_are_the_whole_samples(diglyme, monkeypatch):
    """The re-decision's interior levels on a sample of every 2nd / 4th row are those of every row.

    The rim length is held (its separability peak is flat, and the sample moves it by noise alone)
    so that the levels differ only by the interior and the sample's size.  Measured (16x160 diglyme
    seed 3, corrected, true labels), the worst level's change from every row's: every 2nd row 0.0007,
    every 4th 0.0010; read on the sample's own rows, 0.0042 and 0.0065 (the binder's voxels a row
    from the pore passed for its interior)."""
    ph, img = diglyme
    monkeypatch.setattr(api, "fit_rim_length", lambda g, d, classes: (12.0, None, 0.5))
    monkeypatch.setattr(api, "_dark_rim_length", lambda *a, **k: None)
    whole = _levels(ph, img, 1, monkeypatch)
    for stride in (2, 4):
        strided = _levels(ph, img, stride, monkeypatch)
        assert strided.keys() == whole.keys()
        assert max(abs(strided[k] - whole[k]) for k in whole) < 0.002
