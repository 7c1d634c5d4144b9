"""Faster kernels of the void split and the layer detection against their reference forms, bit for bit."""

import numpy as np
import pytest
from scipy import ndimage as ndi

from volrecon.phases import PHASES
from volrecon.segment._geodesic import bounded_growth
from volrecon.segment._label_counts import axis_value_counts, group_counts
from volrecon.segment.layers import _block_profiles, _group_values, _indicators, _member
from volrecon.segment.voids import VoidCues, dark_cores, slice_histograms, slice_level_edges


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
