"""Baselines chosen by split-half agreement, against ground truth (zero or known drift)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from volrecon.correct import estimate_drift
from volrecon.correct._registration_synthetic import make_stack


def _rms(shifts: np.ndarray, truth: np.ndarray) -> float:
    err = np.asarray(shifts) - truth
    err -= err.mean(axis=0)
    return float(np.sqrt(np.mean(np.sum(err**2, axis=1))))


def _decorrelating_stack(slices: int = 48, shape: tuple[int, int] = (320, 512), seed: int = 0) -> np.ndarray:
    """No drift; particles crossing the slice plane at random angles.

    Each particle is a blob moving at its own velocity (~1 px/slice, random direction) and
    visible for 4-10 slices, so slices more than a few apart share no content.
    """
    rng = np.random.default_rng(seed)
    ny, nx = shape
    n = ny * nx // 60
    birth, life = rng.uniform(-8, slices, n), rng.uniform(4, 10, n)
    pos, vel = rng.uniform(0, 1, (n, 2)) * [ny, nx], rng.normal(0, 1.0, (n, 2))
    amp = rng.choice([-1, 1], n) * rng.uniform(20, 40, n)
    out = np.empty((slices, ny, nx), np.uint8)
    for z in range(slices):
        t = z - birth
        alive = (t >= 0) & (t <= life)
        p = np.rint(pos[alive] + vel[alive] * t[alive, None]).astype(int)
        img = np.zeros(shape)
        np.add.at(img, (np.clip(p[:, 0], 0, ny - 1), np.clip(p[:, 1], 0, nx - 1)), amp[alive] * np.sin(np.pi * t[alive] / life[alive]))
        img = 120 + 8 * ndimage.gaussian_filter(img, 2.0) + rng.normal(0, 3, shape)
        out[z] = np.clip(np.rint(img), 0, 255)
    return out


def test_long_baselines_dropped_when_content_decorrelates():
    # long pairs see unrelated content; weighted as independent they invented > 10 px of drift
    stack = _decorrelating_stack()
    table = estimate_drift(stack, anchor="none", tiles=0)
    assert _rms(table.shifts, np.zeros((len(stack), 2))) < 3.0
    choice = table.metadata["baseline_choice"]
    assert 16 not in choice["used"] and set(choice["used"]) >= {1, 2}
    assert choice["split_half_disagreement_px"]["1,2,4,8,16"] > choice["split_half_disagreement_px"]["1,2"]


def test_long_baselines_kept_on_static_noisy_content():
    # independent (noise) pair errors: long baselines are what keeps the error from adding up
    st = make_stack(40, (256, 512), inclined=0.0, noise=28.0, seed=4)
    table = estimate_drift(st.acquired, anchor="none", tiles=0)
    chained = estimate_drift(st.acquired, anchor="none", tiles=0, baselines=(1,))
    assert table.metadata["baseline_choice"]["used"] == [1, 2, 4, 8, 16]
    assert _rms(table.shifts, st.drift) < 0.5 * _rms(chained.shifts, st.drift)


def test_small_regions_keep_every_baseline():
    # halves narrower than 256 px do not stand in for the whole region: no choice is made
    st = make_stack(20, (128, 128), inclined=0.0, noise=3.0, seed=8)
    table = estimate_drift(st.acquired, anchor="none")
    assert table.metadata["baseline_choice"] is None
