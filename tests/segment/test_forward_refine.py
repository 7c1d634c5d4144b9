"""Forward-model refinement of the cathode's boundaries (issue 7), on synthetic images with known
truth and on a phantom."""

from dataclasses import replace

import numpy as np
import pytest
from scipy import ndimage as ndi

from volrecon.phases import PHASES, REGIONS
from volrecon.segment import segment_volume
from volrecon.segment import forward_refine as fr

E, B, A = PHASES["electrolyte"], PHASES["binder"], PHASES["active"]
LEVELS = {E: 0.22, B: 0.36, A: 0.66}
PIXEL = (12.5, 10.0)  # recorded pixel (y, x), nm: y foreshortened
SIGMA_NM = 8.0


def _scene(*, gain: float, noise: float, seed: int = 0, shape: tuple[int, int, int] = (5, 128, 128),
           pixel: tuple[float, float] = PIXEL, sigma_nm: float = SIGMA_NM, noise_blur_px: float = 0.0,
           row_share: float = 0.0):
    """Labels and image of rods (active) wrapped in binder blobs in electrolyte, rendered as the
    phantom does (levels, Sobel rims of ``gain``, Gaussian probe blur in nm) with Gaussian noise
    (white, blurred by ``noise_blur_px`` or with ``row_share`` of its variance in row offsets)."""
    rng = np.random.default_rng(seed)
    nz, ny, nx = shape
    y = np.arange(ny)[:, None] * pixel[0]
    x = np.arange(nx)[None, :] * pixel[1]
    labels = np.full(shape, E, np.uint8)
    field = ndi.gaussian_filter(rng.normal(size=(nz, ny, nx)), (1.0, 6.0, 7.0), mode="wrap")
    field /= field.std()
    for z in range(nz):
        lab = labels[z]
        near = np.zeros((ny, nx), bool)
        for cy, cx, r in ((400, 300, 150), (1100, 900, 180), (500, 1000, 120), (1250, 250, 140)):
            d = np.hypot(y - cy - 10 * z, x - cx)
            lab[d < r] = A
            near |= d < r + 90
        lab[(lab != A) & ((near & (field[z] > -0.3)) | (field[z] > 1.0))] = B
    image = np.empty(shape, np.float32)
    lut = np.zeros(256, np.float32)
    for k, v in LEVELS.items():
        lut[k] = v
    for z in range(nz):
        base = lut[labels[z]]
        base = base + np.float32(gain) * fr.edge_map(base)
        image[z] = ndi.gaussian_filter(base, (sigma_nm / pixel[0], sigma_nm / pixel[1]), mode="nearest", truncate=fr.TRUNCATE)
    white = rng.normal(size=shape)
    if noise_blur_px:  # a denoise's correlated noise: white noise blurred in the plane, same sd
        white = ndi.gaussian_filter(white, (0.0, noise_blur_px, noise_blur_px))
        white /= white.std()
    if row_share:  # scan-line noise: this share of the variance as one offset per row
        white = np.sqrt(1 - row_share) * white + np.sqrt(row_share) * rng.normal(size=(nz, ny, 1))
    image += (noise * white).astype(np.float32)
    return labels, image


def _fit(labels, image, slices=(1, 2, 3), pixel=PIXEL):
    zs = list(slices)
    return fr.fit_image_model(image[zs], labels[zs], np.ones_like(labels[zs], bool), None, pixel_nm=pixel,
                              slice_nm=20.0, values=(E, B, A))


@pytest.mark.parametrize("gain", [0.5, 0.25])
def test_fit_recovers_levels_blur_and_edge_gain(gain):
    labels, image = _scene(gain=gain, noise=0.02)
    m = _fit(labels, image)
    for k, v in LEVELS.items():
        assert m.levels[k] == pytest.approx(v, abs=0.01)
    assert m.psf_sigma_nm == pytest.approx(SIGMA_NM, rel=0.2)
    assert m.edge_gain == pytest.approx(gain, abs=0.06)
    # the noise model finds the added noise (variance 4e-4) at mid grey
    var = m.noise[0] + m.noise[1] * 0.3
    assert np.sqrt(var) == pytest.approx(0.02, rel=0.25)


