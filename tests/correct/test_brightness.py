"""Brightness/contrast drift against the phantom's per-phase grey levels."""

from __future__ import annotations

import numpy as np
import pytest

from volrecon.correct import BrightnessTable, apply_brightness, estimate_brightness
from volrecon.errors import InputError
from volrecon.sample import Artefacts, make_phantom


@pytest.fixture(scope="module")
def ph():
    return make_phantom("diglyme", slices=16, shape=(256, 256), seed=0, artefacts=Artefacts.only("brightness", "quantise"), workers=2)


def phase_deviation(img, labels, phase):
    m = np.array([img[z][labels[z] == phase].mean() for z in range(img.shape[0])])
    return float(np.abs(m / np.median(m) - 1).max())


def test_phase_means_constant_and_trend_kept(ph, tmp_path):
    table = estimate_brightness(ph.acquired)
    out = apply_brightness(ph.acquired, table)
    step = ph.truth["acquisition"]["brightness"]["step_slice"]
    assert step in table.steps
    for phase in (3, 5, 8):  # active, separator, collector
        assert phase_deviation(out.astype(float), ph.labels, phase) < 0.01
        assert phase_deviation(ph.acquired.astype(float), ph.labels, phase) > 0.05
    cathode = lambda img: np.array([img[z][ph.regions[z] == 3].mean() for z in range(img.shape[0])])
    assert np.corrcoef(cathode(ph.clean), cathode(out.astype(float)))[0, 1] > 0.9
    table.save(tmp_path)
    again = BrightnessTable.load(tmp_path)
    np.testing.assert_allclose(again.gain, table.gain, atol=1e-5)
    assert table.plot(tmp_path / "b.png", truth=ph.brightness).is_file()


def test_constant_and_saturated_slices_flagged(ph):
    stack = ph.acquired.copy()
    stack[3] = 17
    stack[5] = 255
    table = estimate_brightness(stack)
    assert {3, 5} <= set(table.flagged)
    assert np.isfinite(table.gain).all()
    out = apply_brightness(stack, table)
    assert out.dtype == np.uint8


def test_needs_two_usable_slices():
    with pytest.raises(InputError):
        estimate_brightness(np.full((3, 64, 64), 5, np.uint8))


def test_noisy_without_labels_beats_raw_and_finds_step():
    """Label-free on a noisy phantom: every stable phase within 1.5 % (oracle floor ~0.4-1.2 %)."""
    from volrecon.phases import PHASES

    noisy = make_phantom("diglyme", slices=16, shape=(192, 192), seed=2, artefacts=Artefacts.only("brightness", "noise", "quantise"), workers=2)
    table = estimate_brightness(noisy.acquired)
    out = apply_brightness(noisy.acquired.astype(np.float32), table)
    assert table.steps == (noisy.truth["acquisition"]["brightness"]["step_slice"],)
    assert table.classes >= 3 and not table.warnings
    for name in ("active", "separator", "collector", "sodium"):
        phase = PHASES[name]
        after = phase_deviation(out, noisy.labels, phase)
        assert after < phase_deviation(noisy.acquired.astype(float), noisy.labels, phase) / 5
        assert after < 0.015, name


def test_guard_falls_back_to_identity_without_drift():
    rng = np.random.default_rng(1)
    base = rng.choice([40.0, 120.0, 200.0], size=(1, 16, 16)).repeat(8, 1).repeat(8, 2)
    stack = base.repeat(6, 0) + rng.normal(0, 4, (6, 128, 128))
    table = estimate_brightness(stack)
    assert table.steps == ()
    if any("identity" in w for w in table.warnings):
        np.testing.assert_array_equal(table.gain, 1.0)
    else:  # a kept correction must be tiny on a stack without drift
        assert np.abs(table.gain - 1).max() < 0.01


