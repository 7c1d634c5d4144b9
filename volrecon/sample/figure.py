"""Orthoslice figure of a phantom: clean vs acquired vs labels (for README and checks)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from volrecon.phases import PHASE_COLOURS, PHASES


def _label_rgb(labels: np.ndarray) -> np.ndarray:
    lut = np.zeros((16, 3))
    for name, value in PHASES.items():
        h = PHASE_COLOURS[name].lstrip("#")
        lut[value] = [int(h[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    return lut[labels]


def orthoslice_figure(phantoms: dict[str, Any], path: str | os.PathLike, *, slice_index: int | None = None) -> None:
    """Save a PNG with, per phantom, an xy slice and an xz (depth) section of clean, acquired and labels.

    Parameters
    ----------
    phantoms : dict
        Title -> :class:`~volrecon.sample.Phantom` (numpy arrays).
    path : path
        PNG to write.
    slice_index : int, optional
        Slice shown (default: the middle one).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    n = len(phantoms)
    fig, axes = plt.subplots(2 * n, 3, figsize=(12, 7.2 * n), gridspec_kw={"height_ratios": [3, 1.2] * n})
    for i, (title, ph) in enumerate(phantoms.items()):
        labels, clean, acq = np.asarray(ph.labels), np.asarray(ph.clean), np.asarray(ph.acquired)
        z, h, w = labels.shape
        k = z // 2 if slice_index is None else slice_index
        vz, vy, vx = ph.voxel_size_nm
        row = int(ph.truth["interfaces_nm"]["separator_cathode"]["row_mean"]) + h // 8
        row = min(max(row, 0), h - 1)
        top = [clean[k], acq[k], _label_rgb(labels[k])]
        names = ["clean (ideal, undrifted)", "acquired (all artefacts)", "labels"]
        for j in range(3):
            ax = axes[2 * i, j]
            ax.imshow(top[j], cmap="gray", interpolation="nearest", aspect=vy / vx)
            ax.set_title(f"{title}: {names[j]}, slice {k}", fontsize=9)
            ax.axhline(row, color="yellow", lw=0.6, ls="--")
            ax.set_xticks([])
            ax.set_yticks([])
        side = [clean[:, row, :], acq[:, row, :], _label_rgb(labels[:, row, :])]
        for j in range(3):
            ax = axes[2 * i + 1, j]
            ax.imshow(side[j], cmap="gray", interpolation="nearest", aspect=vz / vx)
            ax.set_title(f"x-z section at row {row} (depth down)", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
    handles = [Patch(color=PHASE_COLOURS[p], label=p) for p in PHASES]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(path, dpi=90)
    plt.close(fig)
