"""SEI thickness along the local interface normal, as a map over the anode surface.

Method (``method="normal_chord"``, the default).  The volume is read as lines along the
stacking axis (one line per map position).  On each line the layer must form one run of voxels
that starts next to the inner material (sodium) and ends next to what lies beyond the layer
(separator, electrolyte, void, ...); a run that touches the frame (cap, trench walls), the volume
edge, or is broken, is not measurable and left out of the map.  The run length ``h`` (voxels x
voxel size along the axis) is the chord of the layer along the axis: each of its two ends is
quantised to the voxel grid independently, so ``h`` is an unbiased estimate of the true chord --
with its zeros: where a film thinner than a voxel falls between two voxel centres, the inner
material meets what lies beyond the layer on the line with no layer voxel between, and that line
is a measured chord of length 0 (left out, such a film would read one voxel wherever it is seen).
Such a line may also be a gap in the layer: a crack through it, a pit in the inner material the
layer does not cover, a patch the segmentation missed.  The two are told apart by the film around
them (see :data:`GAP_RIM_VOXELS`): each connected patch of such lines on the map is a gap where
most of the lines measured around it read two voxels or more, and a film under a voxel otherwise
-- a continuous film does not thin from over one and a half voxels to under one from one line to
the next.  Gaps are left out of the thickness statistics and of the surface heights (the
thickness is the film's where it exists) and reported as the layer's ``coverage``: the share of
the decided lines (measured or gap) that carry the film.

The chord crosses the layer obliquely wherever the inner surface is tilted: with the inner
surface height ``s(p, q)`` (nm) over the map, its unit normal makes the angle ``cos θ =
1 / sqrt(1 + |∇s|²)`` with the axis and the thickness along the normal is ``t = h cos θ`` (exact
for a locally planar layer; the error is second order in the change of ``t`` over one thickness).
``∇s`` is taken on the anisotropic grid (nm / nm) from the inner surface heights smoothed by a
normalised Gaussian of ``smooth_nm`` (default one voxel of the coarser map axis: the heights
are quantised to one voxel; the smoothing removes the staircase, and more of it would flatten
real roughness and bias ``t`` upwards).

The chord of a single line is quantised to one voxel (a scatter of about one voxel length);
the map is therefore resolved at ``map_smooth_nm`` (a normalised Gaussian over the measured
lines, default one voxel of the coarser map axis), which takes that scatter out of the spread
statistics without biasing the mean.

``method="distance"`` keeps the earlier estimate for comparison: two anisotropic Euclidean
distance transforms (from the inner material and from everything beyond the layer); for a layer
voxel ``d_in + d_out`` is a lower bound of the normal thickness at its foot point, the map holds
the largest value on each line minus one voxel (boundaries lie half a voxel beyond the voxel
centres), and voxels nearer to the frame than to either boundary do not count.  It is biased
upwards by the grid (the maximum of quantised values) and loses the lines near the frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import edt
import numpy as np
from scipy import ndimage as ndi

from volrecon.analyze._common import (
    AXIS_NAMES, axis_index, box_slabs, check_volume, json_float, phase_map, read, require_names, voxel_triplet,
)
from volrecon.errors import ParameterError

__all__ = ["GAP_RIM_VOXELS", "ThicknessResult", "sei_thickness", "sei_thickness_slabs"]

GAP_RIM_VOXELS = 2
"""A patch of lines where the inner material meets what lies beyond the layer (no layer voxel
between) is a gap in the layer -- a crack, an uncovered pit, a missed patch -- when most of the
measured lines around it read this many voxels along the stacking axis or more, and a film
thinner than a voxel otherwise.  On such a line the film's chord is under one voxel; next to it
a continuous film reads mostly one voxel (a chord ``h`` between one and two voxels reads two on
a share ``h - 1`` of the lines), so most lines around it reading two or more ask the chord to
grow from under one voxel to over one and a half from one line to the next: the layer's edge,
not its thinning.  The majority, not the mean, so that a few long runs (a speck taken for the
layer) do not turn a thin film's own zeros into gaps.  A gap in a film thinner than about 1.5
voxels cannot be told from its thinning and reads as a chord of zero."""

_METHODS = {
    "normal_chord": "run length of the layer along {axis} x cos(angle between {axis} and the inner "
                    "surface normal); lines touching the frame or the volume edge left out",
    "distance": "max over each line along {axis} of d(inner) + d(beyond layer) - 1 voxel",
}


@dataclass(frozen=True)
class ThicknessResult:
    """Thickness statistics of a layer phase, in nm.

    Attributes
    ----------
    mean, median, std, p05, p95, min, max : float
        Statistics of the thickness map (nan when not measurable; see ``reason``).
    samples : int
        Number of map positions (lines along the stacking axis) measured.
    axis : int
        Stacking axis the map is taken over (the map's axes are the other two).
    thickness_map : ndarray
        Thickness per line (nm, nan where not measured), shape of the volume without ``axis``.
    reason : str or None
        Why nothing was measured (``None`` when statistics are given).
    method : str
        ``"normal_chord"`` or ``"distance"`` (see the module documentation).
    excluded : int
        Lines that cross the layer but were left out (frame, volume edge, broken run).
    gaps : int
        Lines where the inner material meets what lies beyond the layer with no layer between
        and the film measured around them is thick (:data:`GAP_RIM_VOXELS`): cracks, uncovered
        pits, missed patches.  Left out of the statistics; see ``coverage``.
    """

    mean: float
    median: float
    std: float
    p05: float
    p95: float
    min: float
    max: float
    samples: int
    axis: int
    thickness_map: np.ndarray = field(repr=False, compare=False, default_factory=lambda: np.zeros((0, 0)))
    reason: str | None = None
    method: str = "normal_chord"
    excluded: int = 0
    gaps: int = 0

    @property
    def coverage(self) -> float:
        """Share of the decided lines (measured or gap) that carry the layer.

        nan when no line is decided, and for ``method="distance"``, which does not tell gaps.
        """
        decided = self.samples + self.gaps
        return self.samples / decided if decided and self.method == "normal_chord" else float("nan")

    def coverage_dict(self) -> dict[str, Any]:
        """JSON-safe coverage of the inner surface by the layer, with its definition."""
        return {"fraction": json_float(self.coverage), "film_lines": int(self.samples), "gap_lines": int(self.gaps),
                "units": "1 (0-1)",
                "definition": f"share of the decided lines along {AXIS_NAMES[self.axis]} (measured, or gaps) that "
                              "carry the layer; a gap: no layer voxel between the inner material and what lies "
                              f"beyond while most lines around read {GAP_RIM_VOXELS} voxels or more (a crack, an "
                              "uncovered pit, a missed patch), left out of the thickness statistics"}

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe statistics (nm) with the method and the number of lines measured."""
        out: dict[str, Any] = {k: json_float(getattr(self, k))
                               for k in ("mean", "median", "std", "p05", "p95", "min", "max")}
        out.update(samples=int(self.samples), excluded_lines=int(self.excluded), gap_lines=int(self.gaps),
                   map_axes=[AXIS_NAMES[a] for a in range(3) if a != self.axis], units="nm",
                   method=_METHODS[self.method].format(axis=AXIS_NAMES[self.axis]))
        if self.reason:
            out["reason"] = self.reason
        return out


def _empty(axis: int, reason: str, method: str) -> ThicknessResult:
    nan = float("nan")
    return ThicknessResult(nan, nan, nan, nan, nan, nan, nan, 0, axis, reason=reason, method=method)


def _result(tmap: np.ndarray, axis: int, method: str, excluded: int, layer: str, gaps: int = 0) -> ThicknessResult:
    vals = tmap[np.isfinite(tmap)]
    if vals.size == 0:
        return _empty(axis, f"no line crosses the whole {layer!r} layer clear of the frame and the "
                      "volume edge", method)
    return ThicknessResult(
        float(vals.mean()), float(np.median(vals)), float(vals.std()),
        float(np.percentile(vals, 5)), float(np.percentile(vals, 95)),
        float(vals.min()), float(vals.max()), int(vals.size), axis, tmap,
        method=method, excluded=int(excluded), gaps=int(gaps),
    )


def _stacking_axis(lay: np.ndarray, inn: np.ndarray) -> int:
    """Axis along which the centroids of the layer and the inner material differ most."""
    spreads = []
    for a in range(3):
        other = tuple(b for b in range(3) if b != a)
        pl, pi = lay.sum(axis=other), inn.sum(axis=other)
        idx = np.arange(lay.shape[a])
        spreads.append(abs((pl * idx).sum() / pl.sum() - (pi * idx).sum() / pi.sum()) / lay.shape[a])
    return int(np.argmax(spreads))


def _smooth_masked(values: np.ndarray, weight: np.ndarray, sigma: tuple[float, float]) -> np.ndarray:
    """Normalised Gaussian smoothing of ``values`` where ``weight`` is True (nan elsewhere far out)."""
    w = weight.astype(np.float64)
    num = ndi.gaussian_filter(np.where(weight, values, 0.0), sigma, mode="nearest")
    den = ndi.gaussian_filter(w, sigma, mode="nearest")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 1e-3, num / den, np.nan)


