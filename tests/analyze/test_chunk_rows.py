"""Slab passes read each z chunk of a dask volume once (ChunkRows), with the values of direct reads."""

import dask.array as da
import numpy as np
import pytest

from volrecon.analyze._common import ChunkRows, chunk_rows, read, z_slabs


class _Counting:
    """An array-like that counts the voxels read from it (what dask's chunk reads cost)."""

    def __init__(self, data: np.ndarray) -> None:
        self.data, self.shape, self.dtype, self.ndim = data, data.shape, data.dtype, data.ndim
        self.voxels = 0

    def __getitem__(self, index):
        out = self.data[index]
        self.voxels += out.size
        return out


def test_plane_by_plane_reads_each_chunk_once_with_the_same_values():
    data = np.random.default_rng(0).integers(0, 9, (21, 30, 40), dtype=np.uint8)
    src = _Counting(data)
    rows = ChunkRows(da.from_array(src, chunks=(8, 16, 16)), max_bytes=10**6)
    for z in range(21):
        np.testing.assert_array_equal(read(rows, np.s_[z:z + 1]), data[z:z + 1])
    assert src.voxels == data.size  # plane by plane through dask alone: 8 times as much
    src.voxels = 0
    box = (slice(3, 19), slice(5, 22), slice(1, 39))
    for z in range(3, 19):
        np.testing.assert_array_equal(read(rows, (slice(z, z + 1), box[1], box[2])), data[z:z + 1, box[1], box[2]])
    assert src.voxels == 16 * 17 * 38 + 5 * 17 * 38  # rows 0-7 (from z 3), 8-15, 16-20 of the box's y, x extent
    # requests across rows, with steps or integers, and rows above the budget read directly
    for index in (np.s_[5:12], np.s_[::2], np.s_[4], Ellipsis, (slice(0, 3), 7)):
        np.testing.assert_array_equal(read(rows, index), data[index])
    small = ChunkRows(da.from_array(data, chunks=(8, 16, 16)), max_bytes=100)
    np.testing.assert_array_equal(read(small, np.s_[2:3]), data[2:3])
    # served slabs are copies: a caller writing into one does not change the next read
    part = read(rows, np.s_[0:1])
    part[:] = 99
    np.testing.assert_array_equal(read(rows, np.s_[0:1]), data[0:1])


def test_row_budget_counts_bytes_and_a_failed_read_holds_no_row():
    data = np.arange(16 * 8 * 8, dtype=np.uint32).reshape(16, 8, 8)
    src = _Counting(data)
    # a row of 8 x 8 x 8 voxels fits a budget of 512 voxels but not 512 bytes of uint32: read directly
    rows = ChunkRows(da.from_array(src, chunks=(8, 8, 8)), max_bytes=512)
    np.testing.assert_array_equal(read(rows, np.s_[0:1]), data[0:1])
    assert src.voxels == 64
    wide = ChunkRows(da.from_array(src, chunks=(8, 8, 8)), max_bytes=4 * 512)
    src.voxels = 0
    for z in range(8):
        np.testing.assert_array_equal(read(wide, np.s_[z:z + 1]), data[z:z + 1])
    assert src.voxels == 512
    wide.release()
    src.voxels = 0
    np.testing.assert_array_equal(read(wide, np.s_[3:4]), data[3:4])
    assert src.voxels == 512  # released: the row is read again
    broken = ChunkRows(da.from_array(src, chunks=(8, 8, 8)), max_bytes=4 * 512)
    read(broken, np.s_[0:1])
    src.data = None  # the next row's read fails
    with pytest.raises(TypeError):
        read(broken, np.s_[9:10])
    src.data = data
    np.testing.assert_array_equal(read(broken, np.s_[0:1]), data[0:1])  # not the row it held before


def test_chunk_rows_wraps_only_z_chunked_dask_volumes():
    data = np.zeros((10, 8, 8), np.uint8)
    assert chunk_rows(data, 100) is data
    one = da.from_array(data, chunks=(10, 4, 4))
    assert chunk_rows(one, 100) is one
    rows = chunk_rows(da.from_array(data, chunks=(5, 8, 8)), 1000)
    assert isinstance(rows, ChunkRows)
    # slabs round to the chunks as they do for the dask array itself
    assert list(z_slabs(rows, 64)) == list(z_slabs(da.from_array(data, chunks=(5, 8, 8)), 64))
