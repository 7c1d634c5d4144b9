"""The cathode's narrow pores (necks): which step decides their wrong voxels, and whether the image can tell them (issue 7).

    PYTHONPATH=. python benchmarks/pore_necks.py [--seeds 0,3] [--presets diglyme,carbonate]
        [--stages corrected,oracle] [--cache DIR] [--name pore_necks]

``pore_width_errors.py`` found pores under 40 nm wide (1-3 pixels) missed at 0.6-0.8 voxels per
surface voxel on every draw.  This diagnostic asks which step of ``segment_volume(method="auto")``
loses them and whether any step could keep them.  For each case (seed, preset, correction stage as
in :mod:`pore_seeds`) the cathode's stages are captured (the regional threshold, the particle-edge
rule, the separator contacts, the void split with its edge-rim return, the forward refinement, the
cleanup) and, in the true cathode bulk (:func:`pore_seeds.cathode_rows`),

- every wrong voxel is given to the step that last changed its pore-ness (pore: void or
  electrolyte, against each solid), by kind (true pore read binder / active, true binder / active
  read pore) and by the pore's width (:func:`pore_width_errors.pore_width`; a false pore voxel takes
  the nearest true pore's width);
- each step's moves are counted right and wrong;
- the missed necks read binder are turned, one 3-D piece at a time, into electrolyte in the final
  labels and the forward model's data energy change is computed (:func:`proposal_energies`: the
  fitted :class:`volrecon.segment.forward_refine.ImageModel`, blur, edge rims and shine-through):
  negative means the image prefers the neck.  The same is done for a control, the true binder read
  binder where it is as thin as a neck: a proposal the refinement could make would hold both;
- a straight slot of ``w`` pixels of electrolyte between two walls (binder | binder, binder |
  active, active | active) is drawn with the fitted model and compared with the slot filled with
  binder (:func:`slot_detectability`): ``S`` the summed squared difference over the noise variance
  per pixel of slot length, and the length (pixels times slices) that puts a move of a true slot two
  noise standard deviations from no move (the energy change's mean is ``S L / 2``, its sd
  ``sqrt(S L)``: ``L = 16 / S``).

Writes ``pore_necks.json`` and ``pore_necks.md`` to the results folder.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Mapping

import dask.array as da
import numpy as np
from scipy import ndimage as ndi

from volrecon.phases import PHASES, REGIONS
from volrecon.sample import make_phantom
from volrecon.sample.oracle import oracle_correct
from volrecon.segment import api, segment_volume
from volrecon.segment import forward_refine as fr

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import phantom_args, results_header, save  # noqa: E402
from pore_seeds import _PORE, _in, cathode_rows  # noqa: E402
from pore_width_errors import pore_width, width_class, width_labels  # noqa: E402
from segmentation import real_correct  # noqa: E402

STEPS = ("threshold", "particle edges", "separator contacts", "void split", "forward refinement", "cleanup")
"""The cathode's steps in the order ``segment.api._regional_phases`` runs them."""

_CAPTURED = (("_particle_edges", 0, "threshold", "particle edges"), ("_cathode_voids", 2, "separator contacts", "void split"),
             ("_forward_refined", None, None, "forward refinement"))
"""``(api function, position of its labels argument, step its input closes, step its output closes)``."""

NECK_NM = 40.0
"""Pores narrower than this are necks (the first width class of :mod:`pore_width_errors`)."""

SLOT_WIDTHS_PX = (1, 2, 3, 4, 6)


