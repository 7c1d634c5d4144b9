"""What the steps of a dask segmentation hold while their rows run: the layer counts one row of blocks at a
time, grey values in their own type while their context is assembled, the frame mask as views."""

from pathlib import Path
from typing import Any, Callable

import dask
import dask.array as da
import numpy as np
import pytest
import zarr
from dask.callbacks import Callback
from scipy import ndimage as ndi

from volrecon.segment._rows import store_by_rows
from volrecon.segment.api import _slice_histograms, _smoothed
from volrecon.segment.chunking import _frame_chunks
from volrecon.segment.voids import slice_histograms
from volrecon.segment.layers import _lateral_sums

GROUPS = {"sodium": [1], "sei": [2], "separator": [3], "cathode": [4, 5], "collector": [6], "active": [4]}


def _labels(nz: int, side: int) -> np.ndarray:
    """Layered labels along y (the stacking axis) with speckle, frame (7) at the x edges."""
    rng = np.random.default_rng(nz)
    layer = np.repeat(np.arange(1, 7, dtype=np.uint8), -(-side // 6))[:side]
    out = np.broadcast_to(layer[None, :, None], (nz, side, side)).copy()
    out[rng.random(out.shape) < 0.1] = 5
    out[..., :4] = 7
    return out


def _zarr(name: str, values: np.ndarray, folder: Path) -> da.Array:
    """``values`` read from a zarr array in ``folder`` (8 x 64 x 64 chunks), as a dask segmentation reads them."""
    store = zarr.open_array(str(folder / f"{name}.zarr"), mode="w", shape=values.shape, chunks=(8, 64, 64),
                            dtype=values.dtype)
    store[:] = values
    return da.from_zarr(store)


def _zarr_labels(nz: int, folder: Path, side: int = 384) -> da.Array:
    return _zarr(f"labels{nz}", _labels(nz, side), folder)


def test_layer_counts_spilled_equal_the_in_memory_counts(tmp_path):
    labels = _zarr_labels(40, tmp_path, side=128)
    want = _lateral_sums(labels.compute(), 1, 4, GROUPS, 7)
    got = _lateral_sums(labels, 1, 4, GROUPS, 7, folder=tmp_path / "s")
    assert set(got) == set(want)
    for name, counts in want.items():
        np.testing.assert_array_equal(np.asarray(got[name][:]), counts, err_msg=name)


def test_layer_counts_spilled_hold_no_more_with_more_rows(tmp_path, held_mb):
    """Four times the rows (32 -> 128 slices of 8-slice chunks, 6 x 6 blocks a row), no more held.

    Stored one group after the other over the whole graph, the thin context slices each block lends
    its neighbours (views) kept their whole chunks until the neighbours ran: the whole volume was
    held (4.1 -> 16.1 MB here, as the labels' 4.7 -> 18.9 MB).  One row of blocks at a time (the
    slices copied, each block's counts written whole by the task that stores it): 0.36 MB at both.
    """
    short = held_mb(lambda: _lateral_sums(_zarr_labels(32, tmp_path), 1, 4, GROUPS, 7, folder=tmp_path / "s32"))
    long = held_mb(lambda: _lateral_sums(_zarr_labels(128, tmp_path), 1, 4, GROUPS, 7, folder=tmp_path / "s128"))
    chunk_mb = 8 * 64 * 64 / 2**20
    assert long < short + chunk_mb, (short, long)


def test_smoothed_grey_is_assembled_in_its_own_type(tmp_path, held_mb):
    """The padded blocks of a uint8 volume are assembled from uint8 chunks and cast in the filter: the
    float32 a row holds is the filter's output, not float32 copies of the input's chunks waiting for
    their neighbours (held as the padded blocks' centres: 0.51 MB here against a bound of 0.125,
    when the volume was cast before its context was cut)."""
    grey = (np.random.default_rng(5).random((48, 128, 128)) * 255).astype(np.uint8)
    src = da.from_array(grey, chunks=(8, 32, 32))
    arr = _smoothed(src, 10.0, (20.0, 10.0, 10.0))
    want = _smoothed(src.astype(np.float32), 10.0, (20.0, 10.0, 10.0)).compute()
    store = zarr.open_array(str(tmp_path / "s.zarr"), mode="w", shape=arr.shape, chunks=(8, 32, 32), dtype=np.float32)
    held = held_mb(lambda: store_by_rows(arr, store), np.float32)
    np.testing.assert_array_equal(store[:], want)
    chunk_mb = 8 * 32 * 32 * 4 / 2**20
    assert held <= 4 * chunk_mb, held


def test_slice_histograms_read_the_grey_without_context(tmp_path, held_mb):
    """The electrolyte's in-plane erosion reads the labels' context, the grey only its own chunk: the float
    chunks are not held behind context views (computed as one graph with the grey in the context: 4.9 MB
    held here, over a row of float chunks, 4.5 MB).  The histograms are those of the whole volume."""
    rng = np.random.default_rng(0)
    shape = (32, 384, 384)
    grey = rng.normal(70.0, 4.0, shape).astype(np.float32)
    labels = np.where(rng.random(shape) < 0.7, 3, 5).astype(np.uint8)
    regions = np.where(rng.random(shape) < 0.9, 4, 2).astype(np.uint8)
    edges = np.linspace(50.0, 90.0, 81)
    keep = ndi.binary_erosion((labels == 3) & (regions == 4), np.ones((1, 3, 3), bool))
    want = slice_histograms(np.where(keep, grey, np.float32(np.nan)), edges)
    args = [_zarr(n, v, tmp_path) for n, v in (("g", grey), ("o", labels), ("r", regions))]
    got = []
    held = held_mb(lambda: got.append(_slice_histograms(*args, edges, electrolyte=3, region=4)))
    np.testing.assert_array_equal(got[0], want)
    row_mb = 8 * 384 * 384 * 4 / 2**20
    assert held < row_mb / 4, held


@pytest.mark.parametrize("shape", [(20, 30), (10, 20, 30)])
def test_frame_chunks_are_the_mask_and_a_plane_mask_holds_no_memory(shape):
    """A (y, x) mask broadcast over the slices: every chunk is a view of its (y, x) tile (stride 0 along z),
    not a merged bool array of the chunk's size."""
    mask = np.random.default_rng(1).random(shape) > 0.5
    chunks = ((4, 4, 2), (8, 12), (16, 14))
    arr = _frame_chunks(mask, chunks)
    assert arr.chunks == chunks
    np.testing.assert_array_equal(arr.compute(), np.broadcast_to(mask, (10, 20, 30)))
    if mask.ndim == 2:
        graph = dict(arr.__dask_graph__())
        for block in dask.get(graph, [(arr.name, *i) for i in np.ndindex(arr.numblocks)]):
            assert block.strides[0] == 0
