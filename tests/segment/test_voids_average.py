"""The grey the void split reads: the pore's own average, and that average's noise (issue 7)."""

import numpy as np

from volrecon.segment.voids import VoidCues, average_noise, pore_average, split_grey, split_voids

VOX = (20.0, 10.0, 10.0)
ELEC, BIND, VOID = 1, 2, 3
LEVELS = {"void": 0.06, "electrolyte": 0.22, "binder": 0.36}


def _lined_void(radius: float = 2.0, lining: float = 6.0, n: int = 41, slices: int = 12):
    """A thin void column (``radius`` px) lined with binder out to ``lining`` px, in electrolyte."""
    yy, xx = np.mgrid[:n, :n] - n // 2
    r = np.hypot(yy, xx)
    void = np.broadcast_to(r <= radius, (slices, n, n))
    binder = np.broadcast_to((r > radius) & (r <= lining), (slices, n, n))
    grey = np.where(void, LEVELS["void"], np.where(binder, LEVELS["binder"], LEVELS["electrolyte"]))
    return grey.astype(np.float32), void, binder


def test_split_grey_keeps_a_lined_void_dark():
    # a void two pixels wide lined with binder: the pore-and-binder average reads it at the electrolyte
    # grey (analytically ~0.22 at its centre), the pore's own average near its own grey
    grey, void, binder = _lined_void()
    pore = ~binder
    c = (0, 20, 20)
    mixed = pore_average(grey, pore | binder, sigma_nm=20.0, voxel_size_nm=VOX)[c]
    own = split_grey(grey, pore, binder, sigma_nm=20.0, voxel_size_nm=VOX)[c]
    assert mixed > LEVELS["electrolyte"] - 0.03          # the old reading: no dark test can see it
    assert own < LEVELS["void"] + 0.3 * (LEVELS["electrolyte"] - LEVELS["void"])
    # binder voxels keep the pore-and-binder average
    b = (0, 20, 25)
    assert split_grey(grey, pore, binder, sigma_nm=20.0, voxel_size_nm=VOX)[b] == \
        pore_average(grey, pore | binder, sigma_nm=20.0, voxel_size_nm=VOX)[b]


def test_split_finds_a_lined_void():
    # end to end on the split: the lined void is found, within its column, and nothing beyond its lining
    grey, void, binder = _lined_void()
    rng = np.random.default_rng(0)
    noisy = grey + rng.normal(0, 0.05, grey.shape).astype(np.float32)
    pore = ~binder
    g = split_grey(noisy, pore, binder, sigma_nm=20.0, voxel_size_nm=VOX)
    phases = np.where(binder, BIND, ELEC).astype(np.uint8)
    level, spread = LEVELS["electrolyte"], 0.05 / np.sqrt(4 * np.pi * 2.0 ** 2)   # a full neighbourhood's noise
    out = split_voids(g, phases, np.ones(grey.shape, bool), void=VOID, electrolyte=ELEC, binder=BIND,
                      level=level, spread=spread, voxel_size_nm=VOX, cues=VoidCues(lit_ring=False), active=None)
    found = out == VOID
    assert (found & void).sum() >= 0.8 * void[:-5].sum()
    # (the pore-and-binder average, the old reading, finds none of it)
    old = split_voids(pore_average(noisy, np.ones(grey.shape, bool), sigma_nm=20.0, voxel_size_nm=VOX), phases,
                      np.ones(grey.shape, bool), void=VOID, electrolyte=ELEC, binder=BIND, level=level, spread=spread,
                      voxel_size_nm=VOX, cues=VoidCues(lit_ring=False), active=None)
    assert ((old == VOID) & void).sum() < 0.2 * void[:-5].sum()