@pytest.mark.parametrize("sigma_nm", [8.0, 12.0])
def test_fit_recovers_a_blur_under_half_a_pixel(sigma_nm):
    """At 20 nm pixels an 8 nm probe is 0.4 px (0.32 px along y): the fit must reach it
    (the old lower bound, 0.5 px, read 10.6 nm for 8)."""
    pixel = (25.0, 20.0)
    labels, image = _scene(gain=0.5, noise=0.01, pixel=pixel, sigma_nm=sigma_nm, shape=(5, 96, 96))
    m = _fit(labels, image, pixel=pixel)
    assert m.psf_sigma_nm == pytest.approx(sigma_nm, rel=0.12)
    assert m.edge_gain == pytest.approx(0.5, abs=0.06)


@pytest.mark.parametrize("sigma_nm", [4.0, 6.0, 20.0])
def test_front_evidence_is_that_of_the_blur_the_model_applies(sigma_nm):
    """The squared image change of moving a straight front by one pixel, per front pixel and unit
    contrast, is what :func:`front_window` and :func:`potts_weights` assume: the sampled kernel's
    sums (the continuous formula is 14-30 % off below a pixel)."""
    m = fr.ImageModel(levels={E: 0.0, B: 1.0}, psf_sigma_nm=sigma_nm, edge_gain=0.0, noise=(1.0, 0.0),
                      shine_depth_slices=0, shine_sigma_nm=20.0, shine=(0.0, 0.0), pixel_nm=PIXEL)
    per_axis = []
    for axis in (0, 1):
        lab = np.full((64, 64), E, np.uint8)
        moved = lab.copy()
        if axis == 0:  # a front along x: the change is across y
            lab[32:], moved[33:] = B, B
        else:
            lab[:, 32:], moved[:, 33:] = B, B
        diff = fr.predict(lab, None, m, None) - fr.predict(moved, None, m, None)
        per_axis.append(float((diff[8:-8, 8:-8] ** 2).sum()) / 48)
    var = 0.05
    bx = fr.potts_weights(m, 1.0, var, (20.0, *PIXEL))[2]  # x: the axis of the largest voxel face
    assert bx == pytest.approx(0.5 * per_axis[0] * per_axis[1] / (2 * var), rel=0.02)
    assert m.psf_square_sums() == pytest.approx(tuple(per_axis), rel=0.01)
    n_half = fr.front_window(m, 1.0, var, slices=1, z_score=1.0)
    expected_n = 4.0 * var / np.sqrt(per_axis[0] * per_axis[1])
    expected_half = max(1, int(np.ceil((expected_n * np.sqrt(PIXEL[0] * PIXEL[1]) / PIXEL[1] - 1) / 2)))
    assert n_half[2] == min(fr.MAX_HALF_WINDOW_PX, expected_half)


def test_fit_finds_no_edge_gain_where_there_is_none():
    labels, image = _scene(gain=0.0, noise=0.02, seed=1)
    m = _fit(labels, image)
    assert abs(m.edge_gain) < 0.04
    assert m.psf_sigma_nm == pytest.approx(SIGMA_NM, rel=0.2)


def test_fit_finds_the_shine_through():
    """Voids show the blurred, attenuated material a few slices behind: depth, blur, attenuation."""
    V = PHASES["void"]
    rng = np.random.default_rng(4)
    nz, ny, nx = 12, 96, 96
    labels = np.where(ndi.gaussian_filter(rng.normal(size=(nz, ny, nx)), (0.5, 4, 4), mode="wrap") > 0, B, E)
    labels = labels.astype(np.uint8)
    labels[ndi.gaussian_filter(rng.normal(size=(nz, ny, nx)), (0.5, 6, 6), mode="wrap") > 0.05] = A
    labels[:4, 30:70, 30:70] = V  # a void through the first slices: its face shows the material behind
    true = fr.ImageModel(levels=dict(LEVELS), psf_sigma_nm=SIGMA_NM, edge_gain=0.3, noise=(1e-4, 0.0),
                         shine_depth_slices=4, shine_sigma_nm=20.0, shine=(0.55, 0.04), pixel_nm=PIXEL)
    image = np.stack([fr.predict(labels[z], fr.void_face(labels[z + 4], true, V) if z + 4 < nz else None, true, V)
                      for z in range(nz)])
    image += rng.normal(scale=0.01, size=image.shape).astype(np.float32)
    zs = [0, 1, 2, 3]
    deep = np.stack([labels[z + 1:z + 9] for z in zs])
    m = fr.fit_image_model(image[zs], labels[zs], np.ones_like(labels[zs], bool), deep, pixel_nm=PIXEL, slice_nm=20.0,
                           void=V, values=(E, B, A))
    assert m.shine_depth_slices == 4
    assert m.shine_sigma_nm == 20.0
    assert m.shine[0] == pytest.approx(0.55, abs=0.05)


