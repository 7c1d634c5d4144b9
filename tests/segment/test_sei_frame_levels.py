"""The separator's levels beside the face's frame: the fibre level that sets the film -> fibre cut is
the specimen's, not a trench wall's (volrecon.segment.regional._sei_reference, sei_outer_surface)."""

from dataclasses import replace

import numpy as np
import pytest

from tests.segment.test_sei_edges import _film_stack, _layers
from volrecon.sample.render import INTENSITY
from volrecon.segment.layers import refine_interface
from volrecon.segment.regional import sei_outer_surface

VOX = (20.0, 10.0, 10.0)
T, SEP_VOX = 16, 4
"""A thick film (voxels) and a thin separator beyond it (the carbonate cell's)."""
WALL = 16
"""Columns (along x, at the field's end, 8 %) of a trench wall: frame from the first voxel to the last."""
WALL_RISE = 8
"""How far (voxels) the sodium surface's first guess sits before the specimen's in the wall's columns
(nothing to find there: carried in from the specimen's edge; 27 voxels on the carbonate seed-1 phantom)."""
FRAME = 9


def _walled(seed: int):
    """The field and its first-guess layers: ``(image, phases, layers, true sodium surface)``."""
    sep = 12 + T + SEP_VOX
    img, na, _ = _film_stack(0.4, t=T, seed=seed, sep=sep, noise=0.01, patch=12)
    img = img.copy()
    img[:, :, -WALL:] = INTENSITY["frame"]
    phases = np.ones(img.shape, np.uint8)
    phases[:, :, -WALL:] = FRAME
    lay = refine_interface(img, _layers(na, T, sep=sep), "sodium|sei", voxel_size_nm=VOX, rim=True)
    h_na = np.array(lay.heights["sodium|sei"], float)
    h_na[:, -WALL:] = na[:, -WALL:] - WALL_RISE
    lay = replace(lay, heights={**lay.heights, "sodium|sei": h_na})
    return img, phases, lay, na


@pytest.mark.parametrize("seed", [0, 1])
def test_thick_film_on_a_thin_separator_beside_a_wall(seed):
    """The separator's sample lies beyond the film: a voxel or two a column in a thin separator
    behind a thick film, the whole far half of the band in the wall's columns (no film there), whose
    frame grey (0.8) then outnumbered the fibres' (0.54): the fibre level read 0.80, the non-film
    share lost its fibres and no film was found.  Over the specimen's voxels alone the fibre level is
    the separator's and the film's thickness is within 0.35 voxels of the truth on average (0.11-0.27
    measured; the carbonate seed-1 24x192 phantom: 0.584 -> 0.535, separator Dice 0.720 -> 0.753)."""
    img, phases, lay, na = _walled(seed)
    out, info = sei_outer_surface(img, lay, voxel_size_nm=VOX, phases=phases, frame_value=FRAME)
    assert info["found"], info.get("reason")
    assert abs(info["fibre_level"] - INTENSITY["separator"]) < 0.02
    thick = (out.heights["sei|separator"] - na)[:, :-WALL - 8]
    assert abs(float(np.mean(thick)) - T) < 0.35


def test_film_measured_alike_whatever_share_of_the_walls_the_field_holds():
    """The film's reference levels (:func:`volrecon.segment.regional._sei_reference`) come from the
    specimen's columns, smoothed over the specimen: a trench wall's columns, their sodium surface
    carried in from the specimen beside them, read the wall's grey, and the columns beside it its
    glow.  Counted in, they moved the levels with the share of the field the walls take, so a field
    cut to the drift correction's crop (the walls' outer columns gone) measured another film: on
    this framed diglyme phantom the SEI's Dice read 0.830 with the walls' columns and 0.786 without
    (the 24x192 seed-2 phantom: 0.886 / 0.860).  From the specimen's columns alone the two agree
    within 0.02 (0.821 / 0.829)."""
    from volrecon.phases import PHASES, REGIONS
    from volrecon.sample import make_phantom
    from volrecon.sample.oracle import oracle_correct
    from volrecon.segment import segment_volume

    ph = make_phantom("diglyme", slices=8, shape=(160, 160), seed=2, artefacts="all", frame=True, workers=2)
    img = oracle_correct(ph)
    walls = (ph.regions == REGIONS["frame"]).all(axis=(0, 1))
    x = np.arange(walls.size)
    inner = slice(int(x[walls & (x < walls.size // 2)].max()), int(x[walls & (x >= walls.size // 2)].min()) + 1)
    dice = []
    for cut in (slice(None), inner):
        res = segment_volume(img[:, :, cut], voxel_size_nm=ph.voxel_size_nm, method="auto")
        spec = ph.regions[:, :, cut] != REGIONS["frame"]
        true = (ph.labels[:, :, cut] == PHASES["sei"]) & spec
        pred = (np.asarray(res.phases) == res.phase_names["sei"]) & spec
        dice.append(2 * (true & pred).sum() / (true.sum() + pred.sum()))
    assert abs(dice[0] - dice[1]) < 0.02, f"SEI Dice {dice[0]:.3f} with the walls' columns, {dice[1]:.3f} without"



@pytest.mark.parametrize("early", [0.0, 3.0, 6.0])
def test_pore_rise_from_a_sodium_surface_read_early(early):
    """The separator's pore-share rise (:func:`volrecon.segment.regional._pore_rise`) where the
    column's sodium surface was read ``early`` voxels before the true one: the search begins in the
    sodium, whose dark share (1) falls to the film's (0) across the true surface, then rises to the
    separator's (0.6) at the film's end.  The rise is the film's end wherever the search begins;
    taken from the sodium's fall, it put the whole film into the separator's sample (carbonate seed
    1, 24x192: nine columns beside the right wall, fibre level 0.516 for 0.554)."""
    from volrecon.segment.regional import _pore_rise

    n, surface, film_end, hs = 60, 12.0, 12.0 + T, 12.0 + T + 10
    centre = np.arange(n) + 0.5
    share = np.where(centre < surface, 1.0, np.where(centre < film_end, 0.0, 0.6))
    dshare = np.broadcast_to(share, (2, 3, n)).astype(np.float32)
    begin = np.full((2, 3), surface - early + 1.0)
    rise = _pore_rise(dshare, begin, np.full((2, 3), hs), film_dark=0.0)
    assert np.allclose(rise, film_end + 0.5), rise
