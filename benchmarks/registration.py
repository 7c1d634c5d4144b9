"""Drift registration benchmark: volrecon against peers on stacks with known drift.

Run from the repository root::

    python benchmarks/registration.py [--sizes 1024x1024,2048x1536] [--slices 200] [--quick]

Writes ``benchmarks/results/registration.json`` and ``registration.md``.

Residual = estimated shift minus true shift after removing the global mean offset (the
absolute origin of a drift table is arbitrary); RMS is over slices of the 2D residual length,
max is the largest per-axis residual. Stacks come from :func:`volrecon.sample.make_phantom`
when it is available, otherwise from the small synthetic generator in
``volrecon.correct._registration_synthetic`` (the report says which).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from volrecon.correct import estimate_drift
from volrecon.correct._registration_phase import SpectrumGeometry
from volrecon.correct._registration_synthetic import make_stack, random_walk_drift
from volrecon.io.stack import detect_databar
from volrecon.phases import PHASES, REGIONS

from _common import RESULTS  # noqa: E402  (VOLRECON_BENCH_RESULTS redirects scratch runs)


# ------------------------------------------------------------------------------------ stacks


def _phantom(kind: str, slices: int, shape: tuple[int, int], frame: bool, seed: int):
    from volrecon.sample import make_phantom  # noqa: F401  (raises ImportError when absent)

    if kind in ("zero", "linear"):
        from volrecon.sample import Artefacts

        art = Artefacts.all(drift=False)
    else:
        art = "all"
    ph = make_phantom("diglyme", slices=slices, shape=shape, seed=seed, frame=frame, artefacts=art)
    return np.asarray(ph.acquired), np.asarray(ph.drift, dtype=float), "volrecon.sample.make_phantom('diglyme')"


def _linear(slices: int) -> np.ndarray:
    z = np.arange(slices, dtype=float)
    return np.c_[0.3 * z, 0.4 * z]  # 0.5 px/slice


def _synthetic(kind: str, slices: int, shape: tuple[int, int], frame: bool, seed: int):
    if kind == "zero":
        drift = np.zeros((slices, 2))
    elif kind == "linear":
        drift = _linear(slices)
    else:
        drift = random_walk_drift(slices, step=0.7, trend=(0.05, -0.08), jumps=2, seed=seed)
    st = make_stack(
        slices, shape, drift=drift, frame=frame, inclined=0.15, curtains=12.0, brightness_step=0.25, noise=6.0, seed=seed
    )
    return st.acquired, st.drift, "volrecon.correct._registration_synthetic.make_stack (phantom not available)"


def make_case(kind: str, slices: int, shape: tuple[int, int], frame: bool, seed: int = 0, cache: Path | None = None):
    """The stack, its true drift and where it came from; phantoms cached under ``cache`` if given."""
    base = kind if kind != "linear" else "zero"  # the linear case is the zero-drift stack, shifted
    stem = cache / f"{base}_{slices}_{shape[0]}x{shape[1]}_f{int(frame)}_s{seed}" if cache else None
    if stem is not None and stem.with_name(stem.name + "_acq.npy").exists():
        acquired = np.load(stem.with_name(stem.name + "_acq.npy"))
        drift = np.load(stem.with_name(stem.name + "_drift.npy"))
        source = "volrecon.sample.make_phantom('diglyme')"
    else:
        try:
            acquired, drift, source = _phantom(base, slices, shape, frame, seed)
        except ImportError:
            return _synthetic(kind, slices, shape, frame, seed)
        if stem is not None:
            stem.parent.mkdir(parents=True, exist_ok=True)
            np.save(stem.with_name(stem.name + "_acq.npy"), acquired)
            np.save(stem.with_name(stem.name + "_drift.npy"), drift)
    if kind == "linear":
        drift = _linear(slices)
        acquired = np.stack([ndimage.shift(s.astype(np.float32), -d, order=3, mode="nearest") for s, d in zip(acquired, drift)])
        acquired = np.clip(np.rint(acquired), 0, 255).astype(np.uint8)
    return acquired, drift, source


def content_control(slices: int, shape: tuple[int, int], seed: int, cache: Path | None = None) -> np.ndarray:
    """The phantom's noise-free, undrifted rendering (``Phantom.clean``, 0-255) of the same specimen.

    Registered with volrecon's estimator it shows what the content alone invents (the truth is
    zero drift): no noise, curtains, shading or brightness steps, no drift to follow. A dither of
    0.01 grey levels keeps its flat rows from being taken for a burned-in overlay (static rows
    are excluded from the registration region), so the region is the acquired stack's.
    """
    from volrecon.sample import Artefacts, make_phantom

    path = cache / f"content_{slices}_{shape[0]}x{shape[1]}_s{seed}_clean.npy" if cache else None
    if path is not None and path.exists():
        clean = np.load(path)
    else:
        ph = make_phantom("diglyme", slices=slices, shape=shape, seed=seed, artefacts=Artefacts.all(drift=False))
        clean = np.asarray(ph.clean, dtype=np.float32)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, clean)
    dither = np.random.default_rng(seed).normal(0.0, 0.01, clean.shape).astype(np.float32)
    return clean * np.float32(255.0) + dither


CONTENT_ROW = "volrecon anchor='none' on the noise-free, undrifted rendering (content alone)"

#: codes of :func:`layer_codes`: ``LAYER_CODE + region`` (anode = its SEI, separator, cathode,
#: collector; unassigned = LAYER_CODE, left black), sodium apart
LAYER_CODE = 20
SODIUM_CODE = LAYER_CODE + 10

#: renderings of one class of the truth labels (grey level per phase value; the rest 0): which
#: content the structure-only estimator follows.
CONTENT_CLASSES: dict[str, dict[int, float]] = {
    "cathode rods (active)": {PHASES["active"]: 200.0},
    "separator fibres": {PHASES["separator"]: 200.0},
    "binder": {PHASES["binder"]: 200.0},
    "voids": {PHASES["void"]: 200.0},
    # the layers as flat greys (codes of layer_codes): only the interfaces sodium | SEI | separator | cathode | collector
    "layer interfaces only": {SODIUM_CODE: 40.0, LAYER_CODE + REGIONS["anode"]: 80.0,
                              LAYER_CODE + REGIONS["separator"]: 120.0, LAYER_CODE + REGIONS["cathode"]: 160.0,
                              LAYER_CODE + REGIONS["collector"]: 200.0},
    "everything but the layer interfaces": {PHASES["separator"]: 200.0, PHASES["active"]: 200.0,
                                            PHASES["binder"]: 120.0, PHASES["void"]: 40.0},
}


def class_row(name: str) -> str:
    return f"volrecon anchor='none' on the truth's {name} alone"


def truth_labels(slices: int, shape: tuple[int, int], seed: int, cache: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The phantom's phase labels and regions (uint8, specimen frame) of the zero-drift stack of this size and seed."""
    from volrecon.sample import Artefacts, make_phantom

    paths = [cache / f"{k}_{slices}_{shape[0]}x{shape[1]}_s{seed}.npy" for k in ("labels", "regions")] if cache else []
    if paths and all(p.exists() for p in paths):
        return np.load(paths[0]), np.load(paths[1])
    ph = make_phantom("diglyme", slices=slices, shape=shape, seed=seed, artefacts=Artefacts.all(drift=False))
    labels, regions = np.asarray(ph.labels), np.asarray(ph.regions)
    for path, array in zip(paths, (labels, regions)):
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, array)
    return labels, regions


