"""Anode-band surface finders of method 'layers' (volrecon.segment.regional)."""

import dask.array as da
import numpy as np
import pytest

from volrecon.phases import PHASES
from volrecon.segment import layers, regional
from volrecon.segment.regional import sei_outer_surface, sodium_surface


def test_slabs_equal_whole_volume(first_guess, monkeypatch):
    """Slab by slab (one lateral row at a time, dask input) gives the whole-volume heights bit for bit:
    the slabs overlap by the filters' full reach and the reference block is the same."""
    monkeypatch.setattr(regional, "_MIN_CORE_PER_PAD", 0)  # allow one-row slabs on this small volume
    ph, img, phases, lay, _ = first_guess
    vox = ph.voxel_size_nm
    out = []
    for image, slab in ((img, 10**12), (da.from_array(img, chunks=(3, 64, 64)), 1)):
        l1, _ = sodium_surface(image, phases, lay, voxel_size_nm=vox, frame_value=None, slab_voxels=slab)
        # a reference block of a few rows (the anode band spans well over a quarter of the face)
        l2, info = sei_outer_surface(image, l1, voxel_size_nm=vox, slab_voxels=slab,
                                     reference_voxels=4 * img.shape[1] * img.shape[2])
        assert info["found"] and info["reference_rows"][1] - info["reference_rows"][0] < img.shape[0]
        out.append((l1.heights["sodium|sei"], l2.heights["sei|separator"]))
    assert np.array_equal(out[0][0], out[1][0])
    assert np.array_equal(out[0][1], out[1][1])


def test_sodium_surface_at_half_way_grey(first_guess):
    """The sodium surface is where the grey value is half-way from the sodium to the film beyond it.

    A threshold just above the sodium level (the edge's foot) put it 1.95 voxels too deep into the
    sodium on this phantom (a film of about 3 voxels: a thickness error of 60 %).  Half-way it is
    -0.52 voxels off: what is left is the phantom's edge brightening (a bright seam on both sides
    of every boundary moves any grey-level edge locator towards the darker side; without it the
    half-way surface is within 0.15 voxels of the truth)."""
    ph, img, phases, lay, _ = first_guess
    truth = (ph.labels == PHASES["sodium"]).sum(axis=1)
    new, info = sodium_surface(img, phases, lay, voxel_size_nm=ph.voxel_size_nm, frame_value=None)
    bias = float((new.heights["sodium|sei"] - truth).mean())
    assert abs(bias) < 0.9
    assert info["sodium_level"] < info["threshold"] < info["beyond_level"]


def test_thin_sei_thickness_from_the_surfaces(first_guess):
    """The thin diglyme SEI (about 3 voxels) between the two surfaces found from the grey values
    alone (no steepest-edge refinement) is within one stacking-axis voxel of the truth (measured
    46.7 vs 38.4 nm; with the sodium surface at the edge's foot it was 60.6 nm).  The rest of the
    excess is the phantom's edge brightening, which moves both film surfaces towards their darker
    neighbours (on a phantom without it the same chain measured 29.0 vs 28.8 nm)."""
    from volrecon.analyze import sei_thickness

    ph, res = first_guess[0], first_guess[4]
    step = float(ph.voxel_size_nm[1])
    pred = sei_thickness(np.asarray(res.phases), phase_names=res.phase_names, voxel_size_nm=ph.voxel_size_nm)
    true = sei_thickness(ph.labels, voxel_size_nm=ph.voxel_size_nm)
    assert res.parameters["sei"]["found"]
    assert abs(pred.mean - true.mean) < step


def test_slab_core_is_never_thinner_than_its_overlap():
    """Wide bands with a small budget: one-row slabs would re-read each row ~2*pad times."""
    slabs = regional._slabs(rows=200, row_voxels=10**6, pad=18, slab_voxels=4_000_000)
    assert all(a1 - a0 >= min(72, 200 - a0) for a0, a1, _, _ in slabs)
    assert len(slabs) == 3 and slabs[-1][1] == 200
    assert [s[0] for s in slabs] == [0, 72, 144]


