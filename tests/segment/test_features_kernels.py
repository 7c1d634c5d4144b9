"""The fused feature kernels against independent numpy references."""

import numpy as np
import pytest
from scipy import ndimage as ndi

from volrecon.segment.classifier import normalise
from volrecon.segment.features import (
    KINDS,
    FeatureSettings,
    compute_features,
    feature_channels,
    feature_names,
    sym3_eigvals,
)


def _smoothed(img, sigma_nm, vox):
    return ndi.gaussian_filter(img, [sigma_nm / v for v in vox], mode="reflect", truncate=3.0)


@pytest.mark.parametrize("shape", [(9, 14, 17), (1, 12, 10), (6, 2, 11), (5, 8, 1)])
def test_gradient_and_laplacian_match_numpy_gradient(shape):
    """Gradient magnitude and Laplacian (differences of differences, one-sided at the block's
    edges) equal ``np.gradient`` applied once and twice, also on one- and two-voxel axes."""
    vox = (20.0, 12.5, 10.0)
    rng = np.random.default_rng(3)
    img = (rng.random(shape) + np.linspace(0, 3, shape[2])[None, None, :]).astype(np.float32)
    fs = FeatureSettings(sigmas_nm=(10.0, 25.0), kinds=("gradient", "laplacian"))
    f = dict(zip(feature_names(fs), compute_features(img, fs, voxel_size_nm=vox)))
    for s in fs.sigmas_nm:
        g = _smoothed(img, s, vox).astype(np.float64)
        axes = [ax for ax in range(3) if shape[ax] > 1]
        d = [np.gradient(g, vox[ax], axis=ax) for ax in axes]
        grad = np.sqrt(sum(x * x for x in d)) * s
        lap = sum(np.gradient(x, vox[ax], axis=ax) for x, ax in zip(d, axes)) * s * s
        np.testing.assert_allclose(f[f"gradient_{s:g}nm"], grad, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(f[f"laplacian_{s:g}nm"], lap, rtol=1e-4, atol=1e-5)
    # a linear ramp along x: gradient = slope * scale, Laplacian 0, where neither the smoothing
    # (radius 3 at 10 nm) nor the differences (2 more) reach the reflected ends
    ramp = np.broadcast_to(np.arange(shape[2], dtype=np.float32) * 2.0, shape).copy()
    f = dict(zip(feature_names(fs), compute_features(ramp, fs, voxel_size_nm=vox)))
    if shape[2] > 10:
        np.testing.assert_allclose(f["gradient_10nm"][..., 5:-5], 2.0 / vox[2] * 10.0, rtol=1e-5)
        np.testing.assert_allclose(f["laplacian_10nm"][..., 5:-5], 0.0, atol=1e-4)


def test_texture_dog_depth_match_definitions():
    vox = (20.0, 10.0, 10.0)
    img = np.random.default_rng(4).random((12, 20, 22)).astype(np.float32)
    fs = FeatureSettings(sigmas_nm=(10.0, 25.0), kinds=("texture", "dog", "depth"), depth_nm=(40.0,))
    f = dict(zip(feature_names(fs), feature_channels(img, fs, voxel_size_nm=vox)))
    a64 = img.astype(np.float64)
    for s in fs.sigmas_nm:
        m = _smoothed(a64, s, vox)
        var = _smoothed(a64 * a64, s, vox) - m * m
        np.testing.assert_allclose(f[f"texture_{s:g}nm"], np.sqrt(np.maximum(var, 0)), rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(f["dog_10-25nm"], _smoothed(a64, 10, vox) - _smoothed(a64, 25, vox), atol=1e-5)
    g = _smoothed(a64, 25, vox)
    deeper = g[np.minimum(np.arange(12) + 2, 11)]
    np.testing.assert_allclose(f["depth_40nm"], g - deeper, atol=1e-5)


def test_sym3_eigvals_match_eigvalsh():
    rng = np.random.default_rng(5)
    m = rng.normal(size=(500, 3, 3))
    m = m + m.transpose(0, 2, 1)
    m[:10] = np.diag([1.0, 1.0, 2.0])  # repeated eigenvalues
    m[10:20] = 0.0
    e = sym3_eigvals(*(m[:, i, j].astype(np.float32) for i, j in ((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2))))
    ref = np.linalg.eigvalsh(m)
    np.testing.assert_allclose(np.stack(e, axis=1), ref, atol=1e-4 * (1 + np.abs(ref).max()))


def test_normalise_leaves_its_input_alone():
    block = np.linspace(10, 20, 30, dtype=np.float32).reshape(2, 3, 5)
    before = block.copy()
    out = normalise(block, (10.0, 20.0))
    np.testing.assert_array_equal(block, before)
    np.testing.assert_allclose(out, (before - 10) / 10, atol=1e-6)
    assert out.dtype == np.float32
    np.testing.assert_allclose(normalise(block.astype(np.uint16), (10.0, 20.0)),
                               (before.astype(np.uint16) - 10) / 10, atol=1e-6)


@pytest.mark.parametrize("core", [
    (slice(0, 7), slice(3, 20), slice(2, 25)),     # an inner core, x from 2
    (slice(2, 9), slice(0, 21), slice(5, 31)),     # touching the x and y ends
    (slice(1, 5), slice(4, 9), slice(0, 3)),       # touching the x start, narrow
])
def test_core_is_exactly_that_part_of_the_whole_block(core):
    """Every channel of a core is bit for bit the same part of the whole block's channels, for
    cores anywhere in x (a chunk of a wide volume starts at x > 0: the kernels' own offsets)."""
    img = (np.random.default_rng(11).random((9, 21, 31)) * 255).astype(np.float32)
    fs = FeatureSettings(kinds=KINDS)
    whole = compute_features(img, fs, voxel_size_nm=(20.0, 10.0, 10.0))
    part = compute_features(img, fs, voxel_size_nm=(20.0, 10.0, 10.0), core=core)
    np.testing.assert_array_equal(part, whole[(slice(None), *core)])


def test_empty_core_gives_empty_channels():
    img = np.zeros((4, 10, 12), np.float32)
    got = compute_features(img, FeatureSettings(), voxel_size_nm=(20.0, 10.0, 10.0),
                           core=(slice(0, 0), slice(0, 10), slice(0, 12)))
    assert got.shape == (len(feature_names(FeatureSettings())), 0, 10, 12)