def captured(preset: str, seed: int, stage: str, args: argparse.Namespace) -> dict[str, Any]:
    """``segment_volume(method="auto")`` of one phantom with the labels after each of :data:`STEPS`,
    the image, the truth and the fitted forward model; cached in ``args.cache`` (npz) when given."""
    cache = Path(args.cache) / f"{preset}_s{seed}_{stage}_{args.slices}x{args.size}_necks.npz" if args.cache else None
    if cache is not None and cache.exists():
        z = np.load(cache, allow_pickle=False)
        return {k: z[k] for k in z.files}
    snaps: dict[str, Any] = {}
    originals = {name: getattr(api, name) for name, *_ in _CAPTURED}

    def spy(name: str, pos: int | None, before: str | None, after: str) -> Any:
        def f(*a: Any, **k: Any) -> Any:
            if before is not None:
                snaps[before] = k["out"] if "out" in k else a[pos]
            snaps[after] = originals[name](*a, **k)
            return snaps[after]
        return f

    ph = make_phantom(preset, slices=args.slices, shape=(args.size, args.size), seed=seed, artefacts="all", frame=True)
    img, truth = (real_correct(ph)[:2]) if stage == "corrected" else (oracle_correct(ph), ph)
    try:
        for name, pos, before, after in _CAPTURED:
            setattr(api, name, spy(name, pos, before, after))
        seg = segment_volume(img, voxel_size_nm=truth.voxel_size_nm, method="auto")
    finally:
        for name, fn in originals.items():
            setattr(api, name, fn)
    out = {k: np.asarray(v.compute() if isinstance(v, da.Array) else v) for k, v in snaps.items()}
    out.update(cleanup=np.asarray(seg.phases), image=np.asarray(img, np.float32), labels=truth.labels,
               regions=truth.regions, vox=np.asarray(truth.voxel_size_nm, float), names=json.dumps(dict(seg.phase_names)),
               model=json.dumps(seg.parameters["forward_refine"]["model"]))
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(cache, **{k: np.asarray(v) for k, v in out.items()})
    return out


def image_model(d: Mapping[str, Any]) -> fr.ImageModel:
    """The fitted forward model of a :func:`captured` case."""
    m = dict(json.loads(str(d)))
    m["levels"] = {int(k): float(v) for k, v in m["levels"].items()}
    for k in ("noise", "shine", "pixel_nm"):
        m[k] = tuple(m[k])
    return fr.ImageModel(**m)


def _pore_state(labels: np.ndarray, names: Mapping[str, int]) -> np.ndarray:
    """``labels`` with void and electrolyte merged (255): what a step changes of the pore."""
    return np.where(_in(labels, names, _PORE), np.uint8(255), labels)


def attribution(case: Mapping[str, Any]) -> dict[str, Any]:
    """The cathode bulk's wrong pore voxels by kind, deciding step and width class, and each step's
    right and wrong pore moves."""
    names = json.loads(str(case["names"]))
    lab, fin = case["labels"], case["cleanup"]
    bulk = cathode_rows(case["regions"])["bulk"]
    tp = _in(lab, PHASES, _PORE)
    fp = _in(fin, names, _PORE)
    wcls = width_class(pore_width(tp, tuple(float(v) for v in case["vox"][1:])))
    states = [_pore_state(case[s], names) for s in STEPS]
    decider = np.zeros(fin.shape, np.int8)
    for i in range(1, len(states)):
        decider[states[i] != states[i - 1]] = i
    nw = len(width_labels())
    kinds = {"pore -> binder": tp & (fin == names["binder"]), "pore -> active": tp & (fin == names["active"]),
             "binder -> pore": (lab == PHASES["binder"]) & fp, "active -> pore": (lab == PHASES["active"]) & fp}
    out: dict[str, Any] = {"pore dice (bulk)": float(2 * (tp & fp & bulk).sum() / ((tp & bulk).sum() + (fp & bulk).sum())),
                           "true pore by width": np.bincount(wcls[tp & bulk], minlength=nw).tolist(), "kinds": {}, "moves": {}}
    for kind, m in kinds.items():
        m = m & bulk
        out["kinds"][kind] = {STEPS[i]: np.bincount(wcls[m & (decider == i)], minlength=nw).tolist() for i in range(len(STEPS))}
    for i in range(1, len(states)):
        was, now = states[i - 1] == 255, states[i] == 255
        to_pore, to_solid = bulk & now & ~was, bulk & was & ~now
        out["moves"][STEPS[i]] = {"to pore right": int((to_pore & tp).sum()), "to pore wrong": int((to_pore & ~tp).sum()),
                                  "to solid right": int((to_solid & ~tp).sum()), "to solid wrong": int((to_solid & tp).sum())}
    return out


