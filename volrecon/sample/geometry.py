"""Implicit geometry of the imaged full cell: any slice can be rendered on its own.

The specimen lives in physical coordinates ``(z, y, x)`` in nm (z = milling depth, y = image
rows = stacking direction, x = image columns).  Layers are bounded by height fields over
``(z, x)``; particles and fibres are capsules (segments with a radius) evaluated as distance
fields in the plane of each slice; binder and voids are thresholded smooth random fields.

Stacking coordinate ``u``: distance in nm from the top of the face (below the cap) when the
anode is on top, from the bottom of the image when the cathode is on top.  In ``u`` the layers
always read sodium | SEI | separator | cathode | collector.

SEI definition (ground truth): the SEI is the set of points outside the sodium whose distance
along the surface normal from the sodium surface ``u = s(z, x)`` is at most ``t(z, x)``, ``t`` a
smooth log-normal random field.  For a locally planar surface of gradient ``∇s`` this is
``s <= u < s + t * sqrt(1 + |∇s|^2)``, which is what the label volume uses (``t`` varies on a
scale much larger than itself, so the foot point shift is negligible).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from scipy.special import ndtri

from volrecon.phases import PHASES, REGIONS
from volrecon.sample.fields import SmoothField
from volrecon.sample.params import SpecimenParams

_MARGIN_PX = 64
DEPTH_MARGIN_NM = 600.0

_P = {k: np.uint8(v) for k, v in PHASES.items()}
_R = {k: np.uint8(v) for k, v in REGIONS.items()}


@dataclass(frozen=True)
class Grid:
    """Sampling of the specimen by the acquisition.

    Attributes
    ----------
    slices : int
        Number of slices ``Z``.
    shape : tuple of int
        Image shape ``(H, W)`` (without data bar).
    voxel_nm : tuple of float
        Physical voxel size ``(z, y, x)`` in nm (y already the physical height of one row).
    pad : int
        Extra pixels rendered around the image so drifted slices have real content.
    depth_extra_nm : float
        How far below the last slice the geometry must exist (shine-through).
    """

    slices: int
    shape: tuple[int, int]
    voxel_nm: tuple[float, float, float]
    pad: int
    depth_extra_nm: float = 0.0

    def z_nm(self, k: float) -> float:
        """Depth of slice ``k`` in nm."""
        return float(k) * self.voxel_nm[0]

    def canvas_coords(self, stride: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Physical ``y`` and ``x`` of the padded canvas rows / columns (nm)."""
        h, w = self.shape
        rows = np.arange(-self.pad, h + self.pad, stride, dtype=np.float64)
        cols = np.arange(-self.pad, w + self.pad, stride, dtype=np.float64)
        return rows * self.voxel_nm[1], cols * self.voxel_nm[2]


@dataclass(frozen=True)
class FrameGeometry:
    """The milled face's frame in the specimen's own coordinates (does not change with depth).

    Attributes
    ----------
    cap_edge_nm : float
        Mean y of the protective cap's lower edge.
    cap_rough_nm : float
        RMS roughness of that edge along x.
    wall_left_nm, wall_right_nm : float
        x of the trench walls at the cap edge.
    wall_slope : float
        Inward run of each wall per unit of y below the cap (the trench narrows downwards).
    rim_nm : float
        Width of the bright rim along each wall.
    """

    cap_edge_nm: float
    cap_rough_nm: float
    wall_left_nm: float
    wall_right_nm: float
    wall_slope: float
    rim_nm: float


