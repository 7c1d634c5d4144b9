"""Curtain removal on synthetic stripes and on the phantom."""

from __future__ import annotations

import numpy as np
import pytest

from volrecon.correct import CurtainSettings, apply_curtains, estimate_curtains
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
    with pytest.raises(ParameterError):
        CurtainSettings(orientation="diagonal")


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
    assert np.isfinite(settings.significance)