def test_noisy_correction_error_within_one_percent_of_oracle():
    """The 1 % goal measured where it is reachable: per-slice phase means against the oracle's.

    A slice's phase mean moves by itself (noise, shape and neighbours through blur: the oracle,
    with the true gain/offset, is off by up to 2.5 % for thin phases), so the correction error
    is the ratio of the corrected to the oracle's phase means, on the same pixels.
    """
    from volrecon.phases import PHASES

    ph = make_phantom("diglyme", slices=16, shape=(192, 192), seed=2, artefacts=Artefacts.only("brightness", "noise", "quantise"), workers=2)
    acq = ph.acquired.astype(np.float64)
    out = apply_brightness(ph.acquired.astype(np.float32), estimate_brightness(ph.acquired))
    g, o = ph.brightness[:, 0, None, None], ph.brightness[:, 1, None, None]
    oracle = ((acq / 255.0 - o) / g * np.median(g) + np.median(o)) * 255
    for name in ("active", "binder", "separator", "sodium", "sei", "collector"):
        phase = PHASES[name]
        means = lambda img: np.array([img[z][ph.labels[z] == phase].mean() for z in range(img.shape[0])])
        ratio = means(out) / means(oracle)
        assert np.abs(ratio / np.median(ratio) - 1).max() < 0.01, name
        raw = means(acq) / means(oracle)
        assert np.abs(raw / np.median(raw) - 1).max() > 0.05  # the drift was there to correct


def test_all_artefacts_step_kept_where_it_is():
    """Diglyme with every artefact: no false step where only two modes show or a dark mode's phase mix changes.

    Slices each locked onto the stack's modes on their own could land one mode off (two peaks
    fit any two modes exactly) or flip to a new dark sub-mode (electrolyte and voids replacing
    sodium): a false 10-25 % step.  Measured like the stage does it (shading, then brightness)
    against the oracle (true gain/offset/shading/drift) on eroded stable-phase masks.
    """
    from scipy import ndimage as ndi

    from volrecon.correct import correct_volume
    from volrecon.phases import PHASES
    from volrecon.sample.oracle import oracle_correct

    ph = make_phantom("diglyme", slices=16, shape=(128, 128), seed=0, frame=True, artefacts="all", workers=2)
    h = ph.labels.shape[1]
    res = correct_volume(ph.acquired[:, :h], voxel_size_nm=ph.voxel_size_nm, steps=("shading", "brightness"))
    assert res.brightness.steps == (ph.truth["acquisition"]["brightness"]["step_slice"],)
    out = np.asarray(res.image, dtype=np.float32)
    aligned = np.stack([ndi.shift(out[z], ph.drift[z], order=1, mode="nearest") for z in range(out.shape[0])])
    oracle = oracle_correct(ph)
    for name in ("active", "separator", "collector"):
        masks = [ndi.binary_erosion(s == PHASES[name], iterations=2) for s in ph.labels]
        ratio = np.array([aligned[z][m].mean() / oracle[z][m].mean() for z, m in enumerate(masks)])
        # 3 %: noise, curtains and drift interpolation leave ~1-3 % per slice; a false step is >10 %
        assert np.abs(ratio / np.median(ratio) - 1).max() < 0.03, name


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_all_artefacts_every_slice_on_one_grey_scale(seed):
    """After shading (estimated), no slice's phases off the stack's grey scale: the first slices included.

    The composition of the true detector response ``255 * (G_k * J + O_k)`` with the estimated
    correction ``(I - o_k) / g_k`` must be the same straight line in ``J`` for every slice.  On
    24x192 diglyme the electrolyte | binder level is split in two sub-modes by the residual
    shading; a slice whose tracked mode climbed onto the other half (slice 0 of seed 0, slices 0-5
    of seed 1) sat 6-13 grey off while the others agree within ~1 grey.  The re-lock mends seed 0;
    seed 1 needed the modes' reliability judged on the line the other modes agree on (its two
    weighted modes, one of them climbing, certified each other); seed 2 guards the tracking's
    wide first kernel (started narrow, its slices sat 14 grey off).
    """
    from volrecon.correct import correct_volume

    ph = make_phantom("diglyme", slices=24, shape=(192, 192), seed=seed, frame=True, artefacts="all", workers=2)
    h = ph.labels.shape[1]
    table = correct_volume(ph.acquired[:, :h], voxel_size_nm=ph.voxel_size_nm, steps=("shading", "brightness")).brightness
    gain, offset = ph.brightness[:, 0], ph.brightness[:, 1]
    for level in (0.2, 0.8):  # full scale 1: the dark pore phases and the bright metals
        grey = (255 * (gain * level + offset) - table.offset) / table.gain
        assert np.abs(grey - np.median(grey)).max() < 2.5, (level, np.round(grey - np.median(grey), 1))


