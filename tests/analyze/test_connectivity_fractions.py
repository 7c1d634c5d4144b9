import numpy as np
import pytest

from volrecon.analyze import (
    cluster_connectivity, label_clusters, label_clusters_chunked, phase_fractions,
    specific_surface_area,
)
from volrecon.errors import VolreconError


@pytest.mark.parametrize("conn", [6, 18, 26])
def test_chunked_labelling_equals_whole(conn):
    rng = np.random.default_rng(1)
    m = rng.random((30, 41, 37)) < 0.3
    a, na = label_clusters(m, connectivity=conn)
    b, nb = label_clusters_chunked(m, connectivity=conn, chunks=(7, 10, 9))
    b = b.compute()
    assert na == nb
    assert np.array_equal(a > 0, b > 0)
    pairs = np.unique(np.stack([a[a > 0], b[b > 0]]), axis=1)
    assert pairs.shape[1] == na  # a bijection between the two labellings


def test_percolation_and_shares():
    m = np.zeros((10, 10, 10), bool)
    m[:, 2, 2] = True  # through along z
    m[0:3, 6, 6] = True  # dead end (touches z=0)
    m[4:6, 8, 8] = True  # isolated
    r = cluster_connectivity(m)
    assert r.count == 3 and r.percolating == {"z": True, "y": False, "x": False}
    assert r.through_fraction["z"] == pytest.approx(10 / 15)
    assert r.dead_end_fraction["z"] == pytest.approx(3 / 15)
    assert r.isolated_fraction["z"] == pytest.approx(2 / 15)


def test_fractions_exclude_frame():
    lab = np.array([[[1, 2], [3, 9]]], np.uint8)
    f = phase_fractions(lab)
    assert f.voxels == 3 and f.fractions["void"] == pytest.approx(1 / 3)
    with pytest.raises(VolreconError):
        phase_fractions(np.zeros((2, 2), np.uint8))


def test_nmc_through_connectivity_and_surface(nmc):
    tf = cluster_connectivity(nmc == 0).through_fraction["x"]
    assert tf == pytest.approx(0.9989, abs=1e-4)
    s = specific_surface_area(nmc == 0, voxel_size_nm=390.625, marching=False)
    assert s.face_counting_per_nm * 1e9 == pytest.approx(785502, rel=1e-5)


def test_analyze_volume_chunked_clusters_equal_whole_array():
    """Chunked labelling inside analyze_volume gives the whole-array cluster statistics."""
    sample = pytest.importorskip("volrecon.sample")
    from volrecon.analyze import analyze_volume

    ph = sample.make_phantom("diglyme", slices=12, shape=(160, 160), seed=3, frame=True,
                             artefacts="none", workers=1)
    kw = dict(voxel_size_nm=ph.voxel_size_nm, pore_size=False, marching_cubes=False,
              tortuosity_axes=("y",))
    whole = analyze_volume(ph.labels, ph.regions, chunked_above_voxels=None, **kw)
    chunked = analyze_volume(ph.labels, ph.regions, chunked_above_voxels=0, chunks=(5, 48, 64), **kw)
    for attr in ("void_clusters", "pore_connectivity"):
        a, b = getattr(whole, attr), getattr(chunked, attr)
        assert a.count == b.count > 1
        assert a.sizes_voxels == b.sizes_voxels
        assert a.to_dict() == b.to_dict()
    assert any("chunk by chunk" in n for n in chunked.notes)


@pytest.mark.parametrize("sigma", [0.0, 1.2])
def test_marching_cubes_area_equals_skimage_mesh(sigma):
    import scipy.ndimage as ndi
    from skimage.measure import marching_cubes, mesh_surface_area

    from volrecon.analyze.surface import marching_cubes_area

    a = np.random.default_rng(5).random((23, 31, 37))
    m = (ndi.gaussian_filter(a, sigma) if sigma else a) > 0.5  # white noise: every ambiguous case
    vs = (20.0, 10.0, 13.0)
    verts, faces, _, _ = marching_cubes(m.astype(np.float32), 0.5, spacing=vs)
    assert marching_cubes_area(m, voxel_size_nm=vs) == pytest.approx(mesh_surface_area(verts, faces), rel=1e-12)
    assert specific_surface_area(np.ones((4, 4, 4), bool)).marching_cubes_per_nm == 0.0


