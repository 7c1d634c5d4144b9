"""The compiled kernels' guards and the cases review #7 found untested: shape checks of every
wrapper (numba does not check bounds), continue_down on any dimension, the value bound of the
label counts, float32 accumulation of electrolyte_columns, _CoarseMaps' smoothing and the
edge_rim_shift start."""

import numpy as np
import pytest
from scipy import ndimage as ndi

from volrecon.phases import PHASES
from volrecon.segment import layers
from volrecon.segment._columns import interpolate_columns
from volrecon.segment._geodesic import bounded_growth
from volrecon.segment._label_counts import TABLE_VALUES, axis_value_counts
from volrecon.segment._regions import label_block
from volrecon.segment._void_kernels import continue_columns, flat_columns
from volrecon.segment.layers import _block_profiles, _group_values, _indicators, edge_rim_shift, gaussian_reach
from volrecon.segment.voids import continue_down, electrolyte_columns

from tests.segment.test_speed_kernels import _reference_continue_down  # the former form works on any dimension

# --- shape checks: each wrapper raises where the kernel would read outside its arrays -----------


def test_continue_columns_refuses_other_shapes():
    mask = np.zeros((4, 5, 6), bool)
    with pytest.raises(ValueError, match="shape"):
        continue_columns(mask, np.ones((4, 5, 3), bool), 2)
    with pytest.raises(ValueError, match="shape"):
        continue_columns(mask[0], np.ones((5, 6), bool), 2)  # 2D: continue_down reshapes, the kernel does not
    with pytest.raises(ValueError, match="steps"):
        continue_columns(mask, mask, -1)


def test_continue_down_refuses_a_space_that_does_not_fit():
    # the reviewer's case: it returned a result, reading space beyond its last column
    with pytest.raises(ValueError):
        continue_down(np.zeros((4, 5, 6), bool), np.ones((4, 5, 3), bool), 2)
    with pytest.raises(ValueError):
        continue_down(np.array(True), np.array(True), 2)


def test_flat_columns_refuses_other_shapes():
    g = np.full((6, 5, 4), 0.3, np.float32)
    with pytest.raises(ValueError, match="where"):
        flat_columns(g, 0.3, 0.1, 2, where=np.ones((6, 5, 3), bool))
    with pytest.raises(ValueError, match="3D"):
        flat_columns(g[0], 0.3, 0.1, 2)
    with pytest.raises(ValueError, match="depth"):
        flat_columns(g, 0.3, 0.1, 0)
    # and through electrolyte_columns
    with pytest.raises(ValueError, match="where"):
        electrolyte_columns(g, level=0.3, spread=0.05, depth=2, flat_k=1.0, where=np.ones((2, 5, 4), bool))
    assert flat_columns(g, 0.3, 0.1, 2, where=np.ones(g.shape, bool))[:-1].all()


def test_bounded_growth_refuses_other_shapes():
    # the reviewer's case: it returned 16 voxels, reading mask beyond its end
    start = np.zeros((4, 5, 6), bool)
    start[3, 2, 2] = True
    with pytest.raises(ValueError, match="shape"):
        bounded_growth(start, np.ones((2, 5, 6), bool), 3)
    with pytest.raises(ValueError, match="shape"):
        bounded_growth(start[None], np.ones((1, 4, 5, 6), bool), 3)
    with pytest.raises(ValueError, match="steps"):
        bounded_growth(start, np.ones_like(start), 0)


def test_label_block_refuses_other_shapes():
    shape = (6, 7, 8)
    bounds = [np.full((7, 8), 2), np.full((7, 8), 4)]
    lut = np.array([1, 2, 3], np.uint8)
    ok = label_block(bounds, shape, 0, True, lut, phases=np.ones(shape, np.uint8))
    assert ok.shape == shape and ok[:2].tolist() == np.full((2, 7, 8), 1).tolist() and (ok[4:] == 3).all()
    with pytest.raises(ValueError, match="phases"):
        label_block(bounds, shape, 0, True, lut, phases=np.ones((6, 7, 3), np.uint8))
    with pytest.raises(ValueError, match="phases"):
        label_block(bounds, shape, 0, True, lut, phases=np.ones((6, 7), np.uint8))
    with pytest.raises(ValueError, match="lut"):
        label_block(bounds, shape, 0, True, lut[:2])
    with pytest.raises(ValueError):
        label_block([np.full((7, 3), 2)], shape, 0, True, lut)  # a bound map of another lateral shape
    with pytest.raises(ValueError, match="axis"):
        label_block(bounds, shape, 3, True, lut)
    with pytest.raises(ValueError, match="frame_value"):
        label_block(bounds, shape, 0, True, lut, phases=np.ones(shape, np.uint8), frame_value=-2)