def proposal_energies(grey: np.ndarray, labels: np.ndarray, pieces: np.ndarray, model: fr.ImageModel, *,
                      to: int, void: int | None) -> np.ndarray:
    """Data energy change (noise-weighted squared residual of the forward model, as
    :func:`volrecon.segment.forward_refine.refine_labels` counts it) of turning each 3-D connected
    piece of ``pieces`` to ``to`` in ``labels``, the other pieces left as they are.

    Returns
    -------
    ndarray (n, 2)
        Per piece: the energy change (negative: the image prefers the proposal) and its voxels.
    """
    lz, n = ndi.label(pieces)
    energy = np.zeros(n + 1)
    k, nz = model.shine_depth_slices, labels.shape[0]
    for z in range(nz):
        ids = np.unique(lz[z])
        ids = ids[ids > 0]
        if not ids.size:
            continue
        face = fr.void_face(labels[z + k], model, void) if (void is not None and k and z + k < nz) else None
        pred = fr.predict(labels[z], face, model, void)
        var = model.noise[0] + model.noise[1] * np.maximum(pred, 0)
        e0 = (grey[z] - pred) ** 2 / (2 * var)
        for i in ids:
            prop = np.where(lz[z] == i, np.uint8(to), labels[z])
            energy[i] += float(((grey[z] - fr.predict(prop, face, model, void)) ** 2 / (2 * var) - e0).sum())
    return np.stack([energy[1:], np.bincount(lz.ravel(), minlength=n + 1)[1:]], axis=1)