@dataclass(frozen=True)
class _LineEnds:
    """Where each line along the stacking axis enters and leaves the layer (maps over the lines).

    ``first``/``last`` are the layer's first and last voxel on the line in index order; the
    ``inner_*``/``beyond_*`` maps say whether the voxel just before ``first`` / just after
    ``last`` is inner material / beyond the layer.  ``inner_first``/``inner_last`` are the inner
    material's first and last voxel, ``bare_before``/``bare_after`` whether the voxel just before
    / after them lies beyond the layer (the inner material meets it with no layer voxel between:
    a film thinner than the voxel there, or a gap in the layer, see :func:`_chord_map`).  The moments (sums of the plane
    index over layer and inner voxels, and their counts) decide which side the inner material
    lies on.  Maps of consecutive slabs of lines concatenate along their first axis.
    """

    n: int
    count: np.ndarray
    first: np.ndarray
    last: np.ndarray
    inner_before: np.ndarray
    inner_after: np.ndarray
    beyond_before: np.ndarray
    beyond_after: np.ndarray
    inner_first: np.ndarray
    inner_last: np.ndarray
    bare_before: np.ndarray
    bare_after: np.ndarray
    moments: np.ndarray  # [sum idx over layer, layer voxels, sum idx over inner, inner voxels] (int64)

    @staticmethod
    def of(lay: np.ndarray, inn: np.ndarray, beyond: np.ndarray, ax: int) -> _LineEnds:
        lay_l, inn_l, out_l = (np.moveaxis(m, ax, -1) for m in (lay, inn, beyond))
        n = lay_l.shape[-1]
        idx = np.arange(n)
        count = lay_l.sum(axis=-1, dtype=np.int64)
        first = np.argmax(lay_l, axis=-1)
        last = n - 1 - np.argmax(lay_l[..., ::-1], axis=-1)

        def at(mask: np.ndarray, where: np.ndarray, ok: np.ndarray) -> np.ndarray:
            return np.take_along_axis(mask, np.clip(where, 0, n - 1)[..., None], -1)[..., 0] & ok

        has_before, has_after = first > 0, last < n - 1
        has_inner = inn_l.any(axis=-1)
        i_first = np.argmax(inn_l, axis=-1)
        i_last = n - 1 - np.argmax(inn_l[..., ::-1], axis=-1)
        moments = np.array([(lay_l * idx).sum(), lay_l.sum(), (inn_l * idx).sum(), inn_l.sum()], np.int64)
        maps = (count, first, last, at(inn_l, first - 1, has_before), at(inn_l, last + 1, has_after),
                at(out_l, first - 1, has_before), at(out_l, last + 1, has_after), i_first, i_last,
                at(out_l, i_first - 1, has_inner & (i_first > 0)), at(out_l, i_last + 1, has_inner & (i_last < n - 1)))
        # C order whatever the axis: the smoothing's rounding then does not depend on how the lines were read
        return _LineEnds(n, *(np.ascontiguousarray(m) for m in maps), moments=moments)

    @staticmethod
    def concat(parts: list[_LineEnds]) -> _LineEnds:
        fields = ("count", "first", "last", "inner_before", "inner_after", "beyond_before", "beyond_after",
                  "inner_first", "inner_last", "bare_before", "bare_after")
        maps = {f: np.concatenate([getattr(p, f) for p in parts]) for f in fields}
        return _LineEnds(parts[0].n, moments=np.sum([p.moments for p in parts], axis=0), **maps)


