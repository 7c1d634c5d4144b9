"""Ground truth of the synthetic slice-and-view phantom (issue 4) and its face frame (issue 10)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.registration import phase_cross_correlation

from volrecon.errors import OutputError, ParameterError
from volrecon.io.metadata import read_tiff_metadata
from volrecon.phases import PHASES, REGIONS
from volrecon.sample import Artefacts, generate, load_truth, make_phantom, write_phantom
from volrecon.sample.artefacts import BASE_GAIN, BASE_OFFSET

SMALL = dict(slices=10, shape=(112, 96), seed=3, workers=1)


@pytest.fixture(scope="module")
def diglyme():
    return make_phantom("diglyme", frame=True, artefacts="none", **SMALL)


@pytest.fixture(scope="module")
def carbonate():
    return make_phantom("carbonate", frame=True, artefacts="none", **SMALL)


def _ideal(ph):
    """What the documented detector model gives without artefacts (0-255 float)."""
    return 255.0 * np.clip(BASE_GAIN * ph.clean + BASE_OFFSET, 0, 1)


# ----------------------------------------------------------------------------- truth vs labels
def test_truth_figures_recomputed_from_labels(diglyme):
    ph, t = diglyme, diglyme.truth
    spec = ph.regions != REGIONS["frame"]
    assert np.array_equal(spec, ph.labels != PHASES["frame"])
    assert t["voxels"]["specimen"] == spec.sum()
    for name, v in PHASES.items():
        if name == "frame":
            continue
        assert t["phase_fractions"][name] == pytest.approx((ph.labels[spec] == v).mean(), abs=1e-12)
    cat = ph.regions == REGIONS["cathode"]
    lab = ph.labels[cat]
    void, el = (lab == PHASES["void"]).sum(), (lab == PHASES["electrolyte"]).sum()
    c = t["regions"]["cathode"]
    assert c["porosity"] == pytest.approx((void + el) / cat.sum())
    assert c["void_fraction"] == pytest.approx(void / cat.sum())
    assert c["void_share_of_pore"] == pytest.approx(void / (void + el))
    for rname, rv in REGIONS.items():
        if rname == "frame":
            continue
        m = ph.regions == rv
        for pname, pv in PHASES.items():
            if pname != "frame":
                assert t["regions"][rname]["phase_fractions"][pname] == pytest.approx((ph.labels[m] == pv).mean())
    # clusters: 6-connectivity, recomputed in 3D
    vmask = cat & (ph.labels == PHASES["void"])
    cl, n = ndi.label(vmask, structure=ndi.generate_binary_structure(3, 1))
    sizes = np.bincount(cl.ravel())[1:]
    assert c["void_clusters"]["connectivity"] == 6
    assert c["void_clusters"]["count"] == n
    assert c["void_clusters"]["largest_fraction"] == pytest.approx(sizes.max() / vmask.sum())


def test_layers_in_order_and_regions_consistent(diglyme):
    ph = diglyme
    reg = ph.regions[:, :, ph.labels.shape[2] // 2]  # (z, y) profile down the middle column
    for z in range(reg.shape[0]):
        seq = [r for r in reg[z] if r != REGIONS["frame"]]
        order = [k for i, k in enumerate(seq) if i == 0 or seq[i - 1] != k]
        assert order == [REGIONS[n] for n in ("anode", "separator", "cathode", "collector")]
    in_region = {"sodium": "anode", "sei": "anode", "separator": "separator", "active": "cathode",
                 "binder": "cathode", "void": "cathode", "collector": "collector"}
    for phase, region in in_region.items():
        assert np.all(ph.regions[ph.labels == PHASES[phase]] == REGIONS[region])


def test_sei_labels_match_thickness_definition(carbonate):
    """Column thickness of the SEI labels / vy recovers the normal thickness t (slopes are gentle)."""
    ph = carbonate
    vy = ph.voxel_size_nm[1]
    sei = ph.labels == PHASES["sei"]
    frame_cols = (ph.labels == PHASES["frame"]).sum(axis=1) > ph.labels.shape[1] * 0.5
    col = sei.sum(axis=1)[~frame_cols] * vy
    t = ph.truth["regions"]["anode"]["sei_thickness_nm"]
    assert 150 < t["mean"] < 400
    # vertical thickness = t * sqrt(1+|grad s|^2) >= t; slopes are small so within a few percent
    assert col.mean() == pytest.approx(t["mean"], rel=0.08)
    assert np.median(col) == pytest.approx(t["median"], rel=0.1)


def test_presets_differ_in_the_right_direction(diglyme, carbonate):
    sd, sc = diglyme.truth["regions"]["anode"]["sei_thickness_nm"], carbonate.truth["regions"]["anode"]["sei_thickness_nm"]
    assert sc["mean"] > 4 * sd["mean"]
    assert 10 < sd["mean"] < 80 and 100 < sc["mean"] < 600
    vd, vc = diglyme.truth["regions"]["cathode"], carbonate.truth["regions"]["cathode"]
    assert vd["void_share_of_pore"] > 3 * vc["void_share_of_pore"]
    # diglyme voids denser near the separator: compare the cathode's first and last third (labels)
    ph = make_phantom("diglyme", artefacts="none", slices=6, shape=(160, 96), seed=5, workers=1)
    inter = ph.truth["interfaces_nm"]
    r0 = inter["separator_cathode"]["row_mean"]
    r1 = inter["cathode_collector"]["row_mean"]
    third = (r1 - r0) / 3
    near = ph.labels[:, int(r0 + 4): int(r0 + third)]
    far = ph.labels[:, int(r1 - third): int(r1 - 4)]
    assert (near == PHASES["void"]).mean() > 1.5 * (far == PHASES["void"]).mean()


def test_cycles_scale_degradation():
    few = make_phantom("diglyme", cycles=10, artefacts="none", slices=4, shape=(96, 96), seed=1, workers=1)
    many = make_phantom("diglyme", cycles=200, artefacts="none", slices=4, shape=(96, 96), seed=1, workers=1)
    assert many.truth["regions"]["cathode"]["void_share_of_pore"] > 3 * few.truth["regions"]["cathode"]["void_share_of_pore"]
    assert many.truth["regions"]["anode"]["sei_thickness_nm"]["mean"] > few.truth["regions"]["anode"]["sei_thickness_nm"]["mean"]


def test_a_preset_field_can_be_overridden():
    """A specimen override naming a field the preset sets wins (it raised a duplicate-keyword TypeError)."""
    from volrecon.sample.params import specimen_params

    assert specimen_params("diglyme", sei_mean_nm=120.0).sei_mean_nm == 120.0
    assert specimen_params("diglyme", cycles=10, sei_mean_nm=120.0).sei_mean_nm == 120.0
    assert specimen_params("diglyme").sei_mean_nm != 120.0


# ----------------------------------------------------------------------------- acquisition
def test_no_artefacts_is_the_clean_image_through_the_detector(diglyme):
    assert diglyme.acquired.dtype == np.float32  # quantisation is an artefact too
    assert np.abs(diglyme.acquired - _ideal(diglyme)).max() < 1e-3
    assert np.all(diglyme.drift == 0)


def test_undoing_true_drift_restores_undrifted_stack():
    art = Artefacts.only("drift", drift_jump_prob=0.3)
    ph = make_phantom("diglyme", frame=True, artefacts=art, slices=12, shape=(128, 128), seed=7, workers=1)
    ref = _ideal(ph)
    assert np.abs(np.diff(ph.drift, axis=0)).max() > 2.5  # jumps present
    m = int(np.ceil(np.abs(ph.drift).max())) + 4
    inner = (slice(m, -m), slice(m, -m))
    worst = 0.0
    for k in range(ph.drift.shape[0]):
        back = ndi.shift(ph.acquired[k].astype(np.float64), ph.drift[k], order=3, mode="nearest")
        shift, _, _ = phase_cross_correlation(ref[k][inner], back[inner], upsample_factor=200)
        assert np.hypot(*shift) < 0.05, (k, shift)
        worst = max(worst, float(np.hypot(*shift)))
        # and the drifted image really is displaced by the table (sign convention)
        raw, _, _ = phase_cross_correlation(ref[k][inner], ph.acquired[k][inner].astype(float), upsample_factor=50)
        assert np.allclose(raw, ph.drift[k], atol=0.6), (k, raw, ph.drift[k])


@pytest.mark.parametrize(
    "switch",
    ["shading", "brightness", "curtains", "noise", "quantise", "databar", "shine_through", "edge_brightening", "drift"],
)
def test_each_switch_changes_only_what_it_names(diglyme, switch):
    base = make_phantom("diglyme", frame=True, artefacts=Artefacts.none(), **SMALL)
    ph = make_phantom("diglyme", frame=True, artefacts=Artefacts.only(switch), **SMALL)
    assert np.array_equal(ph.labels, base.labels)
    assert np.array_equal(ph.regions, base.regions)
    if switch not in ("shine_through", "edge_brightening"):
        assert np.array_equal(ph.clean, base.clean)
    else:
        assert not np.array_equal(ph.clean, base.clean)
    assert (np.abs(ph.drift).max() > 0) == (switch == "drift")
    assert (np.ptp(ph.shading) > 0) == (switch == "shading")
    assert (np.ptp(ph.brightness[:, 0]) > 0) == (switch == "brightness")
    assert ph.truth["calibration"]["voxel_size_nm"] == base.truth["calibration"]["voxel_size_nm"]
    h = ph.labels.shape[1]
    acq = ph.acquired[:, :h].astype(np.float64)
    ideal = _ideal(ph)
    if switch == "shading":
        expect = 255 * np.clip(BASE_GAIN * ph.shading * ph.clean + BASE_OFFSET, 0, 1)
        assert np.abs(acq - expect).max() <= 0.5 + 1e-3
    elif switch == "brightness":
        g, o = ph.brightness[:, 0], ph.brightness[:, 1]
        expect = 255 * np.clip(g[:, None, None] * ph.clean + o[:, None, None], 0, 1)
        assert np.abs(acq - expect).max() <= 0.5 + 1e-3
        step = ph.truth["acquisition"]["brightness"]["step_slice"]
        assert np.argmax(np.abs(np.diff(g))) == step - 1  # the sudden step is the largest change
    elif switch == "curtains":
        diff = acq - ideal
        stripes = ph.truth["acquisition"]["curtains"]["stripes"]
        assert stripes and np.abs(diff).max() > 3
        band = np.zeros(ph.labels.shape[1:], bool)
        for s in stripes:
            c0, c1 = int(max(0, s["col"] - 4 * s["width_px"] - 1)), int(max(0, s["col"] + 4 * s["width_px"] + 2))
            band[max(0, int(s["row_start"]) - 2):, c0:c1] = True
        assert np.abs(diff[:, ~band]).max() <= 1.0  # stripes only below their start, in their columns
    elif switch == "noise":
        diff = acq - ideal
        assert abs(diff.mean()) < 0.5 and 3 < diff.std() < 40
    elif switch == "quantise":
        assert base.acquired.dtype == np.float32 and ph.acquired.dtype == np.uint8
    elif switch == "databar":
        assert ph.acquired.shape[1] == h + ph.databar_rows and ph.databar_rows > 0
        assert np.abs(acq - ideal).max() <= 0.5 + 1e-3
    elif switch in ("shine_through", "edge_brightening"):
        assert np.abs(acq - ideal).max() <= 0.5 + 1e-3
        if switch == "shine_through":
            void = ph.labels == PHASES["void"]
            assert ph.clean[void].std() > 2 * base.clean[void].std()  # voids not simply dark
            far = ~ndi.binary_dilation(void, structure=np.ones((1, 3, 3), bool), iterations=3)
            far[:, :3], far[:, -3:], far[:, :, :3], far[:, :, -3:] = False, False, False, False
            assert np.array_equal(ph.clean[far], base.clean[far])


def test_default_artefacts_give_8bit_without_databar():
    ph = make_phantom("diglyme", slices=2, shape=(64, 64), seed=0, workers=1)
    assert ph.acquired.dtype == np.uint8 and ph.acquired.shape == ph.labels.shape
    assert ph.artefacts == Artefacts() and not ph.artefacts.databar


def test_foreshortening_changes_row_spacing_and_flag():
    on = make_phantom("carbonate", artefacts=Artefacts.only("foreshortening"), slices=3, shape=(96, 96), seed=2, workers=1)
    off = make_phantom("carbonate", artefacts="none", slices=3, shape=(96, 96), seed=2, workers=1)
    s = math.sin(math.radians(52))
    assert on.voxel_size_nm[1] == pytest.approx(10 / s) and off.voxel_size_nm[1] == pytest.approx(10)
    assert on.calibration.apply_foreshortening and not off.calibration.apply_foreshortening
    assert on.calibration.voxel_size_nm == pytest.approx(on.voxel_size_nm)
    assert off.calibration.voxel_size_nm == pytest.approx(off.voxel_size_nm)
    # layers are shares of the field of view: same rows, physically taller by 1/sin(tilt)
    a, b = on.truth["interfaces_nm"]["cathode_collector"], off.truth["interfaces_nm"]["cathode_collector"]
    assert a["row_mean"] == pytest.approx(b["row_mean"], rel=0.03)
    assert a["mean"] == pytest.approx(b["mean"] / s, rel=0.03)
    assert on.truth["calibration"]["foreshortened_in_image"] and off.truth["calibration"]["tilt_corrected_by_instrument"]

@pytest.mark.parametrize("pixel_nm", [10.0, 20.0])
def test_probe_and_shine_through_blur_are_lengths_in_nm(pixel_nm):
    """The probe blur (8 nm) and the shine-through blur (20 nm) are physical lengths: rebuilt here
    from the labels with sigma = length / pixel (0.8 and 2 px at 10 nm pixels, 0.4 and 1 px at
    20 nm), the clean image matches to float precision away from the field's edge."""
    from volrecon.sample.render import INTENSITY, PSF_SIGMA_NM

    art = Artefacts.only("shine_through")
    ph = make_phantom("diglyme", artefacts=art, slices=6, shape=(96, 96), seed=4, workers=1,
                      voxel_size_nm=(40.0, pixel_nm, pixel_nm))
    assert ph.truth["acquisition"]["psf_sigma_px"] == pytest.approx([PSF_SIGMA_NM / pixel_nm] * 2)
    lut = np.zeros(16, np.float32)
    for name, value in INTENSITY.items():
        lut[PHASES[name]] = value
    deep_k = ph.truth["acquisition"]["shine_through_slices"]

    def g(img, length_nm):
        return ndi.gaussian_filter(img, length_nm / pixel_nm, mode="nearest", truncate=3.0)

    inner = (slice(8, -8), slice(8, -8))
    checked = 0
    for k in range(ph.labels.shape[0] - deep_k):
        base = lut[ph.labels[k]]
        void = ph.labels[k] == PHASES["void"]
        deep = g(lut[ph.labels[k + deep_k]], art.shine_blur_nm)
        base[void] = np.float32(art.shine_attenuation) * deep[void] + np.float32(INTENSITY["void"])
        expect = g(base, PSF_SIGMA_NM)
        assert np.abs(ph.clean[k][inner] - expect[inner]).max() < 1e-5, k
        checked += void[inner].sum()
    assert checked > 50  # the shine-through was exercised



