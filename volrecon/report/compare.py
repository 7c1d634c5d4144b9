"""Compare runs across groups (e.g. carbonate vs diglyme) with bootstrap uncertainty.

Each run contributes its ``metrics.json``; when it also holds ``tables/subvolumes.csv`` (one row
per sub-volume, one column per metric key), those rows are the samples of that run, so a single
run per group still gets an uncertainty.  Group means get percentile-bootstrap confidence
intervals, and each pair of groups a bootstrap interval of the difference and a two-sided
bootstrap p-value for "no difference".
"""

from __future__ import annotations

import csv
import html
import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from volrecon.errors import InputError, OutputError, ParameterError

DEFAULT_METRICS: tuple[str, ...] = (
    "regions.anode.sei_thickness_nm.mean",
    "regions.cathode.porosity",
    "regions.cathode.void_fraction",
    "regions.cathode.void_share_of_pore",
    "regions.cathode.tortuosity_factor.pore.through_plane",
    "regions.cathode.tortuosity_factor.electrolyte.through_plane",
)


def _get(metrics: Mapping[str, Any], key: str) -> float | None:
    node: Any = metrics
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    if isinstance(node, Mapping) and "value" in node:
        node = node["value"]
    try:
        value = float(node)
    except (TypeError, ValueError):
        return None
    return value if np.isfinite(value) else None


def run_samples(run: Path, metric: str) -> list[float]:
    """Samples of ``metric`` in one run: its sub-volumes when tabulated, else the whole-run value."""
    table = run / "tables" / "subvolumes.csv"
    if table.is_file():
        with table.open() as f:
            rows = list(csv.DictReader(f))
        values = [float(r[metric]) for r in rows if r.get(metric) not in (None, "", "nan")]
        values = [v for v in values if np.isfinite(v)]
        if values:
            return values
    metrics_file = run / "metrics.json"
    if not metrics_file.is_file():
        raise InputError(f"{run}: no metrics.json; run `volrecon analyze {run}` first")
    value = _get(json.loads(metrics_file.read_text()), metric)
    return [] if value is None else [value]


@dataclass(frozen=True)
class GroupStat:
    """One metric in one group."""

    group: str
    metric: str
    mean: float
    ci_low: float
    ci_high: float
    n_runs: int
    n_samples: int


@dataclass(frozen=True)
class Difference:
    """``b - a`` for one metric with its bootstrap interval and p-value."""

    metric: str
    group_a: str
    group_b: str
    difference: float
    ci_low: float
    ci_high: float
    p_value: float

    @property
    def testable(self) -> bool:
        """False when a group holds a single value (one run without sub-volume samples): no interval."""
        return not (math.isnan(self.ci_low) or math.isnan(self.ci_high))

    @property
    def significant(self) -> bool:
        return self.testable and (self.ci_low > 0 or self.ci_high < 0)


@dataclass(frozen=True)
class Comparison:
    """Result of :func:`compare_runs`."""

    groups: dict[str, list[str]]
    stats: list[GroupStat] = field(default_factory=list)
    differences: list[Difference] = field(default_factory=list)
    confidence: float = 0.95

    def stat(self, group: str, metric: str) -> GroupStat:
        return next(s for s in self.stats if s.group == group and s.metric == metric)

    def difference(self, metric: str, group_a: str, group_b: str) -> Difference:
        return next(d for d in self.differences if d.metric == metric and d.group_a == group_a and d.group_b == group_b)

    def to_dict(self) -> dict[str, Any]:
        return {
            "confidence": self.confidence,
            "groups": self.groups,
            "stats": [s.__dict__ for s in self.stats],
            "differences": [
                {**{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in d.__dict__.items()},
                 "significant": d.significant, "testable": d.testable}
                for d in self.differences
            ],
        }


def _bootstrap_means(runs: Sequence[Sequence[float]], n: int, rng: np.random.Generator) -> np.ndarray:
    """Hierarchical bootstrap: resample runs, then samples within each chosen run."""
    out = np.empty(n)
    k = len(runs)
    arrays = [np.asarray(r, float) for r in runs]
    for i in range(n):
        chosen = rng.integers(0, k, size=k) if k > 1 else [0]
        means = [arrays[j][rng.integers(0, arrays[j].size, size=arrays[j].size)].mean() for j in chosen]
        out[i] = float(np.mean(means))
    return out


