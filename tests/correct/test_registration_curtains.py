"""Curtain stripes as the frameless dx reference (volrecon.correct._registration_curtains)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from volrecon.correct import estimate_drift
from volrecon.correct._registration_curtains import (
    PairShift,
    ProfileSpectra,
    anchor_dx,
    pair_shift,
    solve_correction,
    stripe_profile,
)
from volrecon.correct._registration_synthetic import make_stack

ZEISS = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "zeiss_auriga_fibsem_2slices"


def _stripes(width: int, rng: np.random.Generator) -> np.ndarray:
    """A row of narrow vertical stripes (Gaussian, 0.8-3 px) at random columns, on a fine grid."""
    x = np.arange(width, dtype=float)
    row = np.zeros(width)
    for col in rng.uniform(0, width, width // 25):
        row += rng.choice([-1, 1]) * np.exp(-0.5 * ((x - col) / rng.uniform(0.8, 3.0)) ** 2)
    return row


def _face(shift: float, stripes: np.ndarray, rng: np.random.Generator, rows: int = 192) -> np.ndarray:
    """New content every call (a different slice), the stripes moved ``shift`` px to the right."""
    content = ndimage.gaussian_filter(rng.normal(size=(rows, stripes.size)), 3.0) * 40
    moved = ndimage.shift(stripes, shift, order=3, mode="wrap")
    return 120 + content + 6 * moved[None, :] + rng.normal(0, 4, (rows, stripes.size))


def test_pair_shift_recovers_subpixel_stripe_motion_under_new_content():
    rng = np.random.default_rng(3)
    stripes = _stripes(384, rng)
    clean, noisy = [], []
    for moved in (-2.3, -0.6, 0.0, 0.45, 1.75, 3.2):
        bare = [120 + 6 * ndimage.shift(stripes, m, order=3, mode="wrap")[None, :].repeat(64, 0) for m in (0.0, moved)]
        found = pair_shift(ProfileSpectra([stripe_profile(b) for b in bare]), 0, 1, expected=-moved + 0.8, half=3.0)
        clean.append(found.shift + moved)  # the stripes moved right by m: the dx difference is -m
        for _ in range(4):
            profiles = [stripe_profile(_face(0.0, stripes, rng)), stripe_profile(_face(moved, stripes, rng))]
            found = pair_shift(ProfileSpectra(profiles), 0, 1, expected=-moved + 0.8, half=3.0)
            noisy.append(found.shift + moved)
            assert not found.edge and found.rho > 2 * found.null
    assert np.max(np.abs(clean)) < 0.03, clean  # the sub-pixel peak itself (measured <= 0.02)
    assert np.sqrt(np.mean(np.square(noisy))) < 0.12, noisy  # new content each slice (measured ~0.09)


def test_solve_takes_the_steady_rate_from_long_pairs_and_keeps_the_steps():
    rng = np.random.default_rng(5)
    n = 120
    truth = np.cumsum(rng.normal(0, 0.3, n))
    current = truth + 0.02 * np.arange(n)  # the content's mean motion, read as drift
    pairs = []
    for lag in (20, 32, 51):
        for a in range(n - lag):
            measured = truth[a + lag] - truth[a] + rng.normal(0, 0.3)
            pairs.append(PairShift(a, a + lag, measured, 0.4, 0.0))
    result = solve_correction(pairs, current, correlated=1.0)
    before = current - truth - np.mean(current - truth)
    corrected = current + result.correction
    after = corrected - truth - np.mean(corrected - truth)
    assert np.sqrt(np.mean(after**2)) < 0.25 * np.sqrt(np.mean(before**2))
    assert np.all(result.remaining <= 1.0) and np.mean(result.remaining) < 0.8


def test_solve_of_a_long_stack_is_banded_and_recovers_the_drift(monkeypatch):
    """2000 slices: every factorisation is of a sparse or banded matrix (the longest baseline
    wide), no dense n x n one; the steady rate the current dx carries goes (measured 11.5 -> 0.12 px)."""
    import scipy.linalg
    import scipy.sparse
    import scipy.sparse.linalg

    rng = np.random.default_rng(1)
    n, lags = 2000, (15, 24, 38, 61, 98)
    truth = np.cumsum(rng.normal(0, 0.3, n))
    current = truth + 0.02 * np.arange(n)
    pairs = [
        PairShift(a, a + lag, truth[a + lag] - truth[a] + rng.normal(0, 0.3), 0.4, 0.0)
        for lag in lags
        for a in range(n - lag)
    ]
    banded, sparse = [], []
    factor, lu = scipy.linalg.cholesky_banded, scipy.sparse.linalg.splu

    def spy_banded(band: np.ndarray, **kwargs: object) -> np.ndarray:
        banded.append(band.shape)
        return factor(band, **kwargs)

    def spy_sparse(matrix: object, **kwargs: object) -> object:
        sparse.append((scipy.sparse.issparse(matrix), matrix.shape, matrix.nnz))
        return lu(matrix, **kwargs)

    monkeypatch.setattr(scipy.linalg, "cholesky_banded", spy_banded)
    monkeypatch.setattr(scipy.sparse.linalg, "splu", spy_sparse)
    result = solve_correction(pairs, current, correlated=5.0)
    width = max(lags)
    assert banded and all(rows <= width + 1 and cols == n - 1 for rows, cols in banded), set(banded)
    assert sparse and all(is_sparse and nnz <= (2 * width + 1) * n for is_sparse, _, nnz in sparse)
    before, after = current - truth, current + result.correction - truth
    assert np.std(after) < 0.02 * np.std(before)
    assert np.all((result.remaining >= 0) & (result.remaining <= 1)) and np.mean(result.remaining) < 0.5


def _content_profiles(
    n: int, width: int, seed: int, stripes: np.ndarray | None = None, moved: np.ndarray | None = None
) -> list[np.ndarray]:
    """Profiles of slices whose content decorrelates over ~5 slices; ``stripes`` (optional) is
    added to every slice, moved ``moved[z]`` px right in slice ``z`` (None: fixed columns)."""
    rng = np.random.default_rng(seed)
    content = rng.normal(size=(48, width))
    out = []
    for z in range(n):
        content = 0.8 * content + 0.6 * rng.normal(size=content.shape)
        face = 100 + 30 * ndimage.gaussian_filter(content, (3, 1.5))
        if stripes is not None:
            face = face + 6 * ndimage.shift(stripes, 0.0 if moved is None else moved[z], order=3, mode="wrap")[None, :]
        out.append(stripe_profile(face))
    return out


@pytest.mark.parametrize("fixed_in_detector", [True, False])
def test_stripes_fixed_in_the_detector_are_told_from_curtains(fixed_in_detector):
    """A random walk drift (0.6 px per slice, a steady 0.015 px/slice error in the trajectory):
    stripes at fixed columns correlate at lag 0, not at the trajectory's difference, and would
    pull dx toward no drift (measured 0.87 -> 1.90 px without the test; detector significance
    27.5): the anchor is skipped. The same stripes moving with the specimen (curtains) run and
    correct (measured 0.87 -> 0.12 px, detector significance -16.4)."""
    rng = np.random.default_rng(0)
    n = 200
    truth = np.cumsum(rng.normal(0, 0.6, n))
    stripes = _stripes(1024, rng)
    profiles = _content_profiles(n, 1024, seed=1, stripes=stripes, moved=None if fixed_in_detector else -truth)
    current = truth + 0.015 * np.arange(n)
    correction, info = anchor_dx(profiles, current, 1.0)
    if fixed_in_detector:
        assert correction is None and info["detector_significance"] >= 2.0, info
        assert "fixed in the detector" in info["reason"]
    else:
        assert info["ran"] and info["detector_significance"] < -2.0, info
        error = current + correction.correction - truth
        assert np.std(error) < 0.3 * np.std(current - truth)


@pytest.mark.parametrize("expected_px", [1.0, 2.2])
def test_content_without_stripes_is_not_significant(expected_px):
    """W = 1024, 200 slices, no stripes, an exact trajectory: the mirrored null sits in the same
    lag window, so the gate stays below 2 (the far-lag null gave 2.1-4.6 and a 0.31 px error;
    measured now -0.5..0.7 over seeds 0-2)."""
    profiles = _content_profiles(200, 1024, seed=0)
    correction, info = anchor_dx(profiles, np.zeros(200), expected_px)
    assert correction is None and not info["ran"], info
    assert info["significance"] < 2.0 and "no persistent stripes" in info["reason"], info


@pytest.fixture(scope="module")
def phantoms():
    sample = pytest.importorskip("volrecon.sample")
    if not hasattr(sample, "make_phantom"):
        pytest.skip("phantom generator not available")
    # 120 slices x 512 px: ~13 independent units of the content's decorrelation (9 slices at 80 x
    # 384 px gave 9, whose mean peak stands only 1.3 standard errors above the mirrored null)
    kwargs = {"slices": 120, "shape": (320, 512), "seed": 0, "workers": 1}
    # strong curtains (Zeiss-like), random-walk drift with a trend and jumps, inclined rods, no frame
    with_curtains = sample.make_phantom("diglyme", artefacts=sample.Artefacts(curtain_amplitude=0.2), **kwargs)
    without = sample.make_phantom("diglyme", artefacts=sample.Artefacts(curtains=False), **kwargs)
    return with_curtains, without


def _dx_rms(table, truth: np.ndarray) -> float:
    err = table.shifts[:, 1] - truth[:, 1]
    return float(np.sqrt(np.mean((err - err.mean()) ** 2)))


def test_curtains_reduce_the_frameless_dx_error(phantoms):
    ph = phantoms[0]
    stack, truth = np.asarray(ph.acquired), np.asarray(ph.drift)
    anchored = estimate_drift(stack, workers=1)
    plain = estimate_drift(stack, workers=1, curtains=False)
    info = anchored.metadata["curtains"]
    assert info["ran"], info
    assert info["significance"] >= 2.0 and info["pairs"] >= 20 and min(info["baselines"]) > 1
    assert plain.metadata["curtains"] == {"ran": False, "reason": "off (curtains=False)"}
    # measured 5.82 -> 0.69 px (seed 0, significance 8.3, band (0.7, 3) px chosen from the
    # stripes measured before the pass; 1.45 px, significance 4.4, in the reference band)
    assert _dx_rms(anchored, truth) < 0.7 * _dx_rms(plain, truth)
    np.testing.assert_array_equal(anchored.shifts[:, 0], plain.shifts[:, 0])  # dy untouched
    assert set(anchored.anchor) <= {"structure+curtains", "interpolated"}
    assert np.all(anchored.expected_residual_px <= plain.expected_residual_px + 1e-12)


def test_wider_stripes_choose_the_band_and_anchor_dx():
    """Frameless, stripes 3-8 px (amplitude 0.3), 120 x 320 x 512, seed 0: measured on a few
    slices before the pass, they choose the band (0.7, 3) px, where they stand out most from the
    content (not wider: the content is stronger there): dx 6.40 px without the anchor, 0.99 with
    it in the reference band (0.7, 6) px, 0.58 in the chosen one."""
    sample = pytest.importorskip("volrecon.sample")
    art = sample.Artefacts(curtain_amplitude=0.3, curtain_width_px=(3.0, 8.0))
    ph = sample.make_phantom("diglyme", slices=120, shape=(320, 512), seed=0, workers=1, artefacts=art)
    stack, truth = np.asarray(ph.acquired), np.asarray(ph.drift)
    table = estimate_drift(stack, workers=1)
    info = table.metadata["curtains"]
    assert info["ran"] and info["stripe_width"]["sigma_px"] is not None, info
    assert tuple(info["band_px"]) != (0.7, 6.0), info
    assert _dx_rms(table, truth) < 0.75, _dx_rms(table, truth)


def test_no_curtains_is_skipped_and_changes_nothing(phantoms):
    ph = phantoms[1]
    stack = np.asarray(ph.acquired)
    table = estimate_drift(stack, workers=1)
    plain = estimate_drift(stack, workers=1, curtains=False)
    info = table.metadata["curtains"]
    assert not info["ran"] and "no persistent stripes" in info["reason"], info
    np.testing.assert_array_equal(table.shifts, plain.shifts)
    assert table.anchor == plain.anchor
    np.testing.assert_array_equal(table.expected_residual_px, plain.expected_residual_px)


def test_frame_walls_win_and_short_stacks_are_skipped():
    st = make_stack(24, (192, 192), frame=True, inclined=0.3, noise=3.0, seed=4)
    table = estimate_drift(st.acquired)
    assert not table.metadata["curtains"]["ran"]
    assert "walls" in table.metadata["curtains"]["reason"]
    np.testing.assert_array_equal(table.shifts, estimate_drift(st.acquired, curtains=False).shifts)
    short = make_stack(6, (128, 128), inclined=0.0, seed=5)
    info = estimate_drift(short.acquired, anchor="none").metadata["curtains"]
    assert not info["ran"] and "pairs" in info["reason"], info


def test_anchor_dx_without_profiles_says_why():
    correction, info = anchor_dx([None, None, np.zeros(64, np.float32)], np.zeros(3), 1.0)
    assert correction is None and not info["ran"] and "too few" in info["reason"]


@pytest.mark.skipif(not ZEISS.is_dir(), reason="shared Zeiss sample data not present")
def test_real_zeiss_curtains_agree_with_the_anchored_dx():
    tifffile = pytest.importorskip("tifffile")
    from volrecon.correct.frame import detect_frame
    from volrecon.io.stack import detect_databar

    stack = tifffile.imread(ZEISS / "ZEISS_SEM_multipage.tif")
    table = estimate_drift(stack)  # the cap anchors dy; 1.0 < dx < 3.8 (test_frame)
    y0, y1, x0, x1 = detect_frame(stack).specimen
    y1 = min(y1, stack.shape[1] - detect_databar(stack[0]))
    profiles = [stripe_profile(s[y0:y1, x0:x1]) for s in stack]
    found = pair_shift(ProfileSpectra(profiles), 0, 1, expected=0.0, half=6.0)
    assert found.rho > 0.6 and not found.edge and found.rho > 2 * found.null
    assert abs(found.shift - (table.shifts[1, 1] - table.shifts[0, 1])) < 1.0
    assert not table.metadata["curtains"]["ran"]  # two slices: too short for long baselines
