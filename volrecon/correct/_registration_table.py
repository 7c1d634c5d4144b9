"""The drift table: the small, serialisable result of drift estimation.

Sign convention (DESIGN.md): row ``z`` is the ``(dy, dx)`` shift that, applied to acquired slice
``z`` with :func:`scipy.ndimage.shift`, brings it into register.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from volrecon.errors import InputError, ParameterError

ANCHORS = ("frame", "cap", "walls", "roi", "structure", "structure+curtains", "interpolated")
CSV_COLUMNS = ("slice", "dy", "dx", "quality", "anchor", "expected_residual_px", "flags")


@dataclass(frozen=True)
class DriftTable:
    """Per-slice translation that registers a slice-and-view stack.

    Attributes
    ----------
    shifts : ndarray, shape (Z, 2)
        ``(dy, dx)`` in pixels; applied with :func:`scipy.ndimage.shift` to acquired slice ``z``
        it brings that slice into register. The absolute origin is arbitrary (slice 0 is
        usually ``(0, 0)``).
    quality : ndarray, shape (Z,)
        Confidence in ``[0, 1]`` (1 = anchored to a sharp frame or a strong correlation peak,
        0 = nothing measured, value interpolated).
    anchor : tuple of str, length Z
        What fixed each slice: ``"frame"`` (cap edge and trench walls), ``"cap"`` (cap edge for
        dy only), ``"walls"`` (trench walls for dx only), ``"roi"`` (user-marked region),
        ``"structure"`` (image correlation only), ``"structure+curtains"`` (image correlation,
        dx's slow part from the curtain stripes, which are fixed in the specimen) or
        ``"interpolated"`` (blank slice).
    expected_residual_px : ndarray, shape (Z,)
        One-sigma expected error per axis of each row, in pixels, from the uncertainties of the
        measurements that fixed it (structure-only rows include the ~1 px floor that inclined
        features put on image-only registration).
    flags : tuple of str, length Z
        Semicolon-separated notes per slice (``"blank"``, ``"saturated"``, ``"interpolated"``,
        ``"outlier-pairs"``), ``""`` when none.
    method : str
        Pairwise estimator used for the structure estimate (``"phase"``, ``"sitk"``, ``"none"``).
    metadata : dict
        Effective parameters and diagnostics (JSON-safe), e.g. the detected frame.
    """

    shifts: np.ndarray
    quality: np.ndarray
    anchor: tuple[str, ...]
    expected_residual_px: np.ndarray
    flags: tuple[str, ...]
    method: str = "phase"
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        shifts = np.asarray(self.shifts, dtype=float).reshape(-1, 2)
        n = shifts.shape[0]
        quality = np.asarray(self.quality, dtype=float).reshape(-1)
        residual = np.asarray(self.expected_residual_px, dtype=float).reshape(-1)
        if quality.shape[0] != n or residual.shape[0] != n:
            raise ParameterError("DriftTable: shifts, quality and expected_residual_px need one row per slice")
        if len(self.anchor) != n or len(self.flags) != n:
            raise ParameterError("DriftTable: anchor and flags need one entry per slice")
        for name, value in (("shifts", shifts), ("quality", quality), ("expected_residual_px", residual)):
            value.setflags(write=False)
            object.__setattr__(self, name, value)
        object.__setattr__(self, "anchor", tuple(str(a) for a in self.anchor))
        object.__setattr__(self, "flags", tuple(str(f) for f in self.flags))

    def __len__(self) -> int:
        return int(self.shifts.shape[0])

    @property
    def dy(self) -> np.ndarray:
        """Row shifts (pixels)."""
        return self.shifts[:, 0]

    @property
    def dx(self) -> np.ndarray:
        """Column shifts (pixels)."""
        return self.shifts[:, 1]

    @property
    def expected_residual_rms_px(self) -> float:
        """RMS over slices of the per-slice expected residual (pixels, per axis)."""
        return float(np.sqrt(np.mean(self.expected_residual_px**2)))

    def valid_region(self, shape: tuple[int, int]) -> tuple[int, int, int, int]:
        """Box ``(y0, y1, x0, x1)`` that holds image data in every slice after the shifts.

        Parameters
        ----------
        shape : tuple of int
            ``(rows, columns)`` of one slice.

        Returns
        -------
        tuple of int
            Half-open bounds in the coordinates of the shifted (same-shape) slices; this is the
            box :func:`apply_drift` keeps with ``mode="crop"``.
        """
        rows, cols = int(shape[0]), int(shape[1])
        dy, dx = self.shifts[:, 0], self.shifts[:, 1]
        y0 = max(0, math.ceil(float(dy.max()) - 1e-6))
        y1 = min(rows, rows + math.floor(float(dy.min()) + 1e-6))
        x0 = max(0, math.ceil(float(dx.max()) - 1e-6))
        x1 = min(cols, cols + math.floor(float(dx.min()) + 1e-6))
        if y1 <= y0 or x1 <= x0:
            raise ParameterError(
                "apply_drift mode='crop': the drift is larger than the slice, nothing is valid in every "
                "slice; use mode='pad'"
            )
        return (y0, y1, x0, x1)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dictionary (units in the key names)."""
        return {
            "method": self.method,
            "units": "px",
            "convention": "shift applied to acquired slice with scipy.ndimage.shift to register it",
            "slices": len(self),
            "dy_px": [float(v) for v in self.dy],
            "dx_px": [float(v) for v in self.dx],
            "quality": [float(v) for v in self.quality],
            "anchor": list(self.anchor),
            "expected_residual_px": [float(v) for v in self.expected_residual_px],
            "expected_residual_rms_px": self.expected_residual_rms_px,
            "flags": list(self.flags),
            "anchor_counts": {a: int(sum(1 for x in self.anchor if x == a)) for a in sorted(set(self.anchor))},
            "metadata": self.metadata,
        }

    def to_csv(self, path: str | Path) -> Path:
        """Write ``slice,dy,dx,quality,anchor,expected_residual_px,flags`` (one row per slice)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        with tmp.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(CSV_COLUMNS)
            for z in range(len(self)):
                writer.writerow(
                    [
                        z,
                        f"{self.shifts[z, 0]:.6f}",
                        f"{self.shifts[z, 1]:.6f}",
                        f"{self.quality[z]:.4f}",
                        self.anchor[z],
                        f"{self.expected_residual_px[z]:.4f}",
                        self.flags[z],
                    ]
                )
        tmp.replace(path)
        return path

    @classmethod
    def from_csv(cls, path: str | Path) -> DriftTable:
        """Read a table written by :meth:`to_csv` (``slice,dy,dx`` are required, the rest optional)."""
        path = Path(path)
        if not path.is_file():
            raise InputError(f"{path}: drift table not found; run drift estimation first")
        with path.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        if not rows or not {"slice", "dy", "dx"} <= set(rows[0]):
            raise InputError(f"{path}: not a drift table (needs columns slice,dy,dx)")
        try:
            rows.sort(key=lambda r: int(r["slice"]))
            shifts = np.array([[float(r["dy"]), float(r["dx"])] for r in rows])
            quality = np.array([float(r.get("quality") or 1.0) for r in rows])
            residual = np.array([float(r.get("expected_residual_px") or "nan") for r in rows])
        except ValueError as exc:
            raise InputError(f"{path}: unreadable number in drift table ({exc}); fix or regenerate it") from exc
        if [int(r["slice"]) for r in rows] != list(range(len(rows))):
            raise InputError(f"{path}: slice column must run 0..Z-1 without gaps; regenerate the table")
        anchor = tuple(r.get("anchor") or "structure" for r in rows)
        flags = tuple(r.get("flags") or "" for r in rows)
        return cls(shifts, quality, anchor, residual, flags, method="file", metadata={"source": str(path)})
