"""Which binder read as electrolyte moves the cathode electrolyte's tortuosity factor (issue 7).

    PYTHONPATH=. python benchmarks/tau_binder.py [--slices 48 --size 256] [--seeds 1] [--presets diglyme]
        [--stages corrected,oracle] [--cache DIR] [--tag NAME] [--name tau_binder]

``tau_errors.py`` puts each class of the segmentation's errors alone into the truth; its ``+solid->elec``
(true solid labelled electrolyte) lowered the diglyme electrolyte's through-plane tortuosity factor by a
fifth on the pipeline's 48x512 phantom.  Here that class is split: the truth's electrolyte plus the true
active read as electrolyte (``+a->e``), plus the true binder read as electrolyte (``+b->e``), and the
latter by place and kind (:mod:`binder_errors`' classes): in the :data:`binder_errors.EDGE_ROWS` rows beside
the foil or the separator, in the bulk; by the binder film's in-plane half-width (1, 2, 3+ px); on a
coat (in-plane distance 1 to a particle) or farther; on a bridge between two particles.  Solved as
``tau_errors.py`` solves it (the truth's cathode box, the analysis's through-plane axis); the labels come
from ``tau_errors.py``'s cache when ``--cache`` holds them (same key).

Writes ``results/tau_binder.json`` and ``.md`` (``VOLRECON_BENCH_RESULTS`` sends them elsewhere).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from volrecon.analyze import tortuosity
from volrecon.phases import PHASES

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import results_header  # noqa: E402
from binder_errors import EDGE_ROWS, _in_plane_distance, bridges, edge_rows, film_half_width  # noqa: E402
from tau_errors import _analyse, _segment, cached_grid_main  # noqa: E402

HYBRIDS = ("truth", "+a->e", "+b->e", "foil rows", "separator rows", "bulk", "half-width 1", "half-width 2",
           "half-width 3+", "coat", "off coat", "bridge")


def binder_hybrids(t: np.ndarray, s: np.ndarray, regions: np.ndarray) -> dict[str, np.ndarray]:
    """The truth's electrolyte (``t``, ``PHASES`` codes) with one class of the segmentation ``s``'s
    solid -> electrolyte errors put in, per name of :data:`HYBRIDS` (the binder's classes: ``+b->e`` there)."""
    et, es = t == PHASES["electrolyte"], s == PHASES["electrolyte"]
    b2e = (t == PHASES["binder"]) & es
    dcol, dsep = edge_rows(regions)
    hw = film_half_width(t == PHASES["binder"])
    near = _in_plane_distance(t == PHASES["active"]) <= 1.5
    kinds = {"+b->e": b2e, "foil rows": dcol <= EDGE_ROWS, "separator rows": dsep <= EDGE_ROWS,
             "bulk": (dcol > EDGE_ROWS) & (dsep > EDGE_ROWS), "half-width 1": hw <= 1.5,
             "half-width 2": (hw > 1.5) & (hw <= 2.5), "half-width 3+": hw > 2.5, "coat": near, "off coat": ~near,
             "bridge": bridges(t == PHASES["active"])}
    out = {"truth": et, "+a->e": et | ((t == PHASES["active"]) & es)}
    out.update({k: et | (b2e & m) for k, m in kinds.items()})
    return out


def run_case(preset: str, seed: int, stage: str, args: argparse.Namespace) -> dict[str, Any]:
    """One phantom and correction: the through-plane tau of every hybrid and the voxels each adds."""
    (lab, _), truth = _segment(preset, seed, stage, args)
    vs = tuple(truth.voxel_size_nm)
    tl, tr = np.asarray(truth.labels), np.asarray(truth.regions)
    res = _analyse(tl, tr, vs)
    box = tuple(slice(a, b) for a, b in res.cathode_box)
    # classed on the whole arrays: the foil and the separator lie outside the cathode's box
    hybrids = {k: m[box] for k, m in binder_hybrids(tl, lab, tr).items()}
    et = hybrids["truth"]
    row = {"preset": preset, "seed": seed, "stage": stage, "box": res.cathode_box,
           "tau": {k: float(tortuosity(m, axis=res.through_plane_axis, voxel_size_nm=vs).tortuosity_factor)
                   for k, m in hybrids.items()},
           "voxels": {k: int((m & ~et).sum()) for k, m in hybrids.items()}}
    print(row, flush=True)
    return row


def table(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    """The results page: tau per hybrid (change against the truth), and the voxels each adds."""
    cmd = (f"PYTHONPATH=. python benchmarks/tau_binder.py --slices {args.slices} --size {args.size} --seeds {args.seeds} "
           f"--presets {args.presets} --stages {args.stages}")
    lines = results_header("Which binder read as electrolyte moves the electrolyte's tau (issue 7)", cmd, __doc__)
    lines += [f"volrecon: {args.tag}.  Through-plane tortuosity factor of the cathode electrolyte, the truth with one "
              "class put in (change against the truth; voxels added).", "",
              "| preset | seed | stage | " + " | ".join(HYBRIDS) + " |", "|---" * (3 + len(HYBRIDS)) + "|"]
    for r in rows:
        t0 = r["tau"]["truth"]
        cells = [f"{r['tau']['truth']:.2f}"] + [f"{r['tau'][k]:.2f} ({100 * (r['tau'][k] / t0 - 1):+.1f} %; {r['voxels'][k]})"
                                                for k in HYBRIDS[1:]]
        lines.append(f"| {r['preset']} | {r['seed']} | {r['stage']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    """``--cache DIR`` and ``--tag NAME`` as ``tau_errors.py``'s (:func:`tau_errors.cached_grid_main`)."""
    cached_grid_main(__doc__, "tau_binder", run_case, table, seeds="1")


if __name__ == "__main__":
    main()
