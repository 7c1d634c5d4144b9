"""What the anode-band surface finders read and filter at a time (volrecon.segment.regional): the
SEI's slabs cut along the stacking axis, column blocks of a slab, filters over a region: the same
surfaces bit for bit as the whole band."""

import numpy as np
import pytest

from volrecon.segment import regional
from volrecon.segment.regional import _non_film, sei_outer_surface, sodium_surface, specimen_filter


@pytest.fixture(scope="module")
def sodium_placed(first_guess):
    """The diglyme phantom's first-guess phases and its layers with the sodium surface placed."""
    ph, img, phases, lay, _ = first_guess
    placed, _ = sodium_surface(img, phases, lay, voxel_size_nm=ph.voxel_size_nm, frame_value=None)
    return ph, img, phases, lay, placed


def _framed_block(shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Noise with a frame along the first columns, deep enough for voxels without valid weight."""
    rng = np.random.default_rng(0)
    img = rng.normal(size=shape).astype(np.float32)
    valid = rng.random(shape) > 0.05
    valid[:, :9] = False
    return img, valid


def test_sei_depth_limit_reads_what_the_full_band_gives(sodium_placed, monkeypatch):
    """The SEI's slabs read the grey values only ``past`` voxels beyond their columns' deepest sodium
    surface (here 59 of the band's 76 voxels, a slab of every 4 rows too): the surface and every
    measurement are those of slabs forced to read the whole band (review rev15 LOW 6)."""
    monkeypatch.setattr(regional, "_MIN_CORE_PER_PAD", 0)  # slabs of a few rows on this small volume
    ph, img, _, _, placed = sodium_placed
    vox = ph.voxel_size_nm
    limit = regional._read_depth
    cut: list[tuple[int, int]] = []

    def recorded(h_top: np.ndarray, past: float, full: int) -> int:
        depth = limit(h_top, past, full)
        cut.append((depth, full))
        return depth

    for slab in (10**12, 4 * img.shape[1] * img.shape[2]):
        cut.clear()
        monkeypatch.setattr(regional, "_read_depth", recorded)
        limited, info = sei_outer_surface(img, placed, voxel_size_nm=vox, slab_voxels=slab)
        assert info["found"] and len(cut) >= (1 if slab > img.size else img.shape[0] // 4)
        assert any(d < full for d, full in cut)  # the limit bites on this phantom
        monkeypatch.setattr(regional, "_read_depth", lambda h_top, past, full: full)
        whole, info_whole = sei_outer_surface(img, placed, voxel_size_nm=vox, slab_voxels=slab)
        assert np.array_equal(limited.heights["sei|separator"], whole.heights["sei|separator"])
        assert np.array_equal(limited.heights["sodium|sei"], whole.heights["sodium|sei"])
        assert repr(info) == repr(info_whole)


def test_surfaces_by_column_blocks_equal_one_block(sodium_placed, monkeypatch):
    """Slabs of one row cut into blocks of one column (the filters' context read around each) give
    the heights of one slab and one block bit for bit, for the sodium surface and the SEI's outer one."""
    ph, img, phases, lay, placed = sodium_placed
    vox = ph.voxel_size_nm
    blocks: list[int] = []
    slabs = regional._slabs
    monkeypatch.setattr(regional, "_slabs", lambda *a: blocks.append(len(slabs(*a))) or slabs(*a))
    monkeypatch.setattr(regional, "_MIN_CORE_PER_PAD", 0)
    tiled_na, _ = sodium_surface(img, phases, lay, voxel_size_nm=vox, frame_value=None, slab_voxels=1)
    tiled, _ = sei_outer_surface(img, tiled_na, voxel_size_nm=vox, slab_voxels=1)
    assert blocks.count(img.shape[2]) > img.shape[0]  # a block per column, in every slab
    sei_whole, _ = sei_outer_surface(img, placed, voxel_size_nm=vox, slab_voxels=10**12)
    assert np.array_equal(tiled_na.heights["sodium|sei"], placed.heights["sodium|sei"])
    assert np.array_equal(tiled.heights["sei|separator"], sei_whole.heights["sei|separator"])


@pytest.mark.parametrize("framed", [False, True])
def test_filters_over_a_region_equal_the_whole_block(framed):
    """:func:`specimen_filter` over a region, and :func:`_non_film` over a core of columns cut out
    with its lateral reach, hold what the whole block's filters hold there (a frame with voxels
    too deep for any valid weight: their plain average), bit for bit."""
    img, valid = _framed_block((30, 70, 40))
    valid = valid if framed else None
    sig = [3.0, 6.0, 0.5]
    region = (slice(3, 9), slice(5, 60), slice(None))
    assert np.array_equal(specimen_filter(img, valid, sig)[region], specimen_filter(img, valid, sig, region=region))
    whole = _non_film(img, -0.5, 0.6, sig, valid)
    core = (slice(12, 20), slice(25, 47))
    reach = regional.gaussian_reach(1.0) + regional.gaussian_reach(sig[1])
    cols = slice(core[1].start - reach, core[1].stop + reach)
    part = _non_film(img[:, cols], -0.5, 0.6, sig, None if valid is None else valid[:, cols],
                     (core[0], slice(reach, reach + core[1].stop - core[1].start)))
    assert np.array_equal(whole[core], part)