def _eb_errors(pred, truth):
    return int(((pred == E) & (truth == B)).sum() + ((pred == B) & (truth == E)).sum())


def test_refine_beats_thresholding_beside_bright_particles():
    """Noisy, blurred image with edge rims: thresholding the denoised grey halfway between the
    electrolyte and binder levels puts binder on the electrolyte beside each bright particle (its
    blur and rim lift it); the refinement on the fitted model moves those boundaries back."""
    labels, image = _scene(gain=0.5, noise=0.07, seed=2)
    smooth = ndi.gaussian_filter(image, (0.0, 1.0, 1.0))
    first = np.where(smooth > (LEVELS[B] + LEVELS[A]) / 2, A, np.where(smooth > (LEVELS[E] + LEVELS[B]) / 2, B, E))
    first = ndi.median_filter(first.astype(np.uint8), size=(1, 3, 3))
    m = _fit(first, image)
    step = fr.boundary_step(m, E, B)
    window = fr.front_window(m, *step)
    betas = fr.potts_weights(m, *step, (20.0, *PIXEL))
    out = fr.refine_labels(image, first, np.ones(first.shape, bool), m, values=(E, B), betas=betas, window=window)
    before, after = _eb_errors(first, labels), _eb_errors(out, labels)
    assert after < 0.95 * before  # measured: 3847 -> 3541 electrolyte | binder errors
    # only electrolyte and binder move; the particles stay
    assert np.array_equal(out == A, first == A)


def _refined_as_the_segmentation_does(image, first, *, inflation: bool):
    m = _fit(first, image, slices=(1, 3, 5))
    contrast, var = fr.boundary_step(m, E, B)
    kappa = 1.0
    if inflation:
        zs = [1, 3, 5]
        kappa = fr.evidence_inflation(image[zs], first[zs], np.ones(first[zs].shape, bool), None, m,
                                      fr.front_window(m, contrast, var))
    # the data energy and the prior both scale with 1 / var: the inflation only widens the window
    kw = dict(betas=fr.potts_weights(m, contrast, var, (20.0, *PIXEL)), window=fr.front_window(m, contrast, var * kappa))
    return kappa, fr.refine_labels(image, first, np.ones(first.shape, bool), m, values=(E, B), **kw)


def _first_labels(image, truth):
    first = np.where(ndi.gaussian_filter(image, (0.0, 2.0, 2.0)) > (LEVELS[E] + LEVELS[B]) / 2, B, E).astype(np.uint8)
    first = ndi.median_filter(first, size=(1, 3, 3))
    first[truth == A] = A  # the particles as they are: only the electrolyte | binder question
    return first


def test_evidence_inflation_measures_the_noise_correlation():
    """White noise reads 1; scan-line noise (half the variance in row offsets) reads the analytic
    ratio of a front's pooled noise over white noise's: ``(1 - f) + f L`` for a front along the
    rows (``L`` pixels long), ``(1 - f) + f / q`` across them (``q``: the probe's squared sum)."""
    for row_share, seed in ((0.0, 7), (0.5, 8)):
        labels, image = _scene(gain=0.5, noise=0.03, seed=seed, shape=(7, 128, 128), row_share=row_share)
        m = _fit(labels, image, slices=(1, 3, 5))
        window = (1, 3, 3)
        kappa = fr.evidence_inflation(image[[1, 3, 5]], labels[[1, 3, 5]], np.ones((3, 128, 128), bool), None, m, window)
        qy, qx = m.psf_square_sums()
        f = row_share
        expected = 0.5 * ((1 - f) + f * (2 * window[2] + 1) + (1 - f) + f / qx)
        assert kappa == pytest.approx(expected, rel=0.2)


