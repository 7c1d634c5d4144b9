"""Forward model of one phantom: specimen + acquisition, computed chunk by chunk.

:class:`Plan` holds everything drawn once (specimen, drift, shading, brightness, curtains);
:func:`iter_slices` yields finished slices in order, computed by a pool of worker processes
(each renders a contiguous chunk of slices plus the few slices below it that shine through
voids), so memory stays bounded by a few chunks whatever the stack size.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
from scipy import ndimage as ndi

from volrecon.phases import PHASES
from volrecon.sample import artefacts as A
from volrecon.sample.geometry import Grid, Specimen
from volrecon.sample.params import SpecimenParams

PSF_SIGMA_NM = 8.0
"""Probe blur of the ideal image (Gaussian sigma, nm in the image plane: 0.8 px at 10 nm pixels).

A length of the beam, not of the pixel grid: at coarser pixels the blur covers fewer pixels.  It
is applied in the recorded pixel grid (rows cover ``pixel / sin(tilt)`` of the face), so the face
sees it stretched along y like every other image-plane length."""


def psf_sigma_px(pixel_nm: tuple[float, float]) -> tuple[float, float]:
    """Probe blur (Gaussian sigma, px) along rows and columns for recorded pixels ``(y, x)`` nm."""
    return (PSF_SIGMA_NM / float(pixel_nm[0]), PSF_SIGMA_NM / float(pixel_nm[1]))


EDGE_RIM_NM = 10.0
"""Physical width of the bright rim on each side of a phase boundary (nm in the image plane), for
``Artefacts(edge_rim_nm=EDGE_RIM_NM)``.

