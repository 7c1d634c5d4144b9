"""Faster kernels of the void split and the layer detection against their reference forms, bit for bit."""

import numpy as np
import pytest
from scipy import ndimage as ndi

from volrecon.phases import PHASES, REGIONS
from volrecon.segment._geodesic import bounded_growth
from volrecon.segment._label_counts import axis_value_counts, group_counts
from volrecon.segment.layers import (
    INTERFACES, Layers, _block_profiles, _group_values, _indicators, _member, region_block, sample_columns,
)
from volrecon.segment.voids import (
    VoidCues, continue_down, dark_cores, electrolyte_columns, slice_histograms, slice_level_edges,
)


@pytest.mark.parametrize("shape", [(9,), (7, 11), (5, 13, 17), (1, 40, 30), (16, 48, 40)])
@pytest.mark.parametrize("density", [0.3, 0.6, 0.95])
@pytest.mark.parametrize("steps", [1, 2, 6, 100])
def test_bounded_growth_is_scipys_masked_dilation(shape, density, steps):
    rng = np.random.default_rng(len(shape) * 1000 + steps)
    mask = rng.random(shape) < density
    start = mask & (rng.random(shape) < 0.03)
    ref = ndi.binary_dilation(start, ndi.generate_binary_structure(len(shape), 1), iterations=steps, mask=mask)
    got = bounded_growth(start, mask, steps)
    assert got.dtype == bool and got.shape == ref.shape
    assert np.array_equal(got, ref)


def test_bounded_growth_reaches_exactly_steps_along_a_corridor():
    # a one-voxel corridor: the growth goes exactly `steps` voxels, never across the gap in the mask
    mask = np.zeros((3, 1, 20), bool)
    mask[1, 0, :12] = True
    mask[1, 0, 13:] = True
    start = np.zeros_like(mask)
    start[1, 0, 0] = True
    got = bounded_growth(start, mask, 5)
    assert np.flatnonzero(got[1, 0]).tolist() == [0, 1, 2, 3, 4, 5]
    assert not bounded_growth(start, mask, 50)[1, 0, 13:].any()


@pytest.mark.parametrize("ndim", [2, 3])
def test_dark_cores_equal_the_scipy_growth(ndim):
    rng = np.random.default_rng(ndim)
    shape = (12, 64, 64)[3 - ndim:]
    dark = ndi.gaussian_filter(rng.normal(size=shape), 2.0) * 40
    space = rng.random(shape) < 0.8
    cues = VoidCues()
    vox = (20.0, 12.7, 10.0)
    seeds = space & (dark > cues.dark_k)
    steps = max(1, int(np.ceil(3.0 * cues.average_nm / 10.0)))
    ref = ndi.binary_dilation(seeds & (dark > cues.core_k), ndi.generate_binary_structure(ndim, 1), iterations=steps,
                              mask=seeds)
    got = dark_cores(dark, space, cues=cues, voxel_size_nm=vox)
    assert ref.any() and (seeds & ~ref).any()  # the bound matters here
    assert np.array_equal(got, ref)


def _reference_histograms(values, edges):
    """The binning by searchsorted over every voxel (the former form of slice_histograms)."""
    v = np.asarray(values)
    nz, nb = v.shape[0], len(edges) - 1
    b = np.searchsorted(edges, v.reshape(nz, -1), side="right") - 1
    keep = (b >= 0) & (b < nb) & np.isfinite(v.reshape(nz, -1))
    z = np.broadcast_to(np.arange(nz)[:, None], b.shape)
    return np.bincount((z[keep] * nb + b[keep]).ravel(), minlength=nz * nb).reshape(nz, nb)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_slice_histograms_equal_searchsorted_on_every_voxel(dtype):
    rng = np.random.default_rng(3)
    edges = slice_level_edges(0.3, 0.02)
    v = rng.normal(0.3, 0.1, size=(6, 40, 50)).astype(dtype)
    v[rng.random(v.shape) < 0.4] = np.nan
    # values on the edges, just inside and outside them, and infinities
    v[0, 0, :8] = [edges[0], edges[-1], np.nextafter(edges[-1], -1), np.nextafter(edges[0], -1), np.inf, -np.inf,
                   edges[7], edges[300]]
    ref = _reference_histograms(v, edges)
    got = slice_histograms(v, edges)
    assert got.dtype == ref.dtype and np.array_equal(got, ref)
    assert got.sum() > 0


