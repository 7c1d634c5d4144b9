"""What a per-column separator|cathode contact surface could give at most (issue 7).

    PYTHONPATH=. python benchmarks/separator_contact_bound.py [--slices 24 --size 192] [--seeds 0,1]
        [--presets diglyme,carbonate] [--stages corrected,oracle-corrected]

The upper bound of deciding the separator mat's contact with the cathode as a surface (per column)
instead of voxel by voxel: ``segment_volume(..., method="auto")`` run with the found layers, with
the true ``separator|cathode`` surface put in place (``separator_errors.with_true_surfaces``), and
with that surface put in place and :func:`volrecon.segment.regional.separator_contacts` no longer
giving the separator region's voxels to the particles (its ``active`` and ``pore_active`` cuts out
of reach; the lit pore on a particle still read as electrolyte): a contact known per column leaves
no particle voxel in the separator region to find.  The last variant repeats it with the true
``sei|separator`` as well, and one keeps the found surfaces with the particle rule off (what the
rule itself is worth).  Dice of the separator, active and electrolyte phases over the specimen.

Beside the bound, a sketch of the fit (:func:`fitted_contact`, here only, not in the pipeline): per
column, a blurred step with edge-brightening rims (blur and rim ratio of the stack's own
``sodium|sei`` fit) from the mat's level to the cathode's, its two levels fitted by least squares on
the rows round each candidate position within 1.5 rows of the found cut, the fit's misfit pooled
over the neighbouring columns before the best position is taken; kept where the step rises past
half-way from the stack's fibre level to its particle level (``parameters["separator_contacts"]``
of the found run), elsewhere the found cut moved by its fitted neighbours' mean shift.  ``gated``:
the cut moved towards the cathode only where the fitted level before the step is a fibre's (the
mat's last row is fibre, not the SEI or the pore).  The table of the ``separator|cathode`` error
(mean, mean absolute, rows) by what lies either side of the true contact says where it helps.

The stacking axis is the image rows (the phantom's, anode on top).
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
from scipy import ndimage as ndi
from scipy.special import ndtr

from volrecon.phases import PHASES, REGIONS
from volrecon.segment import api, segment_volume

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import phantom_args, results_header, save  # noqa: E402
from segmentation import truth_heights  # noqa: E402
from separator_errors import stacks, with_true_surfaces  # noqa: E402

PHASES_SCORED = ("separator", "active", "electrolyte")

VARIANTS: Mapping[str, tuple[tuple[str, ...], bool]] = {
    "found": ((), True),
    "found, no particle rule": ((), False),
    "true separator|cathode": (("separator|cathode",), True),
    "true separator|cathode, no particle rule": (("separator|cathode",), False),
    "true both, no particle rule": (("sei|separator", "separator|cathode"), False),
}
"""Variant -> (true surfaces put in place, whether ``separator_contacts`` may give voxels to the particles)."""

FITTED: Mapping[str, tuple[bool, bool]] = {
    "fitted": (False, True),
    "fitted, no particle rule": (False, False),
    "gated fit": (True, True),
    "gated fit, no particle rule": (True, False),
}
"""Variant -> (gated, particle rule) of the sketched fit (:func:`fitted_contact`)."""

REACH = 1.5
"""Rows either side of the found cut the fitted contact may lie."""

ROWS = (2, 3)
"""Rows before and after a candidate contact its step is fitted on."""

POOL = (1.0, 2.0)
"""Gaussian sigma (slices, columns) over which the step's misfit is pooled, and the image smoothed
in the layer plane (20 nm)."""

FILL = (2.0, 4.0)
"""Gaussian sigma (slices, columns) of the neighbours' shift given to a column without a step."""

PAIRS = ("separator/active", "electrolyte/active", "sei/active", "electrolyte/electrolyte",
         "separator/electrolyte", "separator/binder", "electrolyte/binder", "electrolyte/void")
"""The (before / after the true contact) phase pairs of the error table."""


def _without_particle_rule() -> Callable[[], Any]:
    """Patch :func:`segment_volume`'s ``separator_contacts`` so that no separator voxel becomes active;
    returns the function that undoes it."""
    orig = api.separator_contacts

    def patched(*a, cuts, **k):
        return orig(*a, cuts={**cuts, "active": np.inf, "pore_active": np.inf}, **k)

    api.separator_contacts = patched

    def undo() -> None:
        api.separator_contacts = orig
    return undo