def test_negative_labels_are_refused():
    """They would wrap to 65535 in the uint16 index and land in another region's cell."""
    from volrecon.analyze.fractions import count_table
    from volrecon.errors import InputError

    labels = np.zeros((2, 3, 3), np.int16)
    labels[0, 0, 0] = -1
    with pytest.raises(InputError, match="0..255"):
        count_table(labels, np.ones_like(labels))


def test_resolved_clusters_count_the_pieces_at_or_above_the_stated_volume():
    """One 27-voxel cluster, one of exactly 8 voxels and three single voxels (voxels of 2 nm^3)."""
    m = np.zeros((12, 12, 12), bool)
    m[1:4, 1:4, 1:4] = True
    m[6:8, 6:8, 6:8] = True
    m[10, 1, 1] = m[10, 5, 10] = m[1, 10, 10] = True
    r = cluster_connectivity(m, voxel_size_nm=(2.0, 1.0, 1.0), resolvable_volume_nm3=16.0)
    assert r.count == 5
    assert r.to_dict()["mean_volume_nm3"] == pytest.approx(2 * 38 / 5)  # every piece, as before
    res = r.to_dict()["resolved"]
    assert res["min_volume_nm3"] == 16.0
    assert res["count"] == 2 and res["below_count"] == 3
    assert res["mean_volume_nm3"] == pytest.approx(2 * (27 + 8) / 2)
    assert res["below_fraction"] == pytest.approx(3 / 38)
    assert cluster_connectivity(m).to_dict()["resolved"]["count"] == 5  # 0: every cluster
    with pytest.raises(VolreconError, match="resolvable_volume_nm3"):
        cluster_connectivity(m, resolvable_volume_nm3=-1.0)


def test_resolved_cluster_count_survives_removing_pieces_below_the_resolvable_size():
    """A phantom's true labels hold many one-voxel void and pore pieces that the probe blur hides
    and the segmentation merges away (``remove_small_pieces`` at its default smallest size): the
    count over every piece falls by half or more when they go, the resolved count and mean volume
    (the default :data:`RESOLVABLE_NM`, the same size) stay where they were."""
    sample = pytest.importorskip("volrecon.sample")
    from volrecon.analyze import analyze_volume
    from volrecon.segment.cleanup import remove_small_pieces

    ph = sample.make_phantom("diglyme", slices=12, shape=(160, 160), seed=3, frame=True,
                             artefacts="none", workers=1)
    labels = np.asarray(ph.labels)
    kept = remove_small_pieces(labels, min_size_nm=30.0, voxel_size_nm=ph.voxel_size_nm, keep=(0, 9))
    kw = dict(voxel_size_nm=ph.voxel_size_nm, pore_size=False, marching_cubes=False, tortuosity_axes=())
    true, seen = (analyze_volume(lab, ph.regions, **kw).to_dict()["regions"]["cathode"] for lab in (labels, kept))
    for key in ("void_clusters", "pore_connectivity"):
        assert seen[key]["count"] < 0.5 * true[key]["count"]
        assert seen[key]["resolved"]["count"] == true[key]["resolved"]["count"] > 1
        assert seen[key]["resolved"]["mean_volume_nm3"] == pytest.approx(true[key]["resolved"]["mean_volume_nm3"], rel=0.01)
        assert seen[key]["resolved"]["below_count"] < true[key]["resolved"]["below_count"]


def test_resolvable_size_is_the_segmentations_smallest_piece():
    import inspect

    from volrecon.analyze.metrics import RESOLVABLE_NM, analyze_volume
    from volrecon.segment import segment_volume

    assert inspect.signature(segment_volume).parameters["min_size_nm"].default == RESOLVABLE_NM
    assert inspect.signature(analyze_volume).parameters["resolvable_nm"].default == RESOLVABLE_NM


def _layered_cathode_with_wall():
    """Separator (y < 5), cathode, collector (y >= 15) along y; a trench wall (frame) at x >= 17
    below y = 10; the cathode|separator interface at y = 5 steps up to y = 6 at x >= 10.  Void:
    A runs from the separator to the wall at x = 18, B lies against the interface's step (the
    last cathode voxel of its rows along x, with the separator beyond), C runs from the
    separator to the collector, D touches the volume face x = 0."""
    from volrecon.phases import PHASES, REGIONS

    regions = np.full((4, 20, 20), REGIONS["cathode"], np.uint8)
    regions[:, :5] = REGIONS["separator"]
    regions[:, 5, 10:] = REGIONS["separator"]
    regions[:, 15:] = REGIONS["collector"]
    regions[:, 10:, 17:] = REGIONS["frame"]
    labels = np.full(regions.shape, PHASES["active"], np.uint8)
    labels[regions == REGIONS["separator"]] = PHASES["separator"]
    labels[regions == REGIONS["collector"]] = PHASES["collector"]
    labels[regions == REGIONS["frame"]] = PHASES["frame"]
    void = np.zeros(regions.shape, bool)
    void[:, 6:10, 18] = True  # A
    void[:, 5, 7:10] = True  # B
    void[:, 5:15, 2] = True  # C
    void[:, 12, 0] = True  # D
    labels[void] = PHASES["void"]
    return labels, regions, void, {"A": 4 * 4, "B": 4 * 3, "C": 4 * 10, "D": 4}