def layer_codes(labels: np.ndarray, regions: np.ndarray) -> np.ndarray:
    """``SODIUM_CODE`` for sodium, ``LAYER_CODE + region`` (unassigned = ``LAYER_CODE``) elsewhere."""
    return np.where(labels == PHASES["sodium"], SODIUM_CODE, LAYER_CODE + regions.astype(np.int16)).astype(np.uint8)


def class_rendering(labels: np.ndarray, grey: dict[int, float], seed: int) -> np.ndarray:
    """One class of the truth as an image: ``grey[phase]`` per voxel (0 elsewhere), blurred by 1 px.

    The blur stands in for the probe (sub-pixel motion stays visible); a 0.01 dither keeps flat
    rows from being taken for a burned-in overlay, as in :func:`content_control`.
    """
    lut = np.zeros(256, np.float32)
    for value, level in grey.items():
        lut[value] = level
    rng = np.random.default_rng(seed)
    out = np.empty(labels.shape, np.float32)
    for z, plane in enumerate(labels):
        out[z] = ndimage.gaussian_filter(lut[plane], 1.0) + rng.normal(0.0, 0.01, plane.shape).astype(np.float32)
    return out


# ------------------------------------------------------------------------------------ methods


def chained(pair: Callable[[np.ndarray, np.ndarray], np.ndarray], stack: np.ndarray) -> np.ndarray:
    """Cumulative sum of neighbour shifts (what most tools do)."""
    out = np.zeros((len(stack), 2))
    prev = stack[0].astype(np.float32)
    for z in range(1, len(stack)):
        cur = stack[z].astype(np.float32)
        out[z] = out[z - 1] + pair(prev, cur)
        prev = cur
    return out


