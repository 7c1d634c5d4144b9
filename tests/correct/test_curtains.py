"""Curtain removal on synthetic stripes and on the phantom."""

from __future__ import annotations

import json

import numpy as np
import pytest

from volrecon.correct import CurtainSettings, apply_curtains, estimate_curtains
from volrecon.correct._curtains_segments import fit_steps
from volrecon.errors import ParameterError


def striped(orientation="vertical", seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:192, :192]
    base = (np.where((y // 48) % 2 == 0, 80.0, 160.0) + 40.0 * (((x // 24) + (y // 24)) % 2))[None].repeat(4, 0)
    stripes = np.zeros_like(base)
    for col, start in ((30, 0), (100, 90), (150, 40)):  # the second starts below a "feature"
        stripes[:, start:, col - 1 : col + 2] = 25.0
    noisy = base + stripes + rng.normal(0, 4, base.shape)
    if orientation == "horizontal":
        return base.transpose(0, 2, 1), noisy.transpose(0, 2, 1)
    return base, noisy


@pytest.mark.parametrize("orientation", ["vertical", "horizontal"])
def test_stripes_removed(orientation):
    clean, noisy = striped(orientation)
    settings = estimate_curtains(noisy, orientation=orientation)
    out = apply_curtains(noisy, settings)
    rmse = lambda a: float(np.sqrt(np.mean((a - clean) ** 2)))
    assert rmse(out) < 0.9 * rmse(noisy)
    assert settings.stripe_index_after < settings.stripe_index_before


def test_settings_roundtrip_and_bad(tmp_path):
    s = CurtainSettings(width_px=3.0)
    s.save(tmp_path)
    assert CurtainSettings.load(tmp_path).to_dict() == s.to_dict()
    # settings saved before z pooling existed are re-applied as they ran: slice by slice
    old = {k: v for k, v in s.to_dict().items() if k not in ("z_reach", "along")}
    (tmp_path / "curtains.json").write_text(json.dumps(old))
    assert CurtainSettings.load(tmp_path).z_reach == 0
    assert CurtainSettings.load(tmp_path).along == "window"  # and with the smoother they ran with
    assert CurtainSettings.load(tmp_path).threshold == s.threshold == 1.5  # at the threshold they saved
    # unset, the threshold follows the smoother (each tuned on its own noise scale)
    assert CurtainSettings(along="window").threshold == 3.0 and CurtainSettings().threshold == 1.5
    assert CurtainSettings(along="window", threshold=2.0).threshold == 2.0
    with pytest.raises(ParameterError):
        CurtainSettings(orientation="diagonal")
    with pytest.raises(ParameterError):
        CurtainSettings(along="sideways")
    with pytest.raises(ParameterError):
        CurtainSettings(threshold=-1.0)


def test_zeiss_slices_if_present():
    from tests.conftest import shared_file
    import tifffile

    path = shared_file("zeiss_auriga_fibsem_2slices", "ZEISS_SEM_multipage.tif")
    stack = tifffile.imread(path)
    stack = stack.reshape((-1,) + stack.shape[-2:])[:, :512, :512]
    out = apply_curtains(stack, estimate_curtains(stack))
    assert out.dtype == stack.dtype and out.shape == stack.shape


def test_stripe_free_noise_is_left_alone():
    rng = np.random.default_rng(3)
    y = np.arange(192)[:, None]
    clean = np.where((y // 48) % 2 == 0, 80.0, 160.0) * np.ones((4, 192, 192))  # layers, no stripes
    noisy = clean + rng.normal(0, 6, clean.shape)
    settings = estimate_curtains(noisy)
    out = apply_curtains(noisy, settings)
    rmse = lambda a: float(np.sqrt(np.mean((a - clean) ** 2)))
    assert rmse(out) <= 1.01 * rmse(noisy)
    assert not settings.enabled and settings.significance < 3.0
    np.testing.assert_allclose(out, noisy, rtol=1e-6)  # disabled: only the float32 round trip


def edge_contrast(img, labels, ref):
    """Mean step across phase boundaries along x, signed by the true contrast (noise averages out)."""
    d_ref = np.diff(ref.astype(float), axis=2)
    sel = (np.diff(labels.astype(int), axis=2) != 0) & (np.abs(d_ref) > 10)
    return float(np.mean(np.sign(d_ref[sel]) * np.diff(img.astype(float), axis=2)[sel]))


@pytest.fixture(scope="module")
def curtain_phantoms():
    from volrecon.sample import Artefacts, make_phantom

    strong = dict(curtain_amplitude=0.3, curtain_density=8.0)
    kw = dict(slices=8, shape=(192, 192), seed=0, workers=2)
    noisy = make_phantom("diglyme", artefacts=Artefacts.only("curtains", "noise", "quantise", **strong), **kw)
    nf = make_phantom("diglyme", artefacts=Artefacts.only("curtains", **strong), **kw)
    free = make_phantom("diglyme", artefacts=Artefacts.none(), **kw)
    return noisy, nf, free


def test_phantom_gain_near_oracle_and_edges_kept(curtain_phantoms):
    noisy, nf, free = curtain_phantoms
    clean = free.acquired.astype(np.float64)
    truth = nf.acquired.astype(np.float64) - clean  # the true stripe image
    acq = noisy.acquired.astype(np.float64)
    out = apply_curtains(acq, estimate_curtains(noisy.acquired))
    mse = lambda a: float(np.mean((a - clean) ** 2))
    gain, oracle = 10 * np.log10(mse(acq) / mse(out)), 10 * np.log10(mse(acq) / mse(acq - truth))
    assert oracle > 0.3  # the stripes carry enough energy next to the noise to be worth removing
    assert gain >= 0.4 * oracle
    assert edge_contrast(out, noisy.labels, clean) >= 0.95 * edge_contrast(acq, noisy.labels, clean)


def test_phantom_stripe_free_left_alone(curtain_phantoms):
    _, _, free = curtain_phantoms
    img = free.acquired.astype(np.float64)
    out = apply_curtains(img, estimate_curtains(img))
    assert float(np.sqrt(np.mean((out - img) ** 2))) < 0.5  # grey levels, 8-bit scale


def test_noise_free_phantom_gains_and_structure_kept():
    """Weak curtains on a noise-free phantom: removing them must gain, not erase rods and pore channels."""
    from volrecon.sample import Artefacts, make_phantom

    kw = dict(slices=8, shape=(256, 256), seed=0, workers=2)
    striped = make_phantom("diglyme", artefacts=Artefacts.only("curtains", "quantise"), **kw).acquired.astype(np.float64)
    free = make_phantom("diglyme", artefacts=Artefacts.only("quantise"), **kw).acquired.astype(np.float64)
    clean = make_phantom("diglyme", artefacts=Artefacts.none(), **kw).clean.astype(np.float64)
    ref = clean * 255 * 0.8 + 0.08 * 255  # the phantom's base detector gain and offset
    mse = lambda a: float(np.mean((a - ref) ** 2))
    out = apply_curtains(striped, estimate_curtains(striped))
    assert mse(out) < mse(striped)  # a gain, however small the stripes
    untouched = apply_curtains(free, estimate_curtains(free, min_significance=0))
    assert float(np.sqrt(np.mean((untouched - free) ** 2))) < 0.15  # grey levels: structure is not taken for stripes


@pytest.mark.parametrize("preset", ["diglyme", "carbonate"])
def test_gate_separates_structure_from_stripes(preset):
    """Noisy stripe-free 384^2 slices stay off, strong curtains on 192^2 slices switch the filter on."""
    from volrecon.sample import Artefacts, make_phantom

    kw = dict(slices=6, seed=0, workers=2)
    on = ("noise", "quantise", "shading", "brightness")
    free = make_phantom(preset, shape=(384, 384), artefacts=Artefacts.only(*on), **kw).acquired
    striped = make_phantom(preset, shape=(192, 192), artefacts=Artefacts.only("curtains", *on, curtain_amplitude=0.3, curtain_density=8.0), **kw).acquired
    assert not estimate_curtains(free).enabled
    assert estimate_curtains(striped).enabled


def layered_with_stripes(seed=0, nz=4, noise=3.0):
    """Layers and a bright particle; stripes below the particle's lower edge and at both borders."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:256, :192]
    base = np.where(y < 128, 90.0, 150.0) + np.where((np.abs(y - 60) < 20) & (np.abs(x - 96) < 30), 70.0, 0.0)
    stripes = np.zeros((nz, 256, 192))
    amp = 1 + 0.3 * np.sin(np.arange(nz))[:, None, None]  # the strength changes from slice to slice
    stripes[:, 80:, 94:97] += 30.0  # starts at the particle's lower edge (row 80), not at a block boundary
    stripes[:, 40:, 0:3] -= 25.0  # at the left border
    stripes[:, 100:, 189:192] += 25.0  # at the right border
    stripes *= amp
    return base, stripes, base[None] + stripes + rng.normal(0, noise, stripes.shape)


def test_stripe_below_feature_and_at_borders_recovered():
    base, stripes, img = layered_with_stripes()
    settings = estimate_curtains(img)
    assert settings.enabled
    found = img - apply_curtains(img, settings)
    err = found - stripes
    # the stripe below the particle: captured from its start, nothing above it
    below = (slice(None), slice(96, 256), slice(94, 97))
    assert np.sqrt(np.mean(err[below] ** 2)) < 0.2 * np.sqrt(np.mean(stripes[below] ** 2))
    assert np.abs(found[:, :60, 90:100]).max() < 3.0
    # the border stripes (the old filter left a border band of +-3 widths untouched)
    for cols, start in ((slice(0, 3), 56), (slice(189, 192), 116)):
        sel = (slice(None), slice(start, 256), cols)
        assert np.sqrt(np.mean(err[sel] ** 2)) < 0.3 * np.sqrt(np.mean(stripes[sel] ** 2))
    # the particle's and the layers' edges are not taken for stripes
    assert np.abs(found[:, 30:90, 60:90]).max() < 3.0


def test_z_pooling_chunked_equals_whole_and_no_worse_on_noise():
    import dask.array as da

    base, stripes, img = layered_with_stripes(seed=1, nz=12, noise=12.0)
    pooled = estimate_curtains(img, z_reach=2)
    whole = apply_curtains(img, pooled)
    lazy = apply_curtains(da.from_array(img, chunks=(1, 256, 192)), pooled)
    np.testing.assert_allclose(lazy.compute(), whole, rtol=0, atol=1e-4)
    alone = apply_curtains(img, estimate_curtains(img, z_reach=0))
    # the stripes found vs the true ones (against the clean image, a filter that follows the
    # noise of the column means would also score by removing some of that noise)
    miss = lambda out: float(np.sqrt(np.mean((img - out - stripes) ** 2)))
    # the change-point fit along the stripe already averages each run on its own slice (miss
    # 0.71 grey levels slice by slice, against 0.88 with the fixed window), so pooling adds
    # little: this shows it does not hurt (and both find the stripes), not that it gains much
    assert miss(whole) < 0.97 * miss(alone) < 0.97 * 0.2 * float(np.sqrt(np.mean(stripes**2)))


def test_fit_steps_finds_the_runs_of_a_stripe():
    """Columns that start, change and stay: the fit puts the change points there and averages each whole run."""
    rng = np.random.default_rng(5)
    n = 96
    truth = np.zeros((n, 300), np.float32)
    truth[40:, :100] = 6.0  # a curtain starting at block 40
    truth[25:, 100:200] = -5.0  # one starting at block 25 ...
    truth[70:, 100:200] += 9.0  # ... and a second one adding to it at block 70
    noisy = truth + rng.normal(0, 2.0, truth.shape).astype(np.float32)
    fit, runs = fit_steps(noisy, 4.0 * 4.0 * np.log(n))  # 4 log(n) noise variances per change point
    flat = fit[:, 200:]
    assert np.all(runs[:, 200:] == n) and np.abs(flat).max() < 4 * 2.0 / np.sqrt(n)  # no change point in noise: the column mean
    steps = np.abs(np.diff(fit, axis=0)) > 0
    # a change point within one block of each true start, in (nearly) every column
    assert steps[38:41, :100].any(axis=0).mean() > 0.85 and steps[23:26, 100:200].any(axis=0).mean() > 0.85
    assert steps[68:71, 100:200].any(axis=0).mean() > 0.85
    # each value is the mean of its whole run: half the error of a 15-block running median
    from scipy import ndimage as ndi

    rmse = lambda est: float(np.sqrt(np.mean((est - truth)[:, :200] ** 2)))
    assert rmse(fit) < 0.5 * rmse(ndi.median_filter(noisy, size=(15, 1), mode="nearest"))


def test_noisy_phantom_gain_from_runs_and_edges_kept():
    """Strong curtains under noise (256^2): at least 60 % of the oracle's dB gain (the fixed window: 50 %)."""
    from volrecon.sample import Artefacts, make_phantom

    strong = dict(curtain_amplitude=0.3, curtain_density=8.0)
    kw = dict(slices=8, shape=(256, 256), seed=0, workers=2)
    noisy = make_phantom("diglyme", artefacts=Artefacts.only("curtains", "noise", "quantise", **strong), **kw)
    clean = make_phantom("diglyme", artefacts=Artefacts.none(), **kw).acquired.astype(np.float64)
    truth = make_phantom("diglyme", artefacts=Artefacts.only("curtains", **strong), **kw).acquired - clean
    acq = noisy.acquired.astype(np.float64)
    settings = estimate_curtains(noisy.acquired)
    assert settings.enabled and settings.along == "steps"
    out = apply_curtains(acq, settings)
    mse = lambda a: float(np.mean((a - clean) ** 2))
    gain, oracle = 10 * np.log10(mse(acq) / mse(out)), 10 * np.log10(mse(acq) / mse(acq - truth))
    assert gain >= 0.6 * oracle
    assert edge_contrast(out, noisy.labels, clean) >= 0.95 * edge_contrast(acq, noisy.labels, clean)
    # stripe-free, the same specimen and noise: the gate leaves it as it is
    free = make_phantom("diglyme", artefacts=Artefacts.only("noise", "quantise"), **kw).acquired
    gate = estimate_curtains(free)
    assert not gate.enabled
    np.testing.assert_array_equal(apply_curtains(free, gate), free)


def test_window_smoother_defaults_gate_on_strong_curtains_only():
    """``along="window"`` with its own defaults (threshold 3, gate 10): on for strong noisy curtains, off stripe-free."""
    from volrecon.sample import Artefacts, make_phantom

    kw = dict(slices=8, shape=(256, 256), seed=0, workers=2)
    strong = make_phantom("diglyme", artefacts=Artefacts.only("curtains", "noise", "quantise", curtain_amplitude=0.3, curtain_density=8.0), **kw)
    clean = make_phantom("diglyme", artefacts=Artefacts.none(), **kw).acquired.astype(np.float64)
    settings = estimate_curtains(strong.acquired, along="window")
    assert settings.enabled and settings.threshold == 3.0
    acq = strong.acquired.astype(np.float64)
    mse = lambda a: float(np.mean((a - clean) ** 2))
    assert mse(apply_curtains(acq, settings)) < mse(acq)
    free = make_phantom("diglyme", artefacts=Artefacts.only("noise", "quantise"), **kw).acquired
    assert not estimate_curtains(free, along="window").enabled


def test_fit_steps_labels_mark_each_segment():
    """The segment labels change exactly at the fit's change points and are unique per segment;
    runs by label stay apart even where two neighbouring runs share a fitted value."""
    from volrecon.correct._curtains_segments import run_means

    rng = np.random.default_rng(3)
    col = np.repeat(np.float32([6, 0, -4, 3]), [10, 14, 9, 15])[:, None] + rng.normal(0, 1, (48, 40)).astype(np.float32)
    fit, runs, starts = fit_steps(col, 4.0 * np.log(48), starts=True)
    rows = np.arange(48)[:, None]
    assert np.all(starts <= rows) and np.all(rows - starts < runs)
    assert np.array_equal(np.diff(starts, axis=0) != 0, np.diff(fit, axis=0) != 0)
    assert np.array_equal(run_means(starts, col), fit)
    # two labelled runs with equal fitted values (0 and 0) keep their own means
    labels = np.repeat([0, 4, 8], 4)[:, None]
    values = np.repeat(np.float32([5, 1, 3]), 4)[:, None]
    assert run_means(labels, values)[:, 0].tolist() == values[:, 0].tolist()


def test_fill_hidden_carries_no_stripe_and_the_face_noise():
    """Hidden pixels continue the face along each row (no step across the stripes) with its noise."""
    from volrecon.correct.curtains import fill_hidden

    rng = np.random.default_rng(3)
    y, x = np.mgrid[:128, :160]
    plane = 50.0 + 0.5 * y + 0.2 * x + rng.normal(0, 3, (128, 160))
    hidden = (y < 20) | (x < 16) | (x >= 144)
    hidden[20:30, 60:70] = True  # a dip of the cap's edge into the face: a gap inside rows
    plane[hidden] = 240.0  # the bright frame
    out = fill_hidden(plane, hidden, seed=0)
    assert np.array_equal(out[~hidden], plane[~hidden].astype(np.float32))
    # beyond the walls: the row's nearest face values (~ 50 + 0.5 y + 0.2 * 16 or 143), noise 3
    left = out[40:, :16] - (50 + 0.5 * y[40:, :16] + 0.2 * 16)
    assert abs(float(left.mean())) < 1.5 and 2.0 < float(left.std()) < 4.5
    # rows of cap only: one level per row (no variation across the columns but the noise)
    assert float(out[:20].std(axis=1).max()) < 4.5 and float(np.abs(out[:20] - 240).min()) > 100
    same = fill_hidden(plane, hidden, seed=0)
    assert np.array_equal(out, same)  # the same slice is filled the same way in every chunk


@pytest.mark.parametrize("preset", ["diglyme", "carbonate"])
def test_frame_hidden_from_the_stripe_filter(preset):
    """Curtains estimated with the frame filled (apply_curtains(hidden=...)) leave less of them on the face.

    Framed phantom with curtains of amplitude 0.15, oracle-corrected, against the same phantom drawn
    without curtains. Measured (12 x 192, seed 0): curtains left after the filter without ``hidden``
    0.880 / 0.881 of those there (diglyme / carbonate; the cap's rough edge and the walls' rims were
    taken for stripes and spread into the face below), with it 0.707 / 0.743."""
    import dataclasses

    from volrecon.phases import PHASES
    from volrecon.sample import make_phantom
    from volrecon.sample.artefacts import resolve_artefacts
    from volrecon.sample.oracle import oracle_correct
    from volrecon.segment.frame import find_frame

    art = resolve_artefacts("all")
    draw = dict(slices=12, shape=(192, 192), seed=0, frame=True)
    ph = make_phantom(preset, artefacts=dataclasses.replace(art, curtain_amplitude=0.15, curtain_density=8), **draw)
    ref = make_phantom(preset, artefacts=dataclasses.replace(art, curtains=False), **draw)
    base, clean = oracle_correct(ph).astype(np.float32), oracle_correct(ref).astype(np.float32)
    frame = find_frame(base)
    hidden = frame.mask | frame.shell
    settings = estimate_curtains(base, mask=~hidden)
    assert settings.enabled
    face = ph.labels != PHASES["frame"]
    left = lambda a: float(np.sqrt(np.mean((np.asarray(a, np.float32) - clean)[face] ** 2)))  # noqa: E731
    there, plain, masked = left(base), left(apply_curtains(base, settings)), left(apply_curtains(base, settings, hidden=hidden))
    assert masked < 0.8 * there and masked < 0.92 * plain, (there, plain, masked)


def test_gate_on_a_face_too_narrow_for_a_block_fills_the_frame():
    """Where the face between the walls is too small for a block of whole columns, the gate reads the
    slices with the walls filled from the face: the walls' rims no longer count as stripes.

    Measured: 65 with the mask (the face alone reads 101: its blobs on three blocks of rows), 3.5e6 on the
    slices as they are (what the old fallback to the whole slice measured)."""
    from scipy import ndimage as ndi

    from volrecon.correct.curtains import CurtainSettings, specimen_block

    rng = np.random.default_rng(0)
    y, x = np.mgrid[:56, :160]
    face = 100 + 25 * (ndi.gaussian_filter(rng.normal(0, 1, (56, 160)), 4) > 0.05) + rng.normal(0, 4, (4, 56, 160))
    walls = (x < 50) | (x >= 110)
    rims = ((x >= 46) & (x < 50)) | ((x >= 110) & (x < 114))
    img = (np.where(walls, 150.0, face) + np.where(rims, 80.0, 0.0)).astype(np.float32)
    assert specimen_block(~walls, CurtainSettings()) is None
    alone = estimate_curtains(face.astype(np.float32)).significance
    masked = estimate_curtains(img, mask=~walls)
    assert masked.measured_region is None and masked.significance < 1.5 * alone
    assert estimate_curtains(img).significance > 1000 * alone


def test_hidden_of_the_stack_or_a_slice_and_a_wrong_shape():
    """``apply_curtains(hidden=)`` takes a slice's or the stack's mask (3D: hidden in any slice) and
    names the parameter when the shape fits neither."""
    from volrecon.errors import ParameterError

    clean, noisy = striped()
    settings = estimate_curtains(noisy)
    hidden = np.zeros(noisy.shape[1:], bool)
    hidden[:, :12] = True
    flat = apply_curtains(noisy, settings, hidden=hidden)
    stack = np.zeros(noisy.shape, bool)
    stack[1, :, :12] = True
    assert np.array_equal(apply_curtains(noisy, settings, hidden=stack), flat)
    with pytest.raises(ParameterError, match="hidden has shape"):
        apply_curtains(noisy, settings, hidden=np.zeros((5, 5), bool))


def test_gate_reads_the_same_curtains_the_same_on_a_larger_field():
    """The same curtains (+4 grey on 2-column stripes, noise 6) read the same significance at 512 and
    2048 px, and a stripe-free face no more at 2048 than at 512. Measured: curtains 40.5 / 39.3,
    stripe-free 8.3 / 2.2; against each field's own noise null (the old statistic) 40.5 / 225.0 and
    8.3 / 12.3: the gate read field size."""
    from scipy import ndimage as ndi

    def field(n: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(0)
        face = (100 + 12 * (ndi.gaussian_filter(rng.normal(0, 1, (n, n)), 3) > 0.02))[None] + rng.normal(0, 6, (4, n, n))
        curtained = face.copy()
        for c in np.random.default_rng(1).choice(n, n // 64, replace=False):
            curtained[:, n // 8:, c:c + 2] += 4.0
        return face.astype(np.float32), curtained.astype(np.float32)

    (free_s, curt_s), (free_l, curt_l) = field(512), field(2048)
    small, large = estimate_curtains(curt_s).significance, estimate_curtains(curt_l).significance
    assert estimate_curtains(curt_l).enabled and abs(large / small - 1) < 0.25, (small, large)
    assert estimate_curtains(free_l).significance <= estimate_curtains(free_s).significance
