"""A lazy chain stored one row of chunks at a time: same values, every task once, memory bounded by a row."""

import threading
import tracemalloc

import dask
import dask.array as da
import numpy as np
import pytest
import zarr
from scipy import ndimage as ndi

from volrecon.segment import _rows
from volrecon.segment._rows import store_by_rows
from volrecon.segment.chunking import _overlap


def _chain(nz: int, calls: list | None = None, *, chunk: int = 8, side: int = 24, zarr_dir=None,
           frame: bool = False) -> da.Array:
    """Two overlapping filters (a Gaussian, then a median of its threshold), as the segmentation chains them.

    The slices come from memory, or from a zarr array written in ``zarr_dir`` (what ``volrecon segment`` reads);
    ``frame``: the threshold is masked by one (y, x) mask broadcast over every slice (the face's frame).
    """
    rng = np.random.default_rng(nz)
    grey = rng.random((nz, side, side), dtype=np.float32)
    if zarr_dir is None:
        src = da.from_array(grey, chunks=(2, side, side))
    else:
        z = zarr.open_array(str(zarr_dir / f"in{nz}.zarr"), mode="w", shape=grey.shape, chunks=(2, side, side), dtype=grey.dtype)
        z[:] = grey
        src = da.from_zarr(z)
    src = src.rechunk((chunk, side // 2, side))
    lock = threading.Lock()

    def smooth(block, core, faces):
        if calls is not None:
            with lock:
                calls.append(block.shape)
        return np.ascontiguousarray(ndi.gaussian_filter(block, 1.5)[core])

    grey = _overlap(smooth, src, (5, 5, 5), np.float32).rechunk(src.chunks)
    classes = (grey > 0.5).astype(np.uint8)
    if frame:
        mask = np.zeros((side, side), bool)
        mask[: side // 8] = True
        classes = da.where(da.broadcast_to(da.from_array(mask), classes.shape).rechunk(classes.chunks), np.uint8(2), classes)
    return _overlap(lambda b, core, faces: np.ascontiguousarray(ndi.median_filter(b, 3)[core]), classes, (2, 2, 2), np.uint8)


def _store(arr: da.Array, path) -> zarr.Array:
    return zarr.open_array(str(path), mode="w", shape=arr.shape, chunks=tuple(c[0] for c in arr.chunks), dtype=arr.dtype)


def _check_stored_once(nz: int, tmp_path, zarr_dir=None) -> da.Array:
    """Store the chain by rows: the values of the whole graph, no chunk of the first filter computed twice."""
    calls: list = []
    arr = _chain(nz, calls, zarr_dir=zarr_dir)
    want = arr.compute()
    n_blocks = len(calls)
    calls.clear()
    store = _store(arr, tmp_path / "a.zarr")
    store_by_rows(arr, store)
    np.testing.assert_array_equal(store[:], want)
    assert len(calls) == n_blocks
    return arr


@pytest.mark.parametrize("nz", [8, 21, 61])
def test_rows_store_the_values_of_the_whole_graph_running_each_task_once(tmp_path, nz):
    _check_stored_once(nz, tmp_path)


def _check_broadcast_stored_once(path) -> None:
    calls: list = []
    arr = _chain(45, calls, frame=True)
    want = arr.compute()
    n_blocks = len(calls)
    calls.clear()
    store = _store(arr, path)
    store_by_rows(arr, store)
    np.testing.assert_array_equal(store[:], want)
    assert len(calls) == n_blocks


def test_rows_with_a_broadcast_mask_store_the_values_running_each_filter_once(tmp_path):
    _check_broadcast_stored_once(tmp_path / "f.zarr")


def _assert_no_chunk_held_per_row(tmp_path, **kw) -> None:
    """Eight times the rows (32 -> 256 slices of 8-slice chunks), no more chunks held.

    What may grow is the graph's own bookkeeping (its tasks, ~0.1 MB per row of this chain); a chunk
    held per added row would add at least one uint8 chunk (8 x 128 x 256 = 0.25 MB) per row.  The
    span is long because the short run's peak alone varies by ~0.7 MB.
    """
    short, long = _peak_mb(32, tmp_path, **kw), _peak_mb(256, tmp_path, **kw)
    per_row = (long - short) / ((256 - 32) // 8)
    assert per_row < 0.75 * (8 * 128 * 256) / 2**20, (short, long)


def _peak_mb(nz: int, tmp_path, *, zarr_dir=None, frame: bool = False) -> float:
    arr = _chain(nz, chunk=8, side=256, zarr_dir=zarr_dir, frame=frame)
    store = _store(arr, tmp_path / f"p{nz}.zarr")
    with dask.config.set(scheduler="sync"):
        tracemalloc.start()
        try:
            store_by_rows(arr, store)
            return tracemalloc.get_traced_memory()[1] / 2**20
        finally:
            tracemalloc.stop()


def test_rows_memory_does_not_grow_with_the_number_of_rows(tmp_path):
    """da.store of the whole graph: 13 -> 20 MB here (0.62 MB per added row), sync scheduler."""
    _assert_no_chunk_held_per_row(tmp_path)


def test_rows_from_zarr_spread_the_tasks_over_the_rows(tmp_path, monkeypatch):
    """A zarr source is one task that reads nothing (the array's handle): it must not pull the whole graph into row 0."""
    sizes: list[int] = []
    local_get = _rows._local_get

    def counting_get():
        get = local_get()

        def counted(graph, keys):
            sizes.append(len(graph))
            return get(graph, keys)

        return counted

    monkeypatch.setattr(_rows, "_local_get", counting_get)
    arr = _check_stored_once(61, tmp_path, zarr_dir=tmp_path)
    n_rows = len(arr.chunks[0])
    assert len(sizes) > n_rows // 2, sizes
    assert max(sizes) < 3 * sum(sizes) / n_rows, sizes  # no row runs much more than its share


def test_rows_memory_from_zarr_does_not_grow_with_the_number_of_rows(tmp_path):
    _assert_no_chunk_held_per_row(tmp_path, zarr_dir=tmp_path)


def test_rows_memory_with_a_broadcast_mask_does_not_grow_with_the_number_of_rows(tmp_path):
    """A mask that reads nothing but a constant is made in each row that needs it, not all of it in the first
    row (which held one mask chunk per row of the stack), and a filter's input chunk read a row ahead for the
    context it lends is read again, not kept whole."""
    _assert_no_chunk_held_per_row(tmp_path, frame=True)


def test_rows_without_dask_fused_task_runner_store_the_same_values(tmp_path, monkeypatch):
    """A dask version without the private fused-task runner: fused tasks count as computing
    (kept, not run again), and the stored values and the one run per filter are unchanged."""
    monkeypatch.setattr(_rows, "_subgraph_runner", lambda: None)
    _check_broadcast_stored_once(tmp_path / "nf.zarr")


@pytest.mark.parametrize("frame", [False, True])
def test_rows_carry_no_more_into_a_middle_row_than_into_the_second(tmp_path, monkeypatch, frame):
    """The second row reads whole the chunk the first computed a row ahead; the row after reads only the
    context slices of that chunk, so it must be handed those slices, not the whole chunk again (which made
    every middle row carry one chunk per overlapping step more than the second)."""
    carried: list[int] = []
    inputs = _rows._inputs

    def counting_inputs(sub, graph, held):
        carried.append(sum(getattr(v, "nbytes", 0) for v in held.values()))
        return inputs(sub, graph, held)

    monkeypatch.setattr(_rows, "_inputs", counting_inputs)
    arr = _chain(64, chunk=8, side=64, frame=frame)
    want = arr.compute()
    store = _store(arr, tmp_path / "c.zarr")
    with dask.config.set(scheduler="sync"):
        store_by_rows(arr, store)
    np.testing.assert_array_equal(store[:], want)
    assert len(carried) == len(arr.chunks[0]) and carried[1] > 0, carried
    assert max(carried[2:]) <= carried[1], carried


def test_rows_context_slices_do_not_keep_their_whole_chunks(tmp_path, held_mb):
    """A filter computed a row ahead (for the context the next filter reads) reads the float chunks of two
    rows ahead for its own context: their thin slices, taken as views, kept every such chunk whole until the
    padded blocks were assembled (2.5 float rows held here); copied, the chunk goes once it has been read."""
    nz, side, chunk = 64, 256, (16, 64, 64)
    grey = np.random.default_rng(3).random((nz, side, side), dtype=np.float32)
    z = zarr.open_array(str(tmp_path / "g.zarr"), mode="w", shape=grey.shape, chunks=chunk, dtype=grey.dtype)
    z[:] = grey
    first = _overlap(lambda b, core, faces: np.ascontiguousarray((ndi.uniform_filter(b, 3) > 0.5)[core].astype(np.uint8)),
                     da.from_zarr(z), (1, 1, 1), np.uint8)
    arr = _overlap(lambda b, core, faces: np.ascontiguousarray(ndi.median_filter(b, 3)[core]), first, (1, 1, 1), np.uint8)
    want = arr.compute()
    store = _store(arr, tmp_path / "o.zarr")
    # float32 held at once, in rows of chunks (a view counts as its whole base: a slice keeps its chunk)
    rows = held_mb(lambda: store_by_rows(arr, store), np.float32) * 2**20 / (chunk[0] * side * side * 4)
    np.testing.assert_array_equal(store[:], want)
    assert rows < 2.0, rows


@pytest.mark.parametrize("scheduler", ["processes", "cluster"])
def test_numpy_store_filled_whatever_the_scheduler(scheduler):
    """A numpy store is this process's memory: tasks run in worker processes (dask's ``processes``
    scheduler, a distributed cluster's workers) must not fill a copy of it there (review rev17: the
    void split's slice histograms came back all zeros on a cluster and changed the labels)."""
    grey = np.random.default_rng(3).random((24, 16, 16), dtype=np.float32)
    # an overlapping filter over several rows of chunks, of functions a worker process can unpickle
    arr = da.from_array(grey, chunks=(4, 16, 8)).map_overlap(ndi.uniform_filter, depth=1, boundary="reflect", size=3)
    want = np.asarray(arr.compute(scheduler="sync"))
    got = np.zeros(arr.shape, arr.dtype)
    if scheduler == "processes":
        with dask.config.set(scheduler="processes", num_workers=2):
            store_by_rows(arr, got)
    else:
        from distributed import Client, LocalCluster

        with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
                Client(cluster):
            store_by_rows(arr, got)
    np.testing.assert_array_equal(got, want)
