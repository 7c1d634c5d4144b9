"""The lit ring of the void split: binder-grey void faces lit by a particle behind them."""

from dataclasses import replace

import numpy as np

from volrecon.phases import PHASES
from tests.segment.test_voids import assert_block_exact
from volrecon.segment.voids import VoidCues, _rim_disk, lit_ring, split_voids

E, V, B, A = PHASES["electrolyte"], PHASES["void"], PHASES["binder"], PHASES["active"]
VOX = (20.0, 10.0, 10.0)
# shine-through 3 slices deep, the void's outer ring 2 pixels; no edge rim, averaging, far-wall rim
# electrolyte-column test or closing vote, so that only the dark core, its ring and the lit ring act
CUES = VoidCues(shine_depth_nm=60.0, grow_nm=20.0, edge_nm=0.0, average_nm=0.0, wall_shift_nm=0.0, flat_k=0.0,
                vote_nm=0.0)


def _lit_block():
    """A dark void beside three binder patches of one grey (0.36): one lit in its slices 5-7 by a
    particle within 3 slices behind, one over binder, and one over a particle but far from the void.

    Returns phases, grey, in-plane radius from the void's centre and the patches' in-plane masks.
    """
    shape = (14, 40, 40)
    phases = np.full(shape, E, np.uint8)
    g = np.full(shape, 0.22, np.float32)
    yy, xx = np.mgrid[:40, :40]
    r = np.hypot(yy - 20, xx - 20)
    g[2:8][:, r <= 5] = 0.05  # the dark core: empty over empty space
    near = (r > 7) & (r <= 8)  # beyond the core's 2-pixel ring, within 2 pixels of it
    lit, over_binder = near & (xx < 17), near & (xx > 23)
    far = (r > 13) & (r <= 15) & (xx < 17)
    for patch in (lit, over_binder, far):
        phases[2:8][:, patch] = B
        g[2:8][:, patch] = 0.36
    # a particle behind the lit and far patches (slices 8-11: within 3 slices of their slices 5-7), binder behind the other
    for patch in (lit, far):
        phases[8:12][:, patch] = A
        g[8:12][:, patch] = 0.7
    phases[8:12][:, over_binder] = B
    g[8:12][:, over_binder] = 0.36
    return phases, g, r, {"lit": lit, "over_binder": over_binder, "far": far}


def _split(phases, g, cues=CUES):
    return split_voids(g, phases, np.ones(g.shape, bool), void=V, electrolyte=E, binder=B, level=0.22, spread=0.02,
                       voxel_size_nm=VOX, cues=cues)


def test_split_voids_takes_the_binder_grey_face_lit_by_a_particle_behind():
    """Of three binder patches of the same grey, only the slices of the one beside the void whose
    column meets a particle within the shine-through depth become void; the same patch in slices
    with only binder within that depth, the patch over binder and the patch far from the void
    stay binder."""
    phases, g, r, patch = _lit_block()
    out = _split(phases, g)
    core = np.zeros(g.shape, bool)
    core[2:8][:, r <= 5] = True
    assert (out[core] == V).all()
    assert (out[5:8][:, patch["lit"]] == V).all()
    assert (out[2:5][:, patch["lit"]] == B).all()  # within 3 slices behind them: the patch's own binder
    assert (out[2:12][:, patch["over_binder"]] == B).all()
    assert (out[2:8][:, patch["far"]] == B).all()
    assert (out[phases == A] == A).all()
    # switched off, the lit patch stays binder
    off = _split(phases, g, replace(CUES, lit_ring=False))
    assert (off[2:8][:, patch["lit"]] == B).all()
    assert ((out == V) & (off != V)).sum() == 3 * patch["lit"].sum()


def test_lit_ring_needs_the_particle_behind_within_the_array():
    """A particle lights the binder-grey faces within ``depth`` slices in front of it, beside the
    void only; the last slice sees nothing behind it, and with no depth nothing is lit."""
    void = np.zeros((8, 9, 9), bool)
    void[:, 4, 4] = True
    binder = np.ones(void.shape, bool) & ~void
    particle = np.zeros(void.shape, bool)
    particle[5] = True  # a particle's slice
    ring = _rim_disk(10.0, VOX, min_share=0.0)
    lit = lit_ring(void, binder, particle, depth=2, ring=ring)
    assert lit[3:5, 4, 3].all() and lit[3:5, 3, 4].all()  # 1-2 slices in front of it
    assert not lit[:3].any() and not lit[5:].any()
    assert not lit[:, 0, 0].any()  # beyond the ring
    assert not lit_ring(void, binder, particle, depth=0, ring=ring).any()
    everywhere = lit_ring(void, binder, np.ones(void.shape, bool), depth=20, ring=ring)
    assert everywhere[:-1, 4, 3].all() and not everywhere[-1].any()