def skimage_chained(stack: np.ndarray, *, taper: bool = False) -> np.ndarray:
    """Chained skimage phase correlation; ``taper``: each slice mean-subtracted and Tukey-windowed first.

    Untapered, the FFT's wrap-around makes the image border a pattern fixed in the image frame,
    which pulls every pair toward zero shift (less invented drift on a zero-drift control, for
    no merit of the method); the tapered variant shows the correlation without that pull.
    """
    from scipy.signal.windows import tukey
    from skimage.registration import phase_cross_correlation

    window = np.outer(tukey(stack.shape[1], 0.5), tukey(stack.shape[2], 0.5)).astype(np.float32) if taper else None

    def pair(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if window is not None:
            a, b = (a - a.mean()) * window, (b - b.mean()) * window
        return phase_cross_correlation(a, b, upsample_factor=20)[0]

    return chained(pair, stack)


def pystackreg_translation(stack: np.ndarray) -> np.ndarray:
    from pystackreg import StackReg

    sr = StackReg(StackReg.TRANSLATION)
    mats = sr.register_stack(stack.astype(np.float64), reference="previous")
    # the matrix maps output to input coordinates: the slice content sits at +t, shift by -t
    return -np.stack([mats[:, 1, 2], mats[:, 0, 2]], axis=1)


def sitk_chained(stack: np.ndarray) -> np.ndarray:
    from volrecon.correct._registration_sitk import SitkRegistrar

    ny, nx = stack.shape[1:]
    reg = SitkRegistrar(SpectrumGeometry((0, ny, 0, nx), max(1, nx // 512), 1, 0))
    return chained(lambda a, b: reg.pair_shift(reg.prepare(a), reg.prepare(b))[0], stack)


# volrecon's methods return the DriftTable: its expected residual is reported next to the measured one
METHODS: dict[str, Callable[[np.ndarray], Any]] = {
    "volrecon (default: frame if found)": lambda s: estimate_drift(s),
    # the tile consensus as measured before the object refinement (round reg9) and the curtain
    # anchor (round curtanchor) became the default
    "volrecon anchor='none' (structure only)": lambda s: estimate_drift(s, anchor="none", objects=False,
                                                                        curtains=False),
    "volrecon anchor='none', tiles=0 (one global correlation)": lambda s: estimate_drift(s, anchor="none", tiles=0,
                                                                                        objects=False, curtains=False),
    "pystackreg TRANSLATION (previous)": pystackreg_translation,
    "skimage phase_cross_correlation chained": skimage_chained,
    "skimage phase_cross_correlation chained, Tukey-tapered": lambda s: skimage_chained(s, taper=True),
    "SimpleITK Mattes MI chained": sitk_chained,
}
OBJECTS_ROW = "volrecon anchor='none', objects=True, curtains=False (per-object kinematics, no curtain anchor)"
METHODS[OBJECTS_ROW] = lambda s: estimate_drift(s, anchor="none", objects=True, curtains=False)
METHODS[CONTENT_ROW] = METHODS["volrecon anchor='none' (structure only)"]
for _name in CONTENT_CLASSES:
    METHODS[class_row(_name)] = METHODS["volrecon anchor='none' (structure only)"]
CONTROL_ROWS = (CONTENT_ROW, *(class_row(n) for n in CONTENT_CLASSES))


def residual_stats(est: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    err = np.asarray(est, float) - truth
    err -= err.mean(axis=0)
    end = (est[-1] - est[0]) - (truth[-1] - truth[0])
    slope = np.polyfit(np.arange(len(err)), err, 1)[0] if len(err) > 1 else np.zeros(2)
    return {
        "rms_px": float(np.sqrt(np.mean(np.sum(err**2, axis=1)))),
        "rms_dy_px": float(np.sqrt(np.mean(err[:, 0] ** 2))),
        "rms_dx_px": float(np.sqrt(np.mean(err[:, 1] ** 2))),
        "ramp_px_per_slice": [float(v) for v in slope],
        "max_px": float(np.abs(err).max()),
        "end_to_end_error_px": float(np.hypot(*end)),
    }


def run_case(name: str, stack: np.ndarray, truth: np.ndarray, methods: list[str]) -> dict:
    rows = {}
    for method in methods:
        start, cpu = time.perf_counter(), time.process_time()
        est = METHODS[method](stack)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        expected = {}
        if hasattr(est, "expected_residual_rms_px"):
            # the table's residual is per axis; the RMS measured here is of the 2D length
            expected = {"expected_rms_px": math.sqrt(2.0) * est.expected_residual_rms_px}
            est = est.shifts
        rows[method] = residual_stats(est, truth) | expected | {
            "slices_per_s": len(stack) / seconds, "seconds": seconds, "slices_per_cpu_s": len(stack) / max(cpu, 1e-9)
        }
        print(f"  {name:<28} {method:<42} rms {rows[method]['rms_px']:.3f}  max {rows[method]['max_px']:.3f}  "
              f"{rows[method]['slices_per_s']:.1f} sl/s  {rows[method]['slices_per_cpu_s']:.1f} sl/CPU-s", flush=True)
    return rows


def throughput(stack: np.ndarray, repeats: int) -> dict[str, float]:
    rates, cpu_rates = [], []
    for _ in range(repeats):
        start, cpu = time.perf_counter(), time.process_time()
        estimate_drift(stack)
        rates.append(len(stack) / (time.perf_counter() - start))
        cpu_rates.append(len(stack) / max(time.process_time() - cpu, 1e-9))
    return {
        "median_slices_per_s": statistics.median(rates),
        "runs": rates,
        "median_slices_per_cpu_s": statistics.median(cpu_rates),
        "cpu_runs": cpu_rates,
    }


def to_markdown(report: dict) -> str:
    lines = [
        "# Drift registration benchmark",
        "",
        f"Command: `{report.get('command', 'python benchmarks/registration.py')}`",
        "",
        f"Stacks: {report['source']}. {report['slices']} slices. Machine: {report['machine']}; "
        "CPU shared with other jobs while measured, so timings are noisy (throughput is the median of "
        f"{report['throughput_repeats']} runs; slices per CPU-second count the CPU time of all the process's threads).",
        "",
        "Residual = estimate − truth after removing the global mean offset. RMS of the 2D residual length; "
        "max of the per-axis residual; end-to-end = error of (last − first). Expected RMS = what volrecon's drift "
        "table predicts for that RMS (sqrt(2) x `expected_residual_rms_px`, which is per axis).",
        "",
    ]
    if "databar_rows_cropped" in report:
        lines += [f"Every method got the stack without its data bar ({report['databar_rows_cropped']} bottom rows, "
                  "found by volrecon.io.stack.detect_databar as ingest does).", ""]
    for case, rows in report["cases"].items():
        lines += [f"## {case}", "", "| method | RMS (px) | expected RMS (px) | max (px) | end-to-end (px) | slices/s "
                  "| slices/CPU-s |", "|---|---|---|---|---|---|---|"]  # fmt: skip
        for method, r in rows.items():
            per_cpu = f"{r['slices_per_cpu_s']:.1f}" if "slices_per_cpu_s" in r else "–"
            expected = f"{r['expected_rms_px']:.3f}" if "expected_rms_px" in r else "–"
            lines.append(
                f"| {method} | {r['rms_px']:.3f} | {expected} | {r['max_px']:.3f} | {r['end_to_end_error_px']:.3f} "
                f"| {r['slices_per_s']:.1f} | {per_cpu} |"
            )
        lines.append("")
    lines += ["## Throughput (volrecon default)", ""]
    for shape, t in report["throughput"].items():
        lines.append(f"- {shape}: median {t['median_slices_per_s']:.1f} slices/s wall (runs: "
                     + ", ".join(f"{v:.1f}" for v in t["runs"]) + ")"
                     + (f", {t['median_slices_per_cpu_s']:.1f} slices per CPU-second" if "median_slices_per_cpu_s" in t else ""))
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1024x1024,2048x1536")
    parser.add_argument("--slices", type=int, default=200)
    parser.add_argument("--peers", default="all", help="'all', 'none' or 'small' (peers on the first size only)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--large", default="short", help="'short': only the random-walk cases beyond the first size")
    parser.add_argument("--peer-kinds", default="randomwalk,zero", help="drift kinds the peers are run on")
    parser.add_argument("--peer-names", default="", help="comma-separated name fragments: run only the peers "
                        "matching one (e.g. 'skimage'); default every peer")
    parser.add_argument("--cache", default="", help="folder to keep the phantom stacks in (np.save) between runs")
    parser.add_argument("--seed", type=int, default=0, help="phantom seed (cases are labelled with it when not 0)")
    parser.add_argument("--out", default=str(RESULTS / "registration"))
    parser.add_argument("--kinds", default="zero,randomwalk,randomwalk+frame,linear",
                        help="cases to run (randomwalk+frame, linear+frame = with the face's frame)")
    parser.add_argument("--content-control", action="store_true",
                        help="also register the phantom's noise-free, undrifted rendering of each stack "
                             "without frame (what the content alone invents; rendered once per size and seed)")
    parser.add_argument("--class-control", action="store_true",
                        help="also register renderings of single classes of the truth labels (rods, fibres, "
                             "binder, voids, the layer interfaces, all but the interfaces) of the zero-drift "
                             "stack: which content the structure-only estimate follows")
    parser.add_argument("--objects", action="store_true",
                        help="add the per-object kinematics row without the curtain anchor (estimate_drift(objects=True, curtains=False)); the "
                             "structure-only rows are the tile consensus, objects=False; ~2x its cost)")
    parser.add_argument("--crop-databar", action="store_true",
                        help="give every method the stack without its data bar, as volrecon's ingest does "
                             "(a static bar pins any whole-image correlation at zero drift)")
    args = parser.parse_args()
    sizes = [tuple(int(v) for v in s.split("x"))[::-1] for s in args.sizes.split(",")]  # WxH -> (rows, cols)
    report = {
        "command": "python " + " ".join(["benchmarks/registration.py", *sys.argv[1:]]),
        "slices": args.slices,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, python {platform.python_version()}",
        "throughput_repeats": args.repeats,
        "cases": {},
        "throughput": {},
    }
    controls: dict[tuple[str, int], dict] = {}  # content-control row per (size, seed)
    for i, shape in enumerate(sizes):
        label = f"{shape[1]}x{shape[0]}"
        peers = args.peers == "all" or (args.peers == "small" and i == 0)
        # the comparisons without frame first: they need the slow peers most
        kinds = (("zero", False), ("randomwalk", False), ("randomwalk", True), ("linear", False), ("linear", True))
        wanted = args.kinds.split(",")
        kinds = tuple(k for k in kinds if (k[0] + ("+frame" if k[1] else "")) in wanted)
        if i > 0 and args.large == "short":
            kinds = tuple(k for k in kinds if k[0] == "randomwalk")
        for kind, frame in kinds:
            stack, truth, source = make_case(kind, args.slices, shape, frame, seed=args.seed,
                                             cache=Path(args.cache) if args.cache else None)
            if args.crop_databar:
                bar = detect_databar(stack[0])
                stack = stack[:, : stack.shape[1] - bar] if bar else stack
                report["databar_rows_cropped"] = bar
            report["source"] = source
            name = f"{label} {kind} drift, {'with' if frame else 'without'} frame" + (f", seed {args.seed}" if args.seed else "")
            own = [m for m in METHODS if m.startswith("volrecon") and m not in CONTROL_ROWS
                   and (args.objects or m != OBJECTS_ROW)]
            wanted_peers = [m for m in METHODS if m not in own and (not args.peer_names or any(
                n.strip().lower() in m.lower() for n in args.peer_names.split(",")))]
            methods = own + wanted_peers if peers and kind in args.peer_kinds.split(",") else own
            report["cases"][name] = run_case(name, stack, truth, methods)
            if args.content_control and not frame and kind != "linear":
                key = (label, args.seed)
                if key not in controls:
                    clean = content_control(args.slices, shape, args.seed, Path(args.cache) if args.cache else None)
                    controls[key] = run_case(name, clean, np.zeros((len(clean), 2)), [CONTENT_ROW])[CONTENT_ROW]
                    del clean
                report["cases"][name][CONTENT_ROW] = controls[key]
            if args.class_control and kind == "zero" and not frame:
                labels, regions = truth_labels(args.slices, shape, args.seed, Path(args.cache) if args.cache else None)
                for cname, grey in CONTENT_CLASSES.items():
                    codes = layer_codes(labels, regions) if min(grey) >= LAYER_CODE else labels
                    image = class_rendering(codes, grey, args.seed)
                    row = class_row(cname)
                    report["cases"][name][row] = run_case(name, image, np.zeros((len(image), 2)), [row])[row]
                    del image
                del labels, regions
            if kind == "randomwalk" and frame:
                report["throughput"][label] = throughput(stack, args.repeats)
                print(f"  throughput {label}: {report['throughput'][label]['median_slices_per_s']:.1f} slices/s", flush=True)
            _write(report, Path(args.out))  # after every case: a long run stopped early keeps what it measured


def _write(report: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2))
    out.with_suffix(".md").write_text(to_markdown(report))
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.md')}", flush=True)


if __name__ == "__main__":
    main()
