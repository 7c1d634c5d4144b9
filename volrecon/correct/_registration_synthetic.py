"""Small synthetic slice-and-view stacks with known drift, for tests and quick benchmarks.

Not a phantom of an electrode (that is :mod:`volrecon.sample`); just enough physics to test
registration: several texture layers that move across the image with depth at their own
velocity (inclined features), fading in and out; an optional milled-face frame (cap on top,
trench walls with bright rims) that does not change with depth; and the artefacts that fool
registration (curtain stripes fixed in the image, a brightness step, noise, blank slices).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class SyntheticStack:
    """A stack and its truth: ``drift[z]`` registers ``acquired[z]`` (scipy.ndimage.shift sense)."""

    acquired: np.ndarray
    drift: np.ndarray
    frame: dict | None


def random_walk_drift(
    slices: int,
    *,
    step: float = 0.7,
    trend: tuple[float, float] = (0.05, -0.08),
    jumps: int = 2,
    jump_size: float = 6.0,
    seed: int = 0,
) -> np.ndarray:
    """Random-walk drift with a linear trend and a few jumps; row 0 is ``(0, 0)``."""
    rng = np.random.default_rng(seed)
    steps = rng.normal(0.0, step / np.sqrt(2), size=(slices, 2)) + np.asarray(trend)
    for z in rng.choice(np.arange(5, slices - 5), size=min(jumps, max(slices - 10, 0)), replace=False):
        steps[z] += rng.normal(0.0, 1.0, 2) / np.sqrt(2) * jump_size + np.sign(rng.normal(size=2)) * jump_size / 2
    steps[0] = 0.0
    return np.cumsum(steps, axis=0)


def _texture(shape: tuple[int, int], rng: np.random.Generator, scale: float) -> np.ndarray:
    field = ndimage.gaussian_filter(rng.normal(size=shape), scale, mode="wrap")
    field = np.tanh(3 * field / field.std())  # particle-like plateaus with sharp-ish borders
    return ndimage.gaussian_filter(field, 1.0, mode="wrap")


def make_stack(
    slices: int = 40,
    shape: tuple[int, int] = (256, 256),
    *,
    drift: np.ndarray | None = None,
    frame: bool = False,
    inclined: float = 0.4,
    curtains: float = 0.0,
    brightness_step: float = 0.0,
    noise: float = 4.0,
    blank: tuple[int, ...] = (),
    seed: int = 0,
) -> SyntheticStack:
    """Render a uint8 stack with known drift.

    Parameters
    ----------
    slices, shape : int, tuple of int
        Stack size.
    drift : ndarray, optional
        ``(Z, 2)`` truth; default a random walk (``random_walk_drift``).
    frame : bool
        Draw a cap (bright band on top, sharp lower edge) and trench walls with bright rims.
    inclined : float
        RMS apparent velocity (px/slice) of the moving texture layers.
    curtains : float
        Contrast of vertical stripes fixed in the image (grey levels).
    brightness_step : float
        Relative gain step in the second half of the stack.
    noise : float
        Gaussian noise (grey levels).
    blank : tuple of int
        Slices replaced by a constant image.
    seed : int
        Random seed.
    """
    rng = np.random.default_rng(seed)
    if drift is None:
        drift = random_walk_drift(slices, seed=seed)
    drift = np.asarray(drift, dtype=float)
    ny, nx = shape
    pad = int(np.ceil(np.abs(drift).max() + inclined * slices * 1.5)) + 16
    canvas = (ny + 2 * pad, nx + 2 * pad)
    layers = [_texture(canvas, rng, scale) for scale in (3.0, 5.0, 8.0)]
    velocity = rng.normal(0.0, inclined, size=(len(layers), 2))
    static = _texture(canvas, rng, 6.0)
    yy, xx = np.mgrid[0 : canvas[0], 0 : canvas[1]].astype(float)
    cap_row, left, right = pad + 0.22 * ny, pad + 0.12 * nx, pad + 0.88 * nx
    stripes = ndimage.gaussian_filter1d(rng.normal(size=nx), 1.5)
    stripes = curtains * stripes / (stripes.std() + 1e-12)
    out = np.empty((slices, ny, nx), dtype=np.uint8)
    for z in range(slices):
        phase = 2 * np.pi * z / max(slices, 1)
        specimen = 0.5 * static
        for i, layer in enumerate(layers):
            moved = ndimage.shift(layer, velocity[i] * z, order=1, mode="wrap")
            specimen = specimen + (0.6 + 0.4 * np.cos(phase + i)) * moved
        img = 110 + 30 * specimen
        if frame:
            cap = 0.5 * (1 + np.tanh((cap_row - yy) / 0.8))
            walls = 0.5 * (1 + np.tanh((left - xx) / 0.8)) + 0.5 * (1 + np.tanh((xx - right) / 0.8))
            rim = np.exp(-0.5 * ((xx - left) / 1.2) ** 2) + np.exp(-0.5 * ((xx - right) / 1.2) ** 2)
            img = img * (1 - walls) + (45 + 5 * static) * walls + 90 * rim * (1 - cap)
            img = img * (1 - cap) + (205 + 4 * static) * cap
        shifted = ndimage.shift(img, -drift[z], order=3, mode="nearest")
        img = shifted[pad : pad + ny, pad : pad + nx]
        below_cap = (np.arange(ny) > 0.22 * ny)[:, None] if frame else 1.0
        img = img + stripes[None, :] * below_cap * (1 + 0.3 * np.sin(z / 7.0))
        if brightness_step and z >= slices // 2:
            img = img * (1 + brightness_step)
        img = img + rng.normal(0.0, noise, size=img.shape)
        out[z] = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    for z in blank:
        out[z] = 0
    info = {"cap_row": 0.22 * ny, "left": 0.12 * nx, "right": 0.88 * nx} if frame else None
    return SyntheticStack(out, drift, info)