def neck_proposals(case: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`proposal_energies` of the missed necks read binder and of the control (true binder
    read binder, thinner than :data:`NECK_NM`), in the cathode bulk: pieces and voxels the image
    prefers turned to electrolyte."""
    names = json.loads(str(case["names"]))
    lab, fin = case["labels"], case["cleanup"]
    pixel = tuple(float(v) for v in case["vox"][1:])
    bulk = cathode_rows(case["regions"])["bulk"]
    model = image_model(case["model"])
    binder = fin == names["binder"]
    sets = {"missed necks (read binder)": _in(lab, PHASES, _PORE) & (pore_width(_in(lab, PHASES, _PORE), pixel) < NECK_NM),
            "control: thin true binder": (lab == PHASES["binder"]) & (pore_width(binder, pixel) < NECK_NM)}
    out = {}
    for key, m in sets.items():
        e = proposal_energies(case["image"], fin, m & binder & bulk, model, to=names["electrolyte"], void=names.get("void"))
        taken = e[:, 0] < 0
        out[key] = {"pieces": int(len(e)), "voxels": int(e[:, 1].sum()), "preferred pieces": int(taken.sum()),
                    "preferred voxels": int(e[taken, 1].sum()),
                    "energy per voxel p25/p50/p75": np.percentile(e[:, 0] / e[:, 1], [25, 50, 75]).round(3).tolist() if len(e) else []}
    return out


def front_costs(case: Mapping[str, Any]) -> dict[str, Any]:
    """Why the forward refinement does not move the missed necks read binder: how many are on its
    binder -> electrolyte front at all (a binder voxel with an in-plane electrolyte neighbour in the
    labels it refines, :func:`volrecon.segment.forward_refine._front`), and of those how many the
    image prefers as electrolyte voxel by voxel (data + Potts change of the whole front, at the voxel)
    and pooled over the refinement's window (:func:`volrecon.segment.forward_refine.front_window`),
    as :func:`volrecon.segment.forward_refine.refine_labels` decides; the same for the control (true
    binder, thinner than :data:`NECK_NM`, on the front)."""
    names = json.loads(str(case["names"]))
    lab, before = case["labels"], case["void split"]
    pixel = tuple(float(v) for v in case["vox"][1:])
    bulk = cathode_rows(case["regions"])["bulk"]
    model = image_model(case["model"])
    e, b, void = names["electrolyte"], names["binder"], names.get("void")
    contrast, var = fr.boundary_step(model, e, b)
    betas = np.asarray(fr.potts_weights(model, contrast, var, (float(case["vox"][0]), *pixel)), np.float64)
    window = fr.front_window(model, contrast, var)
    cat = case["regions"] == REGIONS["cathode"]  # the true cathode (the refinement edits the detected one)
    front = np.stack([fr._front(before[z], b, e, cat[z]) for z in range(before.shape[0])])
    k, nz = model.shine_depth_slices, before.shape[0]
    faces = [fr.void_face(before[z + k], model, void) if (void is not None and k and z + k < nz) else None for z in range(nz)]
    cost = fr._proposal_costs(np.asarray(case["image"], np.float32), before, faces, [front], [(b, e)], model, void)[0]
    own = cost + fr._front_prior(before, front, b, e, betas)
    pooled = ndi.uniform_filter(own, size=tuple(2 * int(w) + 1 for w in window), mode="constant")
    tp = _in(lab, PHASES, _PORE)
    sets = {"missed necks (read binder)": tp & (pore_width(tp, pixel) < NECK_NM) & (case["cleanup"] == b),
            "control: thin true binder": (lab == PHASES["binder"]) & (pore_width(before == b, pixel) < NECK_NM) & (before == b)}
    out: dict[str, Any] = {"window_vox": list(window)}
    for key, m in sets.items():
        m = m & bulk
        f = m & front
        out[key] = {"voxels": int(m.sum()), "on the front": int(f.sum()), "preferred alone": int((f & (own < 0)).sum()),
                    "preferred pooled": int((f & (pooled < 0)).sum())}
    return out


def slot_detectability(model: fr.ImageModel, names: Mapping[str, int], widths: tuple[int, ...] = SLOT_WIDTHS_PX) -> dict[str, Any]:
    """A straight slot of electrolyte ``w`` pixels wide (along x) between two walls, drawn with
    ``model`` against the same slot filled with binder: the slot's centre grey, ``S`` (summed squared
    difference over the noise variance, per pixel of slot length) and the length ``16 / S`` that
    puts the move two noise standard deviations from none (see the module docstring)."""
    e, b, a = names["electrolyte"], names["binder"], names["active"]
    nx = 64
    out: dict[str, Any] = {}
    for walls, (left, right) in (("binder-binder", (b, b)), ("binder-active", (b, a)), ("active-active", (a, a))):
        rows = []
        for w in widths:
            lo = nx // 2 - w // 2
            wall = np.full((9, nx), left, np.uint8)
            wall[:, lo + w:] = right
            slot, filled = wall.copy(), wall.copy()
            slot[:, lo:lo + w], filled[:, lo:lo + w] = e, b
            p1, p0 = fr.predict(slot, None, model, None)[4], fr.predict(filled, None, model, None)[4]
            var = model.noise[0] + model.noise[1] * np.maximum(0.5 * (p0 + p1), 0)
            s = float(((p1 - p0) ** 2 / var).sum())
            rows.append({"width_px": w, "centre": float(p1[lo + w // 2]), "S": s, "length_2sd": 16.0 / s if s > 0 else float("inf")})
        out[walls] = rows
    return out


def run_case(preset: str, seed: int, stage: str, args: argparse.Namespace) -> dict[str, Any]:
    """The three counts of one case."""
    case = captured(preset, seed, stage, args)
    names = json.loads(str(case["names"]))
    model = image_model(case["model"])
    return {"attribution": attribution(case), "proposals": neck_proposals(case), "fronts": front_costs(case), "slots": slot_detectability(model, names),
            "model": {"levels e/b/a": [model.levels[names[p]] for p in ("electrolyte", "binder", "active")],
                      "psf_sigma_nm": model.psf_sigma_nm, "edge_gain": model.edge_gain}}


def markdown(rows: Mapping[str, Mapping[str, Any]], command: str) -> str:
    """The results page."""
    wl = width_labels()
    lines = results_header("The cathode's necks: the deciding step and what the image can tell", command, __doc__)
    lines += ["Wrong voxels of the true cathode bulk by kind and by the step that last changed their pore-ness; per step, "
              f"the voxels in each width class (nm: {' / '.join(wl)}).", "",
              "| case | bulk pore Dice | kind | " + " | ".join(STEPS) + " |", "|---|---|---|" + "---|" * len(STEPS)]
    for tag, r in rows.items():
        a = r["attribution"]
        for kind, per in a["kinds"].items():
            lines.append(f"| {tag} | {a['pore dice (bulk)']:.4f} | {kind} | " + " | ".join(
                f"{sum(per[s])} ({'/'.join(map(str, per[s]))})" for s in STEPS) + " |")
    lines += ["", "Each step's pore moves in the bulk: to pore right / wrong, to solid right / wrong.", "",
              "| case | " + " | ".join(STEPS[1:]) + " |", "|---|" + "---|" * (len(STEPS) - 1)]
    for tag, r in rows.items():
        mv = r["attribution"]["moves"]
        lines.append(f"| {tag} | " + " | ".join(f"{m['to pore right']} / {m['to pore wrong']}, {m['to solid right']} / {m['to solid wrong']}"
                                               for m in mv.values()) + " |")
    lines += ["", "Proposals with the fitted forward model (3-D pieces turned to electrolyte in the final labels): pieces and voxels, "
              "those the image prefers, and the energy change per voxel (quartiles).", "",
              "| case | set | pieces | voxels | preferred pieces | preferred voxels | energy / voxel p25, p50, p75 |", "|---|---|---|---|---|---|---|"]
    for tag, r in rows.items():
        for key, p in r["proposals"].items():
            lines.append(f"| {tag} | {key} | {p['pieces']} | {p['voxels']} | {p['preferred pieces']} | {p['preferred voxels']} | "
                         f"{', '.join(f'{v:.2f}' for v in p['energy per voxel p25/p50/p75'])} |")
    lines += ["", "The forward refinement's binder -> electrolyte front (on the labels it refines): voxels of each set, those on the "
              "front, those the image prefers as electrolyte alone (the voxel's own data + Potts change) and pooled over the window "
              "(as the refinement decides).", "",
              "| case | window (z, y, x) | set | voxels | on the front | preferred alone | preferred pooled |", "|---|---|---|---|---|---|---|"]
    for tag, r in rows.items():
        fc = r["fronts"]
        for key, c in fc.items():
            if key != "window_vox":
                lines.append(f"| {tag} | {tuple(fc['window_vox'])} | {key} | {c['voxels']} | {c['on the front']} | "
                             f"{c['preferred alone']} | {c['preferred pooled']} |")
    lines += ["", "A slot of electrolyte of width w (pixels, x) between two walls under the fitted model: its centre grey, S per pixel of "
              "slot length, and the slot length (pixels x slices) that puts a move two noise sd from none.", "",
              "| case | levels e / b / a, psf nm, edge gain | walls | " + " | ".join(f"w = {w}" for w in SLOT_WIDTHS_PX) + " |",
              "|---|---|---|" + "---|" * len(SLOT_WIDTHS_PX)]
    for tag, r in rows.items():
        m = r["model"]
        head = f"{' / '.join(f'{v:.3f}' for v in m['levels e/b/a'])}, {m['psf_sigma_nm']:.1f}, {m['edge_gain']:.2f}"
        for walls, cells in r["slots"].items():
            lines.append(f"| {tag} | {head} | {walls} | " + " | ".join(
                f"{c['centre']:.3f}, {c['S']:.2f}, {c['length_2sd']:.0f}" for c in cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = phantom_args(seeds="0,3")
    ap.add_argument("--stages", default="corrected,oracle")
    ap.add_argument("--cache", default="", help="keep each case's captured steps here (npz) and reuse them")
    ap.add_argument("--name", default="pore_necks")
    args = ap.parse_args()
    rows: dict[str, Any] = {}
    for seed in (int(s) for s in args.seeds.split(",")):
        for preset in args.presets.split(","):
            for stage in args.stages.split(","):
                tag = f"{preset} s{seed} {stage}"
                rows[tag] = run_case(preset, seed, stage, args)
                print(tag, f"{rows[tag]['attribution']['pore dice (bulk)']:.4f}", flush=True)
    command = "PYTHONPATH=. python benchmarks/pore_necks.py " + " ".join(sys.argv[1:])
    save(args.name, {"args": vars(args), "rows": rows}, markdown(rows, command))


if __name__ == "__main__":
    main()
