"""The compiled apply path (one pass per slice) against plain numpy implementations of the same corrections."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

from volrecon.correct import BrightnessTable, CurtainSettings, ShadingField, correct_volume, estimate_curtains
from volrecon.correct._curtains_median import median_network, shift_median
from volrecon.correct._curtains_onset import find_onsets, with_stripes
from volrecon.correct._intensity import affine_slice, restore_dtype
from volrecon.correct.brightness import brightness_terms
from volrecon.correct.curtains import _block_rows, _stripe_nodes, _tap_offsets, remove_stripes
from volrecon.correct.shading import shading_terms


def numpy_affine(plane, dtype, field=None, gain=None, offset=0.0):
    out = plane.astype(np.float32)
    if field is not None:
        out *= field[0]
        out += field[1]
    if gain is not None:
        out *= np.float32(gain)
        out += np.float32(offset)
    return restore_dtype(out, dtype, overwrite=True)


@pytest.mark.parametrize("in_dtype", [np.uint8, np.uint16, np.int16, np.float16, np.float32, np.float64])
def test_affine_slice_is_the_numpy_chain_to_the_bit(in_dtype):
    rng = np.random.default_rng(1)
    shape = (37, 53)
    if np.dtype(in_dtype).kind == "u":
        plane = rng.integers(0, np.iinfo(in_dtype).max, shape).astype(in_dtype)
    else:
        plane = rng.uniform(-300, 70000, shape).astype(in_dtype)
    if np.dtype(in_dtype).kind == "f":
        plane[0, :4] = [np.nan, np.inf, -np.inf, 3e38]
    field = (rng.uniform(0.5, 2, shape).astype(np.float32), rng.normal(0, 30, shape).astype(np.float32))
    for out_dtype in (np.float16, np.float32, np.float64, np.uint8, np.uint16, np.int16, np.int32):
        for f in (None, field):
            for gain, offset in ((None, 0.0), (np.float32(1.37), np.float32(-3.3))):
                got = affine_slice(plane, out_dtype, field=f, gain=gain, offset=offset)
                want = numpy_affine(plane, out_dtype, f, gain, offset)
                assert got.dtype == want.dtype
                np.testing.assert_array_equal(got, want)


def numpy_network_median(views):
    vals = list(views)
    for a, b, lo, hi in median_network(len(vals)):
        x, y = vals[a], vals[b]
        if lo:
            vals[a] = np.minimum(x, y)
        if hi:
            vals[b] = np.maximum(x, y)
    n = len(vals)
    return vals[n // 2] if n % 2 else (vals[n // 2 - 1] + vals[n // 2]) * np.float32(0.5)


@pytest.mark.parametrize("n", [1, 2, 5, 7, 11])
def test_shift_median_is_the_median_of_the_windows(n):
    rng = np.random.default_rng(n)
    pad = rng.normal(size=(40, 70)).astype(np.float32)
    rows, cols = rng.integers(0, 10, n), rng.integers(0, 12, n)
    windows = [pad[r : r + 30, c : c + 58] for r, c in zip(rows, cols)]
    got = shift_median(pad, rows, cols, (30, 58))
    np.testing.assert_array_equal(got, np.median(np.stack(windows), axis=0).astype(np.float32))
    # NaN goes where numpy's min/max network sends it
    pad[5, 7] = pad[20, 33] = np.nan
    windows = [pad[r : r + 30, c : c + 58] for r, c in zip(rows, cols)]
    np.testing.assert_array_equal(shift_median(pad, rows, cols, (30, 58)), numpy_network_median(windows))
    with pytest.raises(ValueError):
        shift_median(pad, rows, cols + 20, (30, 58))


def numpy_stripe_image(shape, nodes, block, split):
    """The stripe image by definition: np.interp between block centres, steps at the onsets."""
    n_rows = shape[0]
    centres = (np.arange(nodes.shape[0]) + 0.5) * block - 0.5
    rows = np.arange(n_rows)
    out = np.stack([np.interp(rows, centres, nodes[:, x]) for x in range(nodes.shape[1])], axis=1)
    for k, x in zip(*np.nonzero(split >= 0)):
        if k == 0:
            continue
        r0, r1 = int(np.ceil(centres[k - 1])), min(int(np.floor(centres[k])) + 1, n_rows)
        out[r0:r1, x] = np.where(np.arange(r0, r1) < split[k, x], nodes[k - 1, x], nodes[k, x])
    return out


def striped_slice(seed=0, shape=(200, 96)):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[: shape[0], : shape[1]]
    img = np.where(y < 90, 80.0, 140.0) + rng.normal(0, 3, shape)
    for col, start, amp in ((20, 37, 30.0), (55, 101, -25.0), (80, 0, 18.0)):
        img[start:] += amp * np.exp(-0.5 * ((np.arange(shape[1]) - col) / 1.5) ** 2)
    return img.astype(np.float32)


@pytest.mark.parametrize("block", [16, 12, 5])
def test_with_stripes_is_the_interpolated_image_with_steps(block):
    plane = striped_slice()
    settings = CurtainSettings(block=block)
    nodes = _stripe_nodes(plane, settings)
    b = _block_rows(plane, settings)
    split = find_onsets(plane, nodes, b, _tap_offsets(settings.width_px))
    if block == 16:
        assert (split >= 0).any()  # the stripes' starts are placed as steps
    for s in (None, split):
        want = plane - numpy_stripe_image(plane.shape, nodes.astype(np.float64), b, split if s is not None else np.full(nodes.shape, -1))
        got = with_stripes(plane, nodes, b, s, sign=-1.0)
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=0, atol=2e-4)
        np.testing.assert_array_equal(with_stripes(plane, nodes, b, s, sign=-1.0, dtype=np.uint8), restore_dtype(got, np.uint8))
        # float16 (no numba arrays of it) in and out: widened exactly, cast as restore_dtype does
        half = with_stripes(plane.astype(np.float16), nodes, b, s, sign=-1.0, dtype=np.float16)
        np.testing.assert_array_equal(half, restore_dtype(with_stripes(plane.astype(np.float16).astype(np.float32), nodes, b, s,
                                                                       sign=-1.0), np.float16))
    # one block: the one node everywhere
    one = with_stripes(np.zeros((7, 96), np.float32), nodes[:1], 16, None)
    np.testing.assert_array_equal(one, np.broadcast_to(nodes[:1], (7, 96)))


def test_correct_volume_equals_the_numpy_reference_slice_by_slice():
    rng = np.random.default_rng(3)
    nz, ny, nx = 5, 160, 128
    stack = np.stack([striped_slice(z, (ny, nx)) for z in range(nz)])
    raw = np.clip(stack * np.linspace(0.9, 1.1, nx, dtype=np.float32) + rng.normal(0, 1, stack.shape), 0, 255).astype(np.uint8)
    shading = ShadingField(coarse=np.linspace(0.9, 1.1, 9, dtype=np.float32)[None].repeat(9, 0), shape=(ny, nx), offset=4.0)
    table = BrightnessTable(gain=np.linspace(0.95, 1.05, nz), offset=np.linspace(-2, 2, nz), raw_gain=np.ones(nz), raw_offset=np.zeros(nz))
    curtains = estimate_curtains(raw, min_significance=0)
    est = {"shading": shading, "brightness": table, "curtains": curtains}
    res = correct_volume(da.from_array(raw, chunks=(1, ny, nx)), voxel_size_nm=(10, 10, 10), steps=tuple(est), estimates=est)
    assert res.image.dtype == np.uint8
    got = res.image.compute()
    assert got.dtype == np.uint8
    sh, (g, o) = shading_terms(shading), brightness_terms(table)
    for z in range(nz):
        plane = numpy_affine(raw[z], np.float32, sh, g[z], o[z])
        nodes = _stripe_nodes(plane, curtains)
        split = find_onsets(plane, nodes, _block_rows(plane, curtains), _tap_offsets(curtains.width_px))
        want = plane - numpy_stripe_image(plane.shape, nodes.astype(np.float64), _block_rows(plane, curtains), split)
        np.testing.assert_allclose(remove_stripes(plane, curtains), want, rtol=0, atol=2e-4)
        # uint8: the same rounding, except at a float32 rounding step from a half grey level
        diff = np.abs(got[z].astype(int) - restore_dtype(want, np.uint8).astype(int))
        assert diff.max() <= 1 and np.mean(diff) < 1e-3
