"""The void split's shine-through tails through binder-labelled voxels: void only where lit from behind."""

from dataclasses import replace

import numpy as np

from volrecon.phases import PHASES
from volrecon.segment.voids import VoidCues, lit_from_behind, split_voids

E, V, B, A = PHASES["electrolyte"], PHASES["void"], PHASES["binder"], PHASES["active"]
VOX = (20.0, 10.0, 10.0)
# shine-through 3 slices deep; no edge rim, averaging, far-wall rim, electrolyte-column test or vote
CUES = VoidCues(shine_depth_nm=60.0, grow_nm=20.0, edge_nm=0.0, average_nm=0.0, wall_shift_nm=0.0, flat_k=0.0,
                vote_nm=0.0)


def _tail_block():
    """A dark void core in slices 2-6 whose columns meet binder-grey voxels (0.36) in slices 7-9: on
    the left a particle lies within 3 slices behind them (slices 10-12), on the right, more than the
    shine-through blur (the outer ring, 2 pixels) away from that particle, binder.

    A void's face shows the material behind it attenuated: binder-grey over a particle, darker than
    the binder over binder.  Returns phases, grey and the two halves' in-plane masks."""
    shape = (16, 40, 40)
    phases = np.full(shape, E, np.uint8)
    g = np.full(shape, 0.22, np.float32)
    yy, xx = np.mgrid[:40, :40]
    core = np.hypot(yy - 20, xx - 20) <= 5
    g[2:7][:, core] = 0.05
    phases[7:10][:, core] = B
    g[7:10][:, core] = 0.36
    left, right = core & (xx < 20), core & (xx > 22)
    phases[10:14][:, core & ~left] = B
    g[10:14][:, core & ~left] = 0.36
    phases[10:13][:, left] = A
    g[10:13][:, left] = 0.7
    return phases, g, left, right


def _split(phases, g, **kw):
    return split_voids(g, phases, np.ones(g.shape, bool), void=V, electrolyte=E, binder=B, level=0.22, spread=0.02,
                       voxel_size_nm=VOX, **{"cues": CUES, **kw})


def test_tail_takes_binder_grey_only_where_a_particle_lights_it():
    """The dark core's columns continue over the shine-through depth through the binder-grey voxels
    lit by the particle behind them (void: an empty column over a particle reads binder-grey) but
    not through those over binder (binder-grey there is binder: a void's face over binder is darker);
    the former code continued through both."""
    phases, g, left, right = _tail_block()
    out = _split(phases, g)
    assert (out[2:7][:, left | right] == V).all()
    assert (out[7:10][:, left] == V).all()
    assert (out[7:14][:, right] == B).all()
    # the lit ring alone does not take the right half either
    assert (_split(phases, g, cues=replace(CUES, lit_ring=False))[7:10][:, right] == B).all()


def test_tail_without_a_particle_label_keeps_the_binder_grey():
    """With no particle label (``active=None``) what lights a face is unknown: the tail continues
    through the binder-labelled voxels as through the pore, on both halves."""
    phases, g, left, right = _tail_block()
    out = _split(phases, g, active=None)
    assert (out[7:10][:, left | right] == V).all()


def test_lit_from_behind_looks_within_the_depth_and_the_array():
    p = np.zeros((8, 2, 2), bool)
    p[5, 0, 0] = True
    lit = lit_from_behind(p, 3)
    assert lit[2:5, 0, 0].all() and not lit[:2, 0, 0].any() and not lit[5:, 0, 0].any()
    assert not lit[:, 1].any()
    assert not lit_from_behind(p, 0).any()
    assert not lit_from_behind(np.ones((4, 1, 1), bool), 10)[-1].any()
    # the shine-through blur: a particle within the structure aside lights the face too
    q = np.zeros((4, 1, 9), bool)
    q[3, 0, 4] = True
    blur = np.ones((1, 1, 5), bool)
    assert lit_from_behind(q, 1, blur=blur)[2, 0].tolist() == [False, False, True, True, True, True, True, False, False]
    assert lit_from_behind(q, 1)[2, 0].sum() == 1