def _rimmed(bright: np.ndarray, rim: float = 0.5, sigma: float = 0.9, noise: float = 0.005, seed: int = 0) -> np.ndarray:
    """Grey image of a bright phase (0.5) on a dark one (0.3) whose boundaries carry edge-brightening
    rims (the voxel on each side raised by ``rim`` times the step, in the image plane), blurred."""
    from scipy import ndimage as ndi

    img = np.where(bright, 0.5, 0.3).astype(np.float32)
    edge = np.zeros(bright.shape, bool)
    for ax in (1, 2):
        d = np.diff(bright.astype(np.int8), axis=ax) != 0
        lo = [slice(None)] * 3
        hi = [slice(None)] * 3
        lo[ax], hi[ax] = slice(0, -1), slice(1, None)
        edge[tuple(lo)] |= d
        edge[tuple(hi)] |= d
    img += np.float32(rim * 0.2) * edge
    img = ndi.gaussian_filter(img, [0, sigma, sigma])
    return img + np.random.default_rng(seed).normal(0, noise, img.shape).astype(np.float32)


def test_refine_interface_corrects_edge_rims():
    """A flat dark -> bright boundary with rims on both sides: the steepest step sits about half a
    voxel on the dark side; the rim model fitted to the edge profile puts it back within 0.15."""
    from volrecon.segment.layers import Layers, refine_interface

    n, b = 40, 20
    bright = np.zeros((4, n, 48), bool)
    bright[:, b:] = True
    img = _rimmed(bright)
    lay = Layers(axis=1, anode_first=True, heights={"sodium|sei": np.full((4, 48), b + 1.4)},
                 present={"sodium": True, "sei": True, "separator": True, "cathode": True, "collector": True}, length=n)
    kw = dict(voxel_size_nm=(10, 10, 10), window_nm=40.0, lateral_nm=10.0)
    plain = refine_interface(img, lay, "sodium|sei", **kw).heights["sodium|sei"]
    fixed = refine_interface(img, lay, "sodium|sei", rim=True, **kw)
    assert b - plain.mean() > 0.25
    assert abs(fixed.heights["sodium|sei"].mean() - b) < 0.15
    assert fixed.edges["sodium|sei"]["rim_ratio"] > 0.1


def test_rim_threshold_keeps_objects_their_size():
    """Bright discs with rims: the half-way (Otsu) threshold grows every disc by the rim voxel; the
    rim-aware threshold, from the rim fit on a straight edge of the same image, keeps their area."""
    from skimage.filters import threshold_otsu

    from volrecon.segment.layers import Layers, refine_interface
    from volrecon.segment.regional import rim_threshold

    yy, xx = np.mgrid[:96, :96]
    discs = np.zeros((2, 96, 96), bool)
    for cy, cx in ((24, 24), (24, 70), (70, 30), (66, 72)):
        discs[:, (yy - cy) ** 2 + (xx - cx) ** 2 < 12 ** 2] = True
    img = _rimmed(discs)
    step = np.zeros((2, 40, 96), bool)
    step[:, 20:] = True
    lay = Layers(axis=1, anode_first=True, heights={"sodium|sei": np.full((2, 96), 21.0)},
                 present={"sodium": True, "sei": True, "separator": True, "cathode": True, "collector": True}, length=40)
    edge = refine_interface(_rimmed(step), lay, "sodium|sei", voxel_size_nm=(10, 10, 10), window_nm=40.0,
                            lateral_nm=10.0, rim=True).edges["sodium|sei"]
    vals = img.ravel()
    otsu = float(threshold_otsu(vals))
    thr = rim_threshold(vals, otsu, edge, [0.0, 0.0, 0.0])
    true = discs.sum()
    assert (img > otsu).sum() > 1.1 * true
    assert abs((img > thr).sum() - true) < 0.04 * true


def test_sei_measured_share_counts_only_measured_columns(first_guess, monkeypatch):
    """Columns with neither a crossing nor an outer edge are filled from their neighbours but are
    not measured: with the crossing hidden in every other column and the edge kept in 3 columns
    of 10, at most those 30 % are measured (the filled map read 100 %).  This film is thin but
    resolved, so the columns with a crossing but no edge take the falling edges' thickness (a
    crossing there may be a fibre's, not the film's) and the edges on such a column's flank are
    left out too: they are filled, not measured."""
    ph, img, phases, lay, _ = first_guess
    vox = ph.voxel_size_nm
    l1, _ = sodium_surface(img, phases, lay, voxel_size_nm=vox, frame_value=None)
    crossing, outer = regional._film_crossing, regional._outer_edge

    def some_crossings(*args, **kw):
        t = crossing(*args, **kw).copy()
        t[:, ::2] = np.nan
        return t

    def few_edges(*args, **kw):
        fall, rise = outer(*args, **kw)
        keep = (np.arange(fall.shape[1]) % 10) < 3
        return np.where(keep, fall, np.nan), np.full(rise.shape, np.nan)

    monkeypatch.setattr(regional, "_film_crossing", some_crossings)
    monkeypatch.setattr(regional, "_outer_edge", few_edges)
    _, info = sei_outer_surface(img, l1, voxel_size_nm=vox)
    assert info["found"] and info["edge_share"] >= regional.MIN_EDGE_SHARE
    assert 0.05 < info["measured_share"] <= 0.3
    assert np.isnan(info["crossing_bias_vox"])  # no crossing is used, so no crossing offset


