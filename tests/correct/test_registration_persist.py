"""Tiles whose content moves persistently lose their weight in the structure estimate."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from volrecon.correct import estimate_drift
from volrecon.correct._registration_persist import tile_wander, wander_information


def test_a_persistently_moving_tile_loses_its_weight():
    rng = np.random.default_rng(0)
    pairs, tiles = 40, 9
    shifts = rng.normal(0, 0.05, (pairs, tiles, 2))  # zero drift, independent per-pair noise
    shifts[:, 4, 1] += 0.3  # one tile's content slides along x, slice after slice
    votes = np.ones((pairs, tiles), bool)
    wander = tile_wander(shifts, votes, np.median(shifts, axis=1))
    info = wander_information(shifts, votes, np.median(shifts, axis=1))
    assert np.argmax(wander) == 4
    # it loses its weight along x, the direction it slides in, and keeps it across (y)
    assert info[4, 1, 1] < 0.05 * np.median(info[:, 1, 1])
    assert info[4, 0, 0] > 0.5 * np.median(info[:, 0, 0])
    # a tile that did not vote adds no departure
    votes[:, 4] = False
    assert tile_wander(shifts, votes, np.median(shifts, axis=1))[4] == 0.0


def test_tiles_wandering_alike_are_weighted_evenly():
    # every tile's content slides the same way: equal wander, equal weights
    pairs, tiles = 30, 12
    shifts = np.zeros((pairs, tiles, 2))
    shifts[:, :, 0] = np.where(np.arange(pairs) % 2, 0.2, -0.2)[:, None] * np.where(np.arange(tiles) % 2, 1, -1)[None]
    w = np.trace(wander_information(shifts, np.ones((pairs, tiles), bool), np.zeros((pairs, 2))), axis1=1, axis2=2)
    np.testing.assert_allclose(w, w[0])


def _band_stack(slices: int = 40, shape: tuple[int, int] = (256, 256), band: int = 80, speed: float = 0.4,
                seed: int = 0) -> np.ndarray:
    """No drift; the top ``band`` rows hold content sliding ``speed`` px/slice along x
    (a layer of aligned fibres, a rough surface), the rest a slowly evolving texture."""
    rng = np.random.default_rng(seed)
    ny, nx = shape
    static = ndimage.gaussian_filter(rng.normal(size=(ny, nx)), 3.0)
    moving = ndimage.gaussian_filter(rng.normal(size=(band, nx + 64)), 3.0)
    out = np.empty((slices, ny, nx), np.float32)
    for z in range(slices):
        img = static + 0.3 * ndimage.gaussian_filter(rng.normal(size=(ny, nx)), 3.0)
        img[:band] = ndimage.shift(moving, (0, speed * z), order=3, mode="wrap")[:, 32 : 32 + nx]
        out[z] = 120 + 400 * img + rng.normal(0, 4, (ny, nx))
    return out


def test_sliding_layer_does_not_invent_drift():
    # a third of the tiles slide steadily: weighted as much as the rest (as before), their
    # motion invented ~1.4 px RMS of drift here; weighted by how much they wander, < 1.0
    stack = _band_stack()
    table = estimate_drift(stack, anchor="none", baselines=(1, 2), workers=1)
    err = table.shifts - table.shifts.mean(axis=0)
    assert float(np.sqrt(np.mean(np.sum(err**2, axis=1)))) < 1.15


def test_chain_errors_ignore_the_pairs_a_tile_did_not_vote_in():
    from volrecon.correct._registration_persist import chain_errors

    rng = np.random.default_rng(1)
    pairs, tiles = 60, 8
    shifts = rng.normal(0, 0.05, (pairs, tiles, 2))  # per-pair noise, 0.05 px per axis
    shifts[:, 0, 1] += 0.3  # tile 0's content slides along x: a persistent departure
    consensus = np.zeros((pairs, 2))
    only = np.zeros(tiles)
    only[0] = 1.0
    votes = np.ones((pairs, tiles), bool)
    votes[::2, 0] = False  # tile 0 votes in every other pair only
    persistent, random = chain_errors(shifts, votes, consensus, only)
    # the random part is the walk of its 30 voted steps' noise (per step 2 x 0.05^2 per axis),
    # not the jumps between its 0.3 px departure and the pairs it did not vote in
    expected = np.sqrt(2 * 2 * 0.05**2 * 30 / 6.0 / 2.0)
    assert 0.7 * expected < random < 1.3 * expected
    slide = 0.3 * 30 / np.sqrt(12)  # RMS of a mean-removed ramp of 30 steps of 0.3 px
    assert 0.8 * slide < persistent < 1.1 * slide


def _directional_tiles(pairs: int = 80, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tile shifts of a 256 px region (7 x 7 tiles): a random-walk drift common to all, and in
    every tile content sliding along its own direction (-60..60 degrees from x, 0.1-0.4 px per
    slice: inclined fibres mostly heading one way), plus 0.05 px of per-pair noise."""
    rng = np.random.default_rng(seed)
    tiles = 49
    drift = rng.normal(0, 0.5, (pairs, 2))
    angle = np.radians(rng.uniform(-60, 60, tiles))
    speed = rng.uniform(0.1, 0.4, tiles)
    slide = speed[:, None] * np.c_[np.sin(angle), np.cos(angle)]
    shifts = drift[:, None, :] + slide[None] + rng.normal(0, 0.05, (pairs, tiles, 2))
    return shifts, drift, slide


