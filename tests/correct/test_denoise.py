"""Chunked denoising equals the unchunked run."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

from volrecon.correct import denoise
from volrecon.errors import ParameterError


@pytest.mark.parametrize(
    "method,options",
    [("gaussian", {"sigma": 1.2}), ("median", {"size": 3}), ("bilateral", {"radius": 1}), ("nl_means", {"patch_distance": 2})],
)
def test_chunked_equals_unchunked(method, options):
    x = np.random.default_rng(0).normal(100, 20, (10, 40, 40)).clip(0, 255).astype(np.uint8)
    full = denoise(x, method=method, **options)
    chunked = denoise(da.from_array(x, chunks=(4, 17, 23)), method=method, **options).compute()
    assert full.dtype == np.uint8
    np.testing.assert_array_equal(full, chunked)
    assert full.astype(float).std() < x.astype(float).std()


def test_bad_method():
    with pytest.raises(ParameterError):
        denoise(np.zeros((2, 16, 16)), method="wiener")
    with pytest.raises(ParameterError):
        denoise(np.zeros((2, 16, 16)), method="gaussian", size=3)
