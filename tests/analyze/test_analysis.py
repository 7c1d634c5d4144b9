import json

import numpy as np
import pytest

from volrecon.analyze import analyze_volume, local_thickness, sei_thickness, write_analysis
from volrecon.errors import VolreconError


def _layered(void_in_cathode=True):
    lab = np.full((6, 40, 30), 2, np.uint8)
    reg = np.zeros_like(lab)
    reg[:, :8] = 1
    lab[:, :5] = 6
    lab[:, 5:8] = 7
    reg[:, 8:14] = 2
    lab[:, 8:14] = 5
    reg[:, 14:] = 3
    lab[:, 14:, ::3] = 3
    if void_in_cathode:
        lab[:, 20:24, 1:3] = 1
    return lab, reg


def test_layered_volume(tmp_path):
    lab, reg = _layered()
    r = analyze_volume(lab, reg, voxel_size_nm=(20, 10, 10), pore_size=False)
    d = r.to_dict()
    assert d["through_plane_axis"] == "y"
    cat = d["regions"]["cathode"]
    assert cat["porosity"] == pytest.approx((lab[reg == 3] <= 2).mean())
    assert d["regions"]["anode"]["sei_thickness_nm"]["mean"] == pytest.approx(30.0, abs=0.5)
    assert set(cat["tortuosity_factor"]["pore"]) == {"z", "y", "x", "through_plane"}
    path = write_analysis(r, tmp_path)
    json.loads(path.read_text())
    assert (tmp_path / "tables" / "depth_profile.csv").exists()
    assert (tmp_path / "figures" / "depth_profile.png").exists()


def test_bad_inputs():
    lab, reg = _layered()
    with pytest.raises(VolreconError, match="void"):
        analyze_volume(lab, reg, voxel_size_nm=10, phase_names={"electrolyte": 2})
    with pytest.raises(VolreconError, match="cathode"):
        analyze_volume(lab, np.where(reg == 3, 2, reg), voxel_size_nm=10)
    with pytest.raises(VolreconError, match="sodium"):
        sei_thickness(lab, phase_names={"sei": 7}, voxel_size_nm=10)


def test_zero_porosity_cathode():
    lab, reg = _layered(void_in_cathode=False)
    lab[reg == 3] = 3
    d = analyze_volume(lab, reg, voxel_size_nm=10, pore_size=False).to_dict()
    cat = d["regions"]["cathode"]
    assert cat["porosity"] == 0.0
    assert cat["void_share_of_pore"] is None
    assert "no pore" in cat["void_share_of_pore_reason"]
    assert cat["tortuosity"]["pore"]["y"]["reason"]


def test_one_voxel_thick_volume():
    lab, reg = _layered()
    d = analyze_volume(lab[:1], reg[:1], voxel_size_nm=10, pore_size=False).to_dict()
    assert d["regions"]["cathode"]["tortuosity_factor"]["pore"]["z"] is not None


def test_local_thickness_of_slab():
    m = np.zeros((30, 30, 30), bool)
    m[:, :, 10:18] = True  # 8 voxels thick
    lt = local_thickness(m, voxel_size_nm=2.0, sizes=30)
    assert np.median(lt[m]) == pytest.approx(16.0, rel=0.15)


@pytest.mark.parametrize("preset", ["carbonate", "diglyme"])
def test_phantom_truth(preset):
    """Cathode figures exactly, SEI statistics within 5 nm, on a phantom with its frame."""
    sample = pytest.importorskip("volrecon.sample")
    ph = sample.make_phantom(preset, slices=12, shape=(288, 288), seed=1, frame=True,
                             artefacts="none", voxel_size_nm=(20, 10, 10), workers=1)
    r = analyze_volume(ph.labels, ph.regions, voxel_size_nm=ph.voxel_size_nm,
                       pore_size=False, marching_cubes=False, tortuosity_axes=("y",))
    d = r.to_dict()
    tc, c = ph.truth["regions"]["cathode"], d["regions"]["cathode"]
    for k in ("porosity", "void_fraction", "void_share_of_pore"):
        assert c[k] == pytest.approx(tc[k], abs=1e-9)
    assert c["void_clusters"]["count"] == tc["void_clusters"]["count"]
    assert c["void_clusters"]["largest_fraction"] == pytest.approx(tc["void_clusters"]["largest_fraction"])
    assert c["void_clusters"]["percolating"] == tc["void_clusters"]["percolating"]
    ts, s = ph.truth["regions"]["anode"]["sei_thickness_nm"], d["regions"]["anode"]["sei_thickness_nm"]
    for k in ("mean", "median", "std", "p05", "p95"):
        assert s[k] == pytest.approx(ts[k], abs=5.0), k
    # nearly every imaged surface position is measured, also next to the trench walls
    assert s["samples"] >= 0.97 * ph.truth["regions"]["anode"]["sei_thickness_samples"]