def _normal_chord(lay: np.ndarray, inn: np.ndarray, beyond: np.ndarray,
                  ax: int, vs: tuple[float, float, float], smooth_nm: float | None,
                  map_smooth_nm: float | None) -> tuple[np.ndarray, int, int]:
    """Thickness map by the normal-corrected chord (see the module documentation)."""
    return _chord_map(_LineEnds.of(lay, inn, beyond, ax), ax, vs, smooth_nm, map_smooth_nm)


_NEIGHBOURS = tuple((dp, dq) for dp in (-1, 0, 1) for dq in (-1, 0, 1) if dp or dq)


def _rim_share(patches: np.ndarray, n: int, measured: np.ndarray, thick: np.ndarray) -> np.ndarray:
    """Share of the ``measured`` lines next to (8-neighbours of) each labelled patch that are ``thick``.

    Each measured line weighs by the number of its neighbours in the patch.  Returns an array of
    ``n + 1`` values indexed by patch label (nan where no measured line touches the patch; index
    0 unused).
    """
    padded = np.pad(patches, 1)
    pq = patches.shape
    hits = np.zeros(n + 1)
    lines = np.zeros(n + 1)
    for dp, dq in _NEIGHBOURS:
        nb = padded[1 + dp:1 + dp + pq[0], 1 + dq:1 + dq + pq[1]]
        rim = measured & (nb > 0)
        hits += np.bincount(nb[rim & thick], minlength=n + 1)
        lines += np.bincount(nb[rim], minlength=n + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return hits / lines


def _sub_voxel_film(bare: np.ndarray, measured: np.ndarray, count: np.ndarray) -> np.ndarray:
    """The ``bare`` lines that are a film thinner than a voxel, not a gap in it.

    ``bare``: the inner material meets what lies beyond the layer with no layer voxel between;
    ``measured``: lines whose layer run of ``count`` voxels is measured.  Each 8-connected patch
    of bare lines is a film whose chord is under one voxel unless more than half of the measured
    lines around it (each weighed by how many of the patch's lines it touches, :func:`_rim_share`)
    read :data:`GAP_RIM_VOXELS` or more; a patch with no measured line around it
    stays a film (nothing says the film around it is thick).
    """
    patches, n = ndi.label(bare, structure=np.ones((3, 3), bool))
    if n == 0:
        return bare
    share = _rim_share(patches, n, measured, count >= GAP_RIM_VOXELS)
    film = ~(share > 0.5)  # nan: no measured line around the patch
    film[0] = False
    return film[patches]


def _chord_map(ends: _LineEnds, ax: int, vs: tuple[float, float, float], smooth_nm: float | None,
               map_smooth_nm: float | None) -> tuple[np.ndarray, int, int]:
    """Thickness map, excluded-line and gap-line counts from the lines' layer ends (inner material first)."""
    n, count = ends.n, ends.count
    mean_lay = ends.moments[0] / max(ends.moments[1], 1)
    mean_inn = ends.moments[2] / max(ends.moments[3], 1)
    if mean_inn > mean_lay:  # read the lines backwards: the layer's last voxel is its first
        first, last = n - 1 - ends.last, n - 1 - ends.first
        before, after = ends.inner_after, ends.beyond_before
        # where the layer would begin on a line without it: next to the inner material's end
        bare_at, bare = n - ends.inner_first, ends.bare_before
    else:
        first, last = ends.first, ends.last
        before, after = ends.inner_before, ends.beyond_after
        bare_at, bare = ends.inner_last + 1, ends.bare_after
    v_ax = vs[ax]
    v_map = tuple(vs[a] for a in range(3) if a != ax)
    crosses = count > 0
    contiguous = (last - first + 1) == count
    # a line where the inner material meets what lies beyond with no layer voxel between is a
    # chord of zero voxels: each end of a chord is quantised independently, and the run length
    # is unbiased only with its zeros (left out, a film thinner than a voxel reads one voxel
    # wherever it is seen) -- unless the film around it is thick: then it is a gap (crack,
    # uncovered pit, missed patch), left out of the map and of the surface heights (an open
    # pit's floor would tilt the normals of the film around it)
    bare = bare & ~crosses
    measured = crosses & contiguous & before & after
    film0 = _sub_voxel_film(bare, measured, count)
    gaps = int((bare & ~film0).sum())
    first = np.where(film0, bare_at, first)
    valid = measured | film0
    # inner surface height (nm) where the inner|layer boundary is seen, smoothed on the map grid
    seen = (crosses & before) | film0
    if not seen.any():
        return np.full(count.shape, np.nan), int(crosses.sum()), gaps
    height = (first - 0.5) * v_ax
    s_nm = max(v_map) if smooth_nm is None else float(smooth_nm)
    sigma = (s_nm / v_map[0], s_nm / v_map[1])
    hs = _smooth_masked(height.astype(np.float64), seen, sigma)
    gp, gq = (np.gradient(hs, v_map[0], axis=0) if hs.shape[0] > 1 else np.zeros_like(hs),
              np.gradient(hs, v_map[1], axis=1) if hs.shape[1] > 1 else np.zeros_like(hs))
    cos_t = 1.0 / np.sqrt(1.0 + gp * gp + gq * gq)
    ok = valid & np.isfinite(cos_t)
    tmap = np.where(ok, count * v_ax * cos_t, np.nan)
    m_nm = s_nm if map_smooth_nm is None else float(map_smooth_nm)
    if m_nm > 0 and ok.any():
        tmap = np.where(ok, _smooth_masked(np.nan_to_num(tmap), ok, (m_nm / v_map[0], m_nm / v_map[1])), np.nan)
    return tmap, int((crosses & ~ok).sum()), gaps


def _distance_sum(lay: np.ndarray, inn: np.ndarray, beyond: np.ndarray, frame: np.ndarray,
                  ax: int, vs: tuple[float, float, float]) -> tuple[np.ndarray, int]:
    """Thickness map by the distance-sum lower bound (see the module documentation)."""
    d_in = edt.edt(~inn, anisotropy=vs, black_border=False, parallel=1).astype(np.float32)
    d_out = edt.edt(~beyond, anisotropy=vs, black_border=False, parallel=1).astype(np.float32)
    t = d_in + d_out
    valid = lay.copy()
    if frame.any():
        d_frame = edt.edt(~frame, anisotropy=vs, black_border=False, parallel=1)
        valid &= d_frame > np.maximum(d_in, d_out)
    t -= np.float32(vs[ax])
    t[~valid] = -np.inf
    tmap = t.max(axis=ax).astype(np.float64)
    tmap[~np.isfinite(tmap)] = np.nan
    crosses = lay.any(axis=ax)
    return tmap, int((crosses & ~np.isfinite(tmap)).sum())


def sei_thickness(
    labels: Any,
    *,
    phase_names: Mapping[str, int] | None = None,
    voxel_size_nm: Any,
    axis: int | str | None = None,
    layer: str = "sei",
    inner: str = "sodium",
    method: str = "normal_chord",
    smooth_nm: float | None = None,
    map_smooth_nm: float | None = None,
) -> ThicknessResult:
    """Normal thickness of the SEI (or another layer phase) over the anode surface.

    Parameters
    ----------
    labels : array_like of int, shape (z, y, x)
        Phase label image (numpy or dask).
    phase_names : mapping, optional
        Phase name -> label value (default vocabulary when omitted); must name ``layer`` and
        ``inner``.  A ``frame`` entry marks voxels that hide the specimen (cap, trench walls).
    voxel_size_nm : float or (float, float, float)
        Voxel size (z, y, x) in nm.
    axis : int or str, optional
        Stacking axis; by default the axis along which the centroids of ``inner`` and
        ``layer`` differ most relative to the volume.
    layer, inner : str
        Phase names of the layer and of the material it grows on.
    method : {"normal_chord", "distance"}
        Thickness estimate (see the module documentation); ``"normal_chord"`` is unbiased on
        the voxel grid and keeps the lines next to the frame.
    smooth_nm : float, optional
        Gaussian scale (nm) of the inner-surface heights used for the normal; default one
        voxel of the coarser map axis (enough to remove the one-voxel staircase; larger scales
        flatten real roughness and bias the thickness upwards).
    map_smooth_nm : float, optional
        Gaussian scale (nm) at which the thickness map is resolved (``normal_chord`` only):
        each run length is quantised to one voxel, so single lines scatter by about a voxel;
        averaging the measured lines around each one over this scale (lines left out do not
        take part) removes that scatter from the spread statistics (std, p05, p95) without
        biasing the mean.  Default: ``smooth_nm``'s default; 0 keeps the raw lines.

    Returns
    -------
    ThicknessResult
        Statistics in nm, with the per-line map (nan where not measured), and the share of
        the inner surface the layer covers (``coverage``; gaps in it are left out of the
        statistics, see the module documentation).

    Raises
    ------
    ParameterError
        ``layer`` or ``inner`` is not a phase name, or ``method`` is unknown.
    InputError
        ``labels`` is not a non-empty 3-D volume.

    Examples
    --------
    >>> import numpy as np
    >>> lab = np.full((4, 20, 6), 2, np.uint8)      # electrolyte
    >>> lab[:, :5] = 6                              # sodium, rows 0-4
    >>> lab[:, 5:8] = 7                             # SEI, 3 rows of 10 nm
    >>> r = sei_thickness(lab, voxel_size_nm=(20, 10, 10), axis="y")
    >>> round(r.mean, 6), r.coverage
    (30.0, 1.0)
    >>> lab[:, 5:8, :2] = 2                         # a crack through the film, 2 of 6 columns
    >>> r = sei_thickness(lab, voxel_size_nm=(20, 10, 10), axis="y")
    >>> round(r.mean, 6), round(r.coverage, 3), r.gaps
    (30.0, 0.667, 8)
    """
    if method not in _METHODS:
        raise ParameterError(f"method={method!r} is not one of {', '.join(sorted(_METHODS))}")
    phases = phase_map(phase_names)
    require_names(phases, [layer, inner], "phase_names")
    lab = check_volume(labels, "labels")
    vs = voxel_triplet(voxel_size_nm)
    lay = lab == phases[layer]
    inn = lab == phases[inner]
    ax = 1 if axis is None else axis_index(axis)
    missing = _missing(bool(lay.any()), bool(inn.any()), True, layer, inner)
    if missing:
        return _empty(ax, missing, method)
    if axis is None:
        ax = _stacking_axis(lay, inn)
    # crop to the layer with a margin of its own extent along the stacking axis
    idx = np.flatnonzero(lay.any(axis=tuple(b for b in range(3) if b != ax)))
    margin = int(idx[-1] - idx[0]) + 3
    sl = tuple(slice(max(0, int(idx[0]) - margin), min(lab.shape[ax], int(idx[-1]) + 1 + margin))
               if a == ax else slice(None) for a in range(3))
    sub = lab[sl]
    lay_s, inn_s = lay[sl], inn[sl]
    frame = sub == phases["frame"] if "frame" in phases else np.zeros(sub.shape, bool)
    beyond = ~(lay_s | inn_s | frame)
    missing = _missing(True, True, bool(beyond.any()), layer, inner)
    if missing:
        return _empty(ax, missing, method)
    gaps = 0
    if method == "normal_chord":
        tmap, excluded, gaps = _normal_chord(lay_s, inn_s, beyond, ax, vs, smooth_nm, map_smooth_nm)
    else:
        tmap, excluded = _distance_sum(lay_s, inn_s, beyond, frame, ax, vs)
    return _result(tmap, ax, method, excluded, layer, gaps)


def _missing(has_layer: bool, has_inner: bool, has_beyond: bool, layer: str, inner: str) -> str | None:
    """Why the layer cannot be measured (``None`` when it can)."""
    if not has_layer:
        return f"no {layer!r} voxels"
    if not has_inner:
        return f"no {inner!r} voxels: the layer has no inner surface to measure from"
    if not has_beyond:
        return f"nothing lies beyond the {layer!r} layer: its outer surface is not in the volume"
    return None


def sei_thickness_slabs(
    labels: Any,
    *,
    planes: slice,
    axis: int | str,
    voxel_size_nm: Any,
    phase_names: Mapping[str, int] | None = None,
    layer: str = "sei",
    inner: str = "sodium",
    smooth_nm: float | None = None,
    map_smooth_nm: float | None = None,
    slab_voxels: int = 4_000_000,
) -> ThicknessResult:
    """:func:`sei_thickness` (``normal_chord``) of the ``planes`` along ``axis``, read slab by slab along z.

    The stacking ``axis`` is y or x, so every line along it lies whole in a slab of planes along
    z: only where each line enters and leaves the layer is kept (maps over the lines), and the
    thickness map is made from them as from the whole crop.  Equal to ``sei_thickness(labels[crop],
    axis=axis)`` (``crop`` the ``planes`` along ``axis``), which is the whole-volume result when
    ``planes`` hold the layer with the margin :func:`sei_thickness` crops to; memory is one slab
    plus the maps.

    Parameters
    ----------
    labels : numpy or dask array of int, shape (z, y, x)
        Phase labels (a dask array is read only slab by slab inside the crop).
    planes : slice
        The planes along ``axis`` to read.
    axis : {1, 2, "y", "x"}
        Stacking axis.
    slab_voxels : int
        Voxels read at once.

    Other parameters are those of :func:`sei_thickness`.

    Raises
    ------
    ParameterError
        ``axis`` is z (the lines would cross the slabs), or a phase name is missing.
    """
    ax = axis_index(axis)
    if ax == 0:
        raise ParameterError("sei_thickness_slabs: axis='z' runs across the slabs; use sei_thickness")
    phases = phase_map(phase_names)
    require_names(phases, [layer, inner], "phase_names")
    vs = voxel_triplet(voxel_size_nm)
    crop = [slice(0, int(labels.shape[0])), slice(0, int(labels.shape[1])), slice(0, int(labels.shape[2]))]
    crop[ax] = slice(*planes.indices(int(labels.shape[ax]))[:2])
    parts: list[_LineEnds] = []
    found = np.zeros(3, bool)  # layer, inner, beyond
    for zs in box_slabs(crop, slab_voxels, labels):
        part = read(labels, (zs, crop[1], crop[2]))
        lay, inn = part == phases[layer], part == phases[inner]
        beyond = ~(lay | inn)
        if "frame" in phases:
            beyond &= part != phases["frame"]
        found |= (lay.any(), inn.any(), beyond.any())
        parts.append(_LineEnds.of(lay, inn, beyond, ax))
    missing = _missing(*(bool(f) for f in found), layer, inner)
    if missing:
        return _empty(ax, missing, "normal_chord")
    tmap, excluded, gaps = _chord_map(_LineEnds.concat(parts), ax, vs, smooth_nm, map_smooth_nm)
    return _result(tmap, ax, "normal_chord", excluded, layer, gaps)