def test_member_is_isin():
    rng = np.random.default_rng(4)
    block = rng.integers(0, 10, size=(4, 30, 30)).astype(np.uint8)
    for vals in ([], [3], [3, 4], [4, 3, 3], [9, 0]):
        assert np.array_equal(_member(block, vals), np.isin(block, np.asarray(vals, dtype=block.dtype)))


def _reference_profiles(block, values, frame):
    """Per group (and valid), the mask sums along each axis (the former form of _block_profiles)."""
    out = {}
    for k, m in _indicators(block, values, frame, cores=False).items():
        out[k] = [m.sum(axis=(1, 2)), m.sum(axis=(0, 2)), m.sum(axis=(0, 1))]
    return out


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32])
@pytest.mark.parametrize("frame", [None, PHASES["frame"]])
def test_block_profiles_equal_the_mask_sums(dtype, frame):
    rng = np.random.default_rng(5)
    block = rng.integers(0, max(PHASES.values()) + 1, size=(5, 23, 31)).astype(dtype)
    values = _group_values(PHASES)
    ref, got = _reference_profiles(block, values, frame), _block_profiles(block, values, frame)
    assert list(ref) == list(got)
    for k in ref:
        for a, b in zip(ref[k], got[k]):
            assert a.dtype == b.dtype and np.array_equal(a, b)


def test_axis_value_counts_add_up_and_refuse_negatives():
    block = np.array([[[0, 1, 1], [2, 2, 2]]], dtype=np.int8)
    cz, cy, cx = axis_value_counts(block)
    assert cz.tolist() == [[1, 2, 3]]
    assert cy.tolist() == [[1, 2, 0], [0, 0, 3]]
    assert group_counts(cx, [1, 2, 7]).tolist() == [1, 2, 2]
    assert axis_value_counts(-block) is None


def _reference_region_block(layers, block_slices, shape, phases=None, frame_value=None, region_values=REGIONS):
    """region_block's former whole-block NumPy form (a uint8 pass per interface, then the lookup)."""
    ax = layers.axis
    lat = [a for a in range(3) if a != ax]
    s = np.arange(block_slices[ax].start, block_slices[ax].start + shape[ax]) + 0.5
    m = shape[ax]

    def hmap(name):
        h = layers.heights.get(name)
        return None if h is None else h[block_slices[lat[0]].start: block_slices[lat[0]].start + shape[lat[0]],
                                        block_slices[lat[1]].start: block_slices[lat[1]].start + shape[lat[1]]]

    ends = [("anode", "sei|separator", "sodium"), ("separator", "separator|cathode", "separator"),
            ("cathode", "cathode|collector", "cathode"), ("collector", None, "collector")]
    present = [(r, i) for r, i, g in ends if layers.present[g]]
    index = np.arange(m).reshape([m if a == ax else 1 for a in range(3)])
    passed = np.zeros(shape, dtype=np.uint8)
    bound = None
    for k in range(len(present)):
        h = next((hm for hm in (hmap(i) if i is not None else None for _, i in present[k:]) if hm is not None), None)
        if h is None:
            break
        if layers.anode_first:
            at = np.where(np.isnan(h), 0, np.searchsorted(s, h, side="left"))
            bound = at if bound is None else np.maximum(bound, at)
            passed += index >= np.expand_dims(bound, ax)
        else:
            at = np.searchsorted(s, h, side="right")
            bound = at if bound is None else np.minimum(bound, at)
            passed += index < np.expand_dims(bound, ax)
    lut = np.zeros(len(present) + 1, dtype=np.uint8)
    lut[:len(present)] = [region_values[r] for r, _ in present]
    out = lut[passed]
    if phases is not None:
        np.copyto(out, 0, where=phases == 0)
        if frame_value is not None:
            np.copyto(out, region_values.get("frame", 0), where=phases == frame_value)
    return out