def test_ends_are_the_layer_interfaces_along_the_stack_and_the_block_sides_across_it():
    """A void that runs from the separator into a trench wall does not reach the collector, and a
    void against a step of the cathode|separator interface does not reach a side of the block:
    with the ends taken where every line's domain stops, both count (A through along y, B a
    dead end along x)."""
    from volrecon.analyze import analyze_volume
    from volrecon.phases import REGIONS

    labels, regions, void, n = _layered_cathode_with_wall()
    total = sum(n.values())
    cath = regions == REGIONS["cathode"]
    layer = np.isin(regions, [REGIONS["separator"], REGIONS["collector"]])
    r = cluster_connectivity(void, domain=cath, face_axes=(0,), end_beyond={1: layer, 2: ~layer})
    assert r.count == 4
    assert r.through_fraction["y"] == pytest.approx(n["C"] / total)
    assert r.dead_end_fraction["y"] == pytest.approx((n["A"] + n["B"]) / total)
    assert r.dead_end_fraction["x"] == pytest.approx(n["D"] / total)
    assert r.isolated_fraction["x"] == pytest.approx((n["A"] + n["B"] + n["C"]) / total)
    old = cluster_connectivity(void, domain=cath, face_axes=(0,))  # every domain end
    assert old.through_fraction["y"] == pytest.approx((n["A"] + n["C"]) / total)
    assert old.dead_end_fraction["x"] == pytest.approx((n["B"] + n["D"]) / total)
    # analyze_volume takes its ends so, the stacking axis found from the layers
    got = analyze_volume(labels, regions, voxel_size_nm=10.0, pore_size=False, marching_cubes=False,
                         tortuosity_axes=()).void_clusters
    assert got.through_fraction == r.through_fraction and got.dead_end_fraction == r.dead_end_fraction
    with pytest.raises(VolreconError, match="end_beyond"):
        cluster_connectivity(void, domain=cath, end_beyond={0: layer})


def test_the_frames_cap_is_an_end_along_the_stack_a_wall_is_not():
    """An electrode-only field: the protective cap lies on the cathode (no separator), the collector
    below, a trench wall at one side. A void from under the cap to the collector runs through the
    cathode along the stack; one from under the cap into the wall does not reach the collector."""
    from volrecon.analyze import analyze_volume
    from volrecon.phases import PHASES, REGIONS

    regions = np.full((6, 20, 24), REGIONS["cathode"], np.uint8)
    regions[:, :4] = REGIONS["frame"]  # the cap, across the whole width
    regions[:, 4:, 20:] = REGIONS["frame"]  # a trench wall
    regions[:, 16:, :20] = REGIONS["collector"]
    labels = np.full(regions.shape, PHASES["active"], np.uint8)
    labels[regions == REGIONS["frame"]] = PHASES["frame"]
    labels[regions == REGIONS["collector"]] = PHASES["collector"]
    labels[:, 4:16, 5] = PHASES["void"]  # cap -> collector: through along y
    labels[:, 4:12, 12] = PHASES["void"]  # from the cap, ending inside the cathode: a dead end along y
    labels[:, 10, 16:20] = PHASES["void"]  # into the wall, across the stack
    got = analyze_volume(labels, regions, voxel_size_nm=10.0, pore_size=False, marching_cubes=False,
                         tortuosity_axes=(), through_plane_axis="y").void_clusters
    n_through, n_dead, n_wall = 6 * 12, 6 * 8, 6 * 4
    total = n_through + n_dead + n_wall
    assert got.percolating["y"] and got.through_fraction["y"] == pytest.approx(n_through / total)
    assert got.dead_end_fraction["y"] == pytest.approx(n_dead / total)
    assert got.isolated_fraction["y"] == pytest.approx(n_wall / total)  # the wall is no end along the stack
