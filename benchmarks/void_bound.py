"""What void Dice the cathode's void split can reach on the phantoms, and where it loses (issue 7).

    PYTHONPATH=. python benchmarks/void_bound.py [--slices 24 --size 192] [--seeds 0,1] [--presets diglyme,carbonate]

Two kinds of figures, per preset and seed, on the benchmark's phantoms (``segmentation.py``: all
artefacts, the face's frame, 24x192x192 by default):

**Geometry ceilings** (the truth alone, no image): the void Dice of

- the truth sampled on a grid shifted by half a voxel along z, y, x, and all three at once (the
  specimen rendered again at the shifted points): what a segmentation that places every boundary
  right to within half a voxel loses to sampling alone;
- the truth eroded by one voxel (its surface shell missed) and dilated by one voxel;
- the truth without its pieces under N voxels (face-connected): a perfect split that cannot see
  pieces that small;
- the *dark core* ``V(z) & V(z + D)`` (``D`` the shine-through depth in slices; the slices beyond the
  stack rendered from the specimen): the only void whose face shows empty space behind it, i.e.
  darker than any filled pore; and that core continued along +z through the void by ``D`` slices
  (an ideal shine-through tail): the ceiling of a split that grows only from dark cores along the
  milling direction.  What it misses are voids shallower than ``D`` and the sideways rims where
  the void narrows with depth;
- the *resolved* core: the dark core where it is at least twice the shine-through blur wide (an
  in-plane opening by a disk of the blur's sigma, the phantom's ``shine_blur_nm``; narrower, the
  bright walls blurred into it lift it to the electrolyte grey or above), continued as above, and
  that core also widened by the split's outer ring (``VoidCues.grow_nm``) *within the true void*
  before it is continued: a ring that never oversteps, so an upper bound of a split that finds
  voids from cores it can see.

**The split on an image ladder** (``segment_volume(method="auto")``, the pipeline's default): the
clean image with shine-through and probe blur only; the clean image with edge brightening too (the
full phantom's ideal face); that image with the detector's Poisson-Gaussian noise and 8-bit
quantisation (no other artefact); the oracle-corrected acquisition (all artefacts; curtains and
noise left); that acquisition denoised (``volrecon.correct.denoise``, non-local means, as
``volrecon correct --denoise nl_means``); the real correction stage's output.  Each rung's void Dice, and its errors split by
class, each sized by the void Dice the stack would have were that class right (the truth put in
its place):

- missed void by the label given (electrolyte, binder, active, other), by whether the voxel is on
  the void's surface shell (a face neighbour not void) or inside, and by whether it lies in the
  ideal core-and-tail (a dark core within ``D`` slices in front of it, through void) or not;
- missed void in pieces under 10 voxels;
- false void by the true phase, and by whether it is next to the true void (within one voxel, 3D
  face-and-edge neighbours) or not.

Writes ``results/void_bound.json`` and ``results/void_bound.md`` (``VOLRECON_BENCH_RESULTS`` moves
them).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
from scipy import ndimage as ndi

from volrecon.correct.denoise import denoise
from volrecon.phases import PHASES, REGIONS
from volrecon.sample import make_phantom
from volrecon.sample import artefacts as A
from volrecon.sample.oracle import oracle_correct
from volrecon.sample.phantom import plan_phantom
from volrecon.sample.render import Plan
from volrecon.segment import segment_volume
from volrecon.segment.voids import VoidCues, continue_down

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import results_header, save  # noqa: E402
from segmentation import real_correct  # noqa: E402

PIECE_SIZES = (2, 10, 100, 1000)
"""Piece sizes (voxels, face-connected) below which the truth's pieces are dropped for a ceiling."""

SMALL_PIECE = 10
"""Pieces under this many voxels are counted apart among the missed void."""

