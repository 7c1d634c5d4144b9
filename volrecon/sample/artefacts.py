"""The acquisition: what a slice-and-view microscope adds to the ideal image of the face.

Every artefact is switched by one field of :class:`Artefacts` and its true parameters are drawn
once per phantom (deterministically from the seed) by :func:`draw_artefacts`.

Order of the forward model for slice ``k`` (specimen frame = undrifted, detector frame = image):

1. ideal image of the face, in the specimen frame: phase contrast, shine-through of material
   below voids, edge brightening, probe blur (``Phantom.clean``);
2. curtaining stripes (topography milled into the face, so in the specimen frame);
3. drift: the specimen is displaced, ``acquired_k(q) = face_k(q + d_k)`` (``d_k`` the drift table
   row: ``scipy.ndimage.shift(acquired_k, d_k)`` registers the slice);
4. shading (multiplicative, detector frame), gain/offset of slice ``k``;
5. Poisson-Gaussian noise, 8-bit quantisation, data bar.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from volrecon.errors import ParameterError


@dataclass(frozen=True)
class Artefacts:
    """Which acquisition artefacts a phantom has, and how strong they are.

    ``Artefacts()`` switches on everything except the data bar; ``Artefacts.all()`` adds the data
    bar; ``Artefacts.none()`` gives a drift-free, noise-free, undistorted stack whose 8-bit
    images differ from ``Phantom.clean`` only by the detector's gain/offset and rounding.

    Attributes
    ----------
    drift : bool
        Slice-to-slice specimen drift: random walk (``drift_step_px`` RMS per slice and axis)
        plus a linear trend (``drift_trend_px`` per slice, (dy, dx)) plus jumps of
        ``drift_jump_px`` (uniform range) with probability ``drift_jump_prob`` per slice.
    shading : bool
        Smooth multiplicative field (vignetting ``shading_vignetting`` at the corners and a
        linear gradient of ``shading_gradient`` across the field), fixed in the detector frame.
    brightness : bool
        Detector gain/offset drifting by ``brightness_drift`` (relative) over the stack and
        stepping by ``brightness_step`` (relative gain) at one slice.
    curtains : bool
        Vertical stripes starting below the cap edge or below dense features, amplitude
        ``curtain_amplitude`` (fraction of full scale), about ``curtain_density`` stripes per
        100 columns, varying from slice to slice, each of a Gaussian cross-section whose sigma
        is drawn uniformly from ``curtain_width_px`` (px). The stripes' physical width (tens
        to a few hundred nm) is set by the features above them, so in pixels it depends on the
        pixel size: the default 0.8-3 px suits 10-20 nm pixels, a 3-5 nm pixel sees 10+ px.
    shine_through : bool
        Voids show a blurred (Gaussian sigma ``shine_blur_nm`` in the image plane), attenuated
        (``shine_attenuation``) image of the material ``shine_depth_nm`` below the face.
        ``shine_blur_px``, when given, is the older pixel-based sigma and overrides
        ``shine_blur_nm`` (the same blur at 10 nm pixels, twice the physical length at 20 nm).
    edge_brightening : bool
        Phase boundaries brighter by ``edge_gain`` times the local contrast step, over a rim on
        each side of the boundary.
    edge_rim_nm : float, optional
        The rim's width in nm (physical: ``render.EDGE_RIM_NM`` = 10 nm, the same at any pixel
        size).  None (default, as before): one pixel, i.e. 10 nm at 10 nm pixels but 20 nm at
        20 nm pixels; kept until the coarse-pixel SEI detection no longer leans on the wide rims.
    noise : bool
        Poisson-Gaussian noise: ``noise_photons`` detected electrons at full signal and Gaussian
        read noise ``read_noise`` (fraction of full scale).
    quantise : bool
        8-bit output; when off, ``acquired`` is float32 on the same 0-255 scale.
    foreshortening : bool
        The face is imaged at ``tilt_deg`` so image y is compressed by sin(tilt): one row covers
        ``pixel / sin(tilt)`` of the face and the metadata says tilt correction is off.  When
        False the instrument is said to have corrected it (``TiltCorrectionIsOn=yes``).
    databar : bool
        Thermo-style data bar appended below the image.
    """

    drift: bool = True
    drift_step_px: float = 0.7
    drift_trend_px: tuple[float, float] = (0.12, -0.08)
    drift_jump_prob: float = 0.025
    drift_jump_px: tuple[float, float] = (3.0, 8.0)
    shading: bool = True
    shading_vignetting: float = 0.22
    shading_gradient: float = 0.15
    brightness: bool = True
    brightness_drift: float = 0.12
    brightness_step: float = 0.10
    curtains: bool = True
    curtain_amplitude: float = 0.09
    curtain_density: float = 3.0
    curtain_width_px: tuple[float, float] = (0.8, 3.0)
    shine_through: bool = True
    shine_depth_nm: float = 80.0
    shine_blur_nm: float = 20.0
    shine_blur_px: float | None = None
    shine_attenuation: float = 0.55
    edge_brightening: bool = True
    edge_gain: float = 0.5
    edge_rim_nm: float | None = None
    noise: bool = True
    noise_photons: float = 60.0
    read_noise: float = 0.015
    quantise: bool = True
    foreshortening: bool = True
    tilt_deg: float = 52.0
    databar: bool = False

    SWITCHES = (
        "drift", "shading", "brightness", "curtains", "shine_through", "edge_brightening",
        "noise", "quantise", "foreshortening", "databar",
    )

    @classmethod
    def all(cls, **kw: Any) -> "Artefacts":
        """Every artefact on, data bar included."""
        return cls(**{**{s: True for s in cls.SWITCHES}, **kw})

    @classmethod
    def none(cls, **kw: Any) -> "Artefacts":
        """Every artefact off."""
        return cls(**{**{s: False for s in cls.SWITCHES}, **kw})

    @classmethod
    def only(cls, *names: str, **kw: Any) -> "Artefacts":
        """Only the named artefacts on."""
        unknown = set(names) - set(cls.SWITCHES)
        if unknown:
            raise ParameterError(f"unknown artefact(s) {', '.join(sorted(unknown))}; use {', '.join(cls.SWITCHES)}")
        return cls.none(**{n: True for n in names}, **kw)

    def shine_sigma_px(self, pixel_nm: tuple[float, float]) -> tuple[float, float]:
        """Shine-through blur (Gaussian sigma, px) along image rows and columns for pixels ``(y, x)`` nm.

        ``pixel_nm`` is the recorded pixel size: the blur is a length in the image plane, like the
        probe's (see :data:`volrecon.sample.render.PSF_SIGMA_NM`).
        """
        if self.shine_blur_px is not None:
            return (float(self.shine_blur_px), float(self.shine_blur_px))
        return (self.shine_blur_nm / float(pixel_nm[0]), self.shine_blur_nm / float(pixel_nm[1]))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = list(v)
        return d


def resolve_artefacts(spec: "Artefacts | str | None") -> Artefacts:
    """``Artefacts`` from an instance, ``"all"``, ``"none"``, ``"default"`` or a comma list of switches.

    Raises
    ------
    ParameterError
        Unknown word.
    """
    if isinstance(spec, Artefacts):
        return spec
    if spec is None or spec == "default":
        return Artefacts()
    if spec == "all":
        return Artefacts.all()
    if spec == "none":
        return Artefacts.none()
    if isinstance(spec, str):
        names = [n.strip().replace("-", "_") for n in spec.split(",") if n.strip()]
        return Artefacts.only(*names)
    raise ParameterError(f"artefacts={spec!r}: give Artefacts(...), 'all', 'none' or a comma list of {Artefacts.SWITCHES}")


# --------------------------------------------------------------------------- true parameters
@dataclass(frozen=True)
class Curtain:
    """One curtaining stripe in specimen-frame canvas pixels."""

    col: float
    row_start: float
    width: float
    decay: float
    sign: float


@dataclass
class AcquisitionTruth:
    """The drawn artefact parameters of one phantom (what truth/ records)."""

    drift: np.ndarray  # (Z, 2) dy, dx px
    jumps: list[int]
    gain: np.ndarray  # (Z,)
    offset: np.ndarray  # (Z,)
    step_slice: int | None
    shading: np.ndarray  # (H, W) float32
    curtains: list[Curtain]
    curtain_amp: np.ndarray  # (Z, n_stripes)


BASE_GAIN = 0.80
BASE_OFFSET = 0.08


def draw_drift(art: Artefacts, n: int, rng: np.random.Generator) -> tuple[np.ndarray, list[int]]:
    """Drift table ``(n, 2)`` (dy, dx) in px with ``d[0] = 0``, and the slices that jumped."""
    d = np.zeros((n, 2))
    jumps: list[int] = []
    if not art.drift or n < 2:
        return d, jumps
    steps = rng.normal(0.0, art.drift_step_px, (n - 1, 2)) + np.asarray(art.drift_trend_px)
    jump = rng.random(n - 1) < art.drift_jump_prob
    for i in np.nonzero(jump)[0]:
        ang = rng.uniform(0, 2 * np.pi)
        mag = rng.uniform(*art.drift_jump_px)
        steps[i] += mag * np.array([np.sin(ang), np.cos(ang)])
        jumps.append(int(i + 1))
    d[1:] = np.cumsum(steps, axis=0)
    return d, jumps


def draw_brightness(art: Artefacts, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, int | None]:
    """Gain and offset per slice (signal = gain * image + offset, full scale 1)."""
    gain = np.full(n, BASE_GAIN)
    offset = np.full(n, BASE_OFFSET)
    if not art.brightness:
        return gain, offset, None
    k = np.arange(n) / max(n - 1, 1)
    phase = rng.uniform(0, 2 * np.pi)
    gain = BASE_GAIN * (1 + art.brightness_drift * (k - 0.5) + 0.02 * np.sin(2 * np.pi * 1.3 * k + phase))
    offset = BASE_OFFSET + 0.25 * art.brightness_drift * BASE_OFFSET * (k - 0.5) * 4
    step = int(rng.integers(max(1, n // 3), max(2, 2 * n // 3))) if n > 2 else None
    if step is not None:
        gain[step:] *= 1 + art.brightness_step
        offset[step:] -= 0.3 * art.brightness_step * BASE_OFFSET
    return gain, offset, step


def draw_shading(art: Artefacts, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Multiplicative shading field of the detector frame (mean about 1)."""
    h, w = shape
    if not art.shading:
        return np.ones(shape, dtype=np.float32)
    cy, cx = rng.uniform(0.35, 0.65), rng.uniform(0.35, 0.65)
    y = (np.arange(h) + 0.5)[:, None] / h
    x = (np.arange(w) + 0.5)[None, :] / w
    r2 = ((y - cy) ** 2 + (x - cx) ** 2) / 0.5
    ang = rng.uniform(0, 2 * np.pi)
    grad = art.shading_gradient * ((y - 0.5) * np.sin(ang) + (x - 0.5) * np.cos(ang))
    field = (1 - art.shading_vignetting * r2) * (1 + grad)
    return (field / field.mean()).astype(np.float32)


