"""Which segmentation errors move the cathode electrolyte's tortuosity factor (issue 7).

    PYTHONPATH=. python benchmarks/tau_errors.py [--slices 24 --size 192] [--seeds 0,1] [--presets diglyme,carbonate]
        [--stages corrected,oracle] [--cache DIR] [--name tau_errors]

On the benchmark's phantoms (``segmentation.py``'s grid; ``corrected``: :func:`segmentation.real_correct`,
``oracle``: the oracle-corrected stack), ``segment_volume(method="auto")`` labels the stack and the
through-plane tortuosity factor of the cathode's electrolyte is solved as the pipeline solves it
(:func:`volrecon.analyze.analyze_volume`'s box on the truth's own regions, the same solver and axis) on

- the truth, and the segmentation as the pipeline reads it (``seg, own box``: its own regions and box);
- the segmentation's electrolyte in the truth's box (``seg``);
- hybrids, the truth with one class of the segmentation's errors put in: ``+false void`` (true
  electrolyte the segmentation calls void taken out), ``+missed void`` (true void it calls electrolyte
  put in), ``+elec->solid`` (true electrolyte it calls binder or active taken out), ``+solid->elec``
  (true solid it calls electrolyte put in).

The hybrid whose error is nearest the segmentation's carries the overshoot.  Also per case: the
cathode's void Dice, void fraction / truth, false void and the electrolyte's fraction / truth (true
cathode region).  ``--cache`` keeps each case's labels (``.npz``), keyed by the volrecon source's git
description, so the table can be redrawn without segmenting again.

Writes ``results/tau_errors.json`` and ``results/tau_errors.md`` (``VOLRECON_BENCH_RESULTS`` moves them).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np

import volrecon
from volrecon.analyze import analyze_volume, tortuosity
from volrecon.phases import PHASES, REGIONS
from volrecon.sample import make_phantom
from volrecon.sample.oracle import oracle_correct
from volrecon.segment import segment_volume

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import results_header, stage_grid_main  # noqa: E402
from segmentation import dice, real_correct  # noqa: E402

HYBRIDS = ("truth", "seg", "+false void", "+missed void", "+elec->solid", "+solid->elec")
_PORE = (PHASES["void"], PHASES["electrolyte"])


def _analyse(labels: np.ndarray, regions: np.ndarray, vs: tuple[float, float, float]) -> Any:
    return analyze_volume(labels, regions, voxel_size_nm=vs, phase_names=PHASES, region_names=REGIONS,
                          pore_size=False, marching_cubes=False, workers=1)


def _through_tau(res: Any) -> float:
    if not res.tortuosity.get("electrolyte"):
        raise RuntimeError("tau_errors: no electrolyte tortuosity in the analysis (the electrolyte does not percolate?)")
    per_axis = res.tortuosity["electrolyte"]
    return float(per_axis[str(res.through_plane_axis)].tortuosity_factor)


def _segment(preset: str, seed: int, stage: str, args: argparse.Namespace) -> tuple[np.ndarray, Any]:
    """The segmentation's labels in ``PHASES`` codes and regions in ``REGIONS`` codes, and the truth."""
    ph = make_phantom(preset, slices=args.slices, shape=(args.size, args.size), seed=seed, artefacts="all",
                      frame=True)
    img, truth = (real_correct(ph)[:2] if stage == "corrected" else (oracle_correct(ph), ph))
    key = Path(args.cache or ".") / f"{args.tag}_{preset}_{seed}_{stage}_{args.slices}x{args.size}.npz"
    if args.cache and key.exists():
        z = np.load(key)
        return np.stack([z["labels"], z["regions"]]), truth
    res = segment_volume(img, voxel_size_nm=ph.voxel_size_nm, method="auto")
    phases, regions = np.asarray(res.phases), np.asarray(res.regions)
    lab = np.zeros(phases.shape, np.uint8)
    for name, v in res.phase_names.items():
        lab[phases == v] = PHASES[name]
    reg = np.zeros(regions.shape, np.uint8)
    for name, v in res.region_names.items():
        reg[regions == v] = REGIONS[name]
    if args.cache:
        key.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(key, labels=lab, regions=reg)
    return np.stack([lab, reg]), truth


def hybrid_masks(t: np.ndarray, s: np.ndarray) -> dict[str, np.ndarray]:
    """The electrolyte masks of the truth ``t``, the segmentation ``s`` and the hybrids (``PHASES`` codes)."""
    et, es = t == PHASES["electrolyte"], s == PHASES["electrolyte"]
    t_solid, s_solid = ~np.isin(t, _PORE), ~np.isin(s, _PORE)
    return {"truth": et, "seg": es,
            "+false void": et & (s != PHASES["void"]),
            "+missed void": et | ((t == PHASES["void"]) & es),
            "+elec->solid": et & ~s_solid,
            "+solid->elec": et | (t_solid & es)}


