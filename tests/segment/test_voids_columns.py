"""Electrolyte columns (:func:`volrecon.segment.voids.electrolyte_columns`) in the void split."""

import numpy as np

from volrecon.phases import PHASES
from volrecon.segment.voids import VoidCues, electrolyte_columns, split_voids

LEVEL, SPREAD = 0.22, 0.02


def test_electrolyte_columns_need_the_face_and_the_column_behind_at_the_level():
    g = np.full((10, 4, 4), LEVEL, np.float32)
    g[:, 1] = 0.36  # binder-grey column: never electrolyte
    g[6:, 2] = 0.36  # face at the level with solid behind (a void near its floor over binder)
    g[6:, 3] = 0.10  # face at the level with a dark column behind (a void continuing deeper)
    flat = electrolyte_columns(g, level=LEVEL, spread=SPREAD, depth=3, flat_k=1.0)
    assert flat[:9, 0].all() and not flat[9].any()  # the last slice has nothing behind it
    assert not flat[:, 1].any()
    assert flat[:2, 2].all() and not flat[4:6, 2].any()
    assert not flat[4:6, 3].any()
    assert not electrolyte_columns(g, level=LEVEL, spread=SPREAD, depth=3, flat_k=0.0).any()


def _void_over_binder():
    """A cylindrical void (slices 2-9, radius 5 px) in electrolyte, over binder from slice 10 on,
    rendered as shine-through sees it with a 100 nm (5-slice) depth: dark where the void goes on
    5 slices behind, the attenuated binder grey (near the level) in its last 5 slices."""
    shape = (16, 32, 32)
    phases = np.full(shape, PHASES["electrolyte"], np.uint8)
    g = np.full(shape, LEVEL, np.float32)
    yy, xx = np.mgrid[:32, :32]
    disk = np.hypot(yy - 16, xx - 16) <= 5
    phases[10:] = PHASES["binder"]
    g[10:] = 0.36
    void = np.zeros(shape, bool)
    void[2:10][:, disk] = True
    g[2:5][:, disk] = 0.04
    g[5:10][:, disk] = 0.04 + 0.55 * 0.36
    return phases, g, void, disk


def test_split_keeps_the_lit_void_and_clears_the_flat_ring():
    E, V, B = PHASES["electrolyte"], PHASES["void"], PHASES["binder"]
    phases, g, void, disk = _void_over_binder()
    cat = np.ones(g.shape, bool)
    kw = dict(void=V, electrolyte=E, binder=B, level=LEVEL, spread=SPREAD, voxel_size_nm=(20.0, 10.0, 10.0))
    base = dict(shine_depth_nm=100.0, grow_nm=20.0, edge_nm=0.0, average_nm=0.0, wall_shift_nm=0.0, vote_nm=0.0)
    off = split_voids(g, phases, cat, cues=VoidCues(flat_k=0.0, **base), **kw) == V
    on = split_voids(g, phases, cat, cues=VoidCues(flat_k=1.0, **base), **kw) == V
    # the void's lit lower half (binder seen behind its floor) stays void: its column is not flat
    assert on[void].all() and off[void].all()
    # the outer ring grown into the electrolyte is electrolyte in front of electrolyte
    ring = off & ~void
    assert ring[2:5].sum() > 0
    assert not (on & ~void)[:5].any()
    assert on.sum() < off.sum()


def test_no_column_test_when_the_shine_through_spans_under_three_slices():
    """With slices as thick as half the shine-through depth (100 nm over 40 nm slices: 2 slices
    behind) the column behind a face is not resolved: the split is the one without the test."""
    E, V, B = PHASES["electrolyte"], PHASES["void"], PHASES["binder"]
    phases, g, void, disk = _void_over_binder()
    cat = np.ones(g.shape, bool)
    kw = dict(void=V, electrolyte=E, binder=B, level=LEVEL, spread=SPREAD, voxel_size_nm=(40.0, 10.0, 10.0))
    base = dict(shine_depth_nm=100.0, grow_nm=20.0, edge_nm=0.0, average_nm=0.0, wall_shift_nm=0.0, vote_nm=0.0)
    off = split_voids(g, phases, cat, cues=VoidCues(flat_k=0.0, **base), **kw)
    on = split_voids(g, phases, cat, cues=VoidCues(flat_k=1.0, **base), **kw)
    np.testing.assert_array_equal(on, off)
    # at 20 nm slices (5 behind) the same grey values are tested and the split differs
    kw["voxel_size_nm"] = (20.0, 10.0, 10.0)
    assert (split_voids(g, phases, cat, cues=VoidCues(flat_k=1.0, **base), **kw)
            != split_voids(g, phases, cat, cues=VoidCues(flat_k=0.0, **base), **kw)).any()
