"""The region smoothing kernel against scipy.ndimage.gaussian_filter, bit for bit."""

import numpy as np
import pytest
from scipy import ndimage as ndi

from volrecon.segment._smooth import gaussian, half_kernel, smooth_region
from volrecon.segment.features import FeatureSettings, compute_features


def _scipy(img, sigma, part, region, square, mode="reflect"):
    p = img[part]
    p = p * p if square else p
    ref = ndi.gaussian_filter(p, sigma, mode=mode, truncate=3.0)
    return ref[tuple(slice(r.start - q.start, r.stop - q.start) for r, q in zip(region, part))]


def _whole(shape):
    return tuple(slice(0, n) for n in shape)


@pytest.mark.parametrize("mode", ["reflect", "nearest"])
@pytest.mark.parametrize("square", [False, True])
@pytest.mark.parametrize("shape,sigma", [
    ((20, 30, 40), (1.25, 1.97, 2.5)),
    ((20, 30, 40), (3.0, 4.73, 6.0)),
    ((5, 7, 9), (3.0, 4.73, 6.0)),       # kernels longer than the lines: repeated reflection
    ((5, 7, 1), (0.5, 0.79, 1.0)),       # a one-voxel axis
    ((12, 9, 16), (0.0, 2.0, 0.2)),      # an axis scipy skips, a kernel of radius 1
])
def test_whole_block_equals_scipy(shape, sigma, square, mode):
    img = np.random.default_rng(7).normal(size=shape).astype(np.float32)
    got = smooth_region(img, sigma, _whole(shape), _whole(shape), truncate=3.0, square=square, mode=mode)
    np.testing.assert_array_equal(got, _scipy(img, sigma, _whole(shape), _whole(shape), square, mode))


@pytest.mark.parametrize("mode", ["reflect", "nearest"])
@pytest.mark.parametrize("square", [False, True])
def test_region_of_a_part_equals_scipy_on_the_part(square, mode):
    """A part of the block is filtered (reflected at its own faces, some of them the block's),
    and only a region inside it is returned: the same values as scipy on the part."""
    img = (np.random.default_rng(8).random((30, 40, 50)) * 1000).astype(np.float32)
    part = (slice(0, 28), slice(5, 40), slice(3, 45))
    region = (slice(0, 20), slice(10, 40), slice(3, 40))
    got = smooth_region(img, (3.0, 4.73, 6.0), part, region, truncate=3.0, square=square, mode=mode)
    assert got.shape == (20, 30, 37)
    np.testing.assert_array_equal(got, _scipy(img, (3.0, 4.73, 6.0), part, region, square, mode))


@pytest.mark.parametrize("mode", ["reflect", "nearest"])
@pytest.mark.parametrize("sigma", [1.7, (0.0, 2.2, 3.1)])
def test_gaussian_equals_scipy_for_every_input(sigma, mode):
    """The whole-array entry point: float32 3D through the kernel, anything else through scipy,
    the same values either way (a scalar sigma is every axis's)."""
    rng = np.random.default_rng(9)
    img = (rng.random((9, 21, 33)) * 200).astype(np.float32)
    np.testing.assert_array_equal(gaussian(img, sigma, truncate=3.0, mode=mode),
                                  ndi.gaussian_filter(img, sigma, mode=mode, truncate=3.0))
    for other in (img.astype(np.float64), img[0], img[::2, ::3]):
        got = gaussian(other, sigma if np.ndim(sigma) == 0 or other.ndim == 3 else sigma[1:], truncate=3.0, mode=mode)
        ref = ndi.gaussian_filter(other, sigma if np.ndim(sigma) == 0 or other.ndim == 3 else sigma[1:], mode=mode,
                                  truncate=3.0)
        assert got.dtype == ref.dtype
        np.testing.assert_array_equal(got, ref)


def test_half_kernel_is_a_normalised_gaussian():
    w = half_kernel(2.0, 3.0)
    assert w.size == 7  # radius int(3 * 2 + 0.5)
    x = np.arange(7.0)
    ref = np.exp(-0.5 * x * x / 4.0)
    np.testing.assert_allclose(w, ref / (ref[0] + 2 * ref[1:].sum()), rtol=1e-12)
    np.testing.assert_array_equal(half_kernel(0.0, 3.0), [1.0])


def test_region_outside_the_part_and_unknown_modes_are_refused():
    img = np.zeros((4, 5, 6), np.float32)
    with pytest.raises(ValueError):
        smooth_region(img, (1, 1, 1), _whole(img.shape), (slice(0, 5), slice(0, 5), slice(0, 6)), truncate=3.0)
    with pytest.raises(ValueError):
        smooth_region(img, (1, 1, 1), _whole(img.shape), _whole(img.shape), truncate=3.0, mode="wrap")


def test_features_equal_whole_block_scipy_smoothing():
    """The intensity and texture channels are scipy's smoothings of the block, bit for bit."""
    vox = (20.0, 12.69, 10.0)
    img = np.random.default_rng(9).random((14, 40, 44)).astype(np.float32)
    fs = FeatureSettings(sigmas_nm=(10.0, 60.0), kinds=("intensity", "texture"))
    f = compute_features(img, fs, voxel_size_nm=vox)
    for i, s in enumerate(fs.sigmas_nm):
        sig = [s / v for v in vox]
        m = ndi.gaussian_filter(img, sig, mode="reflect", truncate=3.0)
        np.testing.assert_array_equal(f[1 + i], m)
        sq = ndi.gaussian_filter(img * img, sig, mode="reflect", truncate=3.0)
        np.testing.assert_array_equal(f[3 + i], np.sqrt(np.maximum(sq - m * m, 0)))


def test_opt_in_channels_equal_scipy_smoothing(monkeypatch):
    """The structure-tensor and look-ahead channels (whole-block smoothings, one of them in-plane
    only) are the same as with scipy's gaussian_filter."""
    from volrecon.segment import features

    vox = (20.0, 12.69, 10.0)
    img = np.random.default_rng(10).random((16, 36, 40)).astype(np.float32)
    fs = FeatureSettings(sigmas_nm=(10.0, 25.0, 60.0), kinds=("structure", "ahead"), depth_nm=(40.0,))
    ours = compute_features(img, fs, voxel_size_nm=vox)
    scipy_gauss = lambda a, sigma: ndi.gaussian_filter(a, sigma, mode="reflect", truncate=3.0)  # noqa: E731
    monkeypatch.setattr(features, "_gauss", scipy_gauss)
    ref = compute_features(img, fs, voxel_size_nm=vox)
    np.testing.assert_array_equal(ours, ref)
