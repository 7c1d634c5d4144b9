"""The layer guess's denoised grey read on a few slices alone (volrecon.segment.api._smoothed_slices,
_sei_level): bit for bit what the chunked guess holds there, and only the voxels asked for are filtered."""

import dask.array as da
import numpy as np
import pytest

from volrecon.phases import PHASES
from volrecon.segment import api
from volrecon.segment import regional
from volrecon.segment.layers import Layers

VOX = (20.0, 12.7, 10.0)


def _stack(seed: int = 5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(0.5, 0.1, size=(30, 70, 50)).astype(np.float32)


@pytest.mark.parametrize("budget", [1, 20_000, 10**9])
@pytest.mark.parametrize("box", [None, (slice(0, 70), slice(0, 50)), (slice(3, 21), slice(40, 50)), (slice(33, 34), slice(0, 9))])
def test_slices_are_the_chunked_guess_bit_for_bit(box, budget, monkeypatch):
    """Slices at the stack's faces and inside, boxes at the in-plane faces and inside, read a slab at a
    time or in runs of neighbouring slices (``SAMPLE_VOXELS``): every value equals the chunked guess's
    (the smoothing's context clipped to the stack where the box meets its face)."""
    monkeypatch.setattr(api, "SAMPLE_VOXELS", budget)
    img = _stack()
    src = da.from_array(img, chunks=(8, 32, 32))
    lazy = da.from_array(img, chunks=(1, 70, 50))
    *_, guess, read = api._layer_guess(lazy, src, order=api.OTSU_ORDER, values=[1, 2, 3, 4, 5], smooth_nm=10.0, vox=VOX)
    zs = np.array([0, 1, 7, 15, 28, 29])
    b = box or (slice(0, 70), slice(0, 50))
    want = np.asarray(guess[zs].compute())[:, b[0], b[1]]
    got = read(zs, box)
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_array_equal(got, want)


def test_only_the_slices_asked_for_are_filtered(monkeypatch):
    """Each slice is filtered alone (its z-pass reads the slab around it, the y and x passes run on that
    slice only), not the whole slab it is read with: the filtered voxels are the slices' own."""
    img = _stack()
    lazy = da.from_array(img, chunks=(1, 70, 50))
    seen: list[int] = []
    own = regional.specimen_filter

    def spy(values, valid, sigma, region=None):
        out = own(values, valid, sigma, region=region)
        seen.append(out.size)
        return out

    monkeypatch.setattr(regional, "specimen_filter", spy)
    box = (slice(10, 30), slice(5, 45))
    api._smoothed_slices(lazy, np.array([2, 14]), 20.0, VOX, box)
    assert seen == [20 * 40, 20 * 40]


def _film_case() -> tuple[np.ndarray, Layers, np.ndarray]:
    """Sodium to row 10, a film to row 15 (thinner in one column), the separator beyond, along y."""
    img = _stack(7)
    nz, ny, nx = img.shape
    img[:, 10:15] += 0.2
    na, sei = np.full((nz, nx), 10.0), np.full((nz, nx), 15.0)
    sei[:, 3] = 13.0
    lay = Layers(axis=1, anode_first=True,
                 heights={"sodium|sei": na, "sei|separator": sei, "separator|cathode": np.full((nz, nx), 50.0),
                          "cathode|collector": None},
                 present={"sodium": True, "separator": True, "cathode": True, "collector": False}, length=ny)
    specimen = np.full(img.shape, PHASES["separator"], np.uint8)
    specimen[:, :, 45:] = 0  # unassigned columns (the frame's shell): not film
    return img, lay, specimen


def test_the_film_level_reads_the_films_box_alone():
    """The SEI level from the film's in-plane box read alone equals the level read on the whole
    denoised slices; the reader is asked for the film's rows and columns, nothing more."""
    img, lay, specimen = _film_case()
    src = da.from_array(img, chunks=(8, 32, 32))
    lazy = da.from_array(img, chunks=(1, 70, 50))
    *_, guess, read = api._layer_guess(lazy, src, order=api.OTSU_ORDER, values=[1, 2, 3, 4, 5], smooth_nm=10.0, vox=VOX)
    boxes = []

    def spy(zs, box):
        boxes.append(box)
        return read(zs, box)

    whole = api._sei_level(guess, lay, da.from_array(specimen), frame_value=None)
    part = api._sei_level(guess, lay, da.from_array(specimen), frame_value=None, read=spy)
    assert part == whole and whole is not None
    assert boxes == [(slice(10, 15), slice(0, 45))]