def test_deterministic_by_seed_and_independent_of_workers():
    kw = dict(slices=13, shape=(80, 80), frame=True, artefacts="all")
    a = make_phantom("diglyme", seed=11, workers=1, **kw)
    b = make_phantom("diglyme", seed=11, workers=2, **kw)
    c = make_phantom("diglyme", seed=12, workers=1, **kw)
    for name in ("labels", "regions", "clean", "acquired", "drift", "shading", "brightness"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert not np.array_equal(a.labels, c.labels)
    assert not np.array_equal(a.drift, c.drift)
    assert a.truth == b.truth


# ----------------------------------------------------------------------------- frame (issue 10)
def test_frame_labelled_and_excluded(diglyme):
    ph, t = diglyme, diglyme.truth
    fl, fr = ph.labels == PHASES["frame"], ph.regions == REGIONS["frame"]
    assert np.array_equal(fl, fr)
    cap_row = t["frame"]["cap_edge_row"]
    assert fl[:, : int(cap_row) - 1].all()  # cap across the top
    assert fl[:, :, 0].all() and fl[:, :, -1].all()  # trench walls on both sides
    assert fl[:, int(cap_row) + 2 :, ph.labels.shape[2] // 2].sum() == 0
    assert sum(t["phase_fractions"].values()) == pytest.approx(1.0)
    assert t["voxels"]["frame"] == fl.sum()
    assert "frame" not in t["phase_fractions"]
    # frame fixed to the specimen: identical in every undrifted slice
    assert (fl == fl[0]).all()


def test_no_frame_means_no_frame_voxels():
    ph = make_phantom("carbonate", artefacts="none", slices=2, shape=(64, 64), seed=0, workers=1)
    assert not (ph.labels == PHASES["frame"]).any()
    assert ph.truth["frame"] == {"present": False}


def test_frame_moves_with_drift():
    art = Artefacts.only("drift", drift_jump_prob=0.5, drift_jump_px=(6.0, 9.0))
    ph = make_phantom("carbonate", frame=True, artefacts=art, slices=8, shape=(128, 128), seed=4, workers=1)
    cap = ph.truth["frame"]["cap_edge_row"]
    for k in range(8):
        prof = ph.acquired[k, :, 40:90].astype(float).mean(axis=1)
        edge = np.argmax(-np.diff(prof[: int(cap + abs(ph.drift[k, 0])) + 8]))  # bright cap -> darker face
        assert abs((edge + 0.5) - (cap - ph.drift[k, 0])) < 1.6


# ----------------------------------------------------------------------------- files
@pytest.mark.parametrize("vendor", ["thermo", "zeiss"])
def test_written_metadata_decodes(tmp_path, vendor):
    import tifffile

    ph = make_phantom("diglyme", frame=True, artefacts="all", slices=3, shape=(64, 80), seed=0, workers=1,
                      voxel_size_nm=(30.0, 12.0, 12.0))
    out = write_phantom(ph, tmp_path / "p", vendor=vendor, name_with_z=True)
    files = sorted(out.glob("slice_*.tif"))
    assert [f.name for f in files][1] == "slice_00001_z=0.0300um.tif"
    with tifffile.TiffFile(files[1]) as tf:
        assert tf.pages[0].shape == (64 + ph.databar_rows, 80)
        if vendor == "thermo":
            md = tf.fei_metadata
            assert md["Scan"]["PixelWidth"] == pytest.approx(12e-9)
            assert md["Scan"]["PixelHeight"] == pytest.approx(12e-9)
            assert md["EBeam"]["TiltCorrectionIsOn"] in ("no", False)
            assert md["Stage"]["StageT"] == pytest.approx(math.radians(52), abs=1e-5)
            assert md["Beam"]["HV"] == 2000
            assert md["Image"]["ResolutionY"] == 64
            assert md["PrivateFei"]["DatabarHeight"] == ph.databar_rows
        else:
            md = tf.sem_metadata
            assert md["ap_image_pixel_size"][1:] == (12, "nm")
            assert md["ap_fib_slice_height"][1:] == (30, "nm")
            assert md["dp_tilt_correction"][1] is False
    # the reader's FIB-SEM angle is the one the phantom's face was foreshortened by (Zeiss wrote 54 for 52)
    assert read_tiff_metadata(files[1]).get("tilt_deg") == pytest.approx(ph.truth["calibration"]["tilt_deg"])
    d = load_truth(out)
    assert np.array_equal(d["labels"], ph.labels) and np.array_equal(d["acquired"], ph.acquired)
    assert np.allclose(d["drift"], ph.drift, atol=1e-6)
    assert np.abs(d["clean"] - ph.clean).max() < 1e-3
    assert d["truth"]["regions"] == ph.truth["regions"]


def test_generate_streams_refuses_and_overwrites(tmp_path):
    out = tmp_path / "g"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    kw = dict(slices=5, shape=(64, 64), seed=2, frame=True, artefacts="all", workers=2)
    with pytest.raises(OutputError):
        generate("carbonate", out, **kw)
    assert (out / "keep.txt").exists()
    ph = generate("carbonate", out, overwrite=True, **kw)
    assert not (out / "keep.txt").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    mem = make_phantom("carbonate", **kw)
    assert np.array_equal(np.asarray(ph.labels), mem.labels)
    assert np.array_equal(np.asarray(ph.acquired), mem.acquired)
    assert ph.truth == mem.truth


def test_bad_parameters_are_user_errors():
    with pytest.raises(ParameterError):
        make_phantom("propylene", slices=2, shape=(64, 64))
    with pytest.raises(ParameterError):
        make_phantom("diglyme", slices=2, shape="64by64")
    with pytest.raises(ParameterError):
        make_phantom("diglyme", slices=2, shape=(64, 64), artefacts="drift,sparkles")


def test_edge_rim_is_a_length_in_nm():
    """With ``edge_rim_nm`` the edge-brightening rim is a physical width: the same specimen imaged at
    10 and 20 nm pixels carries the same rim excess integrated over the face (nm^2 of full-contrast
    rim), where the default one-pixel rim doubles it at 20 nm; at 10 nm pixels a 10 nm rim renders
    exactly like the default."""
    from volrecon.sample.render import EDGE_RIM_NM, edge_field

    excess = {}
    for rim in (None, EDGE_RIM_NM):
        for pixel in (10.0, 20.0):
            n = int(round(1280 / pixel))
            kw = dict(slices=3, shape=(n, n), seed=4, workers=1, voxel_size_nm=(40.0, pixel, pixel))
            on = make_phantom("diglyme", artefacts=Artefacts.only("edge_brightening", edge_rim_nm=rim), **kw)
            off = make_phantom("diglyme", artefacts="none", **kw)
            m = int(round(40 / pixel))
            excess[rim, pixel] = float((on.clean - off.clean)[:, m:-m, m:-m].sum()) * pixel**2
            if pixel == 10.0:
                clean10 = on.clean if rim is None else clean10
                if rim is not None:
                    assert np.array_equal(on.clean, clean10)
    assert excess[EDGE_RIM_NM, 10.0] > 0
    assert excess[EDGE_RIM_NM, 20.0] == pytest.approx(excess[EDGE_RIM_NM, 10.0], rel=0.1)
    assert excess[None, 20.0] == pytest.approx(2 * excess[None, 10.0], rel=0.1)
    # a straight step: full contrast on one pixel each side at the rim's own pixel size, half at twice it
    step = np.zeros((9, 9), np.float32)
    step[:, 5:] = 1.0
    assert edge_field(step, (EDGE_RIM_NM, EDGE_RIM_NM))[4, 3:7].tolist() == [0, 1, 1, 0]
    assert edge_field(step, (2 * EDGE_RIM_NM, 2 * EDGE_RIM_NM))[4, 3:7].tolist() == [0, 0.5, 0.5, 0]
    assert edge_field(step, (EDGE_RIM_NM / 2, EDGE_RIM_NM / 2))[4, 2:8].tolist() == [0, 1, 1, 1, 1, 0]
