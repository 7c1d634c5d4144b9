"""The void split's per-slice electrolyte levels and spread move continuously with the sample
(:func:`volrecon.segment.voids.slice_levels`): moving the cathode's boundary by a few pixels
changes each slice's electrolyte count a little, and must change the levels a little."""

import numpy as np

from volrecon.segment.voids import SLICE_LEVEL_VOXELS, slice_level_edges, slice_levels


def _hists(counts, seed=0):
    """Per-slice histograms of electrolyte grey: spread 3, each slice's own level within +-4,
    a void tail far below; ``counts`` electrolyte voxels per slice."""
    rng = np.random.default_rng(seed)
    edges = slice_level_edges(72.0, 4.0)
    means = 72.0 + rng.uniform(-4.0, 4.0, len(counts))
    rows = []
    for n, m in zip(counts, means):
        v = np.concatenate([rng.normal(m, 3.0, n), rng.uniform(20.0, 65.0, n // 10)])
        rows.append(np.histogram(v, edges)[0])
    return np.stack(rows), edges, means


def test_slice_count_crossing_the_limit_moves_nothing_abruptly():
    """One slice holds just under, then just over, the voxels a slice's own level needs (a few draws
    more): its level and the spread change by a small part of the spread, not by the
    slice's whole error (about 2 spreads here) or a histogram bin's worth of width."""
    # the slice's counts in the window (electrolyte + a tenth as much void tail) just under / over the limit
    under = int(SLICE_LEVEL_VOXELS / 1.1) - 10
    counts = [6000] * 11 + [under]
    h_lo, edges, means = _hists(counts)
    h_hi, _, _ = _hists(counts[:-1] + [under + 20])
    lv_lo, sp_lo = slice_levels(h_lo, edges)
    lv_hi, sp_hi = slice_levels(h_hi, edges)
    assert np.all(np.isfinite(lv_lo)) and np.all(np.isfinite(lv_hi))
    assert abs(lv_lo[-1] - lv_hi[-1]) < 0.1 * 3.0
    assert abs(sp_lo - sp_hi) < 0.01 * sp_hi
    # a full slice has its own level; spread measured about the slices' levels
    assert np.all(np.abs(lv_hi[:-1] - means[:-1]) < 0.25 * 3.0)
    assert abs(sp_hi - 3.0) < 0.3


def test_slice_levels_weigh_a_thin_slice_in_part():
    """A slice with three quarters of the voxels keeps half its own error; one with under half
    of them none (NaN: the caller leaves it at the stack's level)."""
    counts = [6000] * 11 + [3 * SLICE_LEVEL_VOXELS // 4]
    h, edges, means = _hists(counts, seed=1)
    lv, _ = slice_levels(h, edges)
    ref = np.median(lv[:-1])
    assert abs((lv[-1] - ref) - 0.5 * (means[-1] - ref)) < 0.4
    h2, _, _ = _hists(counts[:-1] + [SLICE_LEVEL_VOXELS // 3], seed=1)
    assert np.isnan(slice_levels(h2, edges)[0][-1])


def test_spread_does_not_follow_the_window():
    """The stack's pooled spread sets the bins (1/16 of it each); a pooled spread a few per cent
    off (a few voxels more or fewer in the pooled sample) must not move the spread by more than
    a few per cent (slices of 2200 electrolyte voxels, spread 3, void and edge tails)."""
    for seed in range(4):
        rng = np.random.default_rng(seed)
        means = 72.0 + rng.uniform(-4.0, 4.0, 24)
        values = [np.concatenate([rng.normal(m, 3.0, 2200), rng.uniform(20.0, 65.0, 220), rng.uniform(76.0, 100.0, 146)])
                  for m in means]
        spreads = []
        for f in np.linspace(0.96, 1.04, 17):
            edges = slice_level_edges(72.0, 4.0 * f)
            spreads.append(slice_levels(np.stack([np.histogram(v, edges)[0] for v in values]), edges)[1])
        assert max(spreads) - min(spreads) < 0.03 * 3.0
        assert abs(np.mean(spreads) - 3.0) < 0.1
