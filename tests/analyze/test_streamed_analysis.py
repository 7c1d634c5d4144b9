"""The analysis read slab by slab and box by box from a dask volume equals the whole-array analysis."""

import dask.array as da
import numpy as np
import pytest

from volrecon.analyze import analyze_volume
from volrecon.analyze.layers import inner_box, inner_box_bits
from volrecon.analyze.subvolumes import subvolume_table
from volrecon.errors import ParameterError


def _strip(d):
    if isinstance(d, dict):
        return {k: _strip(v) for k, v in d.items() if k not in ("seconds", "timings_s", "notes")}
    if isinstance(d, list):
        return [_strip(v) for v in d]
    return d


@pytest.fixture(scope="module")
def phantom():
    sample = pytest.importorskip("volrecon.sample")
    return sample.make_phantom("diglyme", slices=10, shape=(160, 176), seed=2, frame=True,
                               artefacts="none", voxel_size_nm=(20, 10, 10), workers=1)


def test_dask_slabs_equal_whole_arrays(phantom):
    kw = dict(voxel_size_nm=phantom.voxel_size_nm, pore_size=False, marching_cubes=True)
    whole = analyze_volume(phantom.labels, phantom.regions, chunked_above_voxels=None, **kw).to_dict()
    lab = da.from_array(phantom.labels, chunks=(3, 64, 64))
    reg = da.from_array(phantom.regions, chunks=(3, 64, 64))
    streamed = analyze_volume(lab, reg, chunked_above_voxels=0, chunks=(1, 64, 64), **kw).to_dict()
    assert _strip(streamed) == _strip(whole)
    # the figures are there (not two empty dictionaries compared)
    cat = whole["regions"]["cathode"]
    assert cat["void_clusters"]["count"] > 0 and cat["tortuosity_factor"]["pore"]["y"] > 1.0
    assert whole["regions"]["anode"]["sei_thickness_nm"]["samples"] > 0


