"""Figures drawn from analysis results (no measurement happens here)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from volrecon.phases import PHASE_COLOURS  # noqa: E402

if TYPE_CHECKING:
    from volrecon.analyze.metrics import AnalysisResult

__all__ = ["write_figures"]


def write_figures(result: "AnalysisResult", folder: Path) -> list[Path]:
    """Write depth profile, cluster sizes, pore sizes and SEI map PNGs; return their paths."""
    paths: list[Path] = []
    prof = result.profile
    if prof is not None and prof.reason is None:
        fig, ax = plt.subplots(figsize=(6, 4))
        mid = 0.5 * (prof.bin_edges_nm[:-1] + prof.bin_edges_nm[1:])
        for name, v in prof.fractions.items():
            if np.nanmax(v, initial=0) > 0:
                ax.plot(mid, v, label=name, color=PHASE_COLOURS.get(name))
        ax.set(xlabel=f"distance from the {prof.reference} (nm)", ylabel="volume fraction")
        ax.legend(fontsize=8)
        paths.append(_save(fig, folder / "depth_profile.png"))
    vc = result.void_clusters
    if vc is not None and vc.count:
        fig, ax = plt.subplots(figsize=(6, 4))
        vol = np.asarray(vc.sizes_voxels) * vc.voxel_volume_nm3
        ax.hist(vol, bins=np.geomspace(vol.min(), vol.max() * 1.01 + 1e-9, 30))
        ax.set(xscale="log", xlabel="void cluster volume (nm³)", ylabel="clusters",
               title=f"{vc.count} clusters, largest {vc.largest_fraction:.1%} of void")
        paths.append(_save(fig, folder / "void_cluster_sizes.png"))
    if result.pore_sizes:
        fig, ax = plt.subplots(figsize=(6, 4))
        for name, p in result.pore_sizes.items():
            if p.reason is None:
                mid = 0.5 * (p.bin_edges_nm[:-1] + p.bin_edges_nm[1:])
                ax.plot(mid, p.volume_fraction, marker="o", label=name)
        ax.set(xlabel="local thickness (nm)", ylabel="volume fraction")
        ax.legend()
        paths.append(_save(fig, folder / "pore_size.png"))
    sei = result.sei
    if sei is not None and sei.reason is None:
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
        im = a1.imshow(sei.thickness_map, aspect="auto", cmap="magma")
        fig.colorbar(im, ax=a1, label="SEI thickness (nm)")
        a1.set_title("SEI thickness map (blank: gaps and lines not measured)")
        vals = sei.thickness_map[np.isfinite(sei.thickness_map)]
        # a film of one thickness (up to rounding) has no 40 distinct bins
        a2.hist(vals, bins=40 if np.ptp(vals) > 1e-6 * max(1.0, float(np.abs(vals).max())) else 1)
        cover = f", coverage {sei.coverage:.1%}" if np.isfinite(sei.coverage) else ""
        a2.set(xlabel="SEI thickness (nm)", ylabel="positions", title=f"mean {sei.mean:.1f} nm{cover}")
        paths.append(_save(fig, folder / "sei_thickness.png"))
    return paths


def _save(fig: "plt.Figure", path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