Edge brightening comes from secondary electrons escaping through the nearby side wall, so the
rim is a length of the specimen, not a pixel: at 10 nm pixels it is the one pixel on each side
that the Sobel operator marks."""


def edge_field(base: np.ndarray, pixel_nm: tuple[float, float], rim_nm: float | None = EDGE_RIM_NM) -> np.ndarray:
    """Rim brightness (step contrast per unit gain) of an ideal image with pixels ``(y, x)`` nm.

    Parameters
    ----------
    base : ndarray
        Ideal grey image (2D, float32).
    pixel_nm : tuple of float
        Recorded pixel size ``(y, x)`` in nm.
    rim_nm : float or None
        Rim width on each side of a boundary (nm); None: one pixel whatever its size.

    Returns
    -------
    ndarray
        Sobel gradient magnitude / 4: the contrast of a step on the pixel each side of it when
        the pixel equals the rim.  Coarser pixels average the rim over their width (each
        derivative scaled by rim / pixel), finer ones carry it over ``rim / pixel`` pixels on each
        side (grey dilation), so the rim's integral across a boundary, in nm, does not depend on
        the pixel.
    """
    parts, reach = [], []
    for axis in (0, 1):
        d = ndi.sobel(base, axis, mode="nearest")
        ratio = 1.0 if rim_nm is None else float(rim_nm) / float(pixel_nm[axis])
        if ratio < 1.0:
            d = d * np.float32(ratio)
        parts.append(d)
        reach.append(max(0, int(round(ratio)) - 1))
    edge = np.hypot(parts[0], parts[1])
    if any(reach):
        edge = ndi.maximum_filter(edge, size=(2 * reach[0] + 1, 2 * reach[1] + 1), mode="nearest")
    return edge / np.float32(4.0)


INTENSITY: dict[str, float] = {
    "void": 0.04,
    "electrolyte": 0.22,
    "active": 0.66,
    "binder": 0.36,
    "separator": 0.54,
    "sodium": 0.30,
    "sei": 0.47,
    "collector": 0.78,
    "frame": 0.80,
}
"""Ideal image grey level of each phase (0-1) before edge effects and blur."""

DENSE = ("active", "collector", "separator", "frame")
"""Phases that mill slowly and cast curtains below them."""


def _lut() -> np.ndarray:
    lut = np.full(16, 0.5, dtype=np.float32)
    for name, value in INTENSITY.items():
        lut[PHASES[name]] = value
    return lut


@dataclass
class SliceOut:
    """One finished slice (image frame, no data bar in ``labels``/``clean``)."""

    index: int
    labels: np.ndarray
    regions: np.ndarray
    clean: np.ndarray
    acquired: np.ndarray
    sodium_u: np.ndarray  # sodium surface per image column (u, nm)
    sei_t: np.ndarray  # normal SEI thickness per image column (nm)
    surfaces: dict[str, np.ndarray]


class Plan:
    """Everything drawn once for a phantom; renders any chunk of slices.

    Parameters
    ----------
    params : SpecimenParams
        Specimen geometry.
    art : Artefacts
        Acquisition artefacts.
    slices : int
        Number of slices.
    shape : tuple of int
        Image shape (H, W) without data bar.
    voxel_size_nm : tuple of float
        ``(slice thickness, recorded pixel height, pixel width)`` in nm.
    frame : bool
        Show the face frame.
    seed : int
        Random seed.
    """

    def __init__(
        self, params: SpecimenParams, art: A.Artefacts, *, slices: int, shape: tuple[int, int],
        voxel_size_nm: tuple[float, float, float], frame: bool, seed: int,
    ) -> None:
        self.params, self.art, self.seed = params, art, int(seed)
        self.slices, self.shape = int(slices), (int(shape[0]), int(shape[1]))
        vz, vy_rec, vx = (float(v) for v in voxel_size_nm)
        self.recorded_pixel_nm = (vy_rec, vx)
        self.psf_sigma_px = psf_sigma_px(self.recorded_pixel_nm)
        self.shine_sigma_px = art.shine_sigma_px(self.recorded_pixel_nm)
        vy = vy_rec / math.sin(math.radians(art.tilt_deg)) if art.foreshortening else vy_rec
        self.voxel_nm = (vz, vy, vx)
        rng = np.random.default_rng([self.seed, 202])
        self.drift, self.jumps = A.draw_drift(art, self.slices, rng)
        self.gain, self.offset, self.step_slice = A.draw_brightness(art, self.slices, rng)
        self.shading = A.draw_shading(art, self.shape, rng)
        self.pad = int(math.ceil(np.abs(self.drift).max(initial=0.0))) + 8
        self.shine_slices = max(1, int(round(art.shine_depth_nm / vz))) if art.shine_through else 0
        self.grid = Grid(self.slices, self.shape, self.voxel_nm, self.pad, depth_extra_nm=(self.shine_slices + 1) * vz)
        self.grid_halo = None
        self.specimen = Specimen(params, self.grid, frame=frame, seed=self.seed)
        # geometry is rendered with a halo (binder proximity) that is cut off again
        self.halo = self.specimen.binder_halo_px()
        ys_h, xs_h = Grid(self.slices, self.shape, self.voxel_nm, self.pad + self.halo).canvas_coords()
        self.ys_halo, self.xs_halo = ys_h, xs_h
        self.ys, self.xs = self.grid.canvas_coords()
        self.lut = _lut()
        self.frame_canvas = self._frame_image()
        self.frame_mask_image = self.frame_canvas_mask[self._crop] if frame else None
        first = self._geometry(0)
        dense = np.zeros(16, dtype=bool)
        dense[[PHASES[p] for p in DENSE]] = True
        cap_rows = None
        if self.specimen.frame is not None:
            cap_rows = np.argmax(~self.frame_canvas_cap, axis=0).astype(float)
        self.curtains, self.curtain_amp = A.draw_curtains(
            art, first.labels, dense, cap_rows, self.slices, np.random.default_rng([self.seed, 303])
        )
        self.databar_rows = A.databar_rows(self.shape[0]) if art.databar else 0
        self.databar = A.databar(self.shape[1], self.databar_rows, vx, self.seed) if art.databar else None

    # ------------------------------------------------------------------ helpers
    @property
    def _crop(self) -> tuple[slice, slice]:
        p = self.pad
        return slice(p, p + self.shape[0]), slice(p, p + self.shape[1])

    def _frame_image(self) -> np.ndarray | None:
        sp = self.specimen
        f = sp.frame
        if f is None:
            self.frame_canvas_mask = None
            self.frame_canvas_cap = None
            return None
        ys, xs = self.ys, self.xs
        mask = sp.frame_mask(ys, xs)
        cap_edge = f.cap_edge_nm + f.cap_rough_nm * sp._cap.line(0.5, xs)
        is_cap = ys[:, None] < cap_edge[None, :]
        below = np.maximum(ys[:, None] - f.cap_edge_nm, 0.0)
        dl = (f.wall_left_nm + f.wall_slope * below) - xs[None, :]
        dr = xs[None, :] - (f.wall_right_nm - f.wall_slope * below)
        dist = np.maximum(dl, dr)
        rim = np.exp(-np.maximum(dist, 0.0) / f.rim_nm)
        depth = np.clip(below / max(sp.height_nm, 1.0), 0, 1)
        wall = 0.22 + 0.08 * (1 - depth) + 0.65 * rim
        grain = sp.cap_grain.line(0.5, xs)
        capimg = 0.80 + 0.04 * grain[None, :] + 0.03 * np.exp(-np.maximum(cap_edge[None, :] - ys[:, None], 0) / (40 * self.voxel_nm[1]))
        img = np.where(is_cap, capimg, wall).astype(np.float32)
        self.frame_canvas_mask = mask
        self.frame_canvas_cap = is_cap
        return img

    def _geometry(self, k: int):
        """Specimen plane of slice ``k`` on the canvas (halo rendered and cut off)."""
        g = self.specimen.render(self.grid.z_nm(k), self.ys_halo, self.xs_halo)
        h = self.halo
        cut = (slice(h, -h), slice(h, -h))
        g.labels, g.regions = g.labels[cut], g.regions[cut]
        g.sodium_surface_u, g.sei_thickness = g.sodium_surface_u[h:-h], g.sei_thickness[h:-h]
        return g

    def _base(self, labels: np.ndarray) -> np.ndarray:
        base = self.lut[labels]
        if self.frame_canvas is not None:
            fm = self.frame_canvas_mask
            base[fm] = self.frame_canvas[fm]
        return base

    # ------------------------------------------------------------------ rendering
    def render_chunk(self, k0: int, k1: int) -> list[SliceOut]:
        """Finished slices ``k0 .. k1-1``."""
        sp, art = self.specimen, self.art
        geos = {k: self._geometry(k) for k in range(k0, k1 + self.shine_slices)}
        crop = self._crop
        out = []
        void = PHASES["void"]
        for k in range(k0, k1):
            g = geos[k]
            base = self._base(g.labels)
            if art.shine_through:
                v = g.labels == void
                if v.any():
                    deep = A.blur(self._base(geos[k + self.shine_slices].labels), self.shine_sigma_px)
                    base[v] = np.float32(art.shine_attenuation) * deep[v] + np.float32(INTENSITY["void"])
            if art.edge_brightening:
                base = base + np.float32(art.edge_gain) * edge_field(base, self.recorded_pixel_nm, art.edge_rim_nm)
            clean = A.blur(base, self.psf_sigma_px)
            face = clean
            if self.curtains:
                face = clean + A.curtain_field(self.curtains, self.curtain_amp[k], clean.shape)
            shifted = A.translate(face, self.pad, tuple(self.drift[k]), self.shape)
            rng = np.random.default_rng([self.seed, 505, k])
            acq = A.detector(shifted, self.shading, self.gain[k], self.offset[k], art, rng)
            if self.databar is not None:
                bar = self.databar if art.quantise else self.databar.astype(np.float32)
                acq = np.concatenate([acq, bar], axis=0)
            cols = crop[1]
            sf = sp.surfaces(self.grid.z_nm(k), self.xs[cols])
            out.append(
                SliceOut(
                    index=k, labels=g.labels[crop].copy(), regions=g.regions[crop].copy(),
                    clean=np.ascontiguousarray(clean[crop]), acquired=acq,
                    sodium_u=g.sodium_surface_u[cols], sei_t=g.sei_thickness[cols], surfaces=sf,
                )
            )
        return out


# --------------------------------------------------------------------------- parallel driver
_PLAN: Plan | None = None


def _worker(chunk: tuple[int, int]) -> list[SliceOut]:
    assert _PLAN is not None
    return _PLAN.render_chunk(*chunk)


def default_workers() -> int:
    """Worker processes: the CPUs this process may use (at most 8)."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        n = os.cpu_count() or 1
    return max(1, min(8, n))