def test_average_noise_matches_the_averages_spread():
    # Monte Carlo: the spread of pore_average of white noise over a mask, per voxel, is average_noise
    # times its spread deep inside a wide pore (a straight edge, a 2-px channel, a 1-px channel)
    n = 48
    mask = np.zeros((1, n, n), bool)
    mask[:, :, :24] = True            # a wide pore with a straight edge at x = 23
    mask[:, :, 30:32] = True          # a channel 2 px wide
    mask[:, :, 40] = True             # a channel 1 px wide
    rng = np.random.default_rng(1)
    draws = np.stack([pore_average(rng.normal(0, 1, mask.shape).astype(np.float32), mask, sigma_nm=20.0,
                                   voxel_size_nm=VOX)[0] for _ in range(1500)])
    sd = draws.std(axis=0)
    f = average_noise(mask, sigma_nm=20.0, voxel_size_nm=VOX)[0]
    ref = sd[24, 8]
    for y, x in ((24, 8), (24, 23), (24, 30), (24, 40)):
        assert abs(sd[y, x] / ref - f[y, x]) < 0.08 * f[y, x], (x, sd[y, x] / ref, f[y, x])
    assert f[24, 40] > 2.5 and abs(f[24, 8] - 1.0) < 0.05
    assert (f[~mask[0]] == 1.0).all()


def test_thin_channel_noise_seeds_no_void():
    # electrolyte only, wide pores and 1-2 px channels between binder: the channels' average carries
    # several times the wide pore's noise, and the split (its spread measured in the wide pore) must not
    # read it as dark cores
    n = 96
    phases = np.full((10, n, n), ELEC, np.uint8)
    for x0 in range(48, 92, 6):
        phases[:, :, x0:x0 + 4] = BIND   # channels 2 px wide between binder walls 4 px thick
    rng = np.random.default_rng(2)
    grey = np.where(phases == BIND, LEVELS["binder"], LEVELS["electrolyte"]).astype(np.float32)
    grey += rng.normal(0, 0.05, grey.shape).astype(np.float32)
    pore, binder = phases == ELEC, phases == BIND
    g = split_grey(grey, pore, binder, sigma_nm=20.0, voxel_size_nm=VOX)
    wide = g[:, 8:-8, 8:40]
    spread = float(wide.std())
    out = split_voids(g, phases, np.ones(grey.shape, bool), void=VOID, electrolyte=ELEC, binder=BIND,
                      level=LEVELS["electrolyte"], spread=spread, voxel_size_nm=VOX,
                      cues=VoidCues(lit_ring=False, vote_nm=0.0), active=None)
    v = out == VOID
    # the wide pore takes its chance 4-spread seeds (rate ~0.005); the channels no more than a few times
    # that (read in the wide pore's spread alone, 0.35-0.45 of their voxels were void)
    assert v[:, :, 46:].sum() / pore[:, :, 46:].sum() < 0.05


def test_outer_ring_stays_out_of_unlit_binder():
    # a dark core beside a binder block with electrolyte behind it (no particle lights it): the ring
    # takes the pore around the core, not the binder (the ring's lift reaches the electrolyte grey)
    n = 40
    phases = np.full((12, n, n), ELEC, np.uint8)
    phases[:, :, 22:] = BIND
    grey = np.where(phases == BIND, LEVELS["binder"], LEVELS["electrolyte"]).astype(np.float32)
    core = np.zeros(phases.shape, bool)
    core[:, 14:26, 12:22] = True              # the void's dark core, flush with the binder
    grey[core] = LEVELS["void"]
    out = split_voids(grey, phases, np.ones(phases.shape, bool), void=VOID, electrolyte=ELEC, binder=BIND,
                      level=LEVELS["electrolyte"], spread=0.01, voxel_size_nm=VOX,
                      cues=VoidCues(vote_nm=0.0, flat_k=0.0), active=None)
    ring_pore = (out[3:6, 14:26, 10:12] == VOID).mean()     # the pore beside the core: the ring
    assert ring_pore > 0.9
    assert not (out[:, :, 22:] == VOID).any()            # the binder beside it stays binder