def test_the_stacks_end_lights_the_tails_not_the_lit_ring():
    """The specimen milled only to the slices before the particles that light the binder-grey voxels.
    Under the dark core (a tail) the unseen material past the last slice may light them, and they are
    void, as in the whole stack; beside it (the lit ring) the lit face is the only cue there is, and
    unseen it is none: the patch stays binder (rev25b L5, checked: reading it lit there took voxels at
    the binder-grey ring's base rate, lit_ring's docstring)."""
    from tests.segment.test_voids_tail import _tail_block

    phases, g, left, right = _tail_block()  # binder-grey under the core in slices 7-9, particle (left) 10-12
    assert (_split(phases, g)[7:10][:, left] == V).all()
    cut = _split(phases[:10], g[:10])
    assert (cut[7:10][:, left] == V).all()
    phases, g, r, patch = _lit_block()  # the lit patch's particle in slices 8-11
    assert (_split(phases, g)[5:8][:, patch["lit"]] == V).all()
    assert (_split(phases[:8], g[:8])[2:8][:, patch["lit"]] == B).all()


def test_split_voids_lit_ring_is_exact_on_padded_blocks():
    """split_reach covers the lit ring: a padded block gives the whole volume's result in its core."""
    from scipy import ndimage as ndi

    rng = np.random.default_rng(5)
    g = ndi.gaussian_filter(rng.random((50, 72, 72)).astype(np.float32), 1.5)
    g = (g - g.mean()) / g.std() * 0.1 + 0.3
    phases = np.select([g < 0.3, g < 0.4], [E, B], A).astype(np.uint8)
    cat = np.ones(g.shape, bool)
    cues = VoidCues(wall_shift_nm=50.0, vote_nm=0.0)  # the vote's reach: test_voids.py
    kw = dict(void=V, electrolyte=E, binder=B, level=0.25, spread=0.02, voxel_size_nm=VOX, cues=cues)
    whole = split_voids(g, phases, cat, **kw)
    without = split_voids(g, phases, cat, **{**kw, "cues": replace(cues, lit_ring=False)})
    assert ((whole == V) & (without == B)).any()  # the lit ring took binder here
    assert_block_exact(whole, g, phases, cat, kw, (18, 28, 28), (32, 44, 44))


def test_lit_ring_is_lit_by_active_only():
    """Only the active label lights a void's face: a label the cathode cannot hold (a classifier's
    separator, SEI, sodium or collector voxels there) behind the binder patch leaves it binder, and
    the particles' label value is the one given."""
    phases, g, r, patch = _lit_block()
    for impossible in ("separator", "sei", "sodium", "collector"):
        p = phases.copy()
        p[8:12][:, patch["lit"]] = PHASES[impossible]
        out = _split(p, g)
        assert (out[2:8][:, patch["lit"]] == B).all(), impossible
    # the particles under another label value: lit when that value is given, not otherwise
    p = phases.copy()
    p[phases == A] = 12
    assert (_split(p, g)[5:8][:, patch["lit"]] == B).all()
    out = split_voids(g, p, np.ones(g.shape, bool), void=V, electrolyte=E, binder=B, level=0.22, spread=0.02,
                      voxel_size_nm=VOX, cues=CUES, active=12)
    assert (out[5:8][:, patch["lit"]] == V).all()
    assert (out[2:5][:, patch["lit"]] == B).all()


def test_no_particle_label_means_no_lit_ring():
    """A vocabulary without particles (``active=None``) lights nothing: the lit patch stays binder."""
    phases, g, r, patch = _lit_block()
    lit = split_voids(g, phases, np.ones(g.shape, bool), void=V, electrolyte=E, binder=B, level=0.22, spread=0.02,
                      voxel_size_nm=VOX, cues=CUES)
    assert (lit[5:8][:, patch["lit"]] == V).all()
    out = split_voids(g, phases, np.ones(g.shape, bool), void=V, electrolyte=E, binder=B, level=0.22, spread=0.02,
                      voxel_size_nm=VOX, cues=CUES, active=None)
    assert (out[2:8][:, patch["lit"]] == B).all()