LABELS = ("electrolyte", "binder", "active")


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice of two masks (nan when both are empty)."""
    s = int(a.sum()) + int(b.sum())
    return float(2 * int((a & b).sum()) / s) if s else float("nan")


def _void(labels: np.ndarray, regions: np.ndarray) -> np.ndarray:
    return (labels == PHASES["void"]) & (regions != REGIONS["frame"])


def render_void(plan: Plan, z_index: range, offset_nm: tuple[float, float, float]) -> np.ndarray:
    """True void of slices ``z_index`` sampled at points shifted by ``offset_nm`` (z, y, x) from the
    phantom's grid (frame voxels excluded), from the plan's specimen."""
    dz, dy, dx = offset_nm
    h = plan.halo
    cut = (slice(h, -h if h else None), slice(h, -h if h else None))
    out = []
    for k in z_index:
        g = plan.specimen.render(plan.grid.z_nm(k) + dz, plan.ys_halo + dy, plan.xs_halo + dx)
        lab, reg = g.labels[cut][plan._crop], g.regions[cut][plan._crop]
        out.append(_void(lab, reg))
    return np.stack(out)


def piece_sizes(mask: np.ndarray) -> np.ndarray:
    """Size (voxels) of the face-connected piece each voxel of ``mask`` belongs to (0 outside)."""
    lab, n = ndi.label(mask)
    sizes = np.bincount(lab.ravel(), minlength=n + 1)
    sizes[0] = 0
    return sizes[lab]


def surface(mask: np.ndarray) -> np.ndarray:
    """Voxels of ``mask`` with a face neighbour outside it (the array's border does not count)."""
    return mask & ~ndi.binary_erosion(mask, border_value=1)


def core_and_tail(void: np.ndarray, beyond: np.ndarray, depth: int) -> tuple[np.ndarray, np.ndarray]:
    """Dark core ``V(z) & V(z + depth)`` (``beyond``: the ``depth`` slices after the stack) and that
    core continued along +z through the void by ``depth`` slices."""
    full = np.concatenate([void, beyond])
    core = void & full[depth: depth + void.shape[0]]
    return core, continue_down(core, void, depth)


def geometry_ceilings(plan: Plan, void: np.ndarray) -> dict[str, Any]:
    """The truth-only void Dice figures (module docstring)."""
    vz, vy, vx = plan.voxel_nm
    zs = range(void.shape[0])
    out: dict[str, Any] = {"voxels": int(void.sum())}
    sizes = piece_sizes(void)
    lab, n = ndi.label(void)
    out["pieces"] = int(n)
    out["surface_share"] = float(surface(void).sum() / max(void.sum(), 1))
    if not np.array_equal(render_void(plan, zs, (0.0, 0.0, 0.0)), void):
        raise RuntimeError("the specimen rendered again on the phantom's own grid is not its truth")
    shifts = {"z": (0.5 * vz, 0, 0), "y": (0, 0.5 * vy, 0), "x": (0, 0, 0.5 * vx), "zyx": (0.5 * vz, 0.5 * vy, 0.5 * vx)}
    out["half_voxel_shift"] = {k: dice(void, render_void(plan, zs, off)) for k, off in shifts.items()}
    out["erode_1"] = dice(void, ndi.binary_erosion(void))
    out["dilate_1"] = dice(void, ndi.binary_dilation(void))
    out["without_pieces_under"] = {str(n_): dice(void, void & (sizes >= n_)) for n_ in PIECE_SIZES}
    out["void_share_in_pieces_under"] = {str(n_): float((void & (sizes < n_)).sum() / max(void.sum(), 1)) for n_ in PIECE_SIZES}
    depth = plan.shine_slices
    beyond = render_void(plan, range(void.shape[0], void.shape[0] + depth), (0.0, 0.0, 0.0))
    core, tail = core_and_tail(void, beyond, depth)
    out["shine_slices"] = int(depth)
    out["dark_core"] = dice(void, core)
    out["core_and_tail"] = dice(void, tail)
    # a core narrower than twice the shine-through blur is lifted by the bright walls blurred into it
    blur_nm, ring_nm = plan.art.shine_blur_nm, VoidCues().grow_nm
    seen = ndi.binary_opening(core, _disk(blur_nm, plan.voxel_nm))
    ringed = seen | (ndi.binary_dilation(seen, _disk(ring_nm, plan.voxel_nm)) & void)
    out["resolved_blur_nm"], out["ring_nm"] = float(blur_nm), float(ring_nm)
    out["resolved_core_and_tail"] = dice(void, continue_down(seen, void, depth))
    out["resolved_core_ring_and_tail"] = dice(void, continue_down(ringed, void, depth))
    return out


def _disk(radius_nm: float, voxel_nm: tuple[float, float, float]) -> np.ndarray:
    """In-plane elliptic disk of ``radius_nm`` on the ``(y, x)`` pixels, as a ``(1, ny, nx)`` structure."""
    ry, rx = (max(float(radius_nm) / float(v), 1e-9) for v in voxel_nm[1:])
    hy, hx = int(ry), int(rx)
    yy, xx = np.ogrid[-hy:hy + 1, -hx:hx + 1]
    return ((yy / ry) ** 2 + (xx / rx) ** 2 <= 1.0)[None]


def _dice_if_fixed(pred: np.ndarray, truth: np.ndarray, cls: np.ndarray) -> float:
    """Void Dice were the voxels of ``cls`` given their true answer."""
    fixed = np.where(cls, truth, pred)
    return dice(fixed, truth)


def error_classes(phases: np.ndarray, names: dict[str, int], labels: np.ndarray, void: np.ndarray,
                  ideal: np.ndarray) -> dict[str, dict[str, float]]:
    """Missed and false void voxels by class, each with its count (share of the true void) and the
    void Dice were that class right (module docstring)."""
    pred = (phases == names["void"]) & (labels != PHASES["frame"])
    missed, false = void & ~pred, pred & ~void
    shell = surface(void)
    near = ndi.binary_dilation(void, np.ones((3, 3, 3), bool))
    small = piece_sizes(void) < SMALL_PIECE
    classes: dict[str, np.ndarray] = {}
    for p in LABELS:
        classes[f"missed: labelled {p}"] = missed & (phases == names.get(p, -1))
    classes["missed: labelled other"] = missed & ~np.isin(phases, [names.get(p, -1) for p in LABELS])
    classes["missed: surface shell"] = missed & shell
    classes["missed: inside"] = missed & ~shell
    classes["missed: in ideal core+tail"] = missed & ideal
    classes["missed: outside core+tail"] = missed & ~ideal
    classes[f"missed: pieces < {SMALL_PIECE} vox"] = missed & small
    for p in LABELS:
        classes[f"false: truly {p}"] = false & (labels == PHASES[p])
    classes["false: next to true void"] = false & near
    classes["false: away from true void"] = false & ~near
    n = max(int(void.sum()), 1)
    return {k: {"voxels": int(m.sum()), "share_of_void": float(m.sum() / n), "dice_if_fixed": _dice_if_fixed(pred, void, m)}
            for k, m in classes.items()}


def _noisy(clean: np.ndarray, art: A.Artefacts, seed: int) -> np.ndarray:
    """The clean image through the detector's noise and 8-bit quantisation only (no shading, gain 1, offset 0),
    in the clean image's units."""
    rng = np.random.default_rng([seed, 909])
    ones = np.ones(clean.shape[1:], np.float32)
    art = A.Artefacts.only("noise", "quantise", noise_photons=art.noise_photons, read_noise=art.read_noise)
    return np.stack([A.detector(s, ones, 1.0, 0.0, art, rng) for s in clean]).astype(np.float32) / np.float32(255.0)


def rungs(preset: str, ph: Any, args: argparse.Namespace) -> list[tuple[str, Callable[[], tuple[np.ndarray, tuple[slice, slice]]]]]:
    """The image ladder: (name, function returning the image and the in-plane box of the truth it covers)."""
    full = (slice(None), slice(None))

    def shine_only() -> tuple[np.ndarray, tuple[slice, slice]]:
        ph0 = make_phantom(preset, slices=args.slices, shape=(args.size, args.size), seed=args.seed,
                           artefacts="shine_through,foreshortening", frame=True)
        if not np.array_equal(ph0.labels, ph.labels):
            raise RuntimeError("the shine-through-only phantom has another specimen than the full one")
        return np.asarray(ph0.clean, np.float32), full

    def corrected() -> tuple[np.ndarray, tuple[slice, slice]]:
        img, tr, _ = real_correct(ph)
        h, w = tr.labels.shape[1:]
        # the drift crop's box within the phantom's grid, from the cropped truth
        y0, x0 = _find_box(ph.labels, tr.labels)
        return img, (slice(y0, y0 + h), slice(x0, x0 + w))

    return [
        ("clean, shine-through + probe blur", shine_only),
        ("clean, + edge brightening", lambda: (np.asarray(ph.clean, np.float32), full)),
        ("clean + noise (8-bit)", lambda: (_noisy(np.asarray(ph.clean, np.float32), ph.artefacts, args.seed), full)),
        ("oracle-corrected (all artefacts)", lambda: (oracle_correct(ph), full)),
        ("oracle-corrected, denoised (non-local means)", lambda: (np.asarray(denoise(oracle_correct(ph), method="nl_means"),
                                                                             np.float32), full)),
        ("corrected (all artefacts)", corrected),
    ]


def _find_box(labels: np.ndarray, cropped: np.ndarray) -> tuple[int, int]:
    """Top-left corner of ``cropped`` within ``labels`` (the drift crop)."""
    h, w = cropped.shape[1:]
    for y0 in range(labels.shape[1] - h + 1):
        for x0 in range(labels.shape[2] - w + 1):
            if np.array_equal(labels[:, y0:y0 + h, x0:x0 + w], cropped):
                return y0, x0
    raise RuntimeError("the corrected truth is not a crop of the phantom's truth")


def measure(preset: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """Geometry ceilings and the ladder for one phantom."""
    args = argparse.Namespace(**{**vars(args), "seed": seed})
    plan = plan_phantom(preset, slices=args.slices, shape=(args.size, args.size), seed=seed, artefacts="all", frame=True)
    ph = make_phantom(preset, slices=args.slices, shape=(args.size, args.size), seed=seed, artefacts="all", frame=True)
    vox = ph.voxel_size_nm
    void = _void(ph.labels, ph.regions)
    row: dict[str, Any] = {"preset": preset, "seed": seed, "voxel_size_nm": list(vox),
                           "geometry": geometry_ceilings(plan, void), "ladder": {}}
    beyond = render_void(plan, range(void.shape[0], void.shape[0] + plan.shine_slices), (0.0, 0.0, 0.0))
    ideal = core_and_tail(void, beyond, plan.shine_slices)[1]
    for name, make in rungs(preset, ph, args):
        t0 = time.perf_counter()
        img, (ys, xs) = make()
        res = segment_volume(img, voxel_size_nm=vox, method="auto")
        phases = np.asarray(res.phases)
        lab, v, idl = ph.labels[:, ys, xs], void[:, ys, xs], ideal[:, ys, xs]
        pred = (phases == res.phase_names["void"]) & (ph.regions[:, ys, xs] != REGIONS["frame"])
        pore_t = np.isin(lab, [PHASES["void"], PHASES["electrolyte"]])
        pore_p = np.isin(phases, [res.phase_names["void"], res.phase_names["electrolyte"]])
        spec = ph.regions[:, ys, xs] != REGIONS["frame"]
        row["ladder"][name] = {
            "void_dice": dice(pred, v), "pore_dice": dice(pore_p & spec, pore_t & spec),
            "void_measured": int(pred.sum()), "void_true": int(v.sum()),
            "errors": error_classes(phases, res.phase_names, lab, v, idl), "seconds": time.perf_counter() - t0}
        print(f"{preset} seed {seed} {name}: void Dice {row['ladder'][name]['void_dice']:.3f}", flush=True)
    return row


def _f(x: float) -> str:
    return "nan" if x != x else f"{x:.3f}"


def summary(rows: list[dict[str, Any]]) -> list[str]:
    """One line per preset: the goal against the ceilings and the split's figures, seeds side by side."""
    out = []
    for preset in dict.fromkeys(r["preset"] for r in rows):
        rs = [r for r in rows if r["preset"] == preset]

        def each(get: Callable[[dict[str, Any]], float]) -> str:
            return " / ".join(_f(get(r)) for r in rs)

        corr = "corrected (all artefacts)"
        out.append(
            f"- **{preset}** (seeds {' / '.join(str(r['seed']) for r in rs)}): a segmentation right to within half a "
            f"voxel everywhere reaches {each(lambda r: r['geometry']['half_voxel_shift']['zyx'])}; one growing from the "
            f"dark cores along the milling direction at best {each(lambda r: r['geometry']['core_and_tail'])} (the dark "
            f"cores alone {each(lambda r: r['geometry']['dark_core'])}; from the cores at least twice the shine-through blur "
            f"wide, widened by a ring that never oversteps, {each(lambda r: r['geometry']['resolved_core_ring_and_tail'])}); "
            f"the split on the clean image with noise "
            f"{each(lambda r: r['ladder']['clean + noise (8-bit)']['void_dice'])}, on the corrected stack "
            f"{each(lambda r: r['ladder'][corr]['void_dice'])}; were its missed void outside the ideal core and tail "
            f"found, {each(lambda r: r['ladder'][corr]['errors']['missed: outside core+tail']['dice_if_fixed'])}; were its "
            f"false void next to the true void right, {each(lambda r: r['ladder'][corr]['errors']['false: next to true void']['dice_if_fixed'])}.")
    return out


def markdown(rows: list[dict[str, Any]], command: str) -> str:
    """The results table."""
    lines = results_header("Void Dice: what the phantoms' physics allows, and where the split loses (issue 7)",
                           command, __doc__) + [
             "## Geometry ceilings (truth only)", "",
             "| preset | seed | void voxels | pieces | surface share | ½-voxel shift z / y / x / zyx | erode-1 | dilate-1 | "
             + " | ".join(f"no pieces < {n}" for n in PIECE_SIZES)
             + " | dark core | core + tail | resolved core + tail | resolved core + ring (within truth) + tail |",
             "|---|---|---|---|---|---|---|---|" + "---|" * len(PIECE_SIZES) + "---|---|---|---|"]
    for r in rows:
        g = r["geometry"]
        hv = g["half_voxel_shift"]
        lines.append(f"| {r['preset']} | {r['seed']} | {g['voxels']} | {g['pieces']} | {g['surface_share']:.2f} | "
                     + " / ".join(_f(hv[k]) for k in ("z", "y", "x", "zyx")) + f" | {_f(g['erode_1'])} | {_f(g['dilate_1'])} | "
                     + " | ".join(_f(g["without_pieces_under"][str(n)]) for n in PIECE_SIZES)
                     + f" | {_f(g['dark_core'])} | {_f(g['core_and_tail'])} | {_f(g['resolved_core_and_tail'])}"
                     + f" | {_f(g['resolved_core_ring_and_tail'])} |")
    lines += ["", "## Reading", ""] + summary(rows)
    lines += ["", "## The split on the image ladder (void Dice; pore Dice in brackets)", ""]
    names = list(rows[0]["ladder"]) if rows else []
    lines += ["| preset | seed | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for r in rows:
        lines.append(f"| {r['preset']} | {r['seed']} | "
                     + " | ".join(f"{_f(r['ladder'][n]['void_dice'])} ({_f(r['ladder'][n]['pore_dice'])})" for n in names) + " |")
    lines += ["", "## Where the split loses: share of the true void, and the void Dice were that class right", ""]
    for r in rows:
        for rung in ("clean, + edge brightening", "oracle-corrected (all artefacts)", "corrected (all artefacts)"):
            if rung not in r["ladder"]:
                continue
            e = r["ladder"][rung]["errors"]
            lines += [f"{r['preset']} seed {r['seed']}, {rung} (void Dice {_f(r['ladder'][rung]['void_dice'])}):", "",
                      "| class | voxels | share of true void | Dice if right |", "|---|---|---|---|"]
            lines += [f"| {k} | {v['voxels']} | {v['share_of_void']:.3f} | {_f(v['dice_if_fixed'])} |" for k, v in e.items()]
            lines.append("")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--slices", type=int, default=24)
    ap.add_argument("--size", type=int, default=192)
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--presets", default="diglyme,carbonate")
    ap.add_argument("--name", default="void_bound", help="results file name (without extension)")
    args = ap.parse_args()
    rows = [measure(p, int(s), args) for s in args.seeds.split(",") for p in args.presets.split(",")]
    command = "PYTHONPATH=. python benchmarks/void_bound.py " + " ".join(sys.argv[1:])
    doc = {"platform": platform.platform(), "args": vars(args), "command": command, "rows": rows}
    save(args.name, json.loads(json.dumps(doc, default=float)), markdown(rows, command))


if __name__ == "__main__":
    main()