@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize("anode_first", [True, False])
@pytest.mark.parametrize("with_phases", [False, True])
def test_region_block_equals_the_numpy_lookup(axis, anode_first, with_phases):
    rng = np.random.default_rng(axis * 4 + anode_first * 2 + with_phases)
    shape_vol = (20, 24, 28)
    n = shape_vol[axis]
    lat_shape = tuple(v for a, v in enumerate(shape_vol) if a != axis)
    base = np.sort(rng.uniform(-2, n + 2, size=(4,)))
    heights = {name: base[k] + rng.normal(0, 3, size=lat_shape) for k, name in enumerate(INTERFACES)}
    heights["separator|cathode"][rng.random(lat_shape) < 0.1] = np.nan  # columns without it
    for present, drop in [({"sodium": True, "separator": True, "cathode": True, "collector": True}, None),
                          ({"sodium": True, "separator": False, "cathode": False, "collector": True}, "separator|cathode"),
                          ({"sodium": False, "separator": True, "cathode": True, "collector": False}, "cathode|collector")]:
        hs = dict(heights)
        if drop:
            hs[drop] = None
        lay = Layers(axis=axis, anode_first=anode_first, heights=hs, present=present, length=n)
        phases = rng.integers(0, 10, size=(7, 9, 11)).astype(np.uint8) if with_phases else None
        for corner in [(0, 0, 0), (13, 15, 17), (5, 0, 9)]:
            sl = tuple(slice(c, c + w) for c, w in zip(corner, (7, 9, 11)))
            for frame in ([None, PHASES["frame"]] if with_phases else [None]):
                ref = _reference_region_block(lay, sl, (7, 9, 11), phases=phases, frame_value=frame)
                got = region_block(lay, sl, (7, 9, 11), phases=phases, frame_value=frame)
                assert got.dtype == ref.dtype and np.array_equal(got, ref)


def _reference_electrolyte_columns(g, level, spread, depth, flat_k):
    """electrolyte_columns' former whole-array form (a float32 pass per slice of depth)."""
    g = np.asarray(g, dtype=np.float32)
    tol = float(flat_k) * max(float(spread), 1e-12)
    dev = np.abs(g - np.float32(level))
    acc = np.zeros(g.shape, dtype=np.float32)
    cnt = np.zeros(g.shape[0], dtype=np.float32)
    for j in range(1, min(int(depth), g.shape[0] - 1) + 1):
        acc[:-j] += dev[j:]
        cnt[:-j] += 1
    flat = (dev < tol) & (acc / np.maximum(cnt, 1.0)[:, None, None] < tol)
    flat[cnt == 0] = False
    return flat


@pytest.mark.parametrize("depth", [1, 2, 5, 30])
def test_electrolyte_columns_equal_the_float32_passes(depth):
    rng = np.random.default_rng(depth)
    g = (0.3 + rng.normal(0, 0.02, size=(12, 30, 40))).astype(np.float32)
    g[rng.random(g.shape) < 0.01] = np.nan
    for fk in (0.5, 1.0, 2.0):
        ref = _reference_electrolyte_columns(g, 0.3, 0.02, depth, fk)
        assert ref.any() and not ref.all()
        assert np.array_equal(electrolyte_columns(g, level=0.3, spread=0.02, depth=depth, flat_k=fk), ref)
        where = rng.random(g.shape) < 0.5
        got = electrolyte_columns(g, level=0.3, spread=0.02, depth=depth, flat_k=fk, where=where)
        assert np.array_equal(got, ref & where)