def test_interpolate_columns_declines_other_shapes():
    vol = np.zeros((3, 4, 10), np.float32)
    assert interpolate_columns(vol, np.zeros((3, 5, 2))) is None
    assert interpolate_columns(vol, np.zeros((3, 4))) is None
    assert interpolate_columns(vol, np.full((3, 4, 2), 5.0)).shape == (3, 4, 2)


# --- continue_down on any dimension (dark_cores takes 2D slices) -------------------------------


@pytest.mark.parametrize("shape", [(30,), (25, 18), (12, 5, 6, 4), (0, 7), (9, 0, 3)])
@pytest.mark.parametrize("steps", [0, 1, 4, 50])
def test_continue_down_grows_along_the_first_axis_in_any_dimension(shape, steps):
    rng = np.random.default_rng(len(shape) * 100 + steps)
    mask = rng.random(shape) < 0.08
    space = rng.random(shape) < 0.7
    if mask.size:
        mask[(0,) * len(shape)] = True  # a voxel with space below it: the growth shows
        space[(1,) + (0,) * (len(shape) - 1)] = True
    ref = _reference_continue_down(mask, space, steps)
    got = continue_down(mask, space, steps)
    assert got.shape == ref.shape and got.dtype == bool and np.array_equal(got, ref)
    if steps and mask.size:
        assert (got & ~mask).any()  # it did grow


def test_continue_down_broadcasts_space_as_the_former_form():
    rng = np.random.default_rng(11)
    mask = rng.random((20, 9, 7)) < 0.1
    space = rng.random((1, 9, 7)) < 0.6  # one in-plane pore map for every slice
    assert np.array_equal(continue_down(mask, space, 5), _reference_continue_down(mask, space, 5))


# --- axis_value_counts: the tables' size is bounded ---------------------------------------------


def _mask_sums(block, values, frame):
    return {k: [m.sum(axis=(1, 2)), m.sum(axis=(0, 2)), m.sum(axis=(0, 1))]
            for k, m in _indicators(block, values, frame, cores=False).items()}


@pytest.mark.parametrize("large", [TABLE_VALUES, 60000, 2 ** 30])
def test_axis_value_counts_decline_large_labels_and_profiles_stay_exact(large):
    rng = np.random.default_rng(7)
    dtype = np.uint16 if large < 2 ** 16 else np.int32
    block = rng.integers(0, max(PHASES.values()) + 1, size=(4, 21, 17)).astype(dtype)
    block[2, 3, 4] = large  # one object id far above the phases
    assert axis_value_counts(block) is None  # no table with a column per value up to it
    values = _group_values(PHASES)
    ref, got = _mask_sums(block, values, PHASES["frame"]), _block_profiles(block, values, PHASES["frame"])
    assert list(ref) == list(got)
    for k in ref:
        for a, b in zip(ref[k], got[k]):
            assert a.dtype == b.dtype and np.array_equal(a, b)
    assert got["valid"][0].sum() == np.count_nonzero((block != 0) & (block != PHASES["frame"]))


def test_axis_value_counts_keep_tables_below_the_bound():
    block = np.zeros((2, 3, 4), np.uint16)
    block[1, 2, 3] = TABLE_VALUES - 1
    cz, cy, cx = axis_value_counts(block)
    assert cz.shape == (2, TABLE_VALUES) and cz[1, TABLE_VALUES - 1] == 1 and cz[:, 0].tolist() == [12, 11]


# --- electrolyte_columns accumulates in float32 -------------------------------------------------


def test_electrolyte_columns_sum_in_float32_not_float64():
    # columns (level 0, tol 1, 4 slices behind the face) whose deviations behind sum to just below
    # 4 exactly but to 4.0 in float32 steps: their mean is not below tol in float32, it is in float64
    u = 2.0 ** -23
    behind = np.array([1.0, 1.0 - 13 * u, 1.0 + 20 * u, 1.0 - 9 * u], np.float32)
    acc32 = np.float32(0.0)
    for v in behind:
        acc32 = np.float32(acc32 + v)
    acc64 = float(np.sum(behind.astype(np.float64)))
    assert acc32 / np.float32(4) >= np.float32(1.0) and acc64 / 4.0 < 1.0  # the case tells them apart
    g = np.zeros((5, 2, 3), np.float32)
    g[0] = 0.5  # the face: within tol
    g[1:, 0, :] = behind[:, None]
    g[1:, 1, :] = 0.5  # control columns: clearly flat
    got = electrolyte_columns(g, level=0.0, spread=1.0, depth=4, flat_k=1.0)
    assert not got[0, 0].any()  # float32: the mean reaches tol
    assert got[0, 1].all()
    assert np.array_equal(got, electrolyte_columns(g, level=0.0, spread=1.0, depth=4, flat_k=1.0,
                                                   where=np.ones(g.shape, bool)))


