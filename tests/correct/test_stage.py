"""The correct stage: estimates, lazy application, files and figures."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

from volrecon.correct import correct_volume, correction_figures, save_corrections
from volrecon.errors import ParameterError, VolreconError
from volrecon.sample import Artefacts, make_phantom


@pytest.fixture(scope="module")
def ph():
    return make_phantom("carbonate", slices=8, shape=(128, 128), seed=1, artefacts=Artefacts(), workers=2)


def test_all_steps(ph, tmp_path):
    arr = da.from_array(ph.acquired, chunks=(1, 128, 128))
    res = correct_volume(arr, voxel_size_nm=ph.voxel_size_nm, options={"drift": {"anchor": "none"}})
    out = res.image.compute()
    assert out.dtype == np.uint8 and out.shape[0] == 8
    assert res.drift is not None and res.shading is not None and res.brightness is not None
    files = {p.name for p in save_corrections(res, tmp_path / "corrections")}
    assert {"drift.csv", "brightness.csv", "shading.npz", "curtains.json", "corrections.json"} <= files
    figs = correction_figures(res, ph.acquired, out, tmp_path / "figures")
    assert [p.name for p in figs] == ["correct_xy.png", "correct_xz.png", "correct_yz.png"]


def test_drift_objects_switch_reaches_the_estimate_and_is_recorded(ph, tmp_path):
    """run.toml ``[correct.options.drift] objects = false`` arrives as this option; without it the
    frameless stack gets the object refinement, which on 8 small slices falls back and says why."""
    import json

    off = correct_volume(ph.acquired, voxel_size_nm=ph.voxel_size_nm, steps=("drift",),
                         options={"drift": {"anchor": "none", "objects": False}})
    assert off.drift.metadata["objects"] == {"ran": False, "reason": "off (objects=False)"}
    on = correct_volume(ph.acquired, voxel_size_nm=ph.voxel_size_nm, steps=("drift",), options={"drift": {"anchor": "none"}})
    recorded = on.drift.metadata["objects"]
    assert not recorded["ran"] and recorded["rods"] < 5 and "consensus stands" in recorded["reason"]
    assert np.array_equal(on.drift.shifts, off.drift.shifts)  # the consensus, unchanged
    save_corrections(on, tmp_path)
    assert json.loads((tmp_path / "corrections.json").read_text())["drift"]["metadata"]["objects"] == recorded


def test_given_estimates_reapplied(ph):
    arr = da.from_array(ph.acquired, chunks=(1, 128, 128))
    steps = ("shading", "brightness", "curtains")
    first = correct_volume(arr, voxel_size_nm=ph.voxel_size_nm, steps=steps)
    est = {"shading": first.shading, "brightness": first.brightness, "curtains": first.curtains}
    again = correct_volume(arr, voxel_size_nm=ph.voxel_size_nm, steps=steps, estimates=est)
    np.testing.assert_array_equal(again.image.compute(), first.image.compute())
    with pytest.raises(ParameterError):
        correct_volume(arr, voxel_size_nm=ph.voxel_size_nm, steps=("shading",), estimates=est)


def test_one_slice_warns_not_nan(ph):
    res = correct_volume(ph.acquired[:1].astype(np.float32), voxel_size_nm=(20, 10, 10), steps=("shading", "brightness", "curtains"))
    assert any("shading skipped" in w for w in res.warnings)
    assert np.isfinite(res.image.compute()).all()


def test_bad_inputs(ph):
    with pytest.raises(ParameterError):
        correct_volume(ph.acquired, voxel_size_nm=(1, 1, 1), steps=("sharpen",))
    with pytest.raises(VolreconError):
        correct_volume(ph.acquired, voxel_size_nm=(1, 1, 1), steps=("shading",), mask=np.zeros(ph.acquired.shape[1:], bool))


def test_drift_on_a_small_framed_phantom_is_anchored_to_the_frame():
    # small stacks keep the trench walls a few px from the border: both must still anchor dx
    ph = make_phantom("diglyme", slices=12, shape=(192, 192), seed=0, artefacts="all", frame=True, workers=2)
    h = ph.labels.shape[1]
    res = correct_volume(ph.acquired[:, :h], voxel_size_nm=ph.voxel_size_nm, steps=("drift",))
    assert res.drift.anchor.count("frame") >= 11
    err = np.asarray(res.drift.shifts) - np.asarray(ph.drift, float)
    err -= err.mean(axis=0)
    assert np.sqrt(np.mean(np.sum(err**2, axis=1))) < 0.15


def test_stripe_free_stack_keeps_destriping_off_and_says_so():
    # plain noise on a smooth ramp: nothing column-wise for the destriper to find
    rng = np.random.default_rng(4)
    ramp = np.linspace(60, 180, 128, dtype=np.float32)[None, :, None]
    img = (ramp + rng.normal(0, 8, (6, 128, 128))).astype(np.float32)
    res = correct_volume(img, voxel_size_nm=(20, 10, 10), steps=("curtains",))
    assert not res.curtains.enabled
    assert any(w.startswith("curtains: no significant stripes") for w in res.warnings)
    np.testing.assert_array_equal(np.asarray(res.image), img)


def test_stage_removes_curtains_pooled_along_z_as_apply_curtains():
    # the stage must apply the curtains it estimated, with their z pooling, not slice by slice
    import dataclasses

    from test_curtains import layered_with_stripes

    from volrecon.correct.curtains import apply_curtains

    _, stripes, img = layered_with_stripes(seed=1, nz=12, noise=12.0)
    res = correct_volume(da.from_array(img, chunks=(1, 256, 192)), voxel_size_nm=(20, 10, 10), steps=("curtains",),
                         options={"curtains": {"z_reach": 2}})
    assert res.curtains.enabled and res.curtains.z_reach == 2
    out = res.image.compute()
    np.testing.assert_allclose(out, apply_curtains(img, res.curtains), rtol=0, atol=1e-4)
    alone = apply_curtains(img, dataclasses.replace(res.curtains, z_reach=0))
    miss = lambda o: float(np.sqrt(np.mean((img - o - stripes) ** 2)))
    assert miss(out) < 0.9 * miss(alone)


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.uint8, np.int16])
def test_restore_dtype_never_gives_nan_or_inf(dtype):
    from volrecon.correct._intensity import restore_dtype

    values = np.array([np.inf, -np.inf, np.nan, 1.5], np.float32)
    out = restore_dtype(values, dtype)
    assert out.dtype == np.dtype(dtype) and np.isfinite(out).all() and out[2] == 0


def test_destriping_leaves_the_face_frame_alone():
    import dataclasses

    # the trench walls' bright rims are straight lines along the stripes: a stripe filter removes them,
    # and then the segment stage cannot find the frame again; curtains are milled into the face only
    from volrecon.segment.frame import find_frame

    arte = Artefacts.none()
    arte = dataclasses.replace(arte, curtains=True, edge_brightening=True, curtain_amplitude=0.3)
    ph = make_phantom("diglyme", slices=6, shape=(160, 160), seed=3, frame=True, artefacts=arte)
    img = np.asarray(ph.acquired, np.float32)
    frame = find_frame(img)
    assert frame.found and frame.right is not None and frame.left is not None
    res = correct_volume(da.from_array(img, chunks=(1, 160, 160)), voxel_size_nm=(20, 10, 10), steps=("curtains",))
    assert res.curtains.enabled
    out = np.asarray(res.image)
    np.testing.assert_array_equal(out[:, frame.mask], img[:, frame.mask])
    assert np.abs(out[:, ~frame.mask] - img[:, ~frame.mask]).mean() > 0.5  # the face itself was destriped
    again = find_frame(out)
    assert again.right is not None and again.left is not None


def _walls_and_cap(nz: int = 4, ny: int = 192, nx: int = 192, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Noisy stripe-free face inside a bright cap and two trench walls with bright rims (no curtains)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:ny, 0:nx].astype(np.float32)
    frame = (yy < 12) | (xx < 10 + 0.02 * yy) | (xx > nx - 11 - 0.02 * yy)
    img = np.where(frame, 200.0, 90.0).astype(np.float32)
    rim = np.exp(-np.abs(xx - (10 + 0.02 * yy)) / 1.5) + np.exp(-np.abs(xx - (nx - 11 - 0.02 * yy)) / 1.5)
    img = img + 80 * rim * (yy >= 12)
    stack = img[None] + rng.normal(0, 6, (nz, ny, nx)).astype(np.float32)
    return stack.astype(np.float32), frame


def test_gate_is_measured_on_the_specimen_not_on_the_trench_walls():
    # the walls' rims are long bright lines along the stripe direction: measured on the whole slice they open
    # the gate on a stripe-free face (and the filter then takes structure and noise out of the specimen)
    from volrecon.correct.curtains import estimate_curtains, specimen_block, CurtainSettings

    stack, frame = _walls_and_cap()
    assert estimate_curtains(stack).enabled  # what happened before: the rims alone pass the gate
    gated = estimate_curtains(stack, mask=~frame)
    assert not gated.enabled and gated.significance < 5
    r0, r1, c0, c1 = gated.measured_region
    rows, cols = specimen_block(~frame, CurtainSettings())
    assert (rows.start, rows.stop, cols.start, cols.stop) == (r0, r1, c0, c1)
    assert not frame[r0:r1, c0:c1].any() and c0 >= 10 + 0.02 * r1 + 7 and r0 >= 12 + 16
    # the stage finds the frame itself and measures its gate on the specimen too
    res = correct_volume(stack, voxel_size_nm=(20, 10, 10), steps=("curtains",))
    assert not res.curtains.enabled and res.curtains.measured_region is not None
    # real stripes on the face still open it
    striped = stack.copy()
    striped[:, 60:, 80:82] += 25
    striped[:, 100:, 130:133] -= 20
    assert estimate_curtains(striped, mask=~frame).enabled


def test_specimen_block_is_none_when_the_face_is_too_small():
    from volrecon.correct.curtains import CurtainSettings, specimen_block

    m = np.zeros((50, 200), bool)
    m[10:, 20:180] = True
    assert specimen_block(m, CurtainSettings()) is None  # 40 rows below a cap: 24 once a block is cut beside it
    m = np.ones((200, 200), bool)
    assert specimen_block(m, CurtainSettings()) == (slice(0, 200), slice(0, 200))  # no frame: the whole slice


def test_gate_does_not_depend_on_where_the_block_grid_starts():
    # a stripe-free framed phantom (carbonate, 24 x 192 px): measured on one block grid, a block straddling the
    # rough layer interfaces opened the gate (significance 83 / 59 / 12 for grids started 0 / 16 / 12 rows lower);
    # the smallest over grid offsets keeps it shut
    import dataclasses

    from volrecon.correct.curtains import estimate_curtains

    arte = dataclasses.replace(Artefacts(), curtains=False, drift=False)
    ph = make_phantom("carbonate", slices=8, shape=(192, 192), seed=0, frame=True, artefacts=arte, workers=2)
    img = np.asarray(ph.acquired[:, : ph.labels.shape[1]], np.float32)
    res = correct_volume(img, voxel_size_nm=ph.voxel_size_nm, steps=("curtains",))
    assert not res.curtains.enabled, res.curtains.significance
    r0, r1, c0, c1 = res.curtains.measured_region
    sig = [estimate_curtains(img[:, r0 + d: r1, c0:c1]).significance for d in (0, 4, 8)]
    assert max(sig) < 2 * min(sig) + 5, sig


def test_a_detector_mask_with_drift_still_corrects_and_gates_on_the_found_frame():
    # the user's mask marks raw (detector) pixels; registered slices are shifted and cropped, so only the frame
    # found on them says where the specimen is
    ph = make_phantom("carbonate", slices=8, shape=(128, 128), seed=1, artefacts="all", frame=True, workers=2)
    h = ph.labels.shape[1]
    m = np.ones((h, 128), bool)
    m[-10:] = False
    res = correct_volume(ph.acquired[:, :h], voxel_size_nm=ph.voxel_size_nm, mask=m)
    assert res.drift is not None and res.curtains.measured_region is not None
    r0, r1, c0, c1 = res.curtains.measured_region
    assert 0 < r0 < r1 <= res.image.shape[1] and 0 < c0 < c1 <= res.image.shape[2]


def test_curtain_settings_round_trip_keeps_the_measured_region(tmp_path):
    from volrecon.correct.curtains import CurtainSettings

    for region in (None, [24, 183, 22, 170]):
        s = CurtainSettings(significance=12.5, measured_region=region)
        back = CurtainSettings.load(s.save(tmp_path))
        assert back.measured_region == region and back.significance == 12.5