def test_sei_tilted_layer():
    """A planar layer tilted against the stacking axis: the normal thickness, not the chord."""
    vs = (20.0, 10.0, 10.0)
    z, y, x = np.meshgrid(*(np.arange(n) * v for n, v in zip((16, 80, 120), vs)), indexing="ij")
    slope, t = 0.4, 150.0
    s = 200.0 + slope * x
    lab = np.full(z.shape, 2, np.uint8)
    lab[y < s + t * np.sqrt(1 + slope**2)] = 7
    lab[y < s] = 6
    r = sei_thickness(lab, voxel_size_nm=vs, axis="y")
    assert r.mean == pytest.approx(t, abs=3.0)
    assert r.std < 3.0
    rd = sei_thickness(lab, voxel_size_nm=vs, axis="y", method="distance")
    assert rd.mean == pytest.approx(t, abs=10.0)


def _film(t0: float, vs: tuple[float, float, float], bump_nm: float = 0.0
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A film of mean normal thickness about ``t0`` (nm) on a plane tilted in z and x, with bumps of
    ``bump_nm`` along x, labelled at voxel centres; returns the labels, the film's true normal
    thickness per (z, x) line, the y voxel centres (nm) and the sodium surface height per line."""
    gz, gx = 0.07, 0.13  # incommensurate with the grid: the film's ends fall at every sub-voxel offset
    zz, xx = np.meshgrid((np.arange(12) + 0.5) * vs[0], (np.arange(200) + 0.5) * vs[2], indexing="ij")
    k = 2 * np.pi / 1100.0
    s = 200.0 + bump_nm + gx * xx + gz * zz + bump_nm * np.sin(k * xx)
    slope_x = gx + bump_nm * k * np.cos(k * xx)
    t = t0 * (1.0 + 0.3 * np.sin(2 * np.pi * xx / 1700.0))
    top = s + t * np.sqrt(1.0 + slope_x**2 + gz * gz)
    y = (np.arange(int(np.ceil((top.max() + 200.0) / vs[1]))) + 0.5) * vs[1]
    lab = np.full((12, y.size, 200), 2, np.uint8)
    lab[y[None, :, None] < top[:, None, :]] = 7
    lab[y[None, :, None] < s[:, None, :]] = 6
    return lab, t, y, s


def _tilted_film(t0: float, vs: tuple[float, float, float]) -> tuple[np.ndarray, float]:
    """:func:`_film` without bumps: the labels and the film's true mean normal thickness over the lines."""
    lab, t, _, _ = _film(t0, vs)
    return lab, float(t.mean())


@pytest.mark.parametrize("vs", [(40.0, 25.38, 20.0), (20.0, 12.69, 10.0)], ids=["sample-voxel", "benchmark-voxel"])
@pytest.mark.parametrize("t0", [8.0, 12.0, 20.0, 40.0, 120.0, 250.0])
def test_sei_thickness_unbiased_from_sub_voxel_to_thick_films(vs, t0):
    """The mean normal thickness of a film 0.3 to 20 voxels thick along the stacking axis, within
    1 % (1 nm at least).  Where the film is thinner than a voxel, some lines hold no film voxel:
    they are chords of zero voxels, not gaps (left out, a film of 8-20 nm read 25 nm at 25.4 nm rows)."""
    lab, t_true = _tilted_film(t0, vs)
    r = sei_thickness(lab, voxel_size_nm=vs, axis="y")
    assert r.mean == pytest.approx(t_true, abs=max(1.0, 0.01 * t_true))
    assert r.samples == 12 * 200  # every line crosses the sodium surface in the specimen
    assert r.gaps == 0 and r.coverage == 1.0  # the zero chords of a sub-voxel film are not gaps in it


def _defect(lab: np.ndarray, y: np.ndarray, s: np.ndarray, kind: str, vs: tuple[float, float, float]
            ) -> tuple[np.ndarray, bool]:
    """Put a defect into the film of :func:`_film` (in place); returns its lines (z, x) and whether
    they are gaps in the film (the inner surface seen bare) rather than lines left unmeasured."""
    where = np.zeros(s.shape, bool)
    where[{"hairline crack": np.s_[:, 90:91], "crack": np.s_[:, 90:96], "missed patch": np.s_[3:9, 40:80],
           "open pit": np.s_[4:8, 120:136], "covered pit": np.s_[4:8, 120:136]}[kind]] = True
    zs, xs = np.nonzero(where)
    line = lab[zs, :, xs]  # (lines, y)
    if kind != "covered pit":
        line[line == 7] = 2  # the film is missing: what lies beyond it meets the sodium
    if kind.endswith("pit"):  # electrolyte fills a pit 3 voxels deep in the sodium
        line[(y[None, :] >= s[zs, xs][:, None] - 3 * vs[1]) & (line == 6)] = 2
    lab[zs, :, xs] = line
    return where, kind != "covered pit"


@pytest.mark.parametrize("vs", [(40.0, 25.38, 20.0), (20.0, 12.69, 10.0)], ids=["sample-voxel", "benchmark-voxel"])
@pytest.mark.parametrize("t0", [120.0, 250.0])
@pytest.mark.parametrize("kind", ["hairline crack", "crack", "missed patch", "open pit", "covered pit"])
def test_sei_gaps_in_a_thick_film_are_coverage_not_thin_film(vs, t0, kind):
    """A crack through a thick film, a patch of it missing, an open pit in the sodium: the sodium
    meets what lies beyond with no film between, under lines that read several voxels around.  The
    thickness is the film's where it exists (within 1 %; read as chords of 0, the gaps took 3-10 %
    off it) and the gaps are the uncovered share.  A pit under the film (electrolyte between the
    sodium and the film) is left out of the map, not a gap.  Tilted, bumpy sodium surface."""
    lab, t, y, s = _film(t0, vs, bump_nm=40.0)
    where, is_gap = _defect(lab, y, s, kind, vs)
    r = sei_thickness(lab, voxel_size_nm=vs, axis="y")
    assert r.mean == pytest.approx(t[~where].mean(), rel=0.01)
    assert r.samples == (~where).sum()
    assert r.gaps == (where.sum() if is_gap else 0)
    assert r.coverage == pytest.approx(1.0 - where.mean() if is_gap else 1.0)
    assert r.to_dict()["gap_lines"] == r.gaps and r.coverage_dict()["fraction"] == pytest.approx(r.coverage)


def test_sei_gaps_read_by_slabs_equal_the_whole_volume():
    """A missed patch across several slabs of z-planes: gaps are decided on the whole map."""
    from volrecon.analyze.thickness import sei_thickness_slabs

    vs = (40.0, 25.38, 20.0)
    lab, t, y, s = _film(120.0, vs, bump_nm=40.0)
    _defect(lab, y, s, "missed patch", vs)
    whole = sei_thickness(lab, voxel_size_nm=vs, axis="y")
    slabs = sei_thickness_slabs(lab, planes=slice(None), axis="y", voxel_size_nm=vs,
                                slab_voxels=2 * lab.shape[1] * lab.shape[2])
    assert (slabs.gaps, slabs.samples) == (whole.gaps, whole.samples) == (240, 2160)
    assert slabs.mean == pytest.approx(whole.mean, rel=1e-12)


def test_sei_gap_is_told_by_the_film_around_it():
    """The same patch of bare sodium is the film's own sub-voxel thinness where the film around it
    reads one voxel (also with a few long runs beside it: 3 of its 20 neighbours read 10 voxels,
    a rim mean of 2.35), and a gap where it reads three."""
    vs = (20.0, 10.0, 10.0)
    lab = np.full((10, 30, 40), 2, np.uint8)
    lab[:, :10] = 6
    lab[:, 10] = 7  # a film of one voxel
    lab[3:6, 10, 15:20] = 2
    thin = sei_thickness(lab, voxel_size_nm=vs, axis="y", map_smooth_nm=0)
    assert (thin.gaps, thin.samples) == (0, 400)
    assert thin.mean == pytest.approx(10.0 * 385 / 400)
    speck = lab.copy()
    speck[2, 10:20, 14:17] = 7  # a few long runs (something else taken for the film) beside the patch
    specked = sei_thickness(speck, voxel_size_nm=vs, axis="y", map_smooth_nm=0)
    assert (specked.gaps, specked.samples) == (0, 400)  # most lines around the patch still read one voxel
    lab[:, 11:13] = 7  # a film of three voxels around the same patch
    lab[3:6, 10:13, 15:20] = 2
    thick = sei_thickness(lab, voxel_size_nm=vs, axis="y", map_smooth_nm=0)
    assert (thick.gaps, thick.samples, thick.mean) == (15, 385, pytest.approx(30.0))
    assert thick.coverage == pytest.approx(385 / 400)


def test_sei_coverage_in_metrics_and_report(tmp_path):
    """A crack through the SEI is the uncovered share in metrics.json and the report's key figures,
    and does not thin the film's mean."""
    import html

    from volrecon.report.html import KEY_METRICS, render_report

    lab, reg = _layered()
    lab[:, 5:8, 9:12] = 2  # a crack through the 3-row film: 3 of 30 columns
    r = analyze_volume(lab, reg, voxel_size_nm=(20, 10, 10), pore_size=False, marching_cubes=False)
    anode = r.to_dict()["regions"]["anode"]
    assert anode["sei_thickness_nm"]["mean"] == pytest.approx(30.0, abs=0.5)
    assert anode["sei_coverage"]["fraction"] == pytest.approx(0.9)
    assert anode["sei_coverage"]["units"] == "1 (0-1)"
    write_analysis(r, tmp_path)
    page = render_report(tmp_path)
    label = dict(KEY_METRICS)["regions.anode.sei_coverage.fraction"]
    assert label.startswith("SEI coverage (share 0–1 of the sodium surface under film")
    assert f"<td>{html.escape(label)}</td><td>0.9</td>" in page  # the key figures' row, its value


def test_thin_sei_is_flagged_as_resolution_limited():
    """A film of one voxel along the stacking axis is reported with a warning; one of three is not."""
    lab, reg = _layered()
    thick = analyze_volume(lab, reg, voxel_size_nm=(20, 10, 10), pore_size=False, marching_cubes=False).to_dict()
    assert not any("SEI" in w for w in thick.get("warnings", []))
    lab[:, 5:7] = 6  # the film is the last anode row only: 10 nm at 10 nm rows
    thin = analyze_volume(lab, reg, voxel_size_nm=(20, 10, 10), pore_size=False, marching_cubes=False).to_dict()
    assert thin["regions"]["anode"]["sei_thickness_nm"]["median"] == pytest.approx(10.0, abs=0.5)
    assert [w for w in thin["warnings"] if "SEI" in w and "10.0 nm" in w and "along y" in w]


def test_parallel_tortuosity_equals_serial_and_no_void_shortcut():
    lab, reg = _layered()
    serial = analyze_volume(lab, reg, voxel_size_nm=(20, 10, 10), pore_size=False, marching_cubes=False, workers=1).to_dict()
    parallel = analyze_volume(lab, reg, voxel_size_nm=(20, 10, 10), pore_size=False, marching_cubes=False, workers=2).to_dict()
    # bit for bit: a run's metrics.json must be reproducible, whatever runs beside the solves
    def solves(d):
        tort = d["regions"]["cathode"]["tortuosity"]
        return {(ph, ax): {k: v for k, v in r.items() if k != "seconds"}
                for ph, axes in tort.items() for ax, r in axes.items() if isinstance(r, dict)}

    assert solves(parallel) == solves(serial)
    assert parallel["regions"]["cathode"]["tortuosity_factor"] == serial["regions"]["cathode"]["tortuosity_factor"]
    no_void = np.where(lab == 1, 2, lab)  # every void becomes electrolyte: both solves are the same problem
    d = analyze_volume(no_void, reg, voxel_size_nm=(20, 10, 10), pore_size=False, marching_cubes=False).to_dict()
    tf = d["regions"]["cathode"]["tortuosity_factor"]
    assert tf["electrolyte"] == tf["pore"]


def test_pore_sizes_in_a_separate_process_equal_inline(monkeypatch):
    import volrecon.analyze.metrics as metrics

    lab, reg = _layered()
    kw = dict(voxel_size_nm=(20, 10, 10), marching_cubes=False, tortuosity_axes=("y",))
    inline = analyze_volume(lab, reg, **kw).to_dict()["regions"]["cathode"]["pore_size"]
    monkeypatch.setattr(metrics, "PORE_SIZE_PROCESS_ABOVE_VOXELS", 0)
    spawned = analyze_volume(lab, reg, **kw).to_dict()["regions"]["cathode"]["pore_size"]
    assert spawned == inline and inline["pore"]["voxels"] > 0
