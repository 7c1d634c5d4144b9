"""Writer: painted scribbles as ``.npy`` plus a ``.npy.json`` naming the phases (``volrecon train --scribbles``)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from volrecon.phases import PHASES

from napari_volrecon._layers import names_from_features


def write_scribbles(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Save a labels layer as volrecon scribbles; returns the files written.

    The values are the phase label values; the sidecar maps each painted value to its phase
    name (from the layer's features when it has them, else volrecon's default phases). Both
    files are written under a temporary name and renamed, so a failed save leaves nothing half
    written.
    """
    out = Path(path)
    if out.suffix.lower() != ".npy":
        out = out.with_suffix(".npy")
    arr = np.asarray(data)
    if arr.ndim != 3:
        raise ValueError(f"{out}: scribbles must be a (z, y, x) labels layer, got {arr.ndim} dimensions")
    names = names_from_features(meta.get("features")) or dict(PHASES)
    painted = {int(v) for v in np.unique(arr) if v != 0}
    by_value = {v: n for n, v in names.items()}
    unknown = sorted(painted - set(by_value))
    if unknown:
        raise ValueError(f"{out}: label values {unknown} are not phases; paint with values of {dict(sorted(by_value.items()))}")
    sidecar = {by_value[v]: v for v in sorted(painted)}
    side = out.with_name(out.name + ".json")
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}.npy")
    np.save(tmp, arr.astype(np.uint8 if arr.max(initial=0) < 256 else np.uint16))
    tmp_side = side.with_name(f".{side.name}.tmp-{os.getpid()}")
    tmp_side.write_text(json.dumps(sidecar, indent=1))
    os.replace(tmp, out)
    os.replace(tmp_side, side)
    return [str(out), str(side)]