def test_sodium_surface_film_voxels_deprecated(first_guess):
    """The former keyword ``film_voxels`` still works (a voxel count along the stacking axis, here
    5 voxels = 50 nm) with a DeprecationWarning, and gives what ``film_nm`` gives."""
    ph, img, phases, lay, _ = first_guess
    kw = dict(voxel_size_nm=ph.voxel_size_nm, frame_value=None)
    with pytest.warns(DeprecationWarning, match="film_nm"):
        old, _ = sodium_surface(img, phases, lay, film_voxels=5, **kw)
    new, _ = sodium_surface(img, phases, lay, film_nm=5 * float(ph.voxel_size_nm[lay.axis]), **kw)
    assert np.array_equal(old.heights["sodium|sei"], new.heights["sodium|sei"])


def test_sei_reference_without_columns_reports_why():
    """No column qualifies (every sodium surface undefined): the NaN levels must not pass as a
    film; the reference says why."""
    img = np.random.default_rng(0).normal(0.4, 0.01, (4, 6, 20)).astype(np.float32)
    hn = np.full((4, 6), np.nan)
    out = regional._sei_reference(img, hn, np.full((4, 6), 20.0), [1.0, 1.0, 0.5])
    assert "reason" in out and "no dense film" in out["reason"]


def test_sodium_surface_beside_a_lit_edge(first_guess):
    """Sodium lifted from the side (a trench wall's rim beyond the frame mask) rises above the
    rise threshold but stays far from the half-way grey: no film's edge.  Those columns' surface
    is the half-way crossing further on (the rise alone put it at the first lifted voxel that
    crossed the threshold)."""
    ph, img, phases, lay, _ = first_guess
    vox = ph.voxel_size_nm
    _, info = sodium_surface(img, phases, lay, voxel_size_nm=vox, frame_value=None)
    truth = (ph.labels == PHASES["sodium"]).sum(axis=1)
    # lifted to just under the rise threshold: the sodium's own texture crosses it here and there
    lift = info["rise_threshold"] - 0.3 * (info["threshold"] - info["rise_threshold"]) - info["sodium_level"]
    lit = img.copy()
    rows = np.arange(img.shape[1])[None, :, None]
    side = slice(0, 16)
    lit[:, :, side] += np.where(rows < truth[:, None, side] - 2, np.float32(lift), np.float32(0))
    new, _ = sodium_surface(lit, phases, lay, voxel_size_nm=vox, frame_value=None)
    err = np.abs(new.heights["sodium|sei"] - truth)[:, 2:14]
    assert err.mean() < 1.0, f"sodium surface beside the lit edge off by {err.mean():.1f} voxels"



def test_surface_finders_hand_the_heap_back_after_every_slab(first_guess, monkeypatch):
    """The surface finders hand the heap back to the system after every slab of every pass
    (:func:`volrecon.segment.layers.released_slabs`)
    (glibc keeps what a slab freed resident, and the holes that slabs left in different places
    added up: on 1024x1024 phantom slices the sodium surface rose 1219 MB over its entry on 256
    slices and 906 MB on 96, with slabs of the same size, and the SEI's outer surface came on top
    of what it left), with the same heights as in one slab."""
    monkeypatch.setattr(regional, "_MIN_CORE_PER_PAD", 0)
    ph, img, phases, lay, _ = first_guess
    vox = ph.voxel_size_nm
    calls: list[int] = []
    monkeypatch.setattr(layers, "release_memory", lambda: calls.append(1), raising=False)
    whole, _ = sodium_surface(img, phases, lay, voxel_size_nm=vox, frame_value=None)
    one_sei, _ = sei_outer_surface(img, whole, voxel_size_nm=vox)
    n_whole = len(calls)
    slab = 2 * img.shape[1] * img.shape[2]  # two slices' worth of voxels: a slab per slice here
    image = da.from_array(img, chunks=(4, 80, 80))
    l1, _ = sodium_surface(image, phases, lay, voxel_size_nm=vox, frame_value=None, slab_voxels=slab)
    n_sodium = len(calls) - n_whole
    l2, info = sei_outer_surface(image, l1, voxel_size_nm=vox, slab_voxels=slab)
    assert info["found"]
    assert np.array_equal(l1.heights["sodium|sei"], whole.heights["sodium|sei"])
    assert np.array_equal(l2.heights["sei|separator"], one_sei.heights["sei|separator"])
    assert n_whole >= 3  # one slab: after each of the passes (sodium: 2 or 3, SEI: 1)
    assert n_sodium >= 2 * img.shape[0] and len(calls) - n_whole - n_sodium >= img.shape[0]