def test_steady_gain_drift_is_followed_to_both_ends():
    """A gain rising 3 % a slice over three phases: every slice's gain within 1.5 % of the truth
    (the old code: 0.9 %; noise-free, exact).
    The re-lock's candidate (the neighbour's mapping) counts only where two modes refine it: with one
    located mode it kept the middle slice's gain on one side (error 8 % at the last slice)."""
    rng = np.random.default_rng(0)
    base = rng.choice([40.0, 120.0, 200.0], size=(1, 64, 64)).repeat(8, 0)
    gain = np.linspace(0.9, 1.1, 8)[:, None, None]
    table = estimate_brightness(base * gain + rng.normal(0, 2.0, base.shape), smooth=1)
    ratio = table.gain / gain.ravel()
    np.testing.assert_allclose(ratio / np.median(ratio), 1.0, atol=0.015)


def two_sub_mode_stack(seed):
    """16 slices of flat 8 px blocks of four phases under a known gain/offset drift, with two split phases.

    The dark phase (82 grey) holds a lower sub-mode (74) whose share falls from 80 % to 10 % over
    the stack, so its tracked mode climbs from 74 to 82 where the shares cross; the mid phase
    (132) holds an upper sub-mode (140) in the first half.  Active (166) and collector (192) are
    steady.  Returns the stack and the true gain and offset.
    """
    rng = np.random.default_rng(seed)
    nz, n, blk = 16, 128, 8
    z = np.arange(nz)
    phase = rng.choice(4, size=(n // blk, n // blk), p=[0.35, 0.25, 0.25, 0.15])
    u = rng.random(phase.shape)
    planes = []
    for k in z:
        t = k / (nz - 1)
        lev = np.array([82.0, 132.0, 166.0, 192.0])[phase]
        lev = np.where((phase == 0) & (u < 0.8 - 0.7 * t), 74.0, lev)
        lev = np.where((phase == 1) & (u < max(0.0, 0.8 - 2.0 * t)), 140.0, lev)
        planes.append(lev.repeat(blk, 0).repeat(blk, 1))
    gain, offset = 1 + 0.08 * np.sin(z / 3.0), 4 * np.cos(z / 4.0)
    stack = np.stack(planes) * gain[:, None, None] + offset[:, None, None] + rng.normal(0, 9.0, (nz, n, n))
    return stack, gain, offset


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_mode_climbing_to_its_other_sub_mode_is_outvoted(seed):
    """A tracked mode that climbs onto its phase's other sub-mode does not carry the slices' lines.

    Every slice within 3 grey of one grey scale at the dark and the bright phase (a sub-mode climb
    costs ~8 grey; the located modes are precise to a fraction of a grey).  The old reliability,
    judged under the weighted fits, let the climbing dark mode and the active one certify each
    other (each fits a two-mode line exactly): 7.1-7.6 grey off on these four seeds.
    """
    stack, gain, offset = two_sub_mode_stack(seed)
    table = estimate_brightness(stack)
    grey = (np.array([[82.0], [192.0]]) * gain + offset - table.offset) / table.gain
    assert np.abs(grey - np.median(grey, axis=1, keepdims=True)).max() < 3.0


def test_consensus_line_and_mode_weights_outvote_a_climbed_mode():
    """Analytic: modes on one line but one climbed by 8 grey; the line is the others', exactly, and the
    climbed mode gets the least weight; with three modes none can outvote the others (all count)."""
    from volrecon.correct.brightness import _consensus_line, _mode_weights

    levels = np.array([80.0, 134.0, 168.0, 194.0])
    row = 1.1 * levels + 5.0
    row[0] += 8.0
    np.testing.assert_allclose(_consensus_line(levels, row, 1.5), (1.1, 5.0), rtol=1e-12)
    three = _consensus_line(levels[:3], row[:3], 1.5)
    np.testing.assert_allclose(three, np.polyfit(levels[:3], row[:3], 1), rtol=1e-12)
    z = np.arange(16)
    g, o = 1 + 0.08 * np.sin(z / 3.0), 4 * np.cos(z / 4.0)
    located = g[:, None] * levels + o[:, None] + np.random.default_rng(0).normal(0, 0.2, (16, 4))
    located[10:, 0] += 8.0 * g[10:]  # the dark mode climbs onto its other sub-mode half-way
    w = _mode_weights(levels, located, range(16), 3.0)
    assert w[0] < 0.01 * w[1:].min()


def _block_stack(seed: int, noise: float, wander: float, nz: int = 16, n: int = 128, block: int = 8) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Four phases in 8-pixel blocks; the darkest one's grey climbs by ``wander`` over the stack (a void whose
    shine-through changes with depth), the others are steady; each slice then takes a known gain and offset."""
    rng = np.random.default_rng(seed)
    z = np.arange(nz)
    phase = rng.choice(4, size=(n // block, n // block), p=[0.2, 0.35, 0.3, 0.15])
    planes = [np.array([50.0 + wander * k / (nz - 1), 110.0, 160.0, 200.0])[phase].repeat(block, 0).repeat(block, 1) for k in z]
    gain, offset = 1 + 0.08 * np.sin(z / 3.0), 4 * np.cos(z / 4.0)
    stack = np.stack(planes) * gain[:, None, None] + offset[:, None, None] + rng.normal(0, noise, (nz, n, n))
    return stack, gain, offset


def _steady_grey_error(stack: np.ndarray, gain: np.ndarray, offset: np.ndarray, greys: tuple[float, ...]) -> float:
    """Largest deviation over slices of the corrected grey of the steady phases ``greys``."""
    t = estimate_brightness(stack)
    grey = (np.array(greys)[:, None] * gain + offset - t.offset) / t.gain
    return float(np.abs(grey - np.median(grey, axis=1, keepdims=True)).max())


@pytest.mark.parametrize("seed", range(6))
def test_a_wandering_mode_weighted_near_zero_does_not_carry_a_two_mode_slice(seed):
    # where only the wandering mode and one steady mode are located, the line through the two passed the
    # wanderer exactly whatever its weight: before, 7 of 10 such stacks had a slice 7.2-8.3 grey off
    stack, gain, offset = _block_stack(seed, noise=9.0, wander=15.0)
    assert _steady_grey_error(stack, gain, offset, (110.0, 200.0)) < 2.0


def test_a_single_phase_keeps_its_offset_refined():
    # one mode has no consensus line to be judged on: it must keep its weight (it had none, and the
    # offsets stopped refining after the first pass: 0.04 -> 0.37 grey)
    rng = np.random.default_rng(0)
    z = np.arange(12)
    gain, offset = 1 + 0.05 * np.sin(z / 2.0), 6 * np.cos(z / 3.0)
    stack = 120.0 * gain[:, None, None] + offset[:, None, None] + rng.normal(0, 2.0, (12, 128, 128))
    assert _steady_grey_error(stack, gain, offset, (120.0,)) < 0.15