@dataclass
class Capsules:
    """Segments ``a + t d`` (``0 <= t <= length``) with a radius, in nm, axes (z, y, x)."""

    a: np.ndarray
    d: np.ndarray
    length: np.ndarray
    radius: np.ndarray

    def __post_init__(self) -> None:
        b = self.a + self.d * self.length[:, None]
        self.zlo = np.minimum(self.a[:, 0], b[:, 0]) - self.radius
        self.zhi = np.maximum(self.a[:, 0], b[:, 0]) + self.radius

    def __len__(self) -> int:
        return int(self.length.size)

    def to_dict(self) -> dict[str, list]:
        return {
            "start_nm": self.a.round(2).tolist(),
            "direction": self.d.round(6).tolist(),
            "length_nm": self.length.round(2).tolist(),
            "radius_nm": self.radius.round(2).tolist(),
        }


def capsule_distance(
    caps: Capsules, z: float, ys: np.ndarray, xs: np.ndarray, out: np.ndarray, margin: float
) -> None:
    """Lower ``out`` to the signed distance (nm) from the nearest capsule surface.

    Points are ``(z, ys[i], xs[j])``; ``ys``/``xs`` must be uniformly spaced and increasing.
    Only points within ``margin`` of a capsule are updated (``out`` should start at ``margin``).
    """
    if len(caps) == 0 or ys.size == 0 or xs.size == 0:
        return
    sel = np.nonzero((caps.zlo - margin <= z) & (caps.zhi + margin >= z))[0]
    if sel.size == 0:
        return
    a, d, length = caps.a[sel], caps.d[sel], caps.length[sel]
    radius = caps.radius[sel]
    reach = radius + margin
    tlo = np.zeros(sel.size)
    thi = length.copy()
    bounds = ((z, z), (ys[0], ys[-1]), (xs[0], xs[-1]))
    with np.errstate(divide="ignore", invalid="ignore"):
        for axis, (lo, hi) in enumerate(bounds):
            comp, pos = d[:, axis], a[:, axis]
            flat = np.abs(comp) < 1e-12
            t1 = (lo - reach - pos) / comp
            t2 = (hi + reach - pos) / comp
            inside = (pos >= lo - reach) & (pos <= hi + reach)
            t1 = np.where(flat, np.where(inside, -np.inf, np.inf), t1)
            t2 = np.where(flat, np.where(inside, np.inf, -np.inf), t2)
            tlo = np.maximum(tlo, np.minimum(t1, t2))
            thi = np.minimum(thi, np.maximum(t1, t2))
    keep = np.nonzero(tlo <= thi)[0]
    if keep.size == 0:
        return
    p1 = a[keep] + d[keep] * tlo[keep, None]
    p2 = a[keep] + d[keep] * thi[keep, None]
    rk = reach[keep]
    dy, dx = ys[1] - ys[0] if ys.size > 1 else 1.0, xs[1] - xs[0] if xs.size > 1 else 1.0
    i0 = np.clip(np.floor((np.minimum(p1[:, 1], p2[:, 1]) - rk - ys[0]) / dy), 0, ys.size).astype(int)
    i1 = np.clip(np.ceil((np.maximum(p1[:, 1], p2[:, 1]) + rk - ys[0]) / dy) + 1, 0, ys.size).astype(int)
    j0 = np.clip(np.floor((np.minimum(p1[:, 2], p2[:, 2]) - rk - xs[0]) / dx), 0, xs.size).astype(int)
    j1 = np.clip(np.ceil((np.maximum(p1[:, 2], p2[:, 2]) + rk - xs[0]) / dx) + 1, 0, xs.size).astype(int)
    ys32, xs32 = ys.astype(np.float32), xs.astype(np.float32)
    for n, k in enumerate(keep):
        if i1[n] <= i0[n] or j1[n] <= j0[n]:
            continue
        ax, dvec = a[k], d[k]
        wz = np.float32(z - ax[0])
        wy = (ys32[i0[n] : i1[n]] - np.float32(ax[1]))[:, None]
        wx = (xs32[j0[n] : j1[n]] - np.float32(ax[2]))[None, :]
        proj = (np.float32(dvec[1]) * wy + np.float32(dvec[0]) * wz) + np.float32(dvec[2]) * wx
        t = np.minimum(np.maximum(proj, np.float32(0.0)), np.float32(length[k]))
        d2 = (wy * wy + wz * wz) + wx * wx
        d2 -= t * (np.float32(2.0) * proj - t)
        np.maximum(d2, np.float32(0.0), out=d2)
        sd = np.sqrt(d2)
        sd -= np.float32(radius[k])
        view = out[i0[n] : i1[n], j0[n] : j1[n]]
        np.minimum(view, sd, out=view)