@pytest.mark.parametrize("seed", [5, 6])
def test_window_from_the_inflated_variance_gains_in_correlated_noise(seed):
    """Noise blurred by 1.2 px (a denoise) at a step of about 1.5 noise sd: pooled as if white, the
    fronts move on correlated residuals and barely gain on the first labels (measured -0.5 to
    -3.7 % electrolyte | binder errors over four seeds); the window of the measured inflation (5-6
    here) gains more (-1.7 to -6.2 %).  The segmentation records the inflation but does not apply
    it (on the benchmark phantoms the wider windows cost pore Dice: see :func:`evidence_inflation`)."""
    labels, image = _scene(gain=0.5, noise=0.095, seed=seed, shape=(7, 128, 128), noise_blur_px=1.2)
    first = _first_labels(image, labels)
    _, white = _refined_as_the_segmentation_does(image, first, inflation=False)
    kappa, out = _refined_as_the_segmentation_does(image, first, inflation=True)
    assert kappa > 3.0
    before = _eb_errors(first, labels)
    assert _eb_errors(out, labels) < _eb_errors(white, labels) - 0.01 * before
    assert _eb_errors(out, labels) < 0.97 * before


def test_refine_depends_only_on_its_reach():
    """A block cut from the volume with :func:`refine_reach` of context refines its core exactly as
    the whole volume does (what the chunked segmentation relies on)."""
    labels, image = _scene(gain=0.5, noise=0.07, seed=3, shape=(14, 128, 128))
    first = np.where(ndi.gaussian_filter(image, (0, 1, 1)) > 0.29, B, E).astype(np.uint8)
    first[labels == A] = A
    m = _fit(first, image)
    window = fr.front_window(m, *fr.boundary_step(m, E, B))
    kw = dict(values=(E, B), betas=(1.0, 1.2, 1.4), window=window)
    whole = fr.refine_labels(image, first, np.ones(first.shape, bool), m, **kw)
    rz, ry, rx = fr.refine_reach(m, window)
    core = (slice(6, 8), slice(60, 70), slice(50, 62))
    box = tuple(slice(max(0, c.start - r), c.stop + r) for c, r in zip(core, (rz, ry, rx)))
    part = fr.refine_labels(image[box], first[box], np.ones(first[box].shape, bool), m, **kw)
    inner = tuple(slice(c.start - b.start, c.stop - b.start) for c, b in zip(core, box))
    assert np.array_equal(part[inner], whole[core])
    assert (whole != first).any()


def test_potts_weights_from_the_noise_keep_a_film_the_data_holds():
    """The weights follow ``contrast**2 / var`` and the shared face of each axis' pairs; with them a
    binder film one pixel thick in a noisy image stays, with the twenty times stronger weights of
    the microstructure's own statistics it is erased."""
    m = fr.ImageModel(levels=dict(LEVELS), psf_sigma_nm=SIGMA_NM, edge_gain=0.0, noise=(0.03 ** 2, 0.0),
                      shine_depth_slices=0, shine_sigma_nm=20.0, shine=(0.0, 0.0), pixel_nm=PIXEL)
    vox = (20.0, *PIXEL)
    bz, by, bx = fr.potts_weights(m, 0.14, 0.03 ** 2, vox)
    a = float(np.prod(m.psf_square_sums()))  # the sampled kernel: test_front_evidence_is_that_of_the_blur_the_model_applies
    assert bx == pytest.approx(0.5 * 0.14 ** 2 * a / (2 * 0.03 ** 2))
    assert (by, bz) == pytest.approx((bx * 20 * 10 / (20 * 12.5), bx * 12.5 * 10 / (20 * 12.5)))
    assert fr.potts_weights(m, 0.07, 0.03 ** 2, vox)[2] == pytest.approx(bx / 4)

    rng = np.random.default_rng(6)
    labels = np.full((5, 64, 64), E, np.uint8)
    labels[:, :, 30] = B  # a film one pixel thick, across every slice
    lut = np.zeros(256, np.float32)
    lut[E], lut[B] = LEVELS[E], LEVELS[B]
    image = np.stack([fr.predict(labels[z], None, m, None) for z in range(5)])
    image += rng.normal(scale=0.03, size=image.shape).astype(np.float32)
    window = fr.front_window(m, 0.14, 0.03 ** 2)
    kw = dict(values=(E, B), window=window)
    kept = fr.refine_labels(image, labels, np.ones(labels.shape, bool), m, betas=(bz, by, bx), **kw)
    assert (kept[:, 8:-8, 30] == B).mean() > 0.95
    erased = fr.refine_labels(image, labels, np.ones(labels.shape, bool), m, betas=(20 * bz, 20 * by, 20 * bx), **kw)
    assert (erased[:, 8:-8, 30] == B).mean() < 0.5


