"""The milled face's frame: protective-cap edge above the face, trench walls left and right.

The frame does not change with depth, so its edges are an absolute reference for drift: each
slice's edge positions are measured sub-pixel against one common reference profile (never
chained). ``detect_frame`` finds the edges on one slice; ``FrameTracker`` collects a small 1D
profile across each edge per slice during the streaming pass and measures them afterwards.

Edge positions are measured by fitting the reference profile to the slice profile with an
unknown shift, gain and offset (1D Gauss–Newton), so brightness steps and contrast changes do
not move the estimate, and with a Cramér–Rao uncertainty from the fit residual.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage
from scipy.interpolate import CubicSpline

from volrecon.errors import InputError, ParameterError


@dataclass(frozen=True)
class FrameInfo:
    """Where the frame of the milled face is on the reference slice.

    Attributes
    ----------
    shape : tuple of int
        ``(rows, columns)`` of the slice it was detected on.
    cap_edge : float or None
        Row of the cap's lower edge (None: no cap found).
    left_wall, right_wall : float or None
        Column of each trench wall's edge facing the specimen, at the middle row of the face
        below the cap (None: not found / cut off); tapered walls are tilted, see the slopes.
    specimen : tuple of int
        ``(y0, y1, x0, x1)``: the face inside the frame, with a safety margin; everything outside
        it is frame and is excluded from registration by structure, segmentation and analysis.
    cap_slope : float
        Tilt of the cap edge (rows per column).
    left_slope, right_slope : float
        Tilt of each wall (columns per row; tapered trenches have opposite signs).
    contrast : dict
        Edge strength of each found edge in noise sigmas.
    reference_slice : int
        Slice the frame was detected on (0 for a 2D input).
    """

    shape: tuple[int, int]
    cap_edge: float | None
    left_wall: float | None
    right_wall: float | None
    specimen: tuple[int, int, int, int]
    cap_slope: float = 0.0
    left_slope: float = 0.0
    right_slope: float = 0.0
    contrast: dict[str, float] = field(default_factory=dict)
    reference_slice: int = 0

    @property
    def found(self) -> bool:
        """True when at least one frame edge was found."""
        return self.cap_edge is not None or self.left_wall is not None or self.right_wall is not None

    @property
    def walls(self) -> tuple[str, ...]:
        """Names of the walls found (``"left"``, ``"right"``)."""
        return tuple(n for n, v in (("left", self.left_wall), ("right", self.right_wall)) if v is not None)

    def without(self, *edges: str) -> FrameInfo:
        """Copy with the named edges (``"cap"``, ``"left"``, ``"right"``) dropped.

        The specimen box grows to the image border on the side of each dropped edge, so a
        rejected edge no longer hides any of the face from registration or segmentation.
        """
        unknown = set(edges) - {"cap", "left", "right"}
        if unknown:
            raise ParameterError(f"FrameInfo.without: unknown edge(s) {sorted(unknown)}; use cap, left, right")
        y0, y1, x0, x1 = self.specimen
        cap, left, right = self.cap_edge, self.left_wall, self.right_wall
        contrast = {k: v for k, v in self.contrast.items() if k not in edges}
        if "cap" in edges:
            cap, y0 = None, 0
        if "left" in edges:
            left, x0 = None, 0
        if "right" in edges:
            right, x1 = None, self.shape[1]
        return FrameInfo(
            self.shape,
            cap,
            left,
            right,
            (y0, y1, x0, x1),
            self.cap_slope if cap is not None else 0.0,
            self.left_slope if left is not None else 0.0,
            self.right_slope if right is not None else 0.0,
            contrast,
            self.reference_slice,
        )

    def frame_mask(self) -> np.ndarray:
        """Boolean ``(rows, columns)`` mask, True on the frame (outside ``specimen``)."""
        mask = np.ones(self.shape, dtype=bool)
        y0, y1, x0, x1 = self.specimen
        mask[y0:y1, x0:x1] = False
        return mask

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dictionary (pixel units)."""
        return {
            "units": "px",
            "shape": list(self.shape),
            "cap_edge_row": self.cap_edge,
            "left_wall_col": self.left_wall,
            "right_wall_col": self.right_wall,
            "specimen_box": list(self.specimen),
            "cap_slope": self.cap_slope,
            "left_slope": self.left_slope,
            "right_slope": self.right_slope,
            "contrast_sigma": dict(self.contrast),
            "reference_slice": self.reference_slice,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FrameInfo:
        """Inverse of :meth:`to_dict`."""
        return cls(
            shape=tuple(data["shape"]),
            cap_edge=data.get("cap_edge_row"),
            left_wall=data.get("left_wall_col"),
            right_wall=data.get("right_wall_col"),
            specimen=tuple(data["specimen_box"]),
            cap_slope=float(data.get("cap_slope", 0.0)),
            left_slope=float(data.get("left_slope", 0.0)),
            right_slope=float(data.get("right_slope", 0.0)),
            contrast=dict(data.get("contrast_sigma", {})),
            reference_slice=int(data.get("reference_slice", 0)),
        )


def _robust_sigma(values: np.ndarray) -> float:
    med = np.median(values)
    return float(1.4826 * np.median(np.abs(values - med))) + 1e-9


def _median_step(n: int, samples: int = 256) -> int:
    """Stride that leaves about ``samples`` of ``n`` lines for a median profile (plenty for a median)."""
    return max(1, n // samples)


def _pixel_noise(image: np.ndarray) -> float:
    """Robust estimate of the pixel noise sigma (from horizontal neighbour differences)."""
    sample = image[:: max(1, image.shape[0] // 256)]
    return _robust_sigma(np.diff(sample, axis=1).ravel()) / np.sqrt(2.0)


def _strongest_edge(
    profile: np.ndarray, lo: int, hi: int, noise: float, *, outermost: str | None = None, min_step: float = 0.0
) -> tuple[int, float, float]:
    """Strongest step in ``profile[lo:hi]``: index, strength in noise sigmas, and the step.

    Steps are found at the scale of a frame edge (difference of the means of ``w`` samples on
    either side, ``w`` ~ 1.5 % of the profile), so a soft wall ramp beats a sharp particle
    edge; the index is then refined to the steepest point of the ramp. ``noise`` is the noise
    sigma of one profile sample. ``outermost="low"``/``"high"``: take the first step of at least
    ``min_step`` seen from that end (a trench wall is the outermost edge) instead of the largest.
    """
    n = profile.size
    w = max(6, n // 64)
    csum = np.r_[0.0, np.cumsum(profile, dtype=np.float64)]
    idx = np.arange(max(lo, w + 1), min(hi, n - w - 1))
    if idx.size == 0:
        return lo, 0.0, 0.0
    after = (csum[idx + 1 + w] - csum[idx + 1]) / w
    before = (csum[idx - 1] - csum[idx - 1 - w]) / w
    diff = after - before
    k = int(np.argmax(np.abs(diff)))
    if outermost is not None and min_step > 0:
        big = np.flatnonzero(np.abs(diff) >= min_step)
        if big.size:
            # the run of large steps nearest to the requested end, and its largest member
            runs = np.split(big, np.flatnonzero(np.diff(big) > 1) + 1)
            run = runs[0] if outermost == "low" else runs[-1]
            k = int(run[np.argmax(np.abs(diff[run]))])
    centre, step = int(idx[k]), float(diff[k])
    grad = np.abs(np.gradient(ndimage.gaussian_filter1d(profile, 1.5)))
    a, b = max(0, centre - w // 2), min(n, centre + w // 2 + 1)
    i = a + int(np.argmax(grad[a:b]))
    strength = abs(step) / (noise * np.sqrt(2.0 / w) + 1e-9)
    return i, float(strength), step


def _strip_positions(image: np.ndarray, edge: int, axis: int, span: tuple[int, int], strips: int) -> np.ndarray:
    """Edge position (argmax of the gradient near ``edge``) in several strips across ``span``."""
    out = []
    bounds = np.linspace(span[0], span[1], strips + 1).astype(int)
    for a, b in zip(bounds[:-1], bounds[1:]):
        if b - a < 4:
            continue
        # axis=1: strips are column ranges, the profile runs along y; axis=0: the other way round
        prof = image[:, a:b].mean(axis=1) if axis == 1 else image[a:b, :].mean(axis=0)
        lo, hi = max(1, edge - 12), min(len(prof) - 1, edge + 13)
        grad = np.abs(np.gradient(ndimage.gaussian_filter1d(prof, 1.0)))[lo:hi]
        out.append(((a + b) / 2.0, lo + float(np.argmax(grad))))
    return np.asarray(out).reshape(-1, 2)


def _straight_line(
    pos: np.ndarray, *, tolerance: float = 3.0, inliers: float = 0.6
) -> tuple[float, float] | None:
    """Slope and intercept of the line through most strip positions; None when not straight."""
    if len(pos) < 3:
        return None
    i, j = np.triu_indices(len(pos), 1)
    dx = pos[j, 0] - pos[i, 0]
    ok = dx != 0
    slope = float(np.median((pos[j, 1] - pos[i, 1])[ok] / dx[ok]))  # Theil-Sen: robust to outlier strips
    intercept = float(np.median(pos[:, 1] - slope * pos[:, 0]))
    keep = np.abs(pos[:, 1] - (slope * pos[:, 0] + intercept)) <= tolerance
    if keep.sum() < max(3, inliers * len(pos)):
        return None
    slope, intercept = np.polyfit(pos[keep, 0], pos[keep, 1], 1)
    return float(slope), float(intercept)


def _follow_edge(
    image: np.ndarray, start: int, rows: tuple[int, int], strips: int, end: str, min_step: float, reach: int = 16
) -> np.ndarray:
    """``(row, column)`` of a near-vertical wall edge in row strips, followed out from the middle.

    Each strip looks for the step nearest to the frame side (``end``, as ``_strongest_edge``)
    within ``reach`` px of its neighbour's position, so a tilted wall is followed over any
    height (a fixed window around the middle loses its ends); strips without such a step are
    skipped.
    """
    bounds = np.linspace(rows[0], rows[1], strips + 1).astype(int)
    found: dict[int, tuple[float, float]] = {}
    mid = strips // 2
    for order in (range(mid, strips), range(mid - 1, -1, -1)):
        centre = start
        for k in order:
            a, b = bounds[k], bounds[k + 1]
            if b - a < 4:
                continue
            prof = image[a:b].mean(axis=0)
            i, _, step = _strongest_edge(
                prof, max(1, centre - reach), min(prof.size - 1, centre + reach + 1), 1.0, outermost=end, min_step=min_step
            )
            if abs(step) >= min_step:
                centre = i
                found[k] = ((a + b) / 2.0, float(i))
    return np.asarray([found[k] for k in sorted(found)]).reshape(-1, 2)


def _find_wall(
    image: np.ndarray, side: str, rows: tuple[int, int], noise: float, min_step: float, min_sigma: float
) -> tuple[float, float, float] | None:
    """One trench wall: its column at the middle of ``rows``, its tilt, its strength in sigmas.

    Trench walls are tapered, so they are tilted lines: a candidate from the median column
    profile (at half the contrast, the tilt smears it) is followed down the rows in strips,
    a straight line is fitted, and the edge is judged on the profile taken along that line.
    """
    cols = image.shape[1]
    lo, hi = (3, int(0.35 * cols)) if side == "left" else (int(0.65 * cols), cols - 3)
    end = "low" if side == "left" else "high"
    block = image[rows[0] : rows[1] : _median_step(rows[1] - rows[0])]
    profile = np.median(block, axis=0)
    sigma = 1.25 * noise / np.sqrt(block.shape[0])
    for fraction in (1.0, 0.5):  # the tilt smears a wall in the median profile: retry at half
        i, strength, step = _strongest_edge(profile, lo, hi, sigma, outermost=end, min_step=fraction * min_step)
        if strength >= min_sigma and abs(step) >= fraction * min_step:
            break
    else:
        return None
    line = _straight_line(_follow_edge(image, i, rows, 8, end, fraction * min_step))
    if line is None:
        return None
    slope, intercept = line
    mid = (rows[0] + rows[1]) / 2.0
    along = SlantedProfile(image.shape, 1, intercept + slope * mid, mid, slope, rows, int(0.35 * cols))
    prof = along(image)
    valid = np.isfinite(prof)
    if valid.sum() < 16:
        return None
    filled = np.where(valid, prof, np.nanmean(prof))
    centre = (prof.size - 1) // 2
    reach = max(6, cols // 64) + 3
    k, strength, step = _strongest_edge(filled, centre - reach, centre + reach + 1, sigma)
    if strength < min_sigma or abs(step) < min_step:
        return None
    # a wall separates the face from a trench region reaching the image border; a curtain
    # stripe or a fibre has the same grey level on both sides
    u = along.u - along.u[k]
    border = int(np.count_nonzero(valid & ((u < 0) if side == "left" else (u > 0))))
    rim, wide = int(np.clip(border - 3, 2, 6)), max(12, int(0.15 * cols))  # a wall near the border
    frame_side = u < -rim if side == "left" else u > rim
    face_side = (u > rim) & (u <= rim + wide) if side == "left" else (u < -rim) & (u >= -rim - wide)
    outside, inside = prof[frame_side & valid], prof[face_side & valid]
    if outside.size < 3 or inside.size < 3:
        return None
    far = outside[: max(3, outside.size // 3)] if side == "left" else outside[-max(3, outside.size // 3) :]
    level = float(np.median(inside))
    if min(abs(float(np.median(outside)) - level), abs(float(np.median(far)) - level)) < min_step:
        return None  # the trench reaches the border; a stripe or a fibre ends before it
    return along.position + float(along.u[k]), slope, strength


def detect_frame(
    image: np.ndarray,
    *,
    reference: int | None = None,
    min_contrast: float = 0.12,
    min_sigma: float = 8.0,
    margin: float = 0.03,
    cap: bool = True,
    walls: bool = True,
    bottom: int | None = None,
) -> FrameInfo:
    """Find the cap edge and trench walls of the milled face on one slice.

    Parameters
    ----------
    image : ndarray
        One slice ``(y, x)`` or a stack ``(z, y, x)`` (numpy or dask; only one slice is read).
    reference : int, optional
        Slice of a stack to detect on (default: the middle slice).
    min_contrast : float
        Smallest accepted step across an edge, as a fraction of the slice's 1–99 % grey range.
    min_sigma : float
        Smallest accepted edge gradient, in robust noise sigmas of the profile.
    margin : float
        Safety margin (fraction of the slice size, at least 8 px) between an edge and the
        ``specimen`` box, so drift does not carry frame into the box.
    cap, walls : bool
        Look for the cap / the walls.
    bottom : int, optional
        First row of a data bar or other overlay; rows from here on are ignored.

    Returns
    -------
    FrameInfo
        ``found`` is False when neither a cap nor a wall was found.

    Examples
    --------
    >>> from volrecon.correct._registration_synthetic import make_stack
    >>> info = detect_frame(make_stack(3, (200, 200), frame=True).acquired)
    >>> info.cap_edge is not None, info.walls
    (True, ('left', 'right'))
    """
    arr = image
    ref = 0
    if getattr(arr, "ndim", 0) == 3:
        ref = arr.shape[0] // 2 if reference is None else int(reference)
        if not 0 <= ref < arr.shape[0]:
            raise ParameterError(f"detect_frame reference={reference}: outside 0..{arr.shape[0] - 1}")
        arr = arr[ref]
    arr = np.asarray(arr.compute() if hasattr(arr, "compute") else arr, dtype=np.float32)
    if arr.ndim != 2:
        raise InputError(f"detect_frame: need a 2D slice or a 3D stack, got {arr.ndim} dimensions")
    if not np.isfinite(arr).all():
        raise InputError(f"detect_frame: slice {ref} has NaN/inf pixels; fill them first")
    rows, cols = arr.shape
    y_bottom = rows if bottom is None else int(bottom)
    if not 32 <= y_bottom <= rows:
        raise ParameterError(f"detect_frame bottom={bottom}: give a row between 32 and {rows}")
    arr_full, arr = arr, arr[:y_bottom]
    lo_q, hi_q = np.percentile(arr, [1, 99])
    grey = float(hi_q - lo_q) + 1e-9
    pad = lambda n: max(8, int(round(margin * n)))  # noqa: E731
    noise = _pixel_noise(arr)
    contrast: dict[str, float] = {}

    cap_edge, cap_slope = None, 0.0
    if cap:
        centre = arr[:, cols // 4 : 3 * cols // 4 : _median_step(cols // 2)]
        profile = np.median(centre, axis=1)
        i, strength, step = _strongest_edge(profile, 3, int(0.5 * rows), 1.25 * noise / np.sqrt(centre.shape[1]))
        if strength >= min_sigma and abs(step) >= min_contrast * grey:
            pos = _strip_positions(arr, i, 1, (cols // 6, 5 * cols // 6), 8)
            fit = _straight_line(pos)
            if fit is not None:
                cap_edge = float(i)
                cap_slope = fit[0]
                contrast["cap"] = strength

    y_top = int(cap_edge + pad(rows)) if cap_edge is not None else 0
    found: dict[str, tuple[float, float, float]] = {}
    if walls and y_bottom - y_top > 16:
        for name in ("left", "right"):
            wall = _find_wall(arr, name, (y_top, y_bottom - 4), noise, min_contrast * grey, min_sigma)
            if wall is not None:
                found[name] = wall
                contrast[name] = wall[2]
    left, left_slope, right, right_slope = None, 0.0, None, 0.0
    x0, x1 = 0, cols
    mid = (y_top + y_bottom - 4) / 2.0
    if "left" in found:
        left, left_slope = found["left"][0], found["left"][1]
        x0 = int(left + abs(left_slope) * (mid - y_top) + pad(cols))  # its innermost point
    if "right" in found:
        right, right_slope = found["right"][0], found["right"][1]
        x1 = int(right - abs(right_slope) * (mid - y_top) - pad(cols))
    y0 = y_top if cap_edge is not None else 0
    del arr_full
    if x1 - x0 < 16 or y_bottom - y0 < 16:
        raise InputError("detect_frame: the frame leaves less than 16 px of specimen; pass anchor='none'")
    return FrameInfo(
        (rows, cols),
        cap_edge,
        left,
        right,
        (y0, y_bottom, x0, x1),
        cap_slope,
        left_slope,
        right_slope,
        contrast,
        ref,
    )


# --------------------------------------------------------------------------------------------
# per-slice profiles and their absolute measurement


@dataclass(frozen=True)
class EdgeMeasurement:
    """Displacement of one edge in one slice relative to the reference (content moved by +s)."""

    shift: float
    sigma: float


class SlantedProfile:
    """Profile across a straight, possibly tilted edge, averaged along the edge line.

    Every pixel of a band along the edge is assigned its distance ``u`` from the edge line,
    counted along the profile axis, and averaged into 1 px bins. The frame side of a tilted
    edge (``u`` of one sign) is then frame in every row; a fixed-column average of a tilted wall
    instead mixes specimen into the frame side, and the specimen changes from slice to slice.

    Bins are 1 px wide on purpose: finer bins (the slanted-edge method of MTF measurement)
    super-resolve only an edge that is smooth along its length; a wall whose rendered or milled
    boundary steps by whole pixels puts every row of one bin phase at the same step phase,
    and the finer profile then locks shifts to whole pixels.

    Parameters
    ----------
    shape : tuple of int
        ``(rows, columns)`` of the slices.
    axis : int
        Axis the profile runs along: 0 for a horizontal edge (the cap), 1 for a wall.
    position : float
        Coordinate of the edge along ``axis`` at ``pivot``.
    pivot : float
        Coordinate on the other axis where the edge is at ``position``.
    slope : float
        Change of the edge's coordinate per unit of the other coordinate.
    band : tuple of int
        Range of the other coordinate averaged.
    reach : int
        Half-length (px) of the profile.
    """

    def __init__(
        self,
        shape: tuple[int, int],
        axis: int,
        position: float,
        pivot: float,
        slope: float,
        band: tuple[int, int],
        reach: int,
    ) -> None:
        self.axis, self.position, self.pivot, self.slope = axis, float(position), float(pivot), float(slope)
        self.band, self.reach = (int(band[0]), int(band[1])), int(reach)
        size = 2 * self.reach + 1
        along = np.arange(self.band[0], self.band[1], dtype=float)
        # sample b of the profile at along-coordinate t is pixel rint(line(t)) + b - reach
        centre = np.rint(self.position + self.slope * (along - self.pivot)).astype(np.int64)
        limit = shape[axis]
        starts = np.flatnonzero(np.r_[True, np.diff(centre) != 0])
        stops = np.r_[starts[1:], centre.size]
        #: runs of the band sharing one centre: (first, stop) along the band, profile range, pixel range
        self._runs: list[tuple[int, int, int, int, int, int]] = []
        self._count = np.zeros(size)
        for a, b in zip(starts, stops):
            lo, hi = int(centre[a]) - self.reach, int(centre[a]) + self.reach + 1
            p0, p1 = max(lo, 0), min(hi, limit)
            if p1 <= p0:
                continue
            self._runs.append((self.band[0] + int(a), self.band[0] + int(b), p0 - lo, p1 - lo, p0, p1))
            self._count[p0 - lo : p1 - lo] += b - a
        self._gather = None
        if len(self._runs) > 32:  # a steep edge: one gather of every band pixel is cheaper
            offsets = np.arange(size) - self.reach
            pix = centre[:, None] + offsets[None, :]
            other = np.broadcast_to(along.astype(np.int64)[:, None], pix.shape)
            ok = (pix >= 0) & (pix < limit)
            rows, cols = (pix, other) if axis == 0 else (other, pix)
            bins = np.broadcast_to(offsets[None, :] + self.reach, pix.shape)
            self._gather = (np.ravel_multi_index((rows[ok], cols[ok]), shape), bins[ok])
        #: distance (px) of each profile sample from the edge line
        self.u = np.arange(size, dtype=float) - self.reach

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """The profile of one slice (NaN where no pixel of the band falls into a bin)."""
        if self._gather is not None:
            flat, bins = self._gather
            sums = np.bincount(bins, weights=np.take(image, flat), minlength=self.u.size)
        else:
            sums = np.zeros(self.u.size)
            # one block sum per run of equal centre: a few runs for a nearly straight edge
            for a, b, s0, s1, p0, p1 in self._runs:
                block = image[p0:p1, a:b] if self.axis == 0 else image[a:b, p0:p1].T
                sums[s0:s1] += block.sum(axis=1, dtype=np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self._count > 0, sums / self._count, np.nan)


@dataclass(frozen=True)
class _Window:
    """Reach of the fit window on each side of an edge, in px (``lo`` < 0 < ``hi``)."""

    lo: float
    hi: float
    search: float


class _Reference:
    """A reference profile as a spline in ``u`` and its gradient for the coarse search."""

    def __init__(self, u: np.ndarray, profile: np.ndarray) -> None:
        valid = np.isfinite(profile)
        self.ok = int(valid.sum()) >= 8
        if self.ok:
            self.spline = CubicSpline(u[valid], profile[valid])
        self.u = u
        self.profile = profile


def _measure(ref: _Reference, u: np.ndarray, prof: np.ndarray, guess: float, win: _Window) -> EdgeMeasurement | None:
    """Shift of ``prof`` against ``ref`` (coarse search near ``guess``, then the sub-pixel fit)."""
    coarse = _coarse_offset(
        np.gradient(ref.profile),
        np.gradient(prof),
        (u.size - 1) // 2,
        max(3, int(round(max(-win.lo, win.hi)))),
        int(round(guess)),
        int(win.search),
    )
    if coarse is None:
        return None
    fit = _fit_shift(ref.spline, u, prof, float(coarse), win.lo, win.hi)
    if fit is not None and abs(fit.shift - coarse) > 0.5:  # re-centre the window once
        fit = _fit_shift(ref.spline, u, prof, float(round(fit.shift)), win.lo, win.hi)
    return fit


class FrameTracker:
    """Collect per-slice edge profiles while streaming, measure them against a common reference.

    Parameters
    ----------
    info : FrameInfo
        The detected frame.
    search : int
        Largest displacement (px) of an edge from its reference position that can be measured.
    half_width : int, optional
        Reach (px) of the fit window into the frame side of each edge (default scales with
        the slice size: 10 px up to 512 px slices, 24 px at 1024).
    inside : int, optional
        Reach (px) of the fit window into the specimen side (default ``half_width // 6``).
    reference_image : ndarray, optional
        The reference slice; when given, each edge's line (position and tilt) is refined on it
        sub-pixel before profiles are collected, so tilted edges give sharp profiles.

    Attributes
    ----------
    slopes : dict
        Tilt of each edge (the cap: rows per column; a wall: columns per row).
    """

    def __init__(
        self,
        info: FrameInfo,
        *,
        search: int = 64,
        half_width: int | None = None,
        inside: int | None = None,
        reference_image: np.ndarray | None = None,
    ) -> None:
        self.info = info
        rows, cols = info.shape
        # frame edges are soft ramps whose width in pixels grows with the image size
        self.half_width = int(half_width) if half_width is not None else max(10, round(1.5 * max(rows, cols) / 64))
        self.inside = int(inside) if inside is not None else max(3, self.half_width // 6)
        self.search = int(search)
        self.reach = self.search + self.half_width + 4
        y0, y1, x0, x1 = info.specimen
        lines: dict[str, tuple[int, float, float, tuple[int, int]]] = {}
        # name -> (profile axis, position, slope, band over the other axis)
        if info.cap_edge is not None:
            cx0 = x0 + (cols // 20 if info.left_wall is not None else 0)
            cx1 = x1 - (cols // 20 if info.right_wall is not None else 0)
            lines["cap"] = (0, info.cap_edge, info.cap_slope, (cx0, cx1))
        # walls: only rows below the cap (with a margin for the drift), where every row shows wall
        ry0 = y0 if info.cap_edge is not None else rows // 40
        ry1 = y1 - rows // 20
        if info.left_wall is not None and ry1 - ry0 >= 16:
            lines["wall_left"] = (1, info.left_wall, info.left_slope, (ry0, ry1))
        if info.right_wall is not None and ry1 - ry0 >= 16:
            lines["wall_right"] = (1, info.right_wall, info.right_slope, (ry0, ry1))
        self.profilers: dict[str, SlantedProfile] = {}
        for name, (axis, pos, slope, band) in lines.items():
            pivot = (band[0] + band[1]) / 2.0
            if reference_image is not None:
                image = np.asarray(reference_image, dtype=np.float32)
                pos, slope = self._refine_line(image, name, axis, pos, pivot, slope, band)
            self.profilers[name] = SlantedProfile(info.shape, axis, pos, pivot, slope, band, self.reach)
        self.slopes = {name: p.slope for name, p in self.profilers.items()}
        self.profiles: dict[str, dict[int, np.ndarray]] = {name: {} for name in self.profilers}

    def _window(self, name: str, search: float | None = None) -> _Window:
        """Fit window: ``half_width`` px into the frame, ``inside`` px into the specimen.

        The specimen's content changes from slice to slice; the frame side does not.
        """
        reach = float(self.search if search is None else search)
        if {"cap": -1, "wall_left": -1, "wall_right": 1}[name] < 0:
            return _Window(-float(self.half_width), float(self.inside), reach)
        return _Window(-float(self.inside), float(self.half_width), reach)

    def _refine_line(
        self, image: np.ndarray, name: str, axis: int, pos: float, pivot: float, slope: float, band: tuple[int, int]
    ) -> tuple[float, float]:
        """Sub-pixel position and tilt of an edge on one slice.

        The band is cut into blocks; each block's profile is measured against the whole
        band's profile and a straight line fitted to the block positions (outlier blocks,
        e.g. where a particle touches the wall, dropped). Then the window is centred on the
        steepest point of the edge.
        """
        win = self._window(name, search=self.half_width)
        reach = 3 * self.half_width + 4  # the coarse search of a block: template and search range
        bounds = np.linspace(band[0], band[1], 9).astype(int)
        for _ in range(3):
            whole = SlantedProfile(image.shape, axis, pos, pivot, slope, band, reach)
            ref = _Reference(whole.u, whole(image))
            if not ref.ok:
                return pos, slope
            centres, shifts, sigmas = [], [], []
            for a, b in zip(bounds[:-1], bounds[1:]):
                part = SlantedProfile(image.shape, axis, pos, pivot, slope, (a, b), reach)
                m = _measure(ref, part.u, part(image), 0.0, win)
                if m is not None:
                    centres.append((a + b) / 2.0 - pivot)
                    shifts.append(m.shift)
                    sigmas.append(m.sigma)
            if len(shifts) < 4:
                break
            c, s, w = np.array(centres), np.array(shifts), 1.0 / np.array(sigmas) ** 2
            keep = np.ones(c.size, bool)
            for _ in range(2):
                fit = np.polyfit(c[keep], s[keep], 1, w=np.sqrt(w[keep]))
                resid = s - np.polyval(fit, c)
                # a weighted fit can leave most residuals on one side: judge them around their median
                centred = resid - np.median(resid[keep])
                kept = np.abs(centred) <= max(3 * _robust_sigma(resid[keep]), 0.1)
                if kept.sum() < 2:  # every block rejected: keep the previous fit's blocks
                    break
                keep = kept
            pos, slope = pos + float(fit[1]), slope + float(fit[0])
            if abs(fit[0]) * (band[1] - band[0]) < 0.05 and abs(fit[1]) < 0.05:
                break
        # centre the window on the steepest point of the now sharp edge
        whole = SlantedProfile(image.shape, axis, pos, pivot, slope, band, reach)
        prof = whole(image)
        near = np.abs(whole.u) <= self.half_width / 2
        grad = np.abs(np.gradient(ndimage.gaussian_filter1d(np.nan_to_num(prof, nan=np.nanmean(prof)), 1.0)))
        grad[~near | ~np.isfinite(prof)] = -1.0
        return pos + float(whole.u[int(np.argmax(grad))]), slope

    def collect(self, z: int, image: np.ndarray) -> None:
        """Store the profiles across each edge of slice ``z`` (a full-resolution slice)."""
        for name, profiler in self.profilers.items():
            self.profiles[name][z] = profiler(image)

    def measure(self, slices: list[int], *, passes: int = 2) -> dict[str, dict[int, EdgeMeasurement]]:
        """Measure every collected profile against a common reference profile.

        The first pass uses the reference slice's profile; later passes use the average of all
        profiles aligned by the previous pass (less noise, still one common reference).
        """
        results: dict[str, dict[int, EdgeMeasurement]] = {}
        for name, profiler in self.profilers.items():
            profs = self.profiles[name]
            zs = [z for z in slices if z in profs]
            if not zs:
                results[name] = {}
                continue
            ref_z = self.info.reference_slice if self.info.reference_slice in profs else zs[len(zs) // 2]
            reference = profs[ref_z]
            found: dict[int, EdgeMeasurement] = {}
            for _ in range(passes):
                found = self._measure_all(profiler.u, reference, profs, zs, name)
                reference = _average(profiler.u, profs, found)
                if reference is None:
                    break
            results[name] = found
        return results

    def _measure_all(
        self, u: np.ndarray, reference: np.ndarray, profs: dict[int, np.ndarray], zs: list[int], name: str
    ) -> dict[int, EdgeMeasurement]:
        ref = _Reference(u, reference)
        if int(np.isfinite(reference).sum()) < 2 * self.half_width + 4:
            return {}
        win = self._window(name)
        out: dict[int, EdgeMeasurement] = {}
        guess = 0.0
        for z in zs:
            fit = _measure(ref, u, profs[z], guess, win)
            if fit is None:
                continue
            out[z] = fit
            guess = fit.shift
        return out


def _average(u: np.ndarray, profs: dict[int, np.ndarray], found: dict[int, EdgeMeasurement]) -> np.ndarray | None:
    """Mean of the profiles aligned by ``found``, each matched in gain/offset to their median."""
    if len(found) < 3:
        return None
    stack = []
    for z, m in found.items():
        prof = profs[z]
        ok = np.isfinite(prof)
        if ok.sum() < 8:
            continue
        stack.append(np.interp(u + m.shift, u[ok], prof[ok], left=np.nan, right=np.nan))
    if len(stack) < 3:
        return None
    arr = np.asarray(stack)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        base = np.nanmedian(arr, axis=0)
    good = np.isfinite(base)
    norm = []
    for row in arr:
        ok = good & np.isfinite(row)
        if ok.sum() < 8:
            continue
        # normalise gain/offset so a brightness step does not smear the average
        g, o = np.polyfit(row[ok], base[ok], 1)
        norm.append(g * row + o)
    if not norm:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(np.asarray(norm), axis=0)


def _coarse_offset(
    ref_grad: np.ndarray, grad: np.ndarray, centre: int, half: int, guess: int, search: int
) -> int | None:
    """Integer displacement maximising the normalised correlation of edge-gradient profiles.

    Only samples inside the image in both profiles count (an edge near the image border is
    still measured from its visible side). Displacements near ``guess`` (the previous slice)
    win unless a clearly better match lies further away.
    """
    lo, hi = centre - 2 * half, centre + 2 * half + 1
    shifts = np.arange(-search, search + 1)
    shifts = shifts[(lo + shifts >= 0) & (hi + shifts <= grad.size)]
    if shifts.size == 0 or lo < 0:
        return None
    template = ref_grad[lo:hi]
    windows = np.lib.stride_tricks.sliding_window_view(grad, hi - lo)[lo + shifts]
    ok = np.isfinite(windows) & np.isfinite(template)[None, :]
    count = ok.sum(axis=1)
    t = np.where(ok, template[None, :], 0.0)
    w = np.where(ok, windows, 0.0)
    safe = np.maximum(count, 1)
    t = np.where(ok, t - (t.sum(1) / safe)[:, None], 0.0)
    w = np.where(ok, w - (w.sum(1) / safe)[:, None], 0.0)
    score = (t * w).sum(1) / (np.sqrt((t * t).sum(1) * (w * w).sum(1)) + 1e-12)
    score[count < 2 * half + 1] = -np.inf
    near = np.abs(shifts - guess) <= 8
    if near.any() and np.max(score[near]) > 0.6 and np.max(score[near]) >= np.max(score) - 0.1:
        k = int(np.argmax(np.where(near, score, -np.inf)))
    else:
        k = int(np.argmax(score))
    return int(shifts[k]) if score[k] > 0.3 else None


def _fit_shift(
    spline: CubicSpline, u: np.ndarray, prof: np.ndarray, coarse: float, lo: float, hi: float
) -> EdgeMeasurement | None:
    """Gauss–Newton fit of ``prof(u) = g * ref(u - s) + o`` around the edge; returns s and sigma.

    The window ``coarse + [lo, hi]`` (px) reaches far into the frame side of the edge but only
    a few px into the specimen, whose content changes from slice to slice.
    """
    sel = (u >= coarse + lo) & (u <= coarse + hi) & np.isfinite(prof)
    y = u[sel]
    if y.size < 6:
        return None
    data = prof[sel]
    s = float(coarse)
    ref = spline(y - s)
    g, o = np.polyfit(ref, data, 1) if np.ptp(ref) > 0 else (1.0, 0.0)
    for _ in range(8):
        ref = spline(y - s)
        dref = spline(y - s, 1)
        resid = data - (g * ref + o)
        jac = np.column_stack([-g * dref, ref, np.ones_like(ref)])
        try:
            delta = np.linalg.solve(jac.T @ jac, jac.T @ resid)
        except np.linalg.LinAlgError:
            return None
        s += float(np.clip(delta[0], -1.0, 1.0))
        g += float(delta[1])
        o += float(delta[2])
        if abs(delta[0]) < 1e-4:
            break
    ref = spline(y - s)
    dref = spline(y - s, 1)
    resid = data - (g * ref + o)
    jac = np.column_stack([-g * dref, ref, np.ones_like(ref)])
    dof = max(len(y) - 3, 1)
    try:
        cov = np.linalg.inv(jac.T @ jac) * float(resid @ resid) / dof
    except np.linalg.LinAlgError:
        return None
    sigma = float(np.sqrt(max(cov[0, 0], 0.0)))
    if not np.isfinite(sigma) or abs(s - coarse) > 2 or g <= 0.2 or g > 5:
        return None
    return EdgeMeasurement(s, max(sigma * 1.5, 0.003))