def draw_curtains(
    art: Artefacts, canvas_labels: np.ndarray, dense: np.ndarray, cap_rows: np.ndarray | None,
    n_slices: int, rng: np.random.Generator,
) -> tuple[list[Curtain], np.ndarray]:
    """Stripes starting below the cap edge (if any) or below the lower edge of a dense feature.

    Parameters
    ----------
    canvas_labels : ndarray
        Phase labels of the first slice on the canvas (start positions are found there).
    dense : ndarray of bool
        Lookup table phase value -> mills slowly (casts a curtain).
    cap_rows : ndarray or None
        Canvas row of the cap edge per canvas column.
    """
    hc, wc = canvas_labels.shape
    if not art.curtains:
        return [], np.zeros((n_slices, 0))
    n = int(rng.poisson(art.curtain_density * wc / 100.0))
    out: list[Curtain] = []
    for _ in range(n):
        col = float(rng.uniform(0, wc - 1))
        j = int(round(col))
        if cap_rows is not None and rng.random() < 0.5:
            row = float(cap_rows[j])
        else:
            start = int(rng.integers(0, max(1, hc - 8)))
            column = dense[canvas_labels[start:, j]]
            hit = np.nonzero(column)[0]
            if hit.size == 0:
                continue
            first = hit[0]
            after = np.nonzero(~column[first:])[0]
            row = float(start + first + (after[0] if after.size else 0))
        out.append(
            Curtain(
                col=col, row_start=row, width=float(rng.uniform(*art.curtain_width_px)),
                decay=float(rng.uniform(0.3, 1.5) * hc), sign=float(rng.choice([-1.0, 1.0]) * rng.uniform(0.4, 1.0)),
            )
        )
    # amplitudes: AR(1) modulation per stripe, stripes fade in/out
    amp = np.zeros((n_slices, len(out)))
    if out:
        e = rng.normal(0, 1, (n_slices, len(out)))
        ar = np.zeros_like(e)
        for k in range(n_slices):
            ar[k] = (0.85 * ar[k - 1] if k else 0) + 0.5 * e[k]
        born = rng.integers(-n_slices // 2, n_slices, len(out))
        life = rng.integers(max(2, n_slices // 3), 2 * n_slices + 2, len(out))
        k = np.arange(n_slices)[:, None]
        alive = (k >= born[None, :]) & (k < (born + life)[None, :])
        amp = art.curtain_amplitude * np.clip(1 + 0.5 * ar, 0, None) * alive
    return out, amp


def curtain_field(curtains: list[Curtain], amp: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Additive curtain image (canvas, specimen frame) for one slice's amplitudes ``amp``."""
    field = np.zeros(shape, dtype=np.float32)
    hc, wc = shape
    rows = np.arange(hc, dtype=np.float32)
    for c, a in zip(curtains, amp):
        if a == 0:
            continue
        j0, j1 = max(0, int(c.col - 4 * c.width)), min(wc, int(c.col + 4 * c.width) + 2)
        i0 = max(0, int(c.row_start) - 2)
        if j1 <= j0 or i0 >= hc:
            continue
        cols = np.arange(j0, j1, dtype=np.float32)
        prof = np.exp(-0.5 * ((cols - c.col) / c.width) ** 2)
        r = rows[i0:] - c.row_start
        onset = np.clip(r + 1.0, 0, 2) / 2 * np.exp(-np.maximum(r, 0) / c.decay)
        field[i0:, j0:j1] += np.float32(a * c.sign) * onset[:, None] * prof[None, :]
    return field


# --------------------------------------------------------------------------- image operations
def _keys6(s: np.ndarray) -> np.ndarray:
    """Keys' 6-point cubic convolution kernel (fourth-order accurate)."""
    a = np.abs(s)
    return np.where(
        a < 1, 4 / 3 * a**3 - 7 / 3 * a**2 + 1,
        np.where(a < 2, -7 / 12 * a**3 + 3 * a**2 - 59 / 12 * a + 15 / 6,
                 np.where(a < 3, 1 / 12 * a**3 - 2 / 3 * a**2 + 7 / 4 * a - 3 / 2, 0.0)),
    )


def translate(canvas: np.ndarray, pad: int, d: tuple[float, float], shape: tuple[int, int]) -> np.ndarray:
    """Image ``out(q) = canvas(q + pad + d)`` by separable 6-point cubic convolution (Keys 1981).

    ``canvas`` covers the image with ``pad`` extra pixels on every side; ``|d| <= pad - 4``.
    Equivalent to ``scipy.ndimage.shift(canvas, -d)`` cropped, to a few thousandths of a pixel
    in position, at a fraction of the cost.
    """
    out = canvas
    for axis, (shift, size) in enumerate(zip(d, shape)):
        n = int(np.floor(shift))
        t = shift - n
        taps = np.arange(-2, 4)
        wts = _keys6(t - taps).astype(np.float32)
        start = pad + n - 2
        if start < 0 or start + size + 5 > out.shape[axis]:
            raise ValueError(f"drift {shift:.2f} px exceeds the rendered margin of {pad} px")
        acc = None
        for j in range(6):
            if wts[j] == 0:
                continue
            sl = [slice(None)] * 2
            sl[axis] = slice(start + j, start + j + size)
            term = out[tuple(sl)] * wts[j]
            acc = term if acc is None else acc + term
        out = acc
    return out


def detector(
    face: np.ndarray, shading: np.ndarray, gain: float, offset: float, art: Artefacts, rng: np.random.Generator
) -> np.ndarray:
    """Detector response: shading, gain/offset, noise, quantisation (0-255 scale)."""
    sig = face * shading if art.shading else face
    sig = sig * np.float32(gain) + np.float32(offset)
    if art.noise:
        var = np.maximum(sig, 0) / np.float32(art.noise_photons) + np.float32(art.read_noise**2)
        sig = sig + np.sqrt(var) * rng.standard_normal(sig.shape, dtype=np.float32)
    sig = np.clip(sig, 0.0, 1.0) * np.float32(255.0)
    if art.quantise:
        return np.rint(sig).astype(np.uint8)
    return sig.astype(np.float32)


def databar_rows(height: int) -> int:
    """Height of the data bar for an image of ``height`` rows."""
    return max(14, int(round(0.07 * height)))


def databar(width: int, rows: int, pixel_nm: float, seed: int) -> np.ndarray:
    """A Thermo-style data bar: black band, framed white 'text' fields and a scale bar (uint8)."""
    rng = np.random.default_rng([seed, 77])
    bar = np.zeros((rows, width), dtype=np.uint8)
    bar[0, :] = 255
    n_fields = 6
    edges = np.linspace(0, width * 0.72, n_fields + 1).astype(int)
    for a, b in zip(edges[:-1], edges[1:]):
        bar[1:, b - 1 if b > 0 else 0] = 255
        # glyph-like blocks in two lines
        for line in (0, 1):
            r0 = 2 + line * (rows - 2) // 2
            r1 = min(rows - 1, r0 + max(2, (rows - 6) // 2))
            x = a + 3
            while x < b - 5:
                cw = int(rng.integers(2, 5))
                if rng.random() < 0.8:
                    bar[r0 + 1 : r1, x : x + cw] = 255
                x += cw + 2
    # scale bar: a round length in the remaining space
    space = width - edges[-1] - 10
    target_nm = space * 0.6 * pixel_nm
    nice = 10 ** np.floor(np.log10(max(target_nm, 1e-9)))
    for m in (5, 2, 1):
        if m * nice <= target_nm:
            nice *= m
            break
    length = max(4, int(round(nice / pixel_nm)))
    x0 = edges[-1] + 5
    r = rows // 2
    bar[r - 1 : r + 1, x0 : x0 + length] = 255
    bar[r - 3 : r + 3, x0] = 255
    bar[r - 3 : r + 3, min(width - 1, x0 + length - 1)] = 255
    return bar


def blur(img: np.ndarray, sigma: float | tuple[float, float]) -> np.ndarray:
    """Gaussian blur (float32); ``sigma`` in px, one value or one per axis."""
    return ndi.gaussian_filter(img, sigma, mode="nearest", truncate=3.0)


def switches_changed(a: Artefacts, b: Artefacts) -> list[str]:
    """Names of the switches that differ between two settings."""
    return [f.name for f in fields(a) if f.name in Artefacts.SWITCHES and getattr(a, f.name) != getattr(b, f.name)]


__all__ = ["Artefacts", "AcquisitionTruth", "Curtain", "resolve_artefacts", "switches_changed"]