@pytest.fixture(scope="module")
def refined(diglyme):
    ph, img = diglyme
    on = segment_volume(img, voxel_size_nm=ph.voxel_size_nm, method="auto", frame="none")
    off = segment_volume(img, voxel_size_nm=ph.voxel_size_nm, method="auto", frame="none", forward_refine=False)
    return ph, img, on, off


def _cathode_dice(ph, res, phases):
    cat = ph.regions == REGIONS["cathode"]
    p = np.asarray(res.phases)
    pred = np.isin(p, [res.phase_names[n] for n in phases]) & cat
    true = np.isin(ph.labels, [PHASES[n] for n in phases]) & cat
    return 2 * (pred & true).sum() / (pred.sum() + true.sum())


def test_phantom_cathode_pore_and_binder(refined):
    """The 16x160 diglyme phantom (oracle-corrected): cathode pore and binder Dice up; the model
    fitted on it finds the phantom's physics.

    Measured: pore 0.9223 -> 0.9261, binder 0.761 -> 0.774.  Before the collector foil's spill was
    undone (``volrecon.segment.foil_spill``) the refinement also took the first two cathode rows
    beside the foil from 1455 to 802 pore errors (pore 0.9143 -> 0.9231, binder 0.744 -> 0.768);
    those rows are now decided on their unmixed grey (428 errors) and left out of the refinement,
    whose gain elsewhere in the cathode is as it was (10733 -> 10186 pore errors, 10751 -> 10204
    before)."""
    ph, _, on, off = refined
    assert _cathode_dice(ph, on, ("void", "electrolyte")) > 0.922
    assert _cathode_dice(ph, on, ("void", "electrolyte")) > _cathode_dice(ph, off, ("void", "electrolyte")) + 0.003
    assert _cathode_dice(ph, on, ("binder",)) > _cathode_dice(ph, off, ("binder",)) + 0.010
    model = on.parameters["forward_refine"]["model"]
    assert model["psf_sigma_nm"] == pytest.approx(8.0, rel=0.25)
    assert model["edge_gain"] == pytest.approx(0.5, abs=0.15)
    assert model["shine_depth_slices"] * ph.voxel_size_nm[0] == pytest.approx(80.0, abs=20.0)


def test_phantom_refinement_does_not_depend_on_chunks(refined):
    ph, img, on, _ = refined
    other = segment_volume(img, voxel_size_nm=ph.voxel_size_nm, method="auto", frame="none", chunks=(8, 64, 96))
    assert np.array_equal(np.asarray(other.phases), np.asarray(on.phases))


def test_noise_is_taken_halfway_between_the_two_levels_and_the_window_is_capped():
    """The step's noise is the variance at the mid grey of electrolyte and binder (not of every
    phase); near the noise the window the evidence asks for is capped, and a flat step gives no
    crash."""
    m = fr.ImageModel(levels=dict(LEVELS), psf_sigma_nm=SIGMA_NM, edge_gain=0.0, noise=(1e-4, 0.01),
                      shine_depth_slices=0, shine_sigma_nm=20.0, shine=(0.0, 0.0), pixel_nm=PIXEL)
    contrast, var = fr.boundary_step(m, E, B)
    assert contrast == pytest.approx(abs(LEVELS[B] - LEVELS[E]))
    assert var == pytest.approx(1e-4 + 0.01 * (LEVELS[E] + LEVELS[B]) / 2)
    assert max(fr.front_window(m, 0.01, var)[1:]) == fr.MAX_HALF_WINDOW_PX
    assert max(fr.front_window(m, 0.0, var)[1:]) == fr.MAX_HALF_WINDOW_PX


