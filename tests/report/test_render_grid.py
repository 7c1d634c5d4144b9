"""The 3D view's subsample: about the same number of voxels for any large volume, read one plane at a time."""

import dask.array as da
import numpy as np
import pytest

from volrecon.report.render3d import _subsample, render_grid


@pytest.mark.parametrize("shape", [(100, 248, 244), (400, 465, 459), (2000, 768, 1024), (37, 1500, 90)])
def test_large_volumes_are_drawn_from_the_same_number_of_voxels(shape):
    grid = render_grid(shape, 50_000)
    n = int(np.prod([g.size for g in grid]))
    assert 0.95 * 50_000 <= n <= 1.05 * 50_000
    for g, size in zip(grid, shape):
        assert g[0] >= 0 and g[-1] < size and np.all(np.diff(g) > 0)
        # evenly spread: the gaps differ by at most one voxel
        gaps = np.diff(g)
        assert gaps.size == 0 or gaps.max() - gaps.min() <= 1


def test_small_volumes_are_kept_whole():
    grid = render_grid((10, 20, 30), 50_000)
    for g, size in zip(grid, (10, 20, 30)):
        np.testing.assert_array_equal(g, np.arange(size))


@pytest.mark.parametrize("lazy", [False, True])
def test_subsample_reads_the_grid_points(lazy):
    rng = np.random.default_rng(1)
    vol = rng.integers(0, 7, (45, 33, 29), dtype=np.uint8)
    grid = render_grid(vol.shape, 2_000)
    src = da.from_array(vol, chunks=(4, 33, 29)) if lazy else vol
    np.testing.assert_array_equal(_subsample(src, grid), vol[np.ix_(*grid)])


class _PlaneReads:
    """A volume that records how many planes each read asks for."""

    def __init__(self, vol: np.ndarray) -> None:
        self.vol, self.shape, self.dtype, self.planes = vol, vol.shape, vol.dtype, []

    def __getitem__(self, key):
        part = self.vol[key]
        self.planes.append(part.size // (self.shape[1] * self.shape[2]))
        return part


def test_subsample_reads_one_plane_at_a_time():
    vol = np.random.default_rng(2).integers(0, 7, (120, 40, 30), dtype=np.uint8)
    grid = render_grid(vol.shape, 3_000)
    src = _PlaneReads(vol)
    np.testing.assert_array_equal(_subsample(src, grid), vol[np.ix_(*grid)])
    assert src.planes == [1] * grid[0].size  # only the grid's planes, each read once
