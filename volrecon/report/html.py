"""``report.html``: one self-contained page (images embedded) a person reads first.

The page is assembled from what the run folder holds — ``run.toml`` (calibration with sources,
parameters, versions, warnings), ``metrics.json`` and ``figures/*.png`` — so every stage only has
to leave its figures and numbers in the agreed places.
"""

from __future__ import annotations

import base64
import html
import json
import tomllib
from pathlib import Path
from typing import Any, Iterable, Mapping

# Sections in reading order: (title, figure-name prefixes, caption).
SECTIONS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("Registration", ("drift",), "Drift trajectory: the shift applied to each slice (scipy.ndimage.shift sense) and which anchor set it."),
    ("Intensity corrections", ("shading", "brightness", "curtain", "denoise"), "Estimated shading field, brightness/contrast per slice, destriping."),
    ("Before and after", ("ortho", "correct_"), "Orthoslices (xy, xz, yz) at true aspect ratio before and after correction."),
    ("Segmentation", ("segmentation", "overlay", "phases", "regions", "layers"), "Phases and layers overlaid on the corrected image."),
    ("Depth profiles", ("profile",), "Phase fractions against distance from the separator|cathode interface."),
    ("Void connectivity", ("cluster", "void"), "Void clusters: size distribution and percolation."),
    ("Tortuosity", ("tortuosity",), "Tortuosity factor τ = ε·D_bulk/D_eff of the pore with and without voids."),
    ("SEI", ("sei",), "SEI thickness map over the anode surface and its distribution."),
    ("3D", ("render", "3d"), "Rendered phase surfaces."),
)


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<figure><img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}"><figcaption>{html.escape(path.stem)}</figcaption></figure>'