def test_min_step_snr_is_where_the_largest_window_reaches_the_evidence():
    """At the gate, :func:`front_window` asks for exactly the largest window; above it, for less."""
    m = fr.ImageModel(levels=dict(LEVELS), psf_sigma_nm=SIGMA_NM, edge_gain=0.0, noise=(1e-4, 0.0),
                      shine_depth_slices=0, shine_sigma_nm=20.0, shine=(0.0, 0.0), pixel_nm=(10.0, 10.0))
    gate = fr.min_step_snr(m)
    assert 0.5 < gate < 1.0
    var = 0.01
    assert fr.front_window(m, 1.001 * gate * np.sqrt(var), var)[1:] == (fr.MAX_HALF_WINDOW_PX,) * 2
    assert max(fr.front_window(m, 1.2 * gate * np.sqrt(var), var)[1:]) < fr.MAX_HALF_WINDOW_PX


def test_refinement_runs_and_gains_at_20_nm_pixels():
    """At 20 nm pixels the phantom's step reads 1.19 noise sd, under the fixed gate of 1.35 that
    skipped the refinement, over :func:`~volrecon.segment.forward_refine.min_step_snr` (0.56: the
    8 nm probe spreads a boundary over fewer of the wider pixels); refined, its cathode pore and binder
    Dice rise (measured, 16x128 oracle-corrected, seed 0: diglyme pore 0.8807 -> 0.8934, binder
    0.570 -> 0.639)."""
    from volrecon.sample import make_phantom
    from volrecon.sample.oracle import oracle_correct

    ph = make_phantom("diglyme", slices=16, shape=(128, 128), seed=0, artefacts="all", voxel_size_nm=(20, 20, 20))
    img = oracle_correct(ph)
    on = segment_volume(img, voxel_size_nm=ph.voxel_size_nm, method="auto")
    off = segment_volume(img, voxel_size_nm=ph.voxel_size_nm, method="auto", forward_refine=False)
    assert "skipped" not in on.parameters["forward_refine"]
    assert _cathode_dice(ph, on, ("void", "electrolyte")) > _cathode_dice(ph, off, ("void", "electrolyte")) + 0.004
    assert _cathode_dice(ph, on, ("binder",)) > _cathode_dice(ph, off, ("binder",)) + 0.02


def test_segmentation_skips_the_refinement_when_the_step_is_under_the_noise():
    """A stack whose electrolyte | binder step is under :func:`~volrecon.segment.forward_refine.min_step_snr`
    (the largest pooling window cannot tell a front move from the noise) is left as the first
    segmentation made it, and says why."""
    import dataclasses

    from volrecon.sample import Artefacts, make_phantom
    from volrecon.segment import segment_volume

    arte = dataclasses.replace(Artefacts.none(), noise=True, noise_photons=4.0)
    ph = make_phantom("diglyme", slices=6, shape=(128, 128), seed=0, artefacts=arte, workers=2)
    img = np.asarray(ph.acquired, np.float32)
    on = segment_volume(img, voxel_size_nm=ph.voxel_size_nm, method="auto", frame="none")
    off = segment_volume(img, voxel_size_nm=ph.voxel_size_nm, method="auto", frame="none", forward_refine=False)
    assert any(w.startswith("forward refinement skipped: the electrolyte | binder step") for w in on.warnings)
    assert on.parameters["forward_refine"]["step_snr"] < on.parameters["forward_refine"]["min_step_snr"]
    assert np.array_equal(np.asarray(on.phases), np.asarray(off.phases))