def compare_runs(
    groups: Mapping[str, Sequence[str | Path]],
    *,
    metrics: Sequence[str] = DEFAULT_METRICS,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Comparison:
    """Compare metrics across groups of run folders.

    Parameters
    ----------
    groups : mapping
        Group name -> run folders.
    metrics : sequence of str
        Dotted ``metrics.json`` keys.
    n_boot : int
        Bootstrap resamples.
    confidence : float
        Interval coverage.
    seed : int
        Random seed (results are reproducible).
    """
    if len(groups) < 1 or any(len(v) == 0 for v in groups.values()):
        raise ParameterError("--group: give at least one run per group, e.g. --group carbonate=OUT1,OUT2")
    rng = np.random.default_rng(seed)
    alpha = (1 - confidence) / 2
    stats: list[GroupStat] = []
    boots: dict[tuple[str, str], np.ndarray] = {}
    for metric in metrics:
        for name, runs in groups.items():
            samples = [s for s in (run_samples(Path(r), metric) for r in runs) if s]
            if not samples:
                continue
            b = _bootstrap_means(samples, n_boot, rng)
            boots[(name, metric)] = b
            mean = float(np.mean([np.mean(s) for s in samples]))
            stats.append(GroupStat(name, metric, mean, float(np.quantile(b, alpha)), float(np.quantile(b, 1 - alpha)), len(samples), sum(map(len, samples))))
    diffs: list[Difference] = []
    names = list(groups)
    for metric in metrics:
        for i, a in enumerate(names):
            for b_name in names[i + 1:]:
                if (a, metric) not in boots or (b_name, metric) not in boots:
                    continue
                d = boots[(b_name, metric)] - boots[(a, metric)]
                point = next(s.mean for s in stats if s.group == b_name and s.metric == metric) - next(
                    s.mean for s in stats if s.group == a and s.metric == metric
                )
                if min(s.n_samples for s in stats if s.metric == metric and s.group in (a, b_name)) < 2:
                    # one value in a group: resampling it gives a zero-width interval, not certainty
                    diffs.append(Difference(metric, a, b_name, point, math.nan, math.nan, math.nan))
                    continue
                p = float(min(1.0, 2 * min(np.mean(d <= 0), np.mean(d >= 0))))
                diffs.append(Difference(metric, a, b_name, point, float(np.quantile(d, alpha)), float(np.quantile(d, 1 - alpha)), p))
    return Comparison({k: [str(r) for r in v] for k, v in groups.items()}, stats, diffs, confidence)


def write_comparison(result: Comparison, folder: str | Path, *, overwrite: bool = False) -> Path:
    """Write ``comparison.json``, ``comparison.csv``, one PNG per metric and ``compare.html``.

    The files are written into a temporary sibling folder that replaces ``folder`` only once
    complete, so an interrupted comparison leaves the previous one intact.

    Parameters
    ----------
    result : Comparison
        What :func:`compare_runs` returned.
    folder : str or Path
        Destination folder.
    overwrite : bool
        Replace an earlier comparison in ``folder``.  A non-empty folder that holds no
        ``comparison.json`` is refused either way (it is somebody's data, not ours).

    Returns
    -------
    Path
        ``folder / "compare.html"``.
    """
    folder = Path(folder)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        if not (folder / "comparison.json").is_file():
            raise OutputError(f"{folder}: exists and is not a volrecon comparison; choose a new or empty folder")
        if not overwrite:
            raise OutputError(f"{folder}: holds an earlier comparison; pass --overwrite to replace it")
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        _write_comparison_files(result, tmp)
        if folder.exists():
            old = tmp.with_name(tmp.name + "-old")
            os.replace(folder, old)
            os.replace(tmp, folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder / "compare.html"


def _write_comparison_files(result: Comparison, folder: Path) -> None:
    """The comparison's files, written into an existing empty ``folder``."""
    import base64

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    (folder / "comparison.json").write_text(json.dumps(result.to_dict(), indent=2))
    with (folder / "comparison.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["metric", "group", "mean", "ci_low", "ci_high", "n_runs", "n_samples"])
        for s in result.stats:
            w.writerow([s.metric, s.group, s.mean, s.ci_low, s.ci_high, s.n_runs, s.n_samples])
    images = []
    for metric in dict.fromkeys(s.metric for s in result.stats):
        rows = [s for s in result.stats if s.metric == metric]
        fig, ax = plt.subplots(figsize=(4.2, 3.2))
        x = np.arange(len(rows))
        ax.errorbar(x, [r.mean for r in rows], yerr=[[r.mean - r.ci_low for r in rows], [r.ci_high - r.mean for r in rows]], fmt="o", capsize=5)
        ax.set_xticks(x, [r.group for r in rows])
        ax.set_xlim(-0.6, len(rows) - 0.4)
        ax.set_title(metric.replace("regions.", ""), fontsize=8)
        fig.tight_layout()
        path = folder / f"{metric.replace('.', '_')}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        images.append(path)
    table = "".join(
        f"<tr><td>{html.escape(d.metric)}</td><td>{html.escape(d.group_b)} − {html.escape(d.group_a)}</td><td>{d.difference:.4g}</td>"
        f"<td>[{d.ci_low:.4g}, {d.ci_high:.4g}]</td><td>{d.p_value:.3g}</td><td>{'yes' if d.significant else ('no' if d.testable else 'one value per group: no interval')}</td></tr>"
        for d in result.differences
    )
    figs = "".join(
        f'<figure><img src="data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}" alt="{html.escape(p.stem)}"></figure>' for p in images
    )
    groups = "".join(f"<li><b>{html.escape(g)}</b>: {html.escape(', '.join(r))}</li>" for g, r in result.groups.items())
    page = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>volrecon comparison</title>'
        "<style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:2rem auto}table{border-collapse:collapse}"
        "td,th{border:1px solid #ddd;padding:.25rem .6rem}figure{display:inline-block;margin:.4rem}</style></head><body>"
        f"<h1>Comparison</h1><ul>{groups}</ul><h2>Differences ({int(result.confidence * 100)} % bootstrap intervals)</h2>"
        f"<table><tr><th>metric</th><th>difference</th><th>value</th><th>interval</th><th>p</th><th>significant</th></tr>{table}</table>"
        f"<h2>Group means</h2>{figs}</body></html>"
    )
    (folder / "compare.html").write_text(page)