def run_case(preset: str, seed: int, stage: str, args: argparse.Namespace) -> dict[str, Any]:
    """One phantom and correction stage: the electrolyte's through-plane tau on truth, segmentation, hybrids."""
    (lab, reg), truth = _segment(preset, seed, stage, args)
    vs = tuple(truth.voxel_size_nm)
    tl, tr = np.asarray(truth.labels), np.asarray(truth.regions)
    true_res, seg_res = _analyse(tl, tr, vs), _analyse(lab, reg, vs)
    tp = true_res.through_plane_axis
    taus, own = ({name: float(tortuosity(m, axis=tp, voxel_size_nm=vs).tortuosity_factor)
                  for name, m in hybrid_masks(tl[box], lab[box]).items()}
                 for box in (tuple(slice(a, b) for a, b in r.cathode_box) for r in (true_res, seg_res)))
    cat = tr == REGIONS["cathode"]
    tv, sv = (tl == PHASES["void"]) & cat, (lab == PHASES["void"]) & cat
    n = max(int(cat.sum()), 1)
    row = {"preset": preset, "seed": seed, "stage": stage, "axis": int(tp), "box": true_res.cathode_box,
           "seg_box": seg_res.cathode_box, "tau_seg_box": own,
           "tau_truth_analysis": _through_tau(true_res), "tau_seg_own_box": _through_tau(seg_res), "tau": taus,
           "void_dice": dice(sv, tv), "void_fraction": [float(sv.sum()) / n, float(tv.sum()) / n],
           "false_void": float((sv & ~tv).sum()) / n,
           "electrolyte_fraction": [float(((lab == PHASES["electrolyte"]) & cat).sum()) / n,
                                    float(((tl == PHASES["electrolyte"]) & cat).sum()) / n],
           "pore_dice": dice(np.isin(lab, _PORE) & cat, np.isin(tl, _PORE) & cat)}
    print(preset, seed, stage, {k: round(v, 3) for k, v in taus.items()}, "own box", round(row["tau_seg_own_box"], 3),
          "void Dice", round(row["void_dice"], 4), flush=True)
    return row


def table(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    """The results page."""
    command = "PYTHONPATH=. python benchmarks/tau_errors.py " + " ".join(sys.argv[1:])
    head = ("| preset | seed | stage | " + " | ".join(HYBRIDS) + " | seg, own box | void Dice | void fraction / truth | "
            "false void | electrolyte / truth | pore Dice (cathode) |")
    lines = results_header("Which errors move the cathode electrolyte's tortuosity (issue 7)", command, __doc__) + [
        f"volrecon: `{args.tag}`. Through-plane tortuosity factor of the cathode electrolyte; in brackets the "
        "error against the truth.", "", head, "|" + "---|" * (len(HYBRIDS) + 9)]
    for r in rows:
        t0 = r["tau"]["truth"]
        cells = [f"{r['tau'][h]:.2f}" + ("" if h == "truth" else f" ({100 * (r['tau'][h] / t0 - 1):+.0f} %)")
                 for h in HYBRIDS]
        own = r["tau_seg_own_box"]
        lines.append(f"| {r['preset']} | {r['seed']} | {r['stage']} | " + " | ".join(cells) +
                     f" | {own:.2f} ({100 * (own / r['tau_truth_analysis'] - 1):+.0f} %) | {r['void_dice']:.3f} | "
                     f"{r['void_fraction'][0]:.3f} / {r['void_fraction'][1]:.3f} | {r['false_void']:.4f} | "
                     f"{r['electrolyte_fraction'][0]:.3f} / {r['electrolyte_fraction'][1]:.3f} | {r['pore_dice']:.3f} |")
    lines += ["", "The same in the segmentation's own box (as the pipeline measures it; truth and hybrids cut to that box):",
              "", "| preset | seed | stage | seg box | " + " | ".join(HYBRIDS) + " |", "|" + "---|" * (len(HYBRIDS) + 4)]
    for r in rows:
        t0 = r["tau_seg_box"]["truth"]
        cells = [f"{r['tau_seg_box'][h]:.2f}" + ("" if h == "truth" else f" ({100 * (r['tau_seg_box'][h] / t0 - 1):+.0f} %)")
                 for h in HYBRIDS]
        box = " ".join(f"{a}-{b}" for a, b in r["seg_box"])
        lines.append(f"| {r['preset']} | {r['seed']} | {r['stage']} | {box} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _version() -> str:
    import subprocess

    src = Path(volrecon.__file__).resolve().parents[1]
    out = subprocess.run(["git", "-C", str(src), "describe", "--always", "--dirty"], capture_output=True, text=True)
    return out.stdout.strip() or src.name


def cached_grid_main(doc: str, name: str, run: Callable[..., dict[str, Any]],
                     page: Callable[[list[dict[str, Any]], argparse.Namespace], str], **kw: Any) -> None:
    """:func:`_common.stage_grid_main` with ``--cache DIR`` and ``--tag NAME`` (the cache's key, default the
    volrecon source's git description) read here and handed to ``run(preset, seed, stage, args)`` and
    ``page(rows, args)`` in ``args``."""
    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("--cache", default=None)
    ap.add_argument("--tag", default=None)
    known, rest = ap.parse_known_args()
    sys.argv = [sys.argv[0], *rest]
    tag = known.tag or _version()

    def case(preset: str, seed: int, stage: str, args: argparse.Namespace) -> dict[str, Any]:
        args.cache, args.tag = known.cache, tag
        return run(preset, seed, stage, args)

    def tagged(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
        args.tag = tag
        return page(rows, args)

    stage_grid_main(doc, name, case, tagged, **kw)


def main() -> None:
    """``--cache DIR`` and ``--tag NAME`` (:func:`cached_grid_main`); the phantom grid, stages and ``--name``
    are :func:`_common.stage_grid_main`'s."""
    cached_grid_main(__doc__, "tau_errors", run_case, table)


if __name__ == "__main__":
    main()