def _table(rows: Iterable[Iterable[Any]], header: Iterable[str]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def flatten_metrics(data: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """``metrics.json``-like nesting as ``(dotted.key, value)`` rows; lists are left out."""
    out: list[tuple[str, Any]] = []
    for key, value in data.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            out.extend(flatten_metrics(value, name))
        elif not isinstance(value, (list, tuple)):
            out.append((name, value))
    return out


def _calibration_rows(cal: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    rows = []
    for key, label, unit in (
        ("pixel_size_x_nm", "pixel size x", "nm"),
        ("pixel_size_y_nm", "pixel size y (image)", "nm"),
        ("slice_thickness_nm", "slice thickness", "nm"),
        ("tilt_deg", "FIB–SEM angle", "deg"),
    ):
        v = cal.get(key, {})
        rows.append((label, f"{_fmt(v.get('value', 'missing'))} {unit}", v.get("source", "")))
    rows.append(
        (
            "tilt correction",
            "by instrument" if cal.get("tilt_corrected_by_instrument") else f"by volrecon (y × {_fmt(cal.get('foreshortening_factor', 1.0))})",
            cal.get("tilt_corrected_source", ""),
        )
    )
    return rows


KEY_METRICS: tuple[tuple[str, str], ...] = (
    ("regions.cathode.porosity", "cathode porosity (void + electrolyte)"),
    ("regions.cathode.void_fraction", "cathode void fraction"),
    ("regions.cathode.void_share_of_pore", "void share of pore"),
    ("regions.cathode.void_clusters.count", "void clusters (every piece)"),
    ("regions.cathode.void_clusters.resolved.count", "void clusters at or above the resolvable volume"),
    ("regions.cathode.void_clusters.largest_fraction", "largest void cluster (share of void)"),
    ("regions.cathode.tortuosity_factor.pore.through_plane", "τ pore, through-plane"),
    ("regions.cathode.tortuosity_factor.electrolyte.through_plane", "τ electrolyte only, through-plane"),
    ("regions.anode.sei_thickness_nm.mean", "SEI thickness mean (nm, where the film is)"),
    ("regions.anode.sei_thickness_nm.p95", "SEI thickness p95 (nm, where the film is)"),
    ("regions.anode.sei_coverage.fraction",
     "SEI coverage (share 0–1 of the sodium surface under film; cracks, bare pits, missed patches are the rest)"),
)

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;color:#222;padding:0 1rem}
h1{margin-bottom:.2rem} h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0;font-size:.92rem} td,th{border:1px solid #ddd;padding:.25rem .6rem;text-align:left}
th{background:#f4f4f4} figure{display:inline-block;margin:.5rem;vertical-align:top} img{max-width:100%;border:1px solid #eee}
figcaption{font-size:.8rem;color:#666} .warn{background:#fff7e0;border-left:4px solid #e0a800;padding:.4rem .8rem;margin:.3rem 0}
.key td:first-child{font-weight:600} .muted{color:#777;font-size:.85rem}
"""


def render_report(out: str | Path, *, title: str | None = None, new_figures: str | Path | None = None) -> str:
    """Return the report page of run folder ``out`` as one HTML string (no external resources).

    ``new_figures`` is a folder of figures not yet moved into ``out/figures`` (a stage's temporary
    output); a figure there replaces the one of the same name in the run folder.
    """
    out = Path(out)
    run = tomllib.loads((out / "run.toml").read_text()) if (out / "run.toml").is_file() else {}
    metrics = json.loads((out / "metrics.json").read_text()) if (out / "metrics.json").is_file() else {}
    by_name = {p.name: p for folder in (out / "figures", new_figures) if folder and Path(folder).is_dir() for p in Path(folder).glob("*.png")}
    figures = sorted(by_name.values(), key=lambda p: p.name)
    source = run.get("source", {}).get("path", str(out))
    parts = [f"<h1>{html.escape(title or 'volrecon report')}</h1>", f'<p class="muted">{html.escape(source)}</p>']

    warnings = list(run.get("stack", {}).get("warnings", []))
    for name, stage in run.get("stages", {}).items():
        warnings.extend(f"{name}: {w}" for w in stage.get("warnings", []))
    if warnings:
        parts.append("<h2>Warnings</h2>" + "".join(f'<div class="warn">{html.escape(w)}</div>' for w in warnings))

    flat = dict(flatten_metrics(metrics))
    key_rows = [
        (label, "n/a — " + str(flat.get(key + "_reason") or flat.get(key.rsplit(".", 1)[0] + ".reason") or "see All metrics") if flat[key] is None else flat[key])
        for key, label in KEY_METRICS
        if key in flat
    ]
    if key_rows:
        parts.append("<h2>Key figures</h2>" + _table(key_rows, ("quantity", "value")).replace("<table>", '<table class="key">', 1))

    if "calibration" in run:
        parts.append("<h2>Calibration</h2>" + _table(_calibration_rows(run["calibration"]), ("quantity", "value", "source")))
    stack = run.get("stack", {})
    if stack:
        parts.append(
            _table(
                [("shape (z, y, x)", " × ".join(map(str, stack.get("shape", [])))), ("dtype", stack.get("dtype", "")),
                 ("crop (y0, y1, x0, x1)", ", ".join(map(str, stack.get("crop", [])))), ("data bar rows", stack.get("databar_rows", 0)),
                 ("missing slices", ", ".join(map(str, stack.get("gaps", []))) or "none")],
                ("stack", ""),
            )
        )

    used: set[Path] = set()
    for section, prefixes, caption in SECTIONS:
        figs = [f for f in figures if f.stem.lower().startswith(prefixes) and f not in used]
        if not figs:
            continue
        used.update(figs)
        parts.append(f"<h2>{html.escape(section)}</h2><p>{html.escape(caption)}</p>" + "".join(_img(f) for f in figs))
    rest = [f for f in figures if f not in used]
    if rest:
        parts.append("<h2>Other figures</h2>" + "".join(_img(f) for f in rest))

    if flat:
        parts.append("<h2>All metrics</h2>" + _table(sorted(flat.items()), ("key", "value")))
    stages = run.get("stages", {})
    if stages:
        rows = [(name, "yes" if s.get("completed") else "no", json.dumps(s.get("params", {}), sort_keys=True)) for name, s in stages.items()]
        parts.append("<h2>Stages and parameters</h2>" + _table(rows, ("stage", "completed", "parameters")))
    if run.get("versions"):
        parts.append('<p class="muted">' + html.escape(", ".join(f"{k} {v}" for k, v in run["versions"].items())) + "</p>")
    body = "\n".join(parts)
    return f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title or "volrecon report")}</title><style>{_CSS}</style></head><body>{body}</body></html>'
