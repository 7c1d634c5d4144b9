"""The analysis box sized from the structure's chord lengths (volrecon.analyze.rev)."""

import math

import numpy as np
import pytest

from volrecon.errors import ParameterError
from scipy import ndimage as ndi

from volrecon.analyze import analyze_volume
from volrecon.analyze.rev import ChordCounter, representative_box
from volrecon.phases import PHASES, REGIONS


def _lamellae(pore_w: int, solid_w: int, periods: int, shape_zy: tuple[int, int]) -> np.ndarray:
    """Pore plates normal to x, each period solid/2 | pore | solid/2 (every plate whole in the box)."""
    row = np.concatenate([np.zeros(solid_w // 2, bool), np.ones(pore_w, bool), np.zeros(solid_w - solid_w // 2, bool)])
    return np.broadcast_to(np.tile(row, periods), (*shape_zy, periods * (pore_w + solid_w))).copy()


@pytest.mark.parametrize("tp", [0, 1, 2])
def test_chords_of_lamellae_are_the_plate_widths(tp):
    vs = (20.0, 12.5, 10.0)
    pore = _lamellae(3, 5, 6, (11, 7))
    count = ChordCounter(pore.shape[tp], tp)
    for z0 in range(0, pore.shape[0], 4):  # slabs along z, the boundaries between them counted
        count.add(pore[z0:z0 + 4])
    ch = count.chords(vs)
    assert ch.pore_nm[2] == pytest.approx(3 * 10.0) and ch.solid_nm[2] == pytest.approx(5 * 10.0)
    assert math.isinf(ch.pore_nm[0]) and math.isinf(ch.solid_nm[1])  # no boundary crossed along z or y


def test_chords_of_planes_along_the_stacking_axis():
    """A dense end layer along the stacking axis left out by the plane range."""
    pore = _lamellae(4, 4, 5, (6, 9))
    pore[:, 7:] = False  # dense planes y >= 7
    count = ChordCounter(pore.shape[1], 1)
    count.add(pore)
    assert count.chords((1.0, 1.0, 1.0), slice(0, 7)).pore_nm[2] == pytest.approx(4.0)
    assert count.chords((1.0, 1.0, 1.0)).solid_nm[2] > 4.0


def test_box_spans_the_chords_and_keeps_the_stacking_axis():
    vs = (10.0, 10.0, 10.0)
    pore = _lamellae(2, 2, 40, (100, 30))  # x chords 2 voxels (20 nm) both phases
    pore[1::2] = ~pore[1::2]  # z chords 1 voxel (10 nm)
    count = ChordCounter(30, 1)
    count.add(pore)
    box = (slice(0, 100), slice(0, 30), slice(0, 160))
    out, rep = representative_box(box, 1, vs, count.chords(vs), rev_chords=10)
    assert rep.reached and out[1] == box[1]
    assert (out[2].start, out[2].stop) == (70, 90)  # 10 chords of 20 nm, centred
    assert rep.target_nm["x"] == pytest.approx(200.0)
    # along z the lines end inside plates (99 boundaries per 100 planes): 10 chords of 10.1 nm
    assert rep.target_nm["z"] == pytest.approx(10 * 2 * 50 * 10.0 / 99)
    assert (out[0].start, out[0].stop) == (44, 55)
    # short of 10 chords along z (8 planes), or no boundary crossed along z: not representative, kept whole
    for part, slab in (((slice(0, 8), *box[1:]), pore[:8]), (box, np.broadcast_to(pore[:1], pore.shape))):
        count = ChordCounter(30, 1)
        count.add(slab)
        out, rep = representative_box(part, 1, vs, count.chords(vs), rev_chords=10)
        assert out == part and not rep.reached


def _random_cathode(seed: int, shape=(100, 24, 100), sigma=0.8, porosity=0.4) -> tuple[np.ndarray, np.ndarray]:
    """A statistically homogeneous two-phase cathode (thresholded Gaussian field), stacking axis y."""
    g = ndi.gaussian_filter(np.random.default_rng(seed).standard_normal(shape), sigma)
    pore = g < np.quantile(g, porosity)
    labels = np.where(pore, PHASES["electrolyte"], PHASES["active"]).astype(np.uint8)
    return labels, np.full(shape, REGIONS["cathode"], np.uint8)


@pytest.mark.parametrize("seed", [0, 3])
def test_representative_box_measures_what_the_whole_volume_does(seed):
    """Cut to 10 chord lengths (48 of 100 voxels), the box's porosity and through-plane tortuosity
    are those of the whole volume within the scatter such a box has (the whole volume is the truth
    here; over seeds 0-3 the box's tortuosity is 0.7-5.9 % above the whole volume's)."""
    labels, regions = _random_cathode(seed)
    kw = dict(voxel_size_nm=10.0, through_plane_axis="y", tortuosity_axes=("y",), pore_size=False,
              marching_cubes=False, tortuosity_max_voxels=None)
    whole = analyze_volume(labels, regions, **kw)  # the cut is opt-in
    rev = analyze_volume(labels, regions, rev_cut=True, **kw)
    assert whole.cathode_box == tuple((0, n) for n in labels.shape)
    (z0, z1), (y0, y1), (x0, x1) = rev.cathode_box
    assert (y0, y1) == (0, labels.shape[1])
    assert (z1 - z0) < labels.shape[0] and (x1 - x0) < labels.shape[2]  # the cut happened
    rec = rev.to_dict()["regions"]["cathode"]["tortuosity_box_capped"]["representative"]
    chord = max(rec["chord_length_nm"]["pore"]["x"], rec["chord_length_nm"]["solid"]["x"])
    assert (x1 - x0) * 10.0 == pytest.approx(10 * chord, abs=10.0) and rec["reached"]
    t_w, t_r = whole.tortuosity["pore"]["1"], rev.tortuosity["pore"]["1"]
    assert t_r.porosity == pytest.approx(t_w.porosity, abs=0.03)
    assert t_r.tortuosity_factor == pytest.approx(t_w.tortuosity_factor, rel=0.1)
    assert "warnings" not in rev.to_dict()


def test_small_volume_keeps_its_box_and_says_it_is_not_representative():
    labels, regions = _random_cathode(2, shape=(12, 24, 20))
    kw = dict(voxel_size_nm=10.0, through_plane_axis="y", tortuosity_axes=("y",), pore_size=False, marching_cubes=False)
    a = analyze_volume(labels, regions, **kw).to_dict()
    b = analyze_volume(labels, regions, rev_chords=None, **kw).to_dict()
    ca, cb = a["regions"]["cathode"], b["regions"]["cathode"]
    assert ca["tortuosity_box"] == cb["tortuosity_box"] == [[0, 12], [0, 24], [0, 20]]
    assert ca["tortuosity_factor"] == cb["tortuosity_factor"]
    assert any("smaller than a representative volume" in w for w in a["warnings"])
    assert "warnings" not in b


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf")])
def test_rev_chords_must_be_a_positive_number(bad):
    labels, regions = _random_cathode(1, shape=(12, 24, 20))
    with pytest.raises(ParameterError, match="rev_chords"):
        analyze_volume(labels, regions, voxel_size_nm=10.0, rev_chords=bad, pore_size=False, marching_cubes=False)