def test_sodium_surface_in_columns_the_wall_shell_cuts_short(first_guess):
    """Beside a trench wall the frame's rim shell (unassigned in the phases) cuts a column short a
    few voxels into the sodium, and the wall's glow lifts those few voxels (the cap's corner).  Such
    a column shows neither the sodium's level nor the film beyond its surface: its rise read the
    surface on its first lit voxels (16.8 voxels early here; the diglyme seed-2 24x192 phantom: up
    to 27 rows early, 530 sodium voxels of one column read electrolyte).  It takes the surface of
    the nearest column that shows it: within a voxel of what the intact column's own grey values
    gave (0.88 voxels from the truth there, 1.51 cut short: the surface's slope over the 3 columns)."""
    ph, img, phases, lay, _ = first_guess
    vox = ph.voxel_size_nm
    truth = (ph.labels == PHASES["sodium"]).sum(axis=1)
    intact, info = sodium_surface(img, phases, lay, voxel_size_nm=vox, frame_value=None)
    wall, run = slice(-3, None), 4  # the shell reaches about 2 voxels beside a wall
    assert truth[:, wall].min() > run + 10  # the surface lies well beyond the cut
    cut, lit = phases.copy(), img.copy()
    cut[:, run:, wall] = 0
    lit[:, :run, wall] = np.float32(info["threshold"] + 0.3 * (info["beyond_level"] - info["threshold"]))
    new, _ = sodium_surface(lit, cut, lay, voxel_size_nm=vox, frame_value=None)
    err = np.abs(new.heights["sodium|sei"] - truth)[:, wall].mean()
    own = np.abs(intact.heights["sodium|sei"] - truth)[:, wall].mean()
    assert err < own + 1.0, f"sodium surface in the cut-short columns off by {err:.1f} voxels ({own:.1f} intact)"


def test_classify_regions_is_the_digitize_cut():
    """The cathode's and separator's classes are np.digitize's of their thresholds, ties and NaN
    included, with the binder | active cut read on the cathode's own grey."""
    from volrecon.phases import REGIONS

    rng = np.random.default_rng(5)
    names = {n: i for i, n in enumerate(PHASES, start=1)}
    grey = rng.random((6, 40, 30)).astype(np.float32)
    t_cat, t_sep = [0.3, 0.6], [0.45]
    grey.flat[::17] = np.float32(0.3)
    grey.flat[::23] = np.nan
    values = np.array([REGIONS["cathode"], REGIONS["separator"], REGIONS["anode"]], np.uint8)
    regions = rng.choice(values, size=grey.shape)
    cat_grey = grey + rng.normal(0, 0.05, grey.shape).astype(np.float32)
    base = np.full(grey.shape, 7, np.uint8)
    got = regional.classify_regions(grey, regions, base, thresholds={"cathode": t_cat, "separator": t_sep},
                                    names=names, cathode_grey=cat_grey)
    cat, sep = regions == REGIONS["cathode"], regions == REGIONS["separator"]
    want = base.copy()
    cls = np.where(cat_grey[cat] >= t_cat[1], 2, np.minimum(np.digitize(grey[cat], t_cat), 1))
    want[cat] = np.array([names["electrolyte"], names["binder"], names["active"]], np.uint8)[cls]
    want[sep] = np.array([names["electrolyte"], names["separator"]], np.uint8)[np.digitize(grey[sep], t_sep)]
    np.testing.assert_array_equal(got, want)