def test_subvolume_table_by_slabs_equals_numpy(phantom):
    rows = subvolume_table(phantom.labels, phantom.regions, through_plane_axis=1)
    lazy = subvolume_table(da.from_array(phantom.labels, chunks=(3, 80, 80)),
                           da.from_array(phantom.regions, chunks=(3, 80, 80)), through_plane_axis=1,
                           slab_voxels=1)
    assert lazy == rows
    cath = phantom.regions == 3
    z = phantom.labels.shape[0] // 2
    block = cath[:z, :, : phantom.labels.shape[2] // 2]
    pore = np.isin(phantom.labels[:z, :, : phantom.labels.shape[2] // 2], (1, 2)) & block
    assert rows[0]["regions.cathode.porosity"] == pytest.approx(pore.sum() / block.sum())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_inner_box_from_bits_is_inside_and_slab_independent(seed):
    rng = np.random.default_rng(seed)
    zz, yy, xx = np.mgrid[:14, :30, :37]
    c = rng.uniform(-2, 2, 3)
    inside = ((zz - 7 - c[0]) / 7.5) ** 2 + ((yy - 15 - c[1]) / 14) ** 2 + ((xx - 18 - c[2]) / 17) ** 2 < 1.0
    box = inner_box(inside)
    assert box is not None and inside[box].all()
    assert all(s.stop - s.start >= 2 for s in box)
    bits = np.packbits(inside, axis=2)
    assert inner_box_bits(bits, inside.shape, slab_voxels=1) == box
    assert inner_box(np.zeros((3, 4, 9), bool)) is None


def test_tortuosity_box_capped_to_its_centre(phantom):
    kw = dict(voxel_size_nm=phantom.voxel_size_nm, pore_size=False, marching_cubes=False, tortuosity_axes=("y",))
    full = analyze_volume(phantom.labels, phantom.regions, **kw)
    (z0, z1), (y0, y1), (x0, x1) = full.cathode_box
    cap = (z1 - z0) * (y1 - y0) * (x1 - x0) // 3
    capped = analyze_volume(phantom.labels, phantom.regions, tortuosity_max_voxels=cap, **kw)
    (c0, c1), (d0, d1), (e0, e1) = capped.cathode_box
    assert (c1 - c0) * (d1 - d0) * (e1 - e0) <= cap
    assert (d0, d1) == (y0, y1)  # the stacking axis (y) stays whole
    assert z0 <= c0 < c1 <= z1 and x0 <= e0 < e1 <= x1
    assert any("cut to its centre" in n for n in capped.notes)
    tau = capped.tortuosity["pore"]["1"]
    assert tau.shape == (c1 - c0, d1 - d0, e1 - e0) and np.isfinite(tau.tortuosity_factor)
    # the cap is recorded where a reader of metrics.json looks: a flag, the full box, a warning
    rec = capped.to_dict()["regions"]["cathode"]["tortuosity_box_capped"]
    assert {k: rec[k] for k in ("capped", "max_voxels", "full_box", "by_max_voxels")} == {
        "capped": True, "max_voxels": cap, "full_box": [list(v) for v in full.cathode_box], "by_max_voxels": True}
    assert any("tortuosity_max_voxels" in w for w in capped.to_dict()["warnings"])
    assert full.to_dict()["regions"]["cathode"]["tortuosity_box_capped"]["capped"] is False
    # 10 slices: smaller than a representative volume, said so, but not cut to the budget
    assert not any("tortuosity_max_voxels" in w for w in full.to_dict()["warnings"])
    assert any("representative volume" in w for w in full.to_dict()["warnings"])
    with pytest.raises(ParameterError, match="tortuosity_max_voxels"):
        analyze_volume(phantom.labels, phantom.regions, tortuosity_max_voxels=0, **kw)


@pytest.mark.parametrize("seed, fill, vs", [(0, 0.002, (20, 10, 10)), (1, 0.05, (7, 3, 5)), (2, 0.3, (1, 1, 1))])
def test_edt_slabs_equals_whole_volume_transform(seed, fill, vs):
    from scipy import ndimage

    from volrecon.analyze._edt_slabs import edt_slabs

    rng = np.random.default_rng(seed)
    src = rng.random((13, 17, 11)) < fill
    src[6, 3, 4] = True
    ref = ndimage.distance_transform_edt(~src, sampling=vs)
    for step in (1, 4, 13):
        slabs = [(z, min(13, z + step)) for z in range(0, 13, step)]
        got = np.concatenate([d for _, _, d in edt_slabs(lambda a, b: src[a:b], 13, (17, 11), slabs, vs)])
        np.testing.assert_allclose(got, ref, rtol=1e-6)
    none = next(edt_slabs(lambda a, b: np.zeros((b - a, 4, 5), bool), 3, (4, 5), [(0, 3)], vs))[2]
    assert np.isinf(none).all()
    # slabs that leave a gap, overlap or stop short are refused by name
    from volrecon.errors import ParameterError

    for bad in ([(0, 5), (6, 13)], [(0, 7), (5, 13)], [(0, 12)], []):
        with pytest.raises(ParameterError, match="slabs="):
            next(edt_slabs(lambda a, b: src[a:b], 13, (17, 11), bad, vs))


def test_depth_profile_by_slabs_equals_whole_crop(phantom):
    from volrecon.analyze._survey import bounding_box
    from volrecon.analyze.profiles import depth_profile, depth_profile_slabs
    from volrecon.phases import PHASES, REGIONS

    lab, reg = np.asarray(phantom.labels), np.asarray(phantom.regions)
    cath = reg == REGIONS["cathode"]
    box = bounding_box([cath.any(axis=(1, 2)), cath.any(axis=(0, 2)), cath.any(axis=(0, 1))], grow=1)
    kw = dict(phase_names=PHASES, voxel_size_nm=phantom.voxel_size_nm, source_outside=True)
    whole = depth_profile(lab[box], reg[box] == REGIONS["cathode"], reg[box] == REGIONS["separator"], **kw)
    assert whole.reason is None and whole.voxels.sum() == (cath & (lab != PHASES["frame"])).sum()
    for slab_voxels in (1, 30_000, 10**9):
        lazy = depth_profile_slabs(da.from_array(lab, chunks=(3, 80, 80)), reg, box=box, within=REGIONS["cathode"],
                                   source=REGIONS["separator"], slab_voxels=slab_voxels, **kw)
        np.testing.assert_array_equal(lazy.bin_edges_nm, whole.bin_edges_nm)
        np.testing.assert_array_equal(lazy.voxels, whole.voxels)
        for name, frac in whole.fractions.items():
            np.testing.assert_array_equal(lazy.fractions[name], frac)
    # a profile from a region that is not in the box says so
    absent = depth_profile_slabs(lab, reg, box=box, within=REGIONS["cathode"], source=REGIONS["anode"], **kw)
    assert absent.reason is not None and "does not touch" in absent.reason


@pytest.mark.parametrize("transpose", [False, True])
def test_sei_thickness_by_slabs_equals_whole_crop(phantom, transpose):
    from volrecon.analyze.thickness import sei_thickness, sei_thickness_slabs

    lab = np.asarray(phantom.labels)
    axis = 1
    if transpose:  # stacking axis along x
        lab, axis = np.ascontiguousarray(lab.transpose(0, 2, 1)), 2
    vs = phantom.voxel_size_nm if not transpose else tuple(phantom.voxel_size_nm[i] for i in (0, 2, 1))
    # the crop sei_thickness makes itself: the layer's planes with a margin of its extent
    idx = np.flatnonzero((lab == 7).any(axis=tuple(a for a in range(3) if a != axis)))
    margin = idx[-1] - idx[0] + 3
    planes = slice(max(0, idx[0] - margin), idx[-1] + 1 + margin)
    crop = tuple(planes if a == axis else slice(None) for a in range(3))
    whole = sei_thickness(lab[crop], voxel_size_nm=vs, axis=axis)
    assert whole.samples > 100 and np.isfinite(whole.mean)
    for slab_voxels in (1, 20_000):
        lazy = sei_thickness_slabs(da.from_array(lab, chunks=(4, 64, 64)), planes=planes, axis=axis,
                                   voxel_size_nm=vs, slab_voxels=slab_voxels)
        assert lazy.to_dict() == whole.to_dict()
        np.testing.assert_array_equal(lazy.thickness_map, whole.thickness_map)
    with pytest.raises(ParameterError):
        sei_thickness_slabs(lab, planes=planes, axis="z", voxel_size_nm=vs)


def test_slabs_round_to_dask_chunks_only_when_near_the_slab_size():
    import dask.array as da

    from volrecon.analyze._common import box_slabs, z_slabs

    box = (slice(3, 70), slice(0, 10), slice(0, 10))
    sizes = lambda arr: {s.stop - s.start for s in box_slabs(box, 800, arr)}  # 8 planes of 100 voxels
    vol = lambda cz: da.zeros((70, 10, 10), np.uint8, chunks=(cz, 10, 10))
    assert max(sizes(None)) == 8
    assert max(sizes(vol(16))) == 16 and all(s.start % 16 == 0 for s in list(box_slabs(box, 800, vol(16)))[1:])
    assert max(sizes(vol(3))) == 6  # whole chunks below the slab size
    assert max(sizes(vol(64))) == 8  # a chunk 8x the slab does not override slab_voxels
    assert [b - a for a, b in z_slabs(vol(64), 800)][:2] == [8, 8]
    for arr in (None, vol(3), vol(16), vol(64)):  # the slabs tile the box
        got = list(box_slabs(box, 800, arr))
        assert got[0].start == 3 and got[-1].stop == 70 and all(a.stop == b.start for a, b in zip(got, got[1:]))


def test_analysis_of_deep_chunks_read_by_rows_equals_numpy(phantom):
    """Slabs of one plane in chunks 6 planes deep: the cached rows serve every pass."""
    kw = dict(voxel_size_nm=phantom.voxel_size_nm, pore_size=False, tortuosity_axes=("y",))
    whole = analyze_volume(phantom.labels, phantom.regions, chunked_above_voxels=None, **kw).to_dict()
    lab = da.from_array(phantom.labels, chunks=(6, 64, 64))
    reg = da.from_array(phantom.regions, chunks=(6, 64, 64))
    plane = 160 * 176
    rows = analyze_volume(lab, reg, chunked_above_voxels=0, chunks=(1, 1, plane), **kw).to_dict()
    assert _strip(rows) == _strip(whole)
    assert whole["regions"]["cathode"]["void_clusters"]["count"] > 0
    kw2 = dict(through_plane_axis=1, sei_map=None)
    assert subvolume_table(lab, reg, slab_voxels=plane, **kw2) == subvolume_table(phantom.labels, phantom.regions, **kw2)
