"""Review findings on the edge-rim fit, the coarse lateral sums and the SEI's thickness."""

import numpy as np
import pytest
from scipy.special import ndtr

from volrecon.segment import layers as layers_mod
from volrecon.segment.layers import RIM_OFFSETS, Layers, edge_rim_shift, refine_interface
from volrecon.segment.regional import rim_threshold

_PRESENT = {"sodium": True, "sei": True, "separator": True, "cathode": True, "collector": True}


def _step_image(n: int = 40, b: int = 20, width: int = 16, seed: int = 0) -> np.ndarray:
    """A blurred dark -> bright step along y at boundary ``b``, no rims."""
    x = np.arange(n) + 0.5 - b
    prof = 0.3 + 0.2 * ndtr(x / 0.9)
    img = np.broadcast_to(prof[None, :, None], (2, n, width)).astype(np.float32)
    return img + np.random.default_rng(seed).normal(0, 0.003, img.shape).astype(np.float32)


def test_rejected_rim_fit_is_not_stored(monkeypatch):
    """A rim fit the model rejects (here a noisy profile; its rim ratio 2.0 is no measurement)
    leaves no edge entry, so neither the SEI's edge search nor the separator's fibre threshold
    uses its rim ratio or blur."""
    noisy = ndtr(RIM_OFFSETS / 0.8) + np.random.default_rng(3).normal(0, 0.15, RIM_OFFSETS.size)
    shift, fit = edge_rim_shift(RIM_OFFSETS, noisy)
    assert shift == 0.0 and fit["accepted"] is False and fit["rim_ratio"] > 1.0
    monkeypatch.setattr(layers_mod, "edge_rim_shift", lambda offsets, profile: (shift, fit))
    lay = Layers(axis=1, anode_first=True, heights={"sodium|sei": np.full((2, 16), 21.4)}, present=_PRESENT, length=40)
    out = refine_interface(_step_image(), lay, "sodium|sei", voxel_size_nm=(10, 10, 10), window_nm=40.0,
                           lateral_nm=10.0, rim=True)
    assert "sodium|sei" not in out.edges
    assert "rejected" in out.notes[-1]
    vals = np.r_[np.full(500, 0.3), np.full(500, 0.5)]
    assert rim_threshold(vals, 0.4, fit, [0.0]) == 0.4


def test_rim_fit_pinned_to_its_bound_is_rejected():
    """A shift at the edge of its search range is not a fitted value."""
    noisy = ndtr(RIM_OFFSETS / 0.8) + np.random.default_rng(1).normal(0, 0.15, RIM_OFFSETS.size)
    shift, fit = edge_rim_shift(RIM_OFFSETS, noisy)
    assert shift == 0.0 and not fit["accepted"]


@pytest.mark.parametrize("shape, chunks, factor, axis", [
    ((4, 64, 513), (4, 64, 256), 2, 0),  # a one-voxel tail chunk
    ((9, 40, 37), (3, 5, 7), 2, 0),      # chunks thinner than the opening's context, not multiples of the factor
    ((9, 40, 37), (3, 5, 7), 3, 1),
    ((10, 33, 21), (4, 9, 10), 4, 2),
])
def test_lateral_sums_dask_equals_numpy(shape, chunks, factor, axis):
    """The blockwise (dask) lateral sums count every group exactly as the whole array does."""
    import dask.array as da

    from volrecon.segment.layers import _lateral_sums

    rng = np.random.default_rng(0)
    # blobs a few voxels across, so the in-plane core opening matters near the block edges
    from scipy import ndimage as ndi

    labels = np.argmax(ndi.gaussian_filter(rng.random((5, *shape)), [0, 0.7, 1.5, 1.5]), axis=0).astype(np.uint8)
    values = {"sodium": [1], "separator": [2], "active": [3], "sei": []}
    want = _lateral_sums(labels, axis, factor, values, 4)
    got = _lateral_sums(da.from_array(labels, chunks=chunks), axis, factor, values, 4)
    assert set(got) == set(want)
    for k in want:
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)