@dataclass
class SliceGeometry:
    """What one rendered plane contains (arrays on the requested ys x xs grid)."""

    labels: np.ndarray
    regions: np.ndarray
    sodium_surface_u: np.ndarray  # s(x), nm
    sei_thickness: np.ndarray  # t(x), nm (normal thickness)


class Specimen:
    """A random full cell, fixed by ``seed``, that renders any plane ``z`` on demand.

    Parameters
    ----------
    params : SpecimenParams
        Geometry parameters.
    grid : Grid
        Sampling (decides the extent the random structure must cover).
    frame : bool
        Whether the milled face's frame (cap, trench walls) is visible.
    seed : int
        Random seed; the same seed gives the same specimen.
    """

    def __init__(self, params: SpecimenParams, grid: Grid, *, frame: bool, seed: int) -> None:
        self.params = params
        self.grid = grid
        self.has_frame = frame
        rng = np.random.default_rng([int(seed), 101])
        h, w = grid.shape
        vz, vy, vx = grid.voxel_nm
        ys, xs = grid.canvas_coords()
        self.height_nm = h * vy
        self.width_nm = w * vx
        if frame:
            self.frame: FrameGeometry | None = FrameGeometry(
                cap_edge_nm=0.075 * h * vy,
                cap_rough_nm=0.6 * vy,
                wall_left_nm=0.04 * w * vx,
                wall_right_nm=(1 - 0.045) * w * vx,
                wall_slope=0.02,
                rim_nm=2.5 * vx,
            )
            self.face_top_nm = self.frame.cap_edge_nm
        else:
            self.frame = None
            self.face_top_nm = 0.0
        self.face_height_nm = self.height_nm - self.face_top_nm
        fr = params.layer_fractions
        total = sum(fr.values())
        cum = np.cumsum([fr["anode"], fr["separator"], fr["cathode"]]) / total
        self.mean_u = {
            "sodium_surface": float(cum[0] * self.face_height_nm),
            "separator_cathode": float(cum[1] * self.face_height_nm),
            "cathode_collector": float(cum[2] * self.face_height_nm),
        }

        # the random structure covers a box that depends only on slices, shape and voxel size
        # (not on the artefacts), so switching an artefact never changes the specimen
        zlo, zhi = -2 * vz, grid.slices * vz + DEPTH_MARGIN_NM
        xm = (_MARGIN_PX + grid.slices) * vx + 0.25 * w * vx
        xlo, xhi = -xm, w * vx + xm
        if xs[0] < xlo or xs[-1] > xhi or grid.depth_extra_nm > DEPTH_MARGIN_NM:
            raise ValueError("drift or shine-through depth exceeds the specimen's margin")
        surf_box = ((zlo, xlo), (zhi, xhi))
        self._sodium = SmoothField(*surf_box, params.sodium_corr_nm, rng)
        self._sei = SmoothField(*surf_box, params.sei_corr_nm, rng)
        self._sep_cat = SmoothField(*surf_box, 900.0, rng)
        self._cat_col = SmoothField(*surf_box, 1200.0, rng)
        self._cap = SmoothField((0.0, xlo), (1.0, xhi), 12 * vx, rng)
        self._sep_rough = params.interface_roughness_nm
        self._col_rough = 0.5 * params.interface_roughness_nm

        # cathode band (u) with room for roughness
        r_c = 4 * self._sep_rough + 2 * vy
        self.cathode_u = (self.mean_u["separator_cathode"] - r_c, self.mean_u["cathode_collector"] + 4 * self._col_rough + 2 * vy)
        sep_lo = self.mean_u["sodium_surface"] - 4 * params.sodium_roughness_nm
        self.separator_u = (sep_lo, self.mean_u["separator_cathode"] + r_c)
        cy = sorted(self.y_of_u(np.array(self.cathode_u)))
        box3 = ((zlo, cy[0] - vy, xlo), (zhi, cy[1] + vy, xhi))
        self._binder = SmoothField(box3[0], box3[1], params.binder_corr_nm, rng)
        self._void = SmoothField(box3[0], box3[1], params.void_corr_nm, rng)

        self.rods = self._make_rods(rng, (zlo, zhi), cy, (xlo, xhi))
        sy = sorted(self.y_of_u(np.array(self.separator_u)))
        self.fibres = self._make_fibres(rng, (zlo, zhi), sy, (xlo, xhi))
        self.cap_grain = SmoothField((0.0, xlo), (1.0, xhi), 4 * vx, rng)

    # ------------------------------------------------------------------ coordinates
    def u_of_y(self, y: np.ndarray) -> np.ndarray:
        """Stacking coordinate of image-frame y (nm)."""
        if self.params.order == "anode_top":
            return y - self.face_top_nm
        return self.height_nm - y

    def y_of_u(self, u: np.ndarray) -> np.ndarray:
        """Image-frame y of stacking coordinate u (nm)."""
        if self.params.order == "anode_top":
            return u + self.face_top_nm
        return self.height_nm - u

    # ------------------------------------------------------------------ random structure
    def _make_rods(self, rng: np.random.Generator, zr, yr, xr) -> Capsules:
        p = self.params
        lmax = p.rod_length_nm[1]
        lo = np.array([zr[0] - lmax / 2, yr[0], xr[0] - lmax / 2])
        hi = np.array([zr[1] + lmax / 2, yr[1], xr[1] + lmax / 2])
        volume = float(np.prod(hi - lo))
        target = -np.log(1.0 - p.active_fraction) * volume if p.active_fraction > 0 else 0.0
        mean_r, mean_l = p.rod_radius_nm, np.mean(p.rod_length_nm)
        mean_v = np.pi * mean_r**2 * mean_l + 4 / 3 * np.pi * mean_r**3
        n = int(rng.poisson(target / mean_v)) if target > 0 else 0
        centre = lo + rng.random((n, 3)) * (hi - lo)
        radius = np.clip(rng.normal(p.rod_radius_nm, p.rod_radius_sd_nm, n), 0.4 * p.rod_radius_nm, None)
        length = rng.uniform(*p.rod_length_nm, n)
        theta = np.radians(rng.uniform(*p.rod_tilt_deg, n))
        phi = rng.uniform(0, 2 * np.pi, n)
        d = np.stack([np.cos(theta), np.sin(theta) * np.sin(phi), np.sin(theta) * np.cos(phi)], axis=1)
        return Capsules(centre - d * length[:, None] / 2, d, length, radius)

    def _make_fibres(self, rng: np.random.Generator, zr, yr, xr) -> Capsules:
        p = self.params
        lo = np.array([zr[0], yr[0], xr[0]])
        hi = np.array([zr[1], yr[1], xr[1]])
        ext = hi - lo
        target = -np.log(1.0 - p.fibre_fraction) * float(np.prod(ext)) if p.fibre_fraction > 0 else 0.0
        starts, dirs, radii, lengths = [], [], [], []
        acc = 0.0
        span = float(np.linalg.norm(ext)) * 1.5
        while acc < target:
            r = max(rng.normal(p.fibre_radius_nm, p.fibre_radius_sd_nm), 0.4 * p.fibre_radius_nm)
            el = np.radians(rng.uniform(-p.fibre_elevation_deg, p.fibre_elevation_deg))
            az = rng.uniform(0, np.pi)
            d = np.array([np.cos(el) * np.sin(az), np.sin(el), np.cos(el) * np.cos(az)])
            c = lo + rng.random(3) * ext
            chord = 1.0 / (np.abs(d) / ext).sum()
            acc += np.pi * r * r * chord
            starts.append(c - d * span / 2)
            dirs.append(d)
            radii.append(r)
            lengths.append(span)
        if not starts:
            empty = np.zeros((0, 3))
            return Capsules(empty, empty, np.zeros(0), np.zeros(0))
        return Capsules(np.array(starts), np.array(dirs), np.array(lengths), np.array(radii))

    # ------------------------------------------------------------------ surfaces
    def surfaces(self, z: float, xs: np.ndarray) -> dict[str, np.ndarray]:
        """Layer boundaries at depth ``z`` along ``xs`` (all in u, nm) and SEI thickness.

        Returns ``sodium`` (s), ``sei_t`` (normal thickness t), ``sei_top`` (s + t*sqrt(1+|∇s|²)),
        ``separator_cathode``, ``cathode_collector``.
        """
        p = self.params
        h = 5.0
        s = self.mean_u["sodium_surface"] + p.sodium_roughness_nm * self._sodium.line(z, xs)
        dsdx = p.sodium_roughness_nm * (self._sodium.line(z, xs + h) - self._sodium.line(z, xs - h)) / (2 * h)
        dsdz = p.sodium_roughness_nm * (self._sodium.line(z + h, xs) - self._sodium.line(z - h, xs)) / (2 * h)
        sig = np.sqrt(np.log1p(p.sei_cv**2))
        t = p.sei_mean_nm * np.exp(sig * self._sei.line(z, xs) - sig * sig / 2)
        t = np.maximum(t, p.sei_min_nm)
        stretch = np.sqrt(1.0 + dsdx**2 + dsdz**2)
        return {
            "sodium": s,
            "sei_t": t,
            "sei_top": s + t * stretch,
            "separator_cathode": self.mean_u["separator_cathode"] + self._sep_rough * self._sep_cat.line(z, xs),
            "cathode_collector": self.mean_u["cathode_collector"] + self._col_rough * self._cat_col.line(z, xs),
        }

    def frame_mask(self, ys: np.ndarray, xs: np.ndarray) -> np.ndarray | None:
        """Boolean mask of the frame (cap, trench walls) on ``ys x xs``; None without frame."""
        f = self.frame
        if f is None:
            return None
        cap = f.cap_edge_nm + f.cap_rough_nm * self._cap.line(0.5, xs)
        below = np.maximum(ys[:, None] - f.cap_edge_nm, 0.0)
        left = xs[None, :] < f.wall_left_nm + f.wall_slope * below
        right = xs[None, :] > f.wall_right_nm - f.wall_slope * below
        return (ys[:, None] < cap[None, :]) | left | right

    # ------------------------------------------------------------------ rendering
    def binder_halo_px(self) -> int:
        """Pixels near a rendered block's edge whose binder depends on what lies beyond it."""
        v = min(self.grid.voxel_nm[1], self.grid.voxel_nm[2])
        return int(np.ceil(3.0 * self.params.binder_reach_nm / v)) + 1

    def render(self, z: float, ys: np.ndarray, xs: np.ndarray) -> SliceGeometry:
        """Labels and regions of the plane at depth ``z`` sampled at ``ys x xs`` (nm).

        The binder within :meth:`binder_halo_px` of the block's left/right edge depends on the
        block's extent; callers render a margin that wide and discard it.
        """
        p = self.params
        u = self.u_of_y(ys)[:, None]
        sf = self.surfaces(z, xs)
        s, top = sf["sodium"][None, :], sf["sei_top"][None, :]
        c, a = sf["separator_cathode"][None, :], sf["cathode_collector"][None, :]

        regions = np.full((ys.size, xs.size), _R["collector"], dtype=np.uint8)
        regions[u < a] = _R["cathode"]
        regions[u < c] = _R["separator"]
        regions[u < top] = _R["anode"]
        labels = np.full(regions.shape, _P["collector"], dtype=np.uint8)
        labels[regions == _R["anode"]] = _P["sei"]
        labels[np.broadcast_to(u < s, labels.shape)] = _P["sodium"]

        # separator: fibres in electrolyte
        rows = self._rows_in(u[:, 0], self.separator_u)
        if rows.stop > rows.start:
            sd = np.full((rows.stop - rows.start, xs.size), np.inf, dtype=np.float32)
            capsule_distance(self.fibres, z, ys[rows], xs, sd, 0.0)
            sub = labels[rows]
            is_sep = regions[rows] == _R["separator"]
            sub[is_sep] = np.where(sd[is_sep] < 0, _P["separator"], _P["electrolyte"])

        # cathode: rods, binder, pore (electrolyte or void)
        rows = self._rows_in(u[:, 0], self.cathode_u)
        if rows.stop > rows.start:
            sd = np.full((rows.stop - rows.start, xs.size), 1.0, dtype=np.float32)
            capsule_distance(self.rods, z, ys[rows], xs, sd, 0.0)
            sub = labels[rows]
            is_cat = regions[rows] == _R["cathode"]
            active = sd < 0
            # binder prefers the neighbourhood of particles: proximity = blurred particle mask
            sig = (p.binder_reach_nm / (ys[1] - ys[0]), p.binder_reach_nm / (xs[1] - xs[0]))
            prox = ndi.gaussian_filter(active.astype(np.float32), sig, mode="constant", truncate=3.0)
            bscore = self._binder.plane(z, ys[rows], xs)
            bscore += np.float32(2.6) * prox
            binder = ~active & (bscore > _binder_threshold(p.binder_share))
            vthr = self._void_threshold(u[rows, 0], self.mean_u["separator_cathode"], self.mean_u["cathode_collector"])
            void = ~active & ~binder & (self._void.plane(z, ys[rows], xs) > vthr[:, None])
            phase = np.full(sub.shape, _P["electrolyte"], dtype=np.uint8)
            phase[void] = _P["void"]
            phase[binder] = _P["binder"]
            phase[active] = _P["active"]
            sub[is_cat] = phase[is_cat]

        fm = self.frame_mask(ys, xs)
        if fm is not None:
            labels[fm] = _P["frame"]
            regions[fm] = _R["frame"]
        return SliceGeometry(labels, regions, sf["sodium"], sf["sei_t"])

    @staticmethod
    def _rows_in(u: np.ndarray, band: tuple[float, float]) -> slice:
        idx = np.nonzero((u >= band[0]) & (u <= band[1]))[0]
        if idx.size == 0:
            return slice(0, 0)
        return slice(int(idx[0]), int(idx[-1]) + 1)

    def _void_threshold(self, u: np.ndarray, c_mean: float, a_mean: float) -> np.ndarray:
        """Per-row threshold on the unit-variance void field giving the local void share."""
        p = self.params
        if p.void_share <= 0:
            return np.full(u.shape, np.inf)
        if p.void_decay:
            xi = np.clip((u - c_mean) / max(a_mean - c_mean, 1.0), 0.0, 1.0)
            lam = p.void_decay
            norm = lam * (1.0 - np.exp(-1.0 / lam))
            share = p.void_share * np.exp(-xi / lam) / norm
        else:
            share = np.full(u.shape, p.void_share)
        share = np.clip(share, 1e-6, 0.97)
        return ndtri(1.0 - share).astype(np.float32)


def _binder_threshold(share: float) -> float:
    # field ~ N(0,1) plus a proximity bonus; the offset was tuned so the share lands near target
    if share <= 0:
        return np.inf
    return float(ndtri(1.0 - share)) + 0.55
