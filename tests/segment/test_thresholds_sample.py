"""The grey-value sample behind the global thresholds: the same values whether the volume is a
numpy array or a dask array read one z-chunk at a time."""

import dask.array as da
import numpy as np
import pytest

from volrecon.segment.thresholds import sample_values


@pytest.mark.parametrize("max_values", [10_000, 10**9])
def test_dask_sample_equals_numpy(max_values):
    rng = np.random.default_rng(3)
    vol = rng.normal(size=(37, 40, 30)).astype(np.float32)
    vol[5, 3, 2] = np.nan
    lazy = da.from_array(vol, chunks=(8, 40, 30))
    a = sample_values(vol, max_values=max_values)
    b = sample_values(lazy, max_values=max_values)
    assert np.isfinite(a).all()
    np.testing.assert_array_equal(a, b)
    if max_values < vol.size:
        # whole slices spread over the stack, at most the cap
        assert 0.5 * max_values < a.size <= max_values
    else:
        assert a.size == vol.size - 1
