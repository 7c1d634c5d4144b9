"""Curtain onsets placed at row resolution (volrecon.correct._curtains_onset)."""

from __future__ import annotations

import json

import numpy as np

from volrecon.correct import CurtainSettings, apply_curtains, estimate_curtains
from volrecon.correct._curtains_onset import find_onsets


def started_stripes(seed=0, nz=4, noise=4.0):
    """Layers and a particle; Gaussian-profile stripes that start inside a block (below the particle, and mid-face)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:256, :224]
    base = np.where(y < 120, 90.0, 150.0) + np.where((np.abs(y - 80) < 27) & (np.abs(x - 60) < 25), 60.0, 0.0)
    stripes = np.zeros((nz, 256, 224))
    # (column, first row, width, amplitude): rows 107 and 203 lie 8 and 4 rows past a block centre
    for col, start, width, amp in ((60, 107, 1.5, 35.0), (150, 203, 2.5, -30.0), (190, 45, 1.0, 25.0)):
        stripes[:, start:, :] += amp * np.exp(-0.5 * ((np.arange(224) - col) / width) ** 2)
    return stripes, base[None] + stripes + rng.normal(0, noise, stripes.shape)


def test_onsets_found_at_their_row_and_capture_more():
    stripes, img = started_stripes()
    found = {}
    for on in (False, True):
        settings = estimate_curtains(img, onsets=on)
        assert settings.enabled and settings.onsets is on
        found[on] = img - apply_curtains(img, settings)
    for col, start, amp in ((60, 107, 35.0), (150, 203, -30.0)):
        profile = found[True][:, :, col].mean(axis=0) * np.sign(amp)
        # the first row carrying half the stripe is within a few rows of its start (the
        # linear ramp puts it half a block early)
        first = int(np.argmax(profile > 0.5 * abs(amp)))
        assert abs(first - start) <= 4, (col, first, start)
        ramp_first = int(np.argmax(found[False][:, :, col].mean(axis=0) * np.sign(amp) > 0.5 * abs(amp)))
        assert abs(ramp_first - start) > abs(first - start)
        # nothing above the start
        assert np.abs(profile[: start - 6]).max() < 0.1 * abs(amp)
    miss = {on: float(np.sum((found[on] - stripes) ** 2)) for on in found}
    assert miss[True] < 0.8 * miss[False]
    assert 1 - miss[True] / float(np.sum(stripes**2)) > 0.95  # share of the stripe energy captured


def test_find_onsets_only_marks_jumps():
    rng = np.random.default_rng(3)
    plane = rng.normal(100.0, 3.0, (128, 64)).astype(np.float32)
    plane[70:, 30:33] += 40.0  # a stripe starting at row 70, between the centres 55.5 and 71.5
    nodes = np.zeros((8, 64), np.float32)
    nodes[4:, 30:33] = 40.0
    nodes[:, 50] = np.linspace(20.0, 26.0, 8)  # slowly changing: keeps its linear interpolation
    split = find_onsets(plane, nodes, 16, np.array([-8, -6, -5, -3, -2, 0, 2, 3, 5, 6, 8]))
    marked = np.argwhere(split >= 0)
    assert {tuple(m) for m in marked} == {(4, 30), (4, 31), (4, 32)}
    assert np.all(np.abs(split[4, 30:33] - 70) <= 4)
    # a stripe-free noisy plane with zero nodes: nothing to place
    assert np.all(find_onsets(plane, np.zeros_like(nodes), 16, np.array([-2, 0, 2])) == -1)


def test_stripe_free_slice_unchanged_with_onsets():
    rng = np.random.default_rng(5)
    img = 120.0 + rng.normal(0, 6.0, (3, 192, 160))
    settings = estimate_curtains(img)
    assert not settings.enabled
    np.testing.assert_allclose(apply_curtains(img, settings), img, rtol=0, atol=1e-4)  # float32 on the way
    # forced on, the onsets add nothing a pure-noise slice would not get from the ramp
    forced = {on: apply_curtains(img, estimate_curtains(img, min_significance=0, onsets=on)) for on in (False, True)}
    change = {on: float(np.sqrt(np.mean((forced[on] - img) ** 2))) for on in forced}
    assert change[True] <= 1.05 * change[False] + 1e-6


def test_saved_before_onsets_reapplied_with_the_ramp(tmp_path):
    s = CurtainSettings()
    assert s.onsets
    old = {k: v for k, v in s.to_dict().items() if k != "onsets"}
    (tmp_path / "curtains.json").write_text(json.dumps(old))
    assert CurtainSettings.load(tmp_path).onsets is False
    s.save(tmp_path)
    assert CurtainSettings.load(tmp_path).onsets is True