# --- _CoarseMaps smooths with smooth_region as scipy's passes did -------------------------------


def _former_smoothed(maps, key, sigma, a0, a1, halo):
    """_CoarseMaps' former smoothing: gaussian_filter1d along a over the rows with context, cropped,
    then along b."""
    b0, b1 = max(0, a0 - halo), min(maps.shape[0], a1 + halo)
    out = maps.counts([key], b0, b1)[key]
    for ax in (0, 1):
        if sigma[ax] > 1e-15:
            out = ndi.gaussian_filter1d(out, sigma[ax], axis=ax, mode="nearest", truncate=3.0)
        if ax == 0:
            out = out[a0 - b0: a1 - b0]
    return out


def _former_shares(maps, keys, a0, a1):
    narrow = [k for k in keys if k in layers._NARROW]
    wide = [k for k in keys if k not in layers._NARROW]
    halo = gaussian_reach(max(maps.sigma[0] if narrow else 0.0, maps.wide[0] if wide else 0.0))
    out = {}
    if narrow:
        valid = np.maximum(_former_smoothed(maps, "valid", maps.sigma, a0, a1, halo), 1e-6)
        out.update({k: _former_smoothed(maps, k, maps.sigma, a0, a1, halo) / valid for k in narrow})
    if wide:
        out["valid_wide"] = _former_smoothed(maps, "valid", maps.wide, a0, a1, halo)
        wvalid = np.maximum(out["valid_wide"], 1e-6)
        for g in ("separator", "active", "cathode"):
            out[f"wide_{g}"] = _former_smoothed(maps, g, maps.wide, a0, a1, halo) / wvalid
        out["dense"] = out["wide_active"] + _former_smoothed(maps, "collector", maps.wide, a0, a1, halo) / wvalid
    return {k: out[k] for k in keys}


_NARROW_KEYS = ["sodium", "sei", "cathode", "collector"]
_WIDE_KEYS = ["wide_separator", "wide_active", "wide_cathode", "valid_wide", "dense"]


@pytest.mark.parametrize("axis", [0, 2])
@pytest.mark.parametrize("sigma", [(1.5, 1.0), (0.0, 2.0), (0.7, 0.0)])
@pytest.mark.parametrize("case", ["plain", "flipped", "levelled"])
def test_coarse_maps_shares_equal_the_scipy_passes(monkeypatch, axis, sigma, case):
    monkeypatch.setattr(layers, "BLOCK_CELLS", 1)  # blocks as small as the context allows: several
    rng = np.random.default_rng(axis * 10 + int(10 * sigma[0]))
    lat_shape, depth = (40, 13), 30
    shape = list(lat_shape)
    shape.insert(axis, depth)
    groups = ["valid", "sodium", "sei", "separator", "active", "cathode", "collector"]
    sums = {k: rng.integers(0, 50, size=shape).astype(np.float32) for k in groups}
    maps = layers._CoarseMaps(sums, axis, sigma)
    assert len(maps.blocks) > 1 or sigma[0] == 0.0
    shift = rng.integers(-4, 5, size=lat_shape)
    maps.flip = case == "flipped"

    def check() -> None:
        for a0, a1 in maps.blocks:
            for keys in (_NARROW_KEYS, _WIDE_KEYS):
                got, ref = maps.shares(keys, a0, a1), _former_shares(maps, keys, a0, a1)
                for k in keys:
                    assert got[k].shape == ref[k].shape and np.array_equal(got[k], ref[k]), (k, a0)

    if case == "levelled":
        with maps.levelled(shift, (3, depth - 5)):
            check()
    else:
        check()


# --- edge_rim_shift: a profile that ends below its start (26a4e20) ------------------------------


def test_edge_rim_shift_takes_a_profile_ending_below_its_start():
    # a median edge profile that falls (no step up, as on the tiled speed stack): its far level
    # (the profile's end) is below the fit's bound; least_squares refused the start (ValueError)
    offsets = np.arange(-8, 9, dtype=float)
    profile = 0.4 - 0.3 * (offsets > 0) + 0.01 * np.cos(offsets)
    shift, fit = edge_rim_shift(offsets, profile, 1.0)
    assert shift == 0.0 and fit["accepted"] is False
    shift, fit = edge_rim_shift(offsets, profile, None)
    assert shift == 0.0 and fit["accepted"] is False
    # a step up is still fitted
    up = 0.1 + 0.5 * ndi.gaussian_filter1d((offsets > 0.4).astype(float), 1.0)
    shift, fit = edge_rim_shift(offsets, up, 1.0)
    assert fit["accepted"] and abs(shift - 0.4) < 0.5