def test_grey_the_model_does_not_hold_is_not_evidence():
    """A bright foil the model has no level for, its spill lifting the two rows beside it: with the
    foil and those rows as evidence, the fronts beside them move to binder; left out (``observed``),
    fewer electrolyte | binder errors in the next rows (measured on seeds 0-3: 112-271 -> 85-235)."""
    C, F, n = PHASES["collector"], 0.8, 12
    labels, image = _scene(gain=0.5, noise=0.07, seed=2)
    image[:, :n] = F + 0.07 * np.random.default_rng(5).normal(size=image[:, :n].shape)
    for d, w in ((0, 0.6), (1, 0.2)):
        image[:, n + d] += np.float32(w) * (F - image[:, n + d])
    smooth = ndi.gaussian_filter(image, (0.0, 1.0, 1.0))
    first = np.where(smooth > (LEVELS[B] + LEVELS[A]) / 2, A, np.where(smooth > (LEVELS[E] + LEVELS[B]) / 2, B, E))
    first = ndi.median_filter(first.astype(np.uint8), size=(1, 3, 3))
    first[:, :n] = C
    first[:, n:n + 2] = labels[:, n:n + 2]  # the spill rows decided elsewhere, right
    zs = [1, 2, 3]
    m = fr.fit_image_model(image[zs][:, n + 2:], first[zs][:, n + 2:], np.ones_like(first[zs][:, n + 2:], bool), None,
                           pixel_nm=PIXEL, slice_nm=20.0, values=(E, B, A))
    step = fr.boundary_step(m, E, B)
    kw = dict(values=(E, B), betas=fr.potts_weights(m, *step, (20.0, *PIXEL)), window=fr.front_window(m, *step))
    modelled = np.ones(first.shape, bool)
    modelled[:, :n + 2] = False
    rows = slice(n + 2, n + 8)
    every = _eb_errors(fr.refine_labels(image, first, modelled, m, **kw)[:, rows], labels[:, rows])
    left_out = _eb_errors(fr.refine_labels(image, first, modelled, m, observed=modelled, **kw)[:, rows], labels[:, rows])
    assert left_out < 0.9 * every, (left_out, every)


def _rendered_foil(edge_gain: float = 0.5, noise: float = 0.01) -> tuple[np.ndarray, np.ndarray, fr.ImageModel]:
    """A bright foil (0.78) under the pore (0.22), rendered with the probe's blur and an edge rim, with
    noise: the image, the foil's mask and the model."""
    C = PHASES["collector"]
    labels = np.full((3, 40, 48), E, np.uint8)
    labels[:, 28:] = C
    m = fr.ImageModel(levels={E: 0.22, C: 0.78}, psf_sigma_nm=SIGMA_NM, edge_gain=edge_gain, noise=(noise ** 2, 0.0),
                      shine_depth_slices=0, shine_sigma_nm=20.0, shine=(0.0, 0.0), pixel_nm=PIXEL)
    rng = np.random.default_rng(0)
    image = np.stack([fr.predict(lab, None, m, None) for lab in labels]) + rng.normal(0, noise, labels.shape)
    return image, labels == C, m


def test_interior_level_is_read_off_the_blur_and_the_rims():
    """The foil's level is read on its interior, three pixels or more from the boundary (the rim of
    gain 0.5 lifts the foil's first row by half the step, 0.28; the blur spreads it a pixel on), its
    spread is the noise's; a foil with no interior of ``min_voxels`` gives None."""
    image, foil, _ = _rendered_foil()
    level, spread = fr.interior_level(image, foil)
    assert level == pytest.approx(0.78, abs=0.003)
    assert spread == pytest.approx(0.01, rel=0.15)
    assert image[:, 28].mean() > 0.78 + 0.1  # the foil's first row carries the rim
    assert image[foil].mean() > 0.78 + 0.01  # and with it the whole region's mean
    assert fr.interior_level(image, foil, min_voxels=foil.sum()) is None


def test_interior_level_spread_tells_a_mask_over_two_phases():
    """A collector mask grown over the pore's rows (as the layers misplace it on a cropped field) reads
    a spread far past the noise, which :func:`volrecon.segment.api._with_foil_level` rejects
    (:data:`~volrecon.segment.api.FOIL_SPREAD_MAX`); the foil's own interior reads the noise.  A margin of
    0 reads the whole mask (scipy's erosion with ``iterations=0`` would erode it all away)."""
    from volrecon.segment.api import FOIL_SPREAD_MAX

    image, foil, _ = _rendered_foil()
    grown = foil.copy()
    grown[:, 16:] = True  # twelve of the pore's rows taken with the foil's
    assert fr.interior_level(image, foil)[1] < FOIL_SPREAD_MAX * 0.01
    assert fr.interior_level(image, grown)[1] > 3 * FOIL_SPREAD_MAX * 0.01
    whole = fr.interior_level(image, foil, erode_px=0)
    assert whole is not None and whole[0] == pytest.approx(float(np.median(image[foil])))


