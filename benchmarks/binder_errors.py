"""Where the cathode's true binder is read as electrolyte, and whether the image says binder there (issue 7).

    PYTHONPATH=. python benchmarks/binder_errors.py [--slices 24 --size 192] [--seeds 0,1]
        [--presets diglyme,carbonate] [--stages corrected,oracle] [--methods auto,classifier]

Binder read as electrolyte opens paths through the cathode's electrolyte (``tau_errors.py``: on the
48x512 diglyme phantom the true solid read as electrolyte, put alone into the truth, lowers the
electrolyte's through-plane tortuosity factor by about a fifth).  For each phantom (``corrected``:
:func:`segmentation.real_correct`; ``oracle``: the oracle-corrected stack) the stack is segmented
(``auto``, and ``classifier`` trained from the truth's synthetic scribbles as :mod:`segmentation` trains it)
and, in the true cathode region, counted:

- the binder lost and gained: true binder read as electrolyte (``b->e``), void, active; true electrolyte,
  void and active read as binder;
- ``b->e`` and ``e->b`` by place along the stacking axis: the :data:`EDGE_ROWS` rows beside the true
  collector (the foil's spill rows: first labels from the unmixed grey, then refined on the forward model
  with the foil at its own level; before session 25 kept out of the refinement),
  the :data:`EDGE_ROWS` rows beside the true separator (with the share the segmentation put in its
  separator region, where the cathode's binder has no class), the bulk between;
- the true binder's share read as electrolyte by its film's in-plane half-width (the largest in-plane
  distance to non-binder within 2 pixels: 1 is a film one or two pixels wide), by in-plane distance
  to the nearest true particle (1: a coat's first voxel) and on bridges (two distinct particles of the
  slice within :data:`BRIDGE_PX` pixels);
- the ``b->e`` voxels outside the foil rows in pieces (8-connected in the slice) the segmentation's
  own fitted forward model (``parameters["forward_refine"]``, :mod:`volrecon.segment.forward_refine`)
  explains better as binder: the data energy (noise-weighted squared residual) with the piece put
  back to binder less the segmentation's, summed over the piece and the pixels within 4 of it;
  ``strong``: below -2 (a piece the refinement's evidence would move if it were proposed).

Writes ``results/binder_errors.json`` and ``.md`` (``VOLRECON_BENCH_RESULTS`` sends them elsewhere).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Mapping

import numpy as np
from scipy import ndimage as ndi

from volrecon.phases import PHASES, REGIONS
from volrecon.sample import make_phantom
from volrecon.sample.oracle import oracle_correct
from volrecon.segment import forward_refine as fr
from volrecon.segment import segment_volume, train_classifier
from volrecon.segment.scribbles import synthetic_scribbles

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import results_header, stage_grid_main  # noqa: E402
from segmentation import dice, real_correct  # noqa: E402

EDGE_ROWS = 3
"""Rows beside the foil and beside the separator counted apart from the bulk."""
BRIDGE_PX = 4
"""In-plane reach (pixels) within which two distinct particles make a binder voxel a bridge's."""
STRONG = -2.0
"""Data energy change (noise units) under which a piece's evidence for binder counts as strong."""
HALF_WIDTHS = (1, 2, 3)
"""Film half-width classes (pixels): 1, 2, 3 and more."""


def _in_plane_distance(mask: np.ndarray) -> np.ndarray:
    """Per slice, the in-plane distance (pixels) to the nearest ``mask`` voxel (large where none)."""
    return np.stack([ndi.distance_transform_edt(~m) if m.any() else np.full(m.shape, 1e3) for m in mask])


def film_half_width(binder: np.ndarray) -> np.ndarray:
    """The binder film's in-plane half-width near each voxel: the largest in-plane distance from binder
    to non-binder within 2 pixels."""
    inner = np.stack([ndi.distance_transform_edt(b) for b in binder])
    return ndi.maximum_filter(inner, size=(1, 5, 5))


def bridges(active: np.ndarray) -> np.ndarray:
    """Voxels with two distinct particles (in-plane components of ``active``) within :data:`BRIDGE_PX`."""
    out = np.zeros(active.shape, bool)
    size = 2 * BRIDGE_PX + 1
    for z, a in enumerate(active):
        cc, _ = ndi.label(a)
        hi = ndi.maximum_filter(cc, size=size)
        lo = ndi.minimum_filter(np.where(cc > 0, cc, np.iinfo(cc.dtype).max), size=size)
        out[z] = (hi > 0) & (hi != lo) & (lo != np.iinfo(cc.dtype).max)
    return out


