"""Intermediate volumes of a dask segmentation: kept once in zarr, written without locks, cleaned up."""

import gc

import dask.array as da
import numpy as np
import pytest

from volrecon.sample import make_phantom
from volrecon.segment import api, segment_volume
from volrecon.segment.api import Scratch, _materialise


@pytest.mark.parametrize("chunks", [((4, 4, 3), (6, 6), (5,)), ((3, 5, 3), (7, 5), (2, 3))])
def test_materialise_equals_the_array_on_any_chunks(tmp_path, chunks):
    """Chunks off the zarr grid (second case) are rechunked onto it: the values read back equal
    the array's, in the array's own chunks."""
    arr = da.from_array(np.arange(11 * 12 * 5, dtype=np.float32).reshape(11, 12, 5), chunks=chunks) * 1.5
    got = _materialise(arr, Scratch(tmp_path), "x")
    assert got.chunks == arr.chunks
    np.testing.assert_array_equal(got.compute(), arr.compute())
    zarr_chunks = __import__("zarr").open_array(str(tmp_path / "x.zarr"), mode="r").chunks
    assert zarr_chunks == tuple(c[0] for c in chunks)


@pytest.fixture(scope="module")
def small():
    ph = make_phantom("diglyme", slices=10, shape=(96, 112), seed=3, workers=2, frame=True)
    return ph, np.asarray(ph.clean)


def _names(tmp_path):
    return sorted(p.name for p in tmp_path.iterdir())


def test_temporary_scratch_goes_with_the_result(small, tmp_path, monkeypatch):
    """Without ``scratch``, the zarr arrays live in a folder of their own that stays while the dask
    result is read and goes when it is garbage-collected; results equal the in-memory ones."""
    ph, img = small
    monkeypatch.setattr(api.tempfile, "tempdir", str(tmp_path))
    want = segment_volume(img, voxel_size_nm=ph.voxel_size_nm, method="auto")
    res = segment_volume(da.from_array(img, chunks=(4, 48, 56)), voxel_size_nm=ph.voxel_size_nm, method="auto",
                         chunks=(4, 48, 56))
    assert len(_names(tmp_path)) == 1
    gc.collect()
    phases, regions = da.compute(res.phases, res.regions)
    np.testing.assert_array_equal(phases, want.phases)
    np.testing.assert_array_equal(regions, want.regions)
    del res
    gc.collect()
    assert _names(tmp_path) == []


def test_scratch_removed_when_segmentation_fails(small, tmp_path, monkeypatch):
    ph, img = small
    monkeypatch.setattr(api.tempfile, "tempdir", str(tmp_path))

    def broken(*args, **kwargs):
        raise RuntimeError("layer detection failed")

    monkeypatch.setattr(api, "detect_layers", broken)
    with pytest.raises(RuntimeError, match="layer detection failed"):
        segment_volume(da.from_array(img, chunks=(4, 48, 56)), voxel_size_nm=ph.voxel_size_nm, method="auto")
    assert _names(tmp_path) == []


def test_callers_scratch_holds_no_float_copy_once_the_voids_are_kept(small, tmp_path):
    """A caller's folder is the caller's to remove; the void split's labels are kept in it (the cleanup
    reads its context there), and neither denoised float copy nor the classes the split read is left."""
    ph, img = small
    res = segment_volume(da.from_array(img, chunks=(4, 48, 56)), voxel_size_nm=ph.voxel_size_nm, method="auto",
                         scratch=tmp_path / "s")
    assert "void_split" in res.parameters
    res.phases.compute()
    names = _names(tmp_path / "s")
    assert "voids.zarr" in names and "phases.zarr" in names, names
    assert not {"void_grey.zarr", "smoothed.zarr", "classes.zarr"} & set(names), names


def test_heap_handed_back_before_the_calling_thread_steps(small, monkeypatch):
    """The heap the dask workers freed (it grows with the rows: at 1024x1024, 32 -> 128 slices) is
    handed back before each layer detection (whose share maps are mapped beyond it), after it,
    before each surface finder that runs in the calling thread (sodium, its refinement, the SEI's
    outer surface), and before the void split's samples; the labels do not depend on it."""
    ph, img = small
    events: list[str] = []
    monkeypatch.setattr(api, "release_memory", lambda: events.append("release"))
    for name in ("detect_layers", "sodium_surface", "_cathode_voids"):
        def traced(*a, _f=getattr(api, name), _n=name, **k):
            events.append(_n)
            return _f(*a, **k)

        monkeypatch.setattr(api, name, traced)
    res = segment_volume(da.from_array(img, chunks=(4, 48, 56)), voxel_size_nm=ph.voxel_size_nm, method="auto")
    # the second detection: the separator|cathode cut with the guess's dark voids counted with the cathode
    assert events == ["release", "detect_layers", "release", "sodium_surface", "release", "release", "release",
                      "detect_layers", "release", "_cathode_voids"], events
    monkeypatch.undo()
    plain = segment_volume(img, voxel_size_nm=ph.voxel_size_nm, method="auto")
    assert np.array_equal(res.phases.compute(), plain.phases)
