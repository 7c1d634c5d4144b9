"""The per-region grey samples behind the regional thresholds (volrecon.segment.api._region_samples):
each region's values, as the sampled slices hold them, from one read of the volume."""

import dask.array as da
import numpy as np

from volrecon.segment import api


class _Counted:
    """An array whose every read is counted (a volume kept in scratch: each read decompresses chunks)."""

    def __init__(self, a: np.ndarray) -> None:
        self.a, self.reads = a, 0
        self.shape, self.dtype, self.ndim = a.shape, a.dtype, a.ndim

    def __getitem__(self, key):
        self.reads += 1
        return self.a[key]


def test_each_region_is_sampled_from_one_read():
    rng = np.random.default_rng(2)
    grey = rng.normal(size=(90, 64, 48)).astype(np.float32)
    regions = rng.integers(1, 4, size=grey.shape).astype(np.uint8)
    g, r = _Counted(grey), _Counted(regions)
    lazy_g, lazy_r = da.from_array(g, chunks=(30, 64, 48)), da.from_array(r, chunks=(30, 64, 48))
    g.reads = r.reads = 0  # dask may peek at an array when wrapping it
    got = api._region_samples(lazy_g, lazy_r, [1, 3])
    zs, stride = api._sample_index(grey.shape)
    for v in (1, 3):
        np.testing.assert_array_equal(got[v], grey[zs, ::stride][regions[zs, ::stride] == v])
    # one read of each of the three chunks, for both regions
    assert g.reads == 3 and r.reads == 3