def _with_surface(move: Callable[[np.ndarray, Any], Any], seen: dict[str, Any]) -> Callable[[], Any]:
    """Patch the layers after the SEI's outer surface with ``move(image, layers)``; the final
    ``separator|cathode`` and ``sei`` edge fit are kept in ``seen``.  Returns the undo."""
    orig = api.sei_outer_surface

    def patched(image, lay, **k):
        lay, info = orig(image, lay, **k)
        seen["edge"] = info.get("edge") or {}
        lay = move(np.asarray(image, np.float32), lay, seen["edge"])
        seen["separator|cathode"] = np.array(lay.heights["separator|cathode"], float)
        return lay, info

    api.sei_outer_surface = patched

    def undo() -> None:
        api.sei_outer_surface = orig
    return undo


def step_misfit(g: np.ndarray, c: np.ndarray, sigma: float, rim_ratio: float, half_width: float,
                rows: tuple[int, int] = ROWS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Least-squares misfit of a blurred, rimmed step at ``c`` (per column, stacking axis last of
    ``g``; voxel ``i``'s centre at ``i + 0.5``) on the ``rows`` before and after it, and the fitted
    levels before and after.  A falling step (no contact with a brighter layer) gets the misfit of a
    flat profile."""
    n = g.shape[-1]
    k = np.floor(c).astype(int)
    idx = np.clip(k[..., None] + np.arange(-rows[0], rows[1]), 0, n - 1)
    y = np.take_along_axis(g, idx, -1)
    x = idx + 0.5 - c[..., None]
    phi = ndtr(x / sigma) + rim_ratio * (ndtr((x + half_width) / sigma) - ndtr((x - half_width) / sigma))
    pm, ym = phi.mean(-1, keepdims=True), y.mean(-1, keepdims=True)
    sxy = ((phi - pm) * (y - ym)).sum(-1)
    b = sxy / np.maximum(((phi - pm) ** 2).sum(-1), 1e-12)
    flat = ((y - ym) ** 2).sum(-1)
    a = ym[..., 0] - b * pm[..., 0]
    return np.where(b > 0, flat - b * sxy, flat), a, a + b


def fitted_contact(image: np.ndarray, found: np.ndarray, edge: Mapping[str, float], levels: Mapping[str, float], *,
                   gated: bool, floor: np.ndarray | None = None) -> np.ndarray:
    """The sketched per-column ``separator|cathode`` fit (see the module notes); image rows are
    the stacking axis, anode first.  ``levels``: the found run's ``fibre_level`` and
    ``active_level``; ``floor``: a height it may not go before (``sei|separator``)."""
    g = np.moveaxis(ndi.gaussian_filter(image, (POOL[0], 0, POOL[1])), 1, -1)
    sigma, rr, w = (float(edge.get(k, d)) for k, d in (("sigma_vox", 1.0), ("rim_ratio", 0.0), ("rim_half_width_vox", 1.0)))
    shifts = np.arange(-REACH, REACH + 1e-6, 0.25)
    fits = [step_misfit(g, found + d, sigma, rr, w) for d in shifts]
    cost = ndi.gaussian_filter(np.stack([f[0] for f in fits], -1), POOL + (0,), mode="nearest")
    best = np.argmin(cost, -1)[..., None]
    before, after = (np.take_along_axis(np.stack([f[i] for f in fits], -1), best, -1)[..., 0] for i in (1, 2))
    fib, act = float(levels["fibre_level"]), float(levels["active_level"])
    shift = shifts[best[..., 0]]
    step = (after >= 0.5 * (fib + act)) & (after - before >= 0.3 * (act - fib))
    num = ndi.gaussian_filter(np.where(step, shift, 0.0), FILL, mode="nearest")
    den = ndi.gaussian_filter(step.astype(float), FILL, mode="nearest")
    shift = np.where(step, shift, np.where(den > 0.05, num / np.maximum(den, 1e-9), 0.0))
    if gated:
        mat = ndi.gaussian_filter(before, POOL, mode="nearest")
        shift = np.where(mat >= fib - 0.5 * (act - fib), shift, np.minimum(shift, 0.0))
    h = found + shift
    return h if floor is None else np.maximum(h, floor)


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    s = int(a.sum() + b.sum())
    return float(2 * (a & b).sum() / s) if s else float("nan")


def _segment(image: np.ndarray, truth, voxel_size_nm, surfaces: tuple[str, ...], rule: bool,
             move: Callable | None = None) -> tuple[Any, dict[str, Any]]:
    seen: dict[str, Any] = {}
    undos = [with_true_surfaces(truth, surfaces)] if surfaces else []
    if not rule:
        undos.append(_without_particle_rule())
    undos.append(_with_surface(move or (lambda im, lay, edge: lay), seen))
    try:
        seg = segment_volume(image, voxel_size_nm=voxel_size_nm, method="auto")
    finally:
        for u in reversed(undos):
            u()
    return seg, seen


def _scores(seg, truth, h: np.ndarray) -> dict[str, Any]:
    spec = truth.regions != REGIONS["frame"]
    ph = np.asarray(seg.phases)
    out: dict[str, Any] = {p: _dice((ph == seg.phase_names[p]) & spec, (truth.labels == PHASES[p]) & spec)
                           for p in PHASES_SCORED}
    out["surface"] = surface_errors(truth, h)
    return out


def surface_errors(truth, h: np.ndarray) -> dict[str, list[float]]:
    """``separator|cathode`` error ``[columns, mean, mean abs]`` (rows) over the columns that are
    specimen from the cap down, all and by the phases either side of the true contact."""
    th, valid = truth_heights(truth)
    k = th["separator|cathode"].astype(int)
    lab = np.asarray(truth.labels)
    z, x = np.nonzero(valid)
    kk = np.clip(k[z, x], 1, lab.shape[1] - 1)
    inv = {v: n for n, v in PHASES.items()}
    pair = np.array([f"{inv[int(a)]}/{inv[int(b)]}" for a, b in zip(lab[z, kk - 1, x], lab[z, kk, x])])
    e = h[z, x] - k[z, x]
    out = {"all": [int(e.size), float(e.mean()), float(np.abs(e).mean())]}
    for p in PAIRS:
        m = pair == p
        if m.any():
            out[p] = [int(m.sum()), float(e[m].mean()), float(np.abs(e[m]).mean())]
    return out


def bound(image: np.ndarray, truth, voxel_size_nm) -> dict[str, dict[str, Any]]:
    """:data:`PHASES_SCORED` Dice and the surface errors for each of :data:`VARIANTS` and :data:`FITTED`."""
    out, levels = {}, None
    for name, (surfaces, rule) in VARIANTS.items():
        seg, seen = _segment(image, truth, voxel_size_nm, surfaces, rule)
        levels = levels or seg.parameters.get("separator_contacts")
        h = np.asarray(seg.interfaces["heights_nm"]["separator|cathode"]) / float(voxel_size_nm[1])
        out[name] = _scores(seg, truth, h)
        print("  ", name, {k: round(v, 4) for k, v in out[name].items() if k != "surface"}, flush=True)
    if levels is None:
        return out
    for name, (gated, rule) in FITTED.items():
        def move(im, lay, edge, gated=gated):
            h = dict(lay.heights)
            h["separator|cathode"] = fitted_contact(im, h["separator|cathode"], edge, levels, gated=gated,
                                                    floor=h.get("sei|separator"))
            return replace(lay, heights=h)
        seg, seen = _segment(image, truth, voxel_size_nm, (), rule, move)
        out[name] = _scores(seg, truth, seen["separator|cathode"])
        print("  ", name, {k: round(v, 4) for k, v in out[name].items() if k != "surface"}, flush=True)
    return out


def markdown(results: Mapping[str, Mapping[str, Mapping[str, Any]]], command: str) -> str:
    lines = results_header("Upper bound of a per-column separator|cathode contact", command, __doc__)
    for tag, r in results.items():
        lines += [f"## {tag}", "", "| variant | " + " | ".join(PHASES_SCORED) + " | separator\\|cathode error (mean, mean abs) |",
                  "|---|" + "---|" * (len(PHASES_SCORED) + 1)]
        lines += [f"| {v.replace('|', chr(92) + '|')} | " + " | ".join(f"{d[p]:.4f}" for p in PHASES_SCORED)
                  + " | {:+.2f}, {:.2f} |".format(*d["surface"]["all"][1:]) for v, d in r.items()]
        show = [v for v in ("found", "fitted", "gated fit") if v in r]
        pairs = [p for p in PAIRS if p in r["found"]["surface"]]
        lines += ["", "separator|cathode error by the phases before / after the true contact (columns; mean, mean abs rows):", "",
                  "| before / after | columns | " + " | ".join(show) + " |", "|---|---|" + "---|" * len(show)]
        for p in pairs:
            lines.append(f"| {p} | {r['found']['surface'][p][0]} | " + " | ".join(
                "{:+.2f}, {:.2f}".format(*r[v]["surface"][p][1:]) for v in show) + " |")
        lines.append("")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = phantom_args()
    ap.add_argument("--stages", default="corrected,oracle-corrected")
    args = ap.parse_args()
    results = {}
    for tag, img, truth, ph in stacks(args):
        print(tag, flush=True)
        results[tag] = bound(img, truth, ph.voxel_size_nm)
    command = "PYTHONPATH=. python benchmarks/separator_contact_bound.py " + " ".join(sys.argv[1:])
    save("separator_contact_bound", {"args": vars(args), "results": results}, markdown(results, command.strip()))


if __name__ == "__main__":
    main()
