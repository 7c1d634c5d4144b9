"""The void's faint faces (VoidCues.faint_k): its ceiling slice over a dark core (void where darker than a filled
pore), and the far-wall rim over a filled floor (not void where it reads the filled pore's grey)."""

import numpy as np
import pytest

from volrecon.phases import PHASES, REGIONS
from volrecon.segment import segment_volume
from volrecon.segment.voids import VoidCues, split_voids, void_ceiling

E, V, B, A = PHASES["electrolyte"], PHASES["void"], PHASES["binder"], PHASES["active"]
LEVEL, SPREAD = 0.22, 0.02
KW = dict(void=V, electrolyte=E, binder=B, level=LEVEL, spread=SPREAD, voxel_size_nm=(20.0, 10.0, 10.0))


def _block(shape=(14, 40, 40)):
    """Active everywhere but a pore box ``[1:13, 4:36, 4:36]`` at the electrolyte level, and the radius
    from the box's centre line."""
    phases = np.full(shape, A, np.uint8)
    g = np.full(shape, 0.7, np.float32)
    phases[1:13, 4:36, 4:36] = E
    g[1:13, 4:36, 4:36] = LEVEL
    yy, xx = np.mgrid[:shape[1], :shape[2]]
    return phases, g, np.hypot(yy - 20, xx - 20)


def test_ceiling_slice_over_a_core_is_void_where_fainter_than_a_filled_pore():
    """One slice in front of a dark core, a pore voxel reading 1.5 spreads below the level (the void's
    first slice, lifted by the edge effects around it) is void; at the level it is the filled pore
    above the void; two slices in front nothing is taken."""
    phases, g, r = _block()
    g[4:10][:, r <= 8] = LEVEL - 10 * SPREAD  # the dark core
    left = (r <= 8) & (np.arange(40)[None, :] < 20)
    g[3][left] = LEVEL - 1.5 * SPREAD  # the left half of the slice in front of the core: faint
    g[2][r <= 8] = LEVEL - 1.5 * SPREAD  # two slices in front: faint too, but over no core
    ceiling = np.zeros(g.shape, bool)
    ceiling[3] = left
    cues = VoidCues(shine_depth_nm=0.0, edge_nm=0.0, vote_nm=0.0, grow_nm=0.0)
    out = split_voids(g, phases, np.ones(g.shape, bool), cues=cues, **KW) == V
    assert out[ceiling].all()
    assert not out[3][(r <= 8) & (np.arange(40)[None, :] >= 22)].any()
    assert not out[2].any()
    off = split_voids(g, phases, np.ones(g.shape, bool), cues=VoidCues(shine_depth_nm=0.0, edge_nm=0.0, vote_nm=0.0,
                                                                          grow_nm=0.0, faint_k=None), **KW) == V
    assert not off[3].any()


def test_void_ceiling_reads_the_core_and_its_ring_one_slice_behind():
    seeds = np.zeros((3, 1, 7), bool)
    seeds[2, 0, 3] = True
    dark = np.full(seeds.shape, 2.0)
    got = void_ceiling(seeds, np.ones(seeds.shape, bool), dark, ring=np.ones((1, 1, 3), bool), faint_k=1.0)
    assert got[1, 0].tolist() == [False, False, True, True, True, False, False]
    assert not got[0].any() and not got[2].any()


@pytest.mark.parametrize("floor", ["pore", "particle", "faint", "lifted"])
def test_far_wall_rim_over_a_filled_floor_is_not_the_filled_pore_grey(floor):
    """The rim (8 < r <= 11) beside a dark core: with a particle within the shine-through depth behind it
    (the material beyond the far wall lights its face), or reading darker than a filled pore, or
    brighter (lifted by the edge effects beside the walls), it is the void's; at the electrolyte grey
    with only pore behind it, it is the filled pore."""
    phases, g, r = _block()
    g[2:10][:, r <= 8] = LEVEL - 10 * SPREAD
    band = np.zeros(g.shape, bool)
    band[2:5][:, (r > 8) & (r <= 10.5)] = True
    if floor == "particle":
        phases[7:13][:, (r > 8) & (r <= 12)] = A  # the band's columns meet a particle 3 slices behind
        g[7:13][:, (r > 8) & (r <= 12)] = 0.7
    elif floor == "faint":
        g[band] = LEVEL - 1.5 * SPREAD
    elif floor == "lifted":
        g[band] = LEVEL + 1.5 * SPREAD
    cues = VoidCues(shine_depth_nm=100.0, grow_nm=0.0, edge_nm=0.0, average_nm=0.0, wall_shift_nm=60.0, flat_k=0.0,
                    vote_nm=0.0)
    out = split_voids(g, phases, np.ones(g.shape, bool), cues=cues, **KW) == V
    if floor == "pore":
        assert not out[band].any()
    else:
        assert out[band].all()


def test_faint_faces_are_void_where_taken_and_filled_where_dropped(diglyme):
    """On the phantom (with its truth): what the faint test adds (the ceiling) is void more often than
    not (0.60 here), the far-wall rim voxels it drops (over a filled floor, at the filled pore's grey)
    are not (0.23), and the voids' first slice over a dark core is found more often (0.68 without
    the test, 0.72 with it)."""
    ph, img = diglyme
    cat = ph.regions == REGIONS["cathode"]
    true = (ph.labels == PHASES["void"]) & cat
    found = {}
    for name, cues in (("faint", None), ("off", VoidCues(faint_k=None))):
        res = segment_volume(img, voxel_size_nm=ph.voxel_size_nm, method="auto", frame="none", void_cues=cues)
        found[name] = (np.asarray(res.phases) == res.phase_names["void"]) & cat
    added, dropped = found["faint"] & ~found["off"], found["off"] & ~found["faint"]
    assert added.sum() > 100 and dropped.sum() > 40
    assert true[added].mean() >= 0.5
    assert true[dropped].mean() <= 0.4
    # the voids' first slice where the void goes on at least a shine-through depth and a slice behind it
    void = ph.labels == PHASES["void"]
    ceiling = np.zeros_like(void)
    ceiling[1:] = void[1:] & ~void[:-1]
    for k in range(1, int(round(ph.artefacts.shine_depth_nm / ph.voxel_size_nm[0])) + 2):
        ceiling[:-k] &= void[k:]
        ceiling[-k:] = False
    ceiling &= cat
    assert ceiling.sum() > 300
    assert found["faint"][ceiling].mean() >= found["off"][ceiling].mean() + 0.02