def _reference_continue_down(mask, space, steps):
    """continue_down's former slice-by-slice form (any dimension, along the first axis)."""
    grown = np.array(mask, dtype=bool, copy=True)
    step = grown
    for _ in range(int(steps)):
        nxt = np.zeros_like(step)
        nxt[1:] = step[:-1]
        step = nxt & space & ~grown
        if not step.any():
            break
        grown |= step
    return grown


@pytest.mark.parametrize("steps", [0, 1, 3, 40])
def test_continue_down_equals_the_slice_by_slice_growth(steps):
    rng = np.random.default_rng(steps)
    for dm, ds in ((0.02, 0.8), (0.2, 0.5)):
        mask = rng.random((25, 16, 18)) < dm
        space = rng.random(mask.shape) < ds
        assert np.array_equal(continue_down(mask, space, steps), _reference_continue_down(mask, space, steps))


def _reference_sample_columns(vol, pos):
    """sample_columns' former form (take_along_axis of the two neighbours)."""
    n = vol.shape[-1]
    x = np.clip(pos - 0.5, 0, n - 1)
    i0 = np.floor(x).astype(np.int64)
    i1 = np.minimum(i0 + 1, n - 1)
    f = x - i0
    return (1 - f) * np.take_along_axis(vol, i0, axis=-1) + f * np.take_along_axis(vol, i1, axis=-1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sample_columns_equal_take_along_axis(dtype):
    rng = np.random.default_rng(6)
    vol = rng.random((4, 50, 37)).astype(dtype)
    cases = [rng.uniform(-3, 45, (4, 50, 9)), rng.uniform(2, 30, (4, 50, 1)),
             np.broadcast_to(np.array([0.5, 36.5, 37.0, -1e300, 1e300, np.inf, -np.inf, 12.25]), (4, 50, 8)).copy()]
    for pos in cases:
        ref, got = _reference_sample_columns(vol, pos), sample_columns(vol, pos)
        assert got.dtype == ref.dtype and got.shape == ref.shape and np.array_equal(got, ref)
    # what the kernel does not take (float32 positions) goes the NumPy way, unchanged
    pos32 = cases[0].astype(np.float32)
    assert np.array_equal(sample_columns(vol, pos32), _reference_sample_columns(vol, pos32))


def _histograms_by_search(values, edges):
    """Each slice's histogram by a binary search per value (the form the compiled pass replaces)."""
    v, e = np.asarray(values), np.asarray(edges)
    nz, nb = v.shape[0], len(e) - 1
    flat = v.reshape(nz, -1)
    common = np.result_type(flat.dtype, e.dtype)
    zi, xi = np.nonzero((flat >= e[0].astype(common)) & (flat < e[-1].astype(common)))
    b = np.searchsorted(e, flat[zi, xi], side="right") - 1
    return np.bincount(zi * nb + b, minlength=nz * nb).reshape(nz, nb)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16])
def test_slice_histograms_are_the_binary_searchs(dtype):
    """Every value in the bin the binary search gives: values on the edges (first, inner, last), NaN,
    values outside, uneven edges and float32 edges too."""
    from volrecon.segment.voids import slice_histograms, slice_level_edges

    rng = np.random.default_rng(1)
    even = slice_level_edges(0.31, 0.02)
    for edges in (even, np.sort(rng.uniform(0.2, 0.4, 40)), even.astype(np.float32)):
        scale = 1000 if dtype == np.int16 else 1
        e = edges * scale
        v = rng.normal(0.31, 0.05, (5, 30, 20)) * scale
        v.flat[:60] = e[rng.integers(0, e.size, 60)]
        if dtype != np.int16:
            v[rng.random(v.shape) < 0.2] = np.nan
        v = v.astype(dtype)
        got = slice_histograms(v, e)
        want = _histograms_by_search(v, e)
        assert got.dtype == np.int64 and got.shape == want.shape
        np.testing.assert_array_equal(got, want)