def edge_rows(regions: np.ndarray, axis: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Distance (rows along ``axis``, 1 = touching) of each voxel to the true collector below it and to the
    true separator above it, per column (large where the column has none)."""
    n = regions.shape[axis]
    row = np.arange(n).reshape([-1 if a == axis else 1 for a in range(regions.ndim)])
    col = regions == REGIONS["collector"]
    sep = regions == REGIONS["separator"]
    first_col = np.expand_dims(np.where(col.any(axis), col.argmax(axis), 10 * n), axis)
    last_sep = np.expand_dims(np.where(sep.any(axis), n - 1 - np.flip(sep, axis).argmax(axis), -10 * n), axis)
    return first_col - row, row - last_sep


def _model(params: Mapping[str, Any]) -> fr.ImageModel | None:
    m = params.get("forward_refine", {}).get("model")
    if m is None:
        return None
    return fr.ImageModel(levels={int(k): float(v) for k, v in m["levels"].items()}, psf_sigma_nm=m["psf_sigma_nm"],
                         edge_gain=m["edge_gain"], noise=tuple(m["noise"]), shine_depth_slices=m["shine_depth_slices"],
                         shine_sigma_nm=m["shine_sigma_nm"], shine=tuple(m["shine"]), pixel_nm=tuple(m["pixel_nm"]))


def piece_evidence(img: np.ndarray, phases: np.ndarray, wrong: np.ndarray, to: int, model: fr.ImageModel,
                   void: int | None) -> tuple[int, int]:
    """Voxels of ``wrong`` (per slice, 8-connected pieces) whose piece the model explains better as ``to``
    (data energy change < 0), and those where it does by more than :data:`STRONG`."""
    better = strong = 0
    k = model.shine_depth_slices
    for z in np.flatnonzero(wrong.any(axis=(1, 2))):
        face = fr.void_face(phases[z + k], model, void) if (void is not None and k and z + k < len(phases)) else None
        before = fr.predict(phases[z], face, model, void)
        after = fr.predict(np.where(wrong[z], np.uint8(to), phases[z]), face, model, void)
        var = model.noise[0] + model.noise[1] * np.maximum(before, 0)
        change = ((img[z] - after) ** 2 - (img[z] - before) ** 2) / (2 * var)
        cc, n = ndi.label(wrong[z], structure=np.ones((3, 3)))
        dist, (iy, ix) = ndi.distance_transform_edt(cc == 0, return_indices=True)
        near = np.where(dist <= 4, cc[iy, ix], 0)
        idx = np.arange(1, n + 1)
        sums = ndi.sum(change, near, idx)
        sizes = ndi.sum(np.ones(cc.shape), cc, idx)
        better += int(sizes[sums < 0].sum())
        strong += int(sizes[sums < STRONG].sum())
    return better, strong


def _shares(key: np.ndarray, true: np.ndarray, lost: np.ndarray, bins: tuple[float, ...]) -> list[list[float]]:
    """Per class of ``key`` (``np.digitize`` by ``bins``): [true voxels, share of them in ``lost``]."""
    n = len(bins) + 1
    tot = np.bincount(np.digitize(key[true], bins), minlength=n)
    bad = np.bincount(np.digitize(key[lost], bins), minlength=n)
    return [[int(t), float(b / t) if t else float("nan")] for t, b in zip(tot, bad)]


def binder_errors(img: np.ndarray, phases: np.ndarray, names: Mapping[str, int], labels: np.ndarray,
                  regions: np.ndarray, seg_regions: np.ndarray, params: Mapping[str, Any]) -> dict[str, Any]:
    """The counts of the module docstring for one segmentation against its truth."""
    cat = regions == REGIONS["cathode"]
    tb, te, tv, ta = (cat & (labels == PHASES[p]) for p in ("binder", "electrolyte", "void", "active"))
    sb, se = phases == names["binder"], phases == names["electrolyte"]
    b2e, e2b = tb & se, te & sb
    dcol, dsep = edge_rows(regions)
    places = {"foil rows": dcol <= EDGE_ROWS, "separator rows": dsep <= EDGE_ROWS,
              "bulk": (dcol > EDGE_ROWS) & (dsep > EDGE_ROWS)}
    out: dict[str, Any] = {
        "binder fraction": [float(sb[cat].mean()), float(tb[cat].mean())],
        "binder dice (cathode)": dice(sb & cat, tb),
        "lost": {"b->e": int(b2e.sum()), "b->v": int((tb & (phases == names["void"])).sum()),
                 "b->a": int((tb & (phases == names["active"])).sum())},
        "gained": {"e->b": int(e2b.sum()), "v->b": int((tv & sb).sum()), "a->b": int((ta & sb).sum())},
        "by place": {p: {"binder": int((tb & m).sum()), "b->e": int((b2e & m).sum()), "e->b": int((e2b & m).sum()),
                         "b->e in seg separator": int((b2e & m & (seg_regions == REGIONS["separator"])).sum())}
                     for p, m in places.items()},
        "half width": _shares(film_half_width(labels == PHASES["binder"]), tb, b2e, tuple(h + 0.5 for h in HALF_WIDTHS)),
        "to particle": _shares(_in_plane_distance(labels == PHASES["active"]), tb, b2e, (1.5, 2.5)),
        "bridge": _shares(bridges(labels == PHASES["active"]).astype(np.uint8), tb, b2e, (0.5,)),
    }
    model = _model(params)
    if model is not None:
        pieces = b2e & ~places["foil rows"]
        better, strong = piece_evidence(np.asarray(img, np.float32), phases, pieces, names["binder"], model, names.get("void"))
        out["evidence"] = {"b->e off the foil rows": int(pieces.sum()), "binder better": better, "strong": strong}
    return out


def _segment(img: np.ndarray, truth: Any, vox: tuple[float, float, float], method: str) -> Any:
    if method == "auto":
        return segment_volume(img, voxel_size_nm=vox, method="auto")
    clf = train_classifier(img, synthetic_scribbles(truth.labels, seed=1), voxel_size_nm=vox, phase_names=PHASES)
    return segment_volume(img, voxel_size_nm=vox, method="classifier", classifier=clf)


def run_case(preset: str, seed: int, stage: str, args: argparse.Namespace) -> dict[str, Any]:
    """Every method of ``--methods`` on one phantom and correction."""
    ph = make_phantom(preset, slices=args.slices, shape=(args.size, args.size), seed=seed, artefacts="all", frame=True)
    img, truth = (real_correct(ph)[:2]) if stage == "corrected" else (oracle_correct(ph), ph)
    row: dict[str, Any] = {"preset": preset, "seed": seed, "stage": stage}
    for method in args.methods.split(","):
        res = _segment(img, truth, ph.voxel_size_nm, method)
        row[method] = binder_errors(img, np.asarray(res.phases), dict(res.phase_names), truth.labels, truth.regions,
                                    np.asarray(res.regions), res.parameters)
    print(row, flush=True)
    return row


def _pct(pairs: list[list[float]]) -> str:
    return " / ".join(f"{100 * s:.0f}" for _, s in pairs)


def table(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    """The results page: counts per case and method."""
    cmd = (f"PYTHONPATH=. python benchmarks/binder_errors.py --slices {args.slices} --size {args.size} --seeds {args.seeds} "
           f"--presets {args.presets} --stages {args.stages} --methods {args.methods}")
    lines = results_header("Where the cathode's binder is read as electrolyte (issue 7)", cmd, __doc__)
    lines += ["Voxels of the true cathode.  Places: b->e / e->b (b->e in the segmentation's separator region).  "
              "Shares (%) of the true binder read as electrolyte: half-width 1 / 2 / 3 / 4+ px; in-plane distance to a "
              "particle 1 / 2 / 3+ px; off / on a bridge.  Evidence: b->e voxels off the foil rows, those whose piece the "
              "fitted model explains better as binder, and by more than 2.", "",
              "| preset | seed | stage | method | binder fraction | binder Dice | b->e / b->v / b->a | e->b / v->b / a->b "
              "| foil rows | separator rows | bulk | half-width | to particle | bridge | evidence |", "|---" * 15 + "|"]
    for r in rows:
        for method in args.methods.split(","):
            m = r[method]
            place = [f"{p['b->e']} / {p['e->b']} ({p['b->e in seg separator']})" for p in m["by place"].values()]
            ev = m.get("evidence")
            evs = f"{ev['b->e off the foil rows']}: {ev['binder better']}, {ev['strong']}" if ev else ""
            lines.append(f"| {r['preset']} | {r['seed']} | {r['stage']} | {method} | {m['binder fraction'][0]:.4f} / "
                         f"{m['binder fraction'][1]:.4f} | {m['binder dice (cathode)']:.3f} | "
                         f"{' / '.join(map(str, m['lost'].values()))} | {' / '.join(map(str, m['gained'].values()))} | "
                         + " | ".join(place) + f" | {_pct(m['half width'])} | {_pct(m['to particle'])} | "
                         f"{_pct(m['bridge'])} | {evs} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    """Command line: :func:`_common.stage_grid_main` plus ``--methods``."""
    sys.argv, methods = _methods_arg(sys.argv)
    stage_grid_main(__doc__, "binder_errors", lambda p, s, st, a: run_case(p, s, st, _with(a, methods)),
                    lambda rows, a: table(rows, _with(a, methods)))


def _methods_arg(argv: list[str]) -> tuple[list[str], str]:
    """``--methods`` taken out of ``argv`` (the shared parser does not know it)."""
    if "--methods" in argv:
        i = argv.index("--methods")
        return argv[:i] + argv[i + 2:], argv[i + 1]
    return argv, "auto,classifier"


def _with(args: argparse.Namespace, methods: str) -> argparse.Namespace:
    args.methods = methods
    return args


if __name__ == "__main__":
    main()