def test_the_level_fit_blurs_each_indicator_once_per_blur(monkeypatch):
    """The alternated levels | gain fit (`_levels_and_gain`) blurs the label indicators once per blur,
    not again in every pass (only the edge column changes between passes): the same fit, with
    values x slices + passes x slices blurs; its levels are the scene's."""
    labels, image = _scene(gain=0.0, noise=0.0)
    zs = [1, 2]
    masks = [np.ones(labels.shape[1:], bool)] * len(zs)
    calls = []
    own = fr._blur

    def counted(img, sigma_px):
        calls.append(img.shape)
        return own(img, sigma_px)

    monkeypatch.setattr(fr, "_blur", counted)
    sp = (SIGMA_NM / PIXEL[0], SIGMA_NM / PIXEL[1])
    levels, gain, _ = fr._levels_and_gain(list(image[zs]), list(labels[zs]), masks, [E, B, A], sp, iterations=3)
    assert len(calls) == len(zs) * (3 + 3)
    for v, want in LEVELS.items():
        assert levels[v] == pytest.approx(want, abs=2e-3)
    assert abs(gain) < 0.02


def _front_prior_reference(labels, front, c, t, betas):
    """The Potts change of a front by whole-array float32 passes (the formula the kernel follows)."""
    out = np.zeros(labels.shape, np.float32)
    diff = ((labels == c) & ~front).astype(np.float32) - ((labels == t) & ~front)
    for ax in range(3):
        if labels.shape[ax] < 2:
            continue
        lo, hi = [slice(None)] * 3, [slice(None)] * 3
        lo[ax], hi[ax] = slice(None, -1), slice(1, None)
        out[tuple(hi)] += np.float32(betas[ax]) * diff[tuple(lo)]
        out[tuple(lo)] += np.float32(betas[ax]) * diff[tuple(hi)]
    return np.where(front, out, np.float32(0))


@pytest.mark.parametrize("shape", [(1, 1, 1), (1, 7, 5), (4, 1, 6), (6, 23, 19)])
def test_front_prior_is_the_whole_array_formula_bit_for_bit(shape):
    """The compiled Potts change of a front: the same float32 sums, in the same order, as the
    whole-array passes, for fronts of either pair and betas that do not add up exactly."""
    rng = np.random.default_rng(sum(shape))
    labels = rng.choice(np.array([E, B, A], np.uint8), size=shape)
    betas = np.array([0.1, 1.0 / 3.0, 0.7071067811865476])
    for c, t in ((E, B), (B, E)):
        front = np.stack([fr._front(labels[z], c, t, np.ones(shape[1:], bool)) for z in range(shape[0])])
        got = fr._front_prior(labels, front, c, t, betas)
        want = _front_prior_reference(labels, front, c, t, betas)
        assert got.dtype == np.float32 and got.tobytes() == want.tobytes()


def test_foil_level_added_only_where_the_collector_reads_one_phase():
    """:func:`volrecon.segment.api._with_foil_level`: the foil's level joins the model, and the labels
    without a level keep the fitted levels' mean (adding a bright level must not redraw them); over a
    collector region grown into the pore the model comes back unchanged."""
    import dask.array as da

    from volrecon.segment.api import _with_foil_level

    C = PHASES["collector"]
    image, foil, m = _rendered_foil()
    cathode = replace(m, levels={E: 0.22, B: 0.5})  # the cathode's fit: no collector level
    labels = np.where(foil, C, E).astype(np.uint8)
    src, out, zs = da.from_array(image.astype(np.float32)), da.from_array(labels), np.arange(image.shape[0])
    added = _with_foil_level(cathode, src, out, zs, foil, {"collector": C})
    assert added.levels[C] == pytest.approx(0.78, abs=0.003)
    assert added.lut()[0] == pytest.approx(cathode.lut()[0])  # unlabelled: still (0.22 + 0.5) / 2
    grown = foil.copy()
    grown[:, 16:] = True
    out_grown = da.from_array(np.where(grown, C, E).astype(np.uint8))
    assert _with_foil_level(cathode, src, out_grown, zs, grown, {"collector": C}) is cathode