def iter_slices(
    plan: Plan, *, workers: int | None = None, chunk: int = 12,
    progress: Callable[[int, int], None] | None = None,
) -> Iterator[SliceOut]:
    """Yield the phantom's slices in order.

    Parameters
    ----------
    plan : Plan
        The drawn phantom.
    workers : int, optional
        Worker processes (default: available CPUs, at most 8); 1 computes in this process.
    chunk : int
        Slices per task.
    progress : callable, optional
        Called as ``progress(done, total)`` after each slice.
    """
    global _PLAN
    n = plan.slices
    chunks = [(k, min(n, k + chunk)) for k in range(0, n, chunk)]
    workers = default_workers() if workers is None else max(1, int(workers))
    done = 0
    if workers == 1 or len(chunks) == 1 or "fork" not in mp.get_all_start_methods():
        for c in chunks:
            for s in plan.render_chunk(*c):
                done += 1
                if progress:
                    progress(done, n)
                yield s
        return
    _PLAN = plan
    ctx = mp.get_context("fork")
    try:
        with ctx.Pool(processes=min(workers, len(chunks))) as pool:
            for result in pool.imap(_worker, chunks):
                for s in result:
                    done += 1
                    if progress:
                        progress(done, n)
                    yield s
    finally:
        _PLAN = None
