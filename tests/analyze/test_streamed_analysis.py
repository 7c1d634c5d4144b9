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
    assert rec == {"capped": True, "max_voxels": cap, "full_box": [list(v) for v in full.cathode_box]}
    assert any("tortuosity_max_voxels" in w for w in capped.to_dict()["warnings"])
    assert full.to_dict()["regions"]["cathode"]["tortuosity_box_capped"]["capped"] is False
    assert "warnings" not in full.to_dict()
    with pytest.raises(ParameterError, match="tortuosity_max_voxels"):
        analyze_volume(phantom.labels, phantom.regions, tortuosity_max_voxels=0, **kw)
