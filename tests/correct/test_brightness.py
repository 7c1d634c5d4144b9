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
