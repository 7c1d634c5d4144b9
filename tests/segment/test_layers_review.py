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
    """A rim fit the model rejects (here a noisy profile; its rim ratio is no measurement)
    leaves no edge entry, so neither the SEI's edge search nor the separator's fibre threshold
    uses its rim ratio or blur."""
    noisy = ndtr(RIM_OFFSETS / 0.8) + np.random.default_rng(3).normal(0, 0.15, RIM_OFFSETS.size)
    shift, fit = edge_rim_shift(RIM_OFFSETS, noisy)
    assert shift == 0.0 and fit["accepted"] is False and fit["rim_ratio"] > 0.5
    monkeypatch.setattr(layers_mod, "edge_rim_shift", lambda offsets, profile, half_width=1.0: (shift, fit))
    lay = Layers(axis=1, anode_first=True, heights={"sodium|sei": np.full((2, 16), 21.4)}, present=_PRESENT, length=40)
    out = refine_interface(_step_image(), lay, "sodium|sei", voxel_size_nm=(10, 10, 10), window_nm=40.0,
                           lateral_nm=10.0, rim=True)
    assert "sodium|sei" not in out.edges
    assert "rejected" in out.notes[-1]
    vals = np.r_[np.full(500, 0.3), np.full(500, 0.5)]
    assert rim_threshold(vals, 0.4, fit, [0.0]) == 0.4


@pytest.mark.parametrize("centre", [2.5, -1.5])
def test_rim_fit_pinned_to_its_bound_is_rejected(centre):
    """A shift at the edge of its search range is not a fitted value, even when the fit is close."""
    shift, fit = edge_rim_shift(RIM_OFFSETS, ndtr((RIM_OFFSETS - centre) / 0.8))
    assert shift == 0.0 and not fit["accepted"] and fit["rms"] < 0.05


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


def _rimmed_image(bright: np.ndarray, px: float, psf_nm: float = 9.0, noise: float = 0.003, seed: int = 0) -> np.ndarray:
    """A bright (0.5) on dark (0.3) image, per slice, with the phantom's edge-brightening rims of
    10 nm on each side of every boundary rendered at ``px`` nm pixels, blurred by the probe."""
    from scipy import ndimage as ndi

    from volrecon.sample.render import edge_field

    out = []
    for sl in bright:
        base = np.where(sl, 0.5, 0.3).astype(np.float32)
        out.append(ndi.gaussian_filter(base + np.float32(0.5) * edge_field(base, (px, px), 10.0), psf_nm / px))
    return np.stack(out) + np.random.default_rng(seed).normal(0, noise, (len(out), *out[0].shape)).astype(np.float32)


@pytest.mark.parametrize("px", [5.0, 20.0])
def test_rim_correction_at_other_pixel_sizes(px):
    """The rim is a length (10 nm), not a voxel: two voxels each side at 5 nm pixels, half a voxel
    (averaged into one) at 20 nm.  The fitted rim width puts the boundary back within 0.15 voxel
    (a one-voxel rim model was 1.0 voxel off at 5 nm, its fit rejected)."""
    n, b = 48, 24
    bright = np.zeros((2, n, 64), bool)
    bright[:, b:] = True
    lay = Layers(axis=1, anode_first=True, heights={"sodium|sei": np.full((2, 64), b + 1.4)}, present=_PRESENT, length=n)
    out = refine_interface(_rimmed_image(bright, px), lay, "sodium|sei", voxel_size_nm=(px, px, px), window_nm=40.0,
                           lateral_nm=10.0, rim=True)
    assert abs(out.heights["sodium|sei"].mean() - b) < 0.15
    assert out.edges["sodium|sei"]["accepted"]


def test_rim_threshold_at_5nm_pixels():
    """Bright discs with two-voxel rims (10 nm at 5 nm pixels): the rim-aware threshold, from the
    rim fit on a straight edge, keeps the discs' area (a one-voxel rim model left them 10 % too large)."""
    from skimage.filters import threshold_otsu

    yy, xx = np.mgrid[:160, :160]
    discs = np.zeros((2, 160, 160), bool)
    for cy, cx in ((40, 40), (40, 116), (116, 48), (110, 118)):
        discs[:, (yy - cy) ** 2 + (xx - cx) ** 2 < 24 ** 2] = True
    img = _rimmed_image(discs, 5.0)
    step = np.zeros((2, 48, 96), bool)
    step[:, 24:] = True
    lay = Layers(axis=1, anode_first=True, heights={"sodium|sei": np.full((2, 96), 25.0)}, present=_PRESENT, length=48)
    edge = refine_interface(_rimmed_image(step, 5.0), lay, "sodium|sei", voxel_size_nm=(5, 5, 5), window_nm=40.0,
                            lateral_nm=10.0, rim=True).edges["sodium|sei"]
    vals = img.ravel()
    thr = rim_threshold(vals, float(threshold_otsu(vals)), edge, [0.0, 0.0, 0.0])
    true = discs.sum()
    assert abs((img > thr).sum() - true) < 0.04 * true


def test_core_opening_sized_in_nm():
    """The opening of fibres/particles removes a 10 nm shell of wrong class at any pixel size (two
    voxels at 5 nm pixels) and keeps a 150 nm object's core."""
    from volrecon.segment.layers import _core, core_radius

    yy, xx = np.mgrid[:80, :80]
    r2 = (yy - 40) ** 2 + (xx - 40) ** 2
    shell = np.repeat(((r2 >= 15 ** 2) & (r2 < 17 ** 2))[None], 2, axis=0)  # 2 voxels wide at 5 nm
    disc = np.repeat((r2 < 15 ** 2)[None], 2, axis=0)  # 150 nm across
    rad = core_radius((5.0, 5.0, 5.0))
    assert not _core(shell, rad).any()
    assert _core(disc, rad).sum() > 0.9 * disc.sum()
    assert core_radius((10.0, 10.0, 10.0)) == (1, 1) and core_radius((20.0, 20.0, 20.0)) == (1, 1)


def test_segment_volume_passes_the_rim_length(diglyme, monkeypatch):
    """``segment_volume(edge_rim_nm=)`` reaches the rim fit (an instrument with other rims)."""
    from volrecon.segment import api, segment_volume

    seen = []
    real = api.refine_interface

    def spy(*args, **kw):
        seen.append((args[2], kw.get("rim_nm")))
        return real(*args, **kw)

    monkeypatch.setattr(api, "refine_interface", spy)
    ph, img = diglyme
    res = segment_volume(img[:6], voxel_size_nm=ph.voxel_size_nm, method="auto", edge_rim_nm=20.0, void_split=False)
    # both surfaces moved onto a grey step with rims corrected: the foil's and the sodium's
    assert sorted(seen) == [("cathode|collector", 20.0), ("sodium|sei", 20.0)]
    assert res.parameters["sei"]["found"]