def test_wander_information_drops_what_a_tile_says_along_its_own_motion():
    from volrecon.correct._registration_persist import wander_information

    shifts, drift, slide = _directional_tiles()
    info = wander_information(shifts, np.ones(shifts.shape[:2], bool), drift)
    values, vectors = np.linalg.eigh(info)
    along = slide / np.linalg.norm(slide, axis=1, keepdims=True)
    # the least-informative direction of each tile is its content's direction of motion
    assert np.median(np.abs(np.sum(vectors[:, :, 0] * along, axis=1))) > 0.95
    assert np.median(values[:, 0] / values[:, 1]) < 0.5



def _half_sliding_stack(slices: int = 40) -> np.ndarray:
    """No drift; the left half slides 0.4 px/slice along y (aligned fibres), the right half is a
    slowly evolving texture."""
    rng = np.random.default_rng(3)
    ny, nx = 256, 512
    static = ndimage.gaussian_filter(rng.normal(size=(ny, nx)), 3.0)
    moving = ndimage.gaussian_filter(rng.normal(size=(ny + 64, nx // 2)), 3.0)
    stack = np.empty((slices, ny, nx), np.float32)
    for z in range(slices):
        img = static + 0.3 * ndimage.gaussian_filter(rng.normal(size=(ny, nx)), 3.0)
        img[:, : nx // 2] = ndimage.shift(moving, (0.4 * z, 0), order=3, mode="wrap")[32 : 32 + ny]
        stack[z] = 120 + 400 * img + rng.normal(0, 4, (ny, nx))
    return stack


def test_expected_residual_follows_what_the_halves_disagree_on():
    # whatever the left half's tiles invent, the halves disagree by it: the structure rows'
    # expected residual is set to that level (one half's error), and tracks the error made
    table = estimate_drift(_half_sliding_stack(), anchor="none", workers=1)
    content = table.metadata["structure_errors"]["expected_px"]
    split = table.metadata["baseline_choice"]["split_half_disagreement_px"]
    used = ",".join(map(str, table.metadata["baseline_choice"]["used"]))
    assert content == pytest.approx(split[used] / 2.0)
    assert content > 0.5  # the sliding half moves ~16 px over the stack
    structure = np.array([a == "structure" for a in table.anchor])
    assert structure.all()
    assert np.sqrt(np.mean(table.expected_residual_px**2)) == pytest.approx(content)
    err = table.shifts - table.shifts.mean(axis=0)  # the truth is no drift
    measured = np.sqrt(np.mean(np.sum(err**2, axis=1)))  # 2D, the table's figure is per axis
    assert 1 / 1.5 < np.sqrt(2.0) * table.expected_residual_rms_px / measured < 1.5


def test_scaled_to_content_touches_only_structure_rows():
    from volrecon.correct.drift import _scaled_to_content

    residual = np.array([0.02, 0.02, 1.0, 2.0, 3.0, 0.03])
    anchors = ["frame", "frame", "structure", "interpolated", "structure", "frame"]
    out = _scaled_to_content(residual, anchors, 0.5)
    np.testing.assert_array_equal(out[[0, 1, 5]], residual[[0, 1, 5]])
    rows = out[2:5]
    assert np.sqrt(np.mean(rows**2)) == pytest.approx(0.5)
    np.testing.assert_allclose(rows / rows[0], [1.0, 2.0, 3.0])
