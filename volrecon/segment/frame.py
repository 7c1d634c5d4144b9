"""The milled face's frame in a registered stack: the cap above the face and the trench walls.

Physics: a slice-and-view face is framed by the protective cap (a bright, uniform band along the
top of every image, with a straight lower edge) and by the trench walls left and right (planar
FIB-milled walls, each with a bright rim where it meets the face).  None of this is specimen; in
a registered stack it does not move from slice to slice.  So the frame is found on the
z-average of the stack, where the specimen's own structure is blurred out but the frame keeps
its edges:

- cap: per column, the strongest bright-to-dark step from the top; accepted when the steps of
  all columns lie on one straight line (a specimen layer boundary is rough, the cap's edge is
  not) and the band above is uniformly brighter than what lies below.  Edge brightening lights
  the rows on both sides of the edge, which puts the steepest step below it: the edge is where
  the rim is centred (a fit of the pooled profile across the edge), each column's own where it
  lies on the line (the cap follows the specimen's rough top), and the rim's lit specimen rows
  are the shell;
- walls: per strip of rows below the cap, the brightest ridge (the rim) in the outer part of the
  image; accepted when the strips' ridges lie on one straight line spanning the face (a strip
  whose ridge is on the image's outermost column is cut off: it counts as on the line when the
  line leaves the image there).

The result is a 2D ``(y, x)`` mask, True on the frame, applied to every slice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage as ndi
from scipy.optimize import least_squares
from scipy.special import ndtr


@dataclass(frozen=True)
class FrameMask:
    """The frame of the face found by :func:`find_frame`.

    Attributes
    ----------
    mask : ndarray of bool (y, x)
        True on the frame (cap, trench walls and what lies beyond them).
    cap : tuple of float or None
        ``(row at column 0, rows per column)`` of the cap's lower edge (boundary coordinate:
        rows ``r`` with ``r + 0.5 < edge`` are cap).
    left, right : tuple of float or None
        ``(column at row 0, columns per row)`` of each wall's edge facing the specimen.
    notes : list of str
        Why an edge was accepted or rejected.
    shell : ndarray of bool (y, x) or None
        Specimen pixels beside a trench wall or below the cap that its bright rim still lifts
        (from the edge to the rim's half height): specimen, but their grey values are the
        frame's as much as the specimen's, so measurements that average grey values leave them
        out.
    """

    mask: np.ndarray
    cap: tuple[float, float] | None
    left: tuple[float, float] | None
    right: tuple[float, float] | None
    notes: list[str] = field(default_factory=list)
    shell: np.ndarray | None = None

    @property
    def found(self) -> bool:
        """True when any frame edge was found."""
        return bool(self.mask.any())

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe summary (pixel units)."""
        line = lambda v: None if v is None else {"at_0": float(v[0]), "slope": float(v[1])}  # noqa: E731
        return {"units": "px", "cap_edge_row": line(self.cap), "left_wall_col": line(self.left),
                "right_wall_col": line(self.right), "fraction": float(self.mask.mean()),
                "rim_shell_fraction": float(self.shell.mean()) if self.shell is not None else 0.0,
                "notes": list(self.notes)}


def _mean_image(image: Any, max_slices: int) -> np.ndarray:
    nz = int(image.shape[0])
    zs = np.unique(np.linspace(0, nz - 1, min(nz, max_slices)).round().astype(int))
    sub = image[zs] if hasattr(image, "compute") else np.asarray(image)[zs]
    sub = np.asarray(sub.compute() if hasattr(sub, "compute") else sub, dtype=np.float32)
    return sub.mean(axis=0)


def _line_fit(pos: np.ndarray, coord: np.ndarray, tol: float) -> tuple[float, float, float, float] | None:
    """Robust straight line ``pos ≈ a + b·coord``; returns (a, b, inlier share, inlier RMS)."""
    ok = np.isfinite(pos)
    if ok.sum() < 4:
        return None
    c, p = coord[ok], pos[ok]
    b, a = np.polyfit(c, p, 1)
    for _ in range(3):
        res = p - (a + b * c)
        inl = np.abs(res) < max(tol, 2.5 * 1.4826 * np.median(np.abs(res)))
        if inl.sum() < 4:
            return None
        b, a = np.polyfit(c[inl], p[inl], 1)
    res = p - (a + b * c)
    inl = np.abs(res) < tol
    return float(a), float(b), float(inl.sum() / pos.size), float(np.sqrt(np.mean(res[inl] ** 2))) if inl.any() else np.inf


def _subpixel_peak(v: np.ndarray, i: int) -> float:
    if 0 < i < v.size - 1:
        den = v[i - 1] - 2 * v[i] + v[i + 1]
        if den != 0:
            return i + float(np.clip(0.5 * (v[i - 1] - v[i + 1]) / den, -0.5, 0.5))
    return float(i)


def _rim_reach(m: np.ndarray, y0: int, a: float, b: float, inward: int, span: int) -> float:
    """How far (px) a wall's bright rim reaches from its centre line into the face.

    The rim is the wall's edge brightening widened by the probe's blur; on the face side of its
    centre it still lifts the specimen's grey, so a mask ending at the centre would hand the
    specimen's first columns a wall's brightness.  Measured on the (lightly smoothed) mean image
    of the rows below the cap, aligned on the fitted centre line (column ``a + b * row``): the
    distance at which the rim's lift above the specimen's grey first falls to half (linear
    interpolation).  The specimen's grey is its level beside the rim, not far across the face: a
    column average over a few tens of slices still carries the specimen's large structures (a
    particle, a layer darker near the wall), which move a level read 24-48 px away by a fifth of
    the rim's lift or more and the reach with it.  Nor is it the profile's median just beyond
    the rim: an edge's brightening fades slowly (the lift a wall's edge adds is what the beam's
    electrons, scattered sideways, lose through the wall, which falls off exponentially with
    the beam's distance from it), so at twice the reach an exponential rim still holds a
    quarter of its lift and a level read there shortens the reach by a tenth or more.  So the
    level is the free base of a fit of the rim's shape (:func:`_rim_base`) over the profile's
    first five reaches, and the reach is read on the profile against it; the first reach comes
    from a band just beyond the rim (from twice a reach measured from the median of the
    profile's outer half, ``span`` px), and the fit is repeated once from the reach it gives.
    """
    rows, cols = m.shape
    r = np.arange(y0, rows)
    offs = np.arange(0, span + 1)
    c = (a + b * (r[:, None] + 0.5)) + inward * offs[None, :]
    ok = (c >= 0) & (c <= cols - 1)
    c0 = np.clip(np.floor(c).astype(int), 0, cols - 2)
    w = np.clip(c - c0, 0.0, 1.0)
    v = m[r[:, None], c0] * (1 - w) + m[r[:, None], c0 + 1] * w
    prof = np.array([v[ok[:, k], k].mean() if ok[:, k].any() else np.nan for k in range(len(offs))])
    reach = _half_reach(prof, float(np.nanmedian(prof[span // 2:])), span)
    k0 = int(np.ceil(2 * reach)) + 1
    band = prof[k0: k0 + max(4, k0)]
    if np.isfinite(band).sum() >= 3:
        reach = _half_reach(prof, float(np.nanmedian(band)), span)
    for _ in range(2):
        base = _rim_base(prof[: max(6, int(np.ceil(5 * reach)) + 1)])
        if base is None:
            break
        reach = _half_reach(prof, base, span)
    return reach


def _rim_base(prof: np.ndarray) -> float | None:
    """The specimen's grey under a rim's profile ``prof`` (from its crest, 1 px steps): the base
    ``c`` of a least-squares fit ``c + A exp(-(k / s) ** q)``, ``1 <= q <= 2``.

    A wall's edge brightening fades with distance from the edge as an exponential (the electrons
    lost through the wall) blurred by the probe's Gaussian: between the two shapes, which the
    exponent ``q`` spans, so neither an exponential's long tail nor a Gaussian's short one is
    taken for the specimen's level.  Soft-L1 loss at a few times the profile's noise keeps a
    specimen structure within the window from pulling the base.  None when fewer than five
    samples are finite or the fit fails.
    """
    k = np.flatnonzero(np.isfinite(prof)).astype(float)
    if k.size < 5:
        return None
    p = prof[k.astype(int)]
    noise = 1.4826 * float(np.median(np.abs(np.diff(p, 2)))) / np.sqrt(6.0)
    noise = max(noise, 1e-6 * (float(np.ptp(p)) or 1.0))

    def resid(x: np.ndarray) -> np.ndarray:
        return x[0] + x[1] * np.exp(-((k / x[2]) ** x[3])) - p

    n = float(k[-1] + 1)
    x0 = np.array([p[-1], max(p[0] - p[-1], 1e-6), max(n / 6, 0.5), 1.5])
    try:
        fit = least_squares(resid, x0, bounds=([-np.inf, 0.0, 0.2, 1.0], [np.inf, np.inf, 4 * n, 2.0]),
                            loss="soft_l1", f_scale=3 * noise)
    except ValueError:
        return None
    return float(fit.x[0]) if fit.success else None


def _half_reach(prof: np.ndarray, base: float, span: int) -> float:
    """Where the rim's profile ``prof`` (from its crest, 1 px steps) first falls to half its lift
    above ``base`` (px, linear interpolation; ``span // 2`` when it never does)."""
    half = base + 0.5 * (prof[0] - base)
    if not np.isfinite(half) or prof[0] <= base:
        return 0.0
    below = np.flatnonzero(~(prof > half))
    if below.size == 0:
        return float(span // 2)
    k = int(below[0])
    if k == 0:
        return 0.0
    return float(k - 1 + (prof[k - 1] - half) / max(prof[k - 1] - prof[k], 1e-12))


def _edge_basis(t: np.ndarray, e: Any, sigma: float, w: float) -> np.ndarray:
    """The parts of a frame edge's profile at positions ``t`` (px, the frame on the side ``t < e``),
    each blurred by a Gaussian of ``sigma``: the frame's level (a unit step at ``e``) and a unit rim
    ``[e - w, e + w]`` astride the edge (edge brightening lights both sides alike).  Shape
    ``t.shape + (2,)`` broadcast with ``e``."""
    u = t - e
    step = ndtr(-u / sigma)
    rim = ndtr((u + w) / sigma) - ndtr((u - w) / sigma)
    return np.stack(np.broadcast_arrays(step, rim), axis=-1)


def _fit_edge(t: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares ``p ≈ c0 + c·basis`` (:func:`_edge_basis`, the rim not negative): a coarse
    grid over the edge ``e``, the blur and the rim's width, refined.  Returns
    ``((e, sigma, w), (c0, c_step, c_rim))``."""
    best: tuple[float, tuple[float, ...]] = (np.inf, ())
    es = np.arange(-2.0, 1.0 + 1e-9, 0.05)[:, None]
    ones = np.ones((es.shape[0], t.size, 1))
    for sigma in np.arange(0.3, 2.61, 0.1):
        for w in np.arange(0.2, 3.01, 0.2):
            a = np.concatenate([ones, _edge_basis(t[None, :], es, sigma, w)], axis=-1)
            coef = np.linalg.solve(np.einsum("enk,enl->ekl", a, a) + 1e-9 * np.eye(3),
                                   np.einsum("enk,n->ek", a, p)[..., None])[..., 0]
            coef[:, 2] = np.maximum(coef[:, 2], 0.0)  # a dark rim is no edge brightening
            cost = ((np.einsum("enk,ek->en", a, coef) - p) ** 2).sum(axis=1)
            k = int(np.argmin(cost))
            if cost[k] < best[0]:
                best = (float(cost[k]), (float(es[k, 0]), float(sigma), float(w), *coef[k]))

    def resid(x: np.ndarray) -> np.ndarray:
        return x[3] + _edge_basis(t, x[0], x[1], x[2]) @ x[4:] - p

    lo = np.array([-2.5, 0.2, 0.05, -np.inf, 0.0, 0.0])
    hi = np.array([1.5, 4.0, 4.0, np.inf, np.inf, np.inf])
    x0 = np.clip(np.array(best[1]), lo + 1e-6, hi - 1e-6)
    x = least_squares(resid, x0, bounds=(lo, hi)).x
    return x[:3], x[3:]


def _edge_offset(t: np.ndarray, v: np.ndarray, window: float = 5.0) -> tuple[float, float] | None:
    """Where a frame edge lies on a profile pooled from many lines across it, and how far its
    bright rim reaches beyond it.

    ``t``: position of each sample from the steepest step each line's edge was found at (px, the
    frame on the side ``t < 0``); ``v``: the grey values.  Edge brightening lights both sides of an
    edge alike and the probe blurs it with the step, so the steepest descent lies beyond the edge
    (a symmetric rim's slope adds to the step's on the dark side).  The samples, binned at 0.1 px
    (median per bin: a line of some other material does not move it; the lines' sub-pixel offsets
    sample the profile finely), are fitted with a blurred step and a rim symmetric about the same
    edge (:func:`_fit_edge`); without a rim the fit's edge is the steepest step.  Returns
    ``(edge, reach)``: the edge (px from ``t = 0``) and where the lift above the specimen's level
    beyond it falls to half the lift at the edge (px from the edge); the reach is 0 when the rim
    term's lift at the edge is within the spread of the lines' specimen grey about the fitted
    profile (no rim told from the specimen: the blurred step alone reaches half a pixel, which
    would put the first specimen row of every column in the shell).  None when the samples do not
    cover the edge (the frame cut off by the image's border).
    """
    sel = np.isfinite(v) & (np.abs(t) <= window)
    if not sel.any() or t[sel].min() > -2.5 or t[sel].max() < 3.0:
        return None
    bins = np.round(t[sel] / 0.1).astype(int)
    _, inv = np.unique(bins, return_inverse=True)
    tb = np.bincount(inv, t[sel]) / np.bincount(inv)
    order = np.argsort(inv, kind="stable")
    groups = np.split(v[sel][order], np.cumsum(np.bincount(inv))[:-1])
    pb = np.array([np.median(g) for g in groups])
    scale = float(np.ptp(pb)) or 1.0
    (e, sigma, w), c = _fit_edge(tb, pb / scale)
    ts, vs = t[sel], v[sel] / scale
    beyond = ts > e + 1.0
    resid = vs[beyond] - (c[0] + _edge_basis(ts[beyond], e, sigma, w) @ c[1:])
    spread = 1.4826 * float(np.median(np.abs(resid - np.median(resid)))) if resid.size else 0.0
    if c[2] * _edge_basis(np.array([e]), e, sigma, w)[0, 1] <= spread:
        return float(e), 0.0
    fine = np.linspace(e, e + window, 501)
    lift = _edge_basis(fine, e, sigma, w) @ c[1:]  # above the specimen's level c[0]
    below = np.flatnonzero(lift <= 0.5 * lift[0])
    return float(e), float(fine[below[0]] - e) if below.size else window


def find_frame(
    image: Any, *, max_cap_fraction: float = 0.4, max_wall_fraction: float = 0.3,
    min_contrast: float = 0.15, tolerance_px: float = 1.5, min_inliers: float = 0.75, max_slices: int = 32,
    cap_alone: bool = False,
) -> FrameMask:
    """Find the cap and trench walls of a registered slice-and-view stack.

    Parameters
    ----------
    image : ndarray or dask array (z, y, x)
        Registered (drift-corrected) stack, z = milling direction, y = image rows (cap on top).
    max_cap_fraction : float
        The cap's edge is looked for in this top fraction of the rows.
    max_wall_fraction : float
        Each wall is looked for in this fraction of the columns at its side.
    min_contrast : float
        Smallest accepted step (cap) or rim height (walls), as a fraction of the 1–99 % grey range.
    tolerance_px : float
        Largest distance of an edge sample from the fitted straight edge (px) to count as on it.
    min_inliers : float
        Share of samples (columns for the cap, row strips for a wall) that must lie on the line.
    max_slices : int
        Slices averaged (evenly spaced).
    cap_alone : bool
        Accept a cap without a trench wall.  Off by default: a bright, flat current collector
        at the top of the image looks like a cap on its own, while a cap with a trench wall
        below it is unmistakable.

    Returns
    -------
    FrameMask
        ``found`` is False (an all-False mask) when there is no frame.

    Examples
    --------
    >>> from volrecon.sample import make_phantom
    >>> ph = make_phantom("diglyme", slices=6, shape=(160, 160), frame=True, artefacts="none", workers=1)
    >>> fm = find_frame(ph.clean)
    >>> fm.cap is not None and fm.left is not None and fm.right is not None
    True
    """
    mean = _mean_image(image, max_slices)
    rows, cols = mean.shape
    lo, hi = np.percentile(mean, [1, 99])
    grey = float(hi - lo) + 1e-9
    m = ndi.gaussian_filter(mean, 1.0)
    notes: list[str] = []
    mask = np.zeros((rows, cols), bool)
    shell = np.zeros((rows, cols), bool)
    yy = np.arange(rows)[:, None] + 0.5
    xx = np.arange(cols)[None, :] + 0.5

    # --- cap: bright band on top with a straight lower edge
    cap = None
    top = max(8, int(max_cap_fraction * rows))
    d = m[1:top] - m[: top - 1]  # d[i]: step between rows i and i+1
    if d.shape[0] > 4:
        i = np.argmin(d[2:], axis=0) + 2
        pos = np.array([_subpixel_peak(-d[:, c], i[c]) for c in range(cols)]) + 1.0
        step = -d[i, np.arange(cols)]
        fit = _line_fit(pos, np.arange(cols) + 0.5, tolerance_px)
        if fit is not None:
            a, b, share, rms = fit
            edge = a + b * (np.arange(cols) + 0.5)
            above = np.array([mean[: max(1, int(e) - 2), c].mean() for c, e in enumerate(edge)])
            below = np.array([mean[int(e) + 2: int(e) + 8, c].mean() if int(e) + 2 < rows else np.nan
                              for c, e in enumerate(edge)])
            contrast = float(np.nanmedian(above - below)) / grey
            uniform = float(np.median([mean[: max(1, int(e) - 2), c].std() for c, e in enumerate(edge)])) / grey
            if share >= min_inliers and contrast >= min_contrast and np.median(step) / grey >= 0.5 * min_contrast \
                    and uniform < 0.5 * contrast and edge.min() >= 2:
                # each column's own edge where it lies on the line (the cap sits on the specimen's
                # rough top), moved from the steepest step to the edge the cap's rim is centred on
                on = np.isfinite(pos) & (np.abs(pos - edge) < tolerance_px)
                on_cols = np.flatnonzero(on)
                rim = _edge_offset((np.arange(rows) + 0.5)[None, :] - pos[on_cols, None], mean[:, on_cols].T)
                shift, reach = rim if rim is not None else (0.0, 0.0)
                own = np.where(on, pos, edge) + shift
                cap = (a + shift - b * 0.5, b)
                mask |= yy < own[None, :]
                shell |= (yy >= own[None, :]) & (yy - own[None, :] <= reach)
                notes.append(f"cap edge at row {edge.mean() + shift:.1f} (contrast {contrast:.2f}, {share:.0%} columns on "
                             f"the line; " + (f"{-shift:.2f} px above the steepest step, its rim reaching {reach:.1f} px "
                             "into the face)" if rim is not None else "edge not covered: steepest step)"))
            else:
                notes.append(f"no cap: straight-edge share {share:.0%}, contrast {contrast:.2f}")
    y0 = int(np.ceil(mask[:, :].sum(axis=0).max())) + 3 if cap is not None else 0

    # --- walls: a bright rim ridge on each side, straight across the rows below the cap
    walls: dict[str, tuple[float, float] | None] = {"left": None, "right": None}
    if rows - y0 >= 24:
        ridge = m - ndi.uniform_filter1d(m, 9, axis=1, mode="nearest")
        strips = np.array_split(np.arange(y0, rows), 8)
        width = max(6, int(max_wall_fraction * cols))
        for side in ("left", "right"):
            cs = np.arange(0, width) if side == "left" else np.arange(cols - width, cols)
            border = 0 if side == "left" else cols - 1
            pos, height = [], []
            for s in strips:
                prof = ridge[s][:, cs].mean(axis=0)
                k = int(np.argmax(prof))
                # a crest on the image's outermost column is at or beyond it (a wall cut off by
                # the field of view or by the drift crop): its position is unknown, not there
                pos.append(np.nan if cs[k] == border else cs[0] + _subpixel_peak(prof, k))
                height.append(np.nan if cs[k] == border else mean[s][:, cs[k]].mean() - np.median(mean[s]))
            centre = np.array([s.mean() + 0.5 for s in strips])
            fit = _line_fit(np.array(pos), centre, tolerance_px)
            if fit is None:
                continue
            a, b, share, rms = fit
            # cut-off strips count as on the line when the line leaves the image there
            out = np.isnan(pos) & ((a + b * centre - border) * (1 if side == "left" else -1) <= tolerance_px)
            share += float(out.sum()) / len(strips)
            rim = float(np.nanmedian(height)) / grey
            if share >= min_inliers and rim >= min_contrast and abs(b) < 0.2:
                walls[side] = (a, b)
                edge = a + b * yy  # column of the rim's centre per row
                reach = _rim_reach(m, y0, a, b, +1 if side == "left" else -1, span=max(8, min(48, width)))
                below_cap = yy >= (y0 - 3)
                # a column is frame up to half a pixel beyond the rim's crest (the wall's edge, the
                # same on both sides); the rim shell is the specimen beyond it within the rim's reach
                col = xx - 0.5
                sgn = 1.0 if side == "left" else -1.0
                wall = sgn * (col - edge) <= 0.5
                mask |= below_cap & wall
                shell |= below_cap & ~wall & (sgn * (col - edge) <= reach)
                # where the crest lay on the outermost column, that column is lit by the rim
                # whatever the line says: the rim's reach from there is shell
                cut = np.zeros((rows, 1), bool)
                for strip, p in zip(strips, pos):
                    cut[strip] = bool(np.isnan(p))
                shell |= cut & ~wall & (sgn * (col - border) <= reach)
                notes.append(f"{side} wall at column {a + b * rows / 2:.1f} (rim {rim:.2f}, reaching {reach:.1f} px into "
                             f"the face, {share:.0%} strips on the line)")
            else:
                notes.append(f"no {side} wall: straight-ridge share {share:.0%}, rim {rim:.2f}")
    if cap is not None and walls["left"] is None and walls["right"] is None and not cap_alone:
        notes.append("cap-like edge without trench walls ignored (a flat bright layer looks the same); "
                     "pass cap_alone=True or a frame mask if it is the cap")
        cap, mask = None, np.zeros((rows, cols), bool)
    shell &= ~mask
    if not mask.any():
        shell[:] = False
    return FrameMask(mask=mask, cap=cap, left=walls["left"], right=walls["right"], notes=notes, shell=shell)
