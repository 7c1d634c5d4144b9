"""Reading scribble files (painted training labels).

Accepted:

- an NGFF label image (``…/image.ome.zarr/labels/scribbles``, e.g. painted in napari and saved
  with the volrecon writer): names from its ``image-label.properties``;
- ``.npy`` (integer array on the image grid) or ``.tif``/``.tiff`` (multi-page, z first), with a
  sidecar JSON ``<file>.json`` or an explicit ``phase_names`` mapping ``{"name": value}``;
  without either, the default vocabulary :data:`volrecon.phases.PHASES` is assumed.

Every phase name must be one of the vocabulary (or of ``phase_names`` given by the caller).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

import numpy as np

from volrecon.errors import InputError, ParameterError
from volrecon.phases import PHASES


def read_scribbles(path: str | Path, *, phase_names: Mapping[str, int] | None = None,
                   vocabulary: Mapping[str, int] = PHASES) -> tuple[np.ndarray, dict[str, int]]:
    """Read a scribble file; return ``(labels, phase_names)``.

    Raises
    ------
    InputError
        Missing/unreadable file or sidecar.
    ParameterError
        A phase name outside ``vocabulary``.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such scribble file")
    names: dict[str, int] | None = dict(phase_names) if phase_names is not None else None
    if path.is_dir():
        from volrecon.io.omezarr import read_label_names, read_ome_zarr

        img = read_ome_zarr(path)
        arr = np.asarray(img.data)
        if names is None:
            names = read_label_names(path) or None
    elif path.suffix.lower() == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise InputError(f"{path}: not a readable .npy label array ({exc})") from None
    elif path.suffix.lower() in (".tif", ".tiff"):
        import tifffile

        arr = tifffile.imread(path)
    else:
        raise InputError(f"{path}: scribbles must be an NGFF label image, .npy or .tif; got {path.suffix or 'a file without suffix'}")
    side = path.with_name(path.name + ".json")
    if names is None and side.is_file():
        try:
            names = {str(k): int(v) for k, v in json.loads(side.read_text()).items()}
        except (ValueError, AttributeError, TypeError) as exc:
            raise InputError(f"{side}: expected a JSON object {{\"phase\": value}} ({exc})") from None
    if names is None:
        names = dict(vocabulary)
    unknown = sorted(set(names) - set(vocabulary))
    if unknown:
        raise ParameterError(
            f"{path}: names unknown phase(s) {', '.join(unknown)}; known: {', '.join(vocabulary)} "
            "(rename them or add them to the vocabulary)"
        )
    if arr.ndim != 3:
        raise InputError(f"{path}: scribbles have shape {arr.shape}; give a (z, y, x) array on the image grid")
    return arr, names


def synthetic_scribbles(
    truth: np.ndarray, *, slices: int = 3, strokes_per_phase: int = 6, length: int = 15,
    exclude: tuple[int, ...] = (0,), seed: int = 0,
) -> np.ndarray:
    """Sparse scribbles drawn from a truth label volume, imitating a user's strokes.

    On ``slices`` evenly spaced slices, ``strokes_per_phase`` straight strokes of up to
    ``length`` px per phase, each starting inside the phase (eroded by one pixel where the phase
    is thick enough) in a random direction and stopping where it would leave the phase.  For
    tests and benchmarks on phantoms.
    """
    from scipy import ndimage as ndi

    rng = np.random.default_rng(seed)
    out = np.zeros(truth.shape, dtype=np.uint8)
    nz = truth.shape[0]
    zs = np.unique(np.linspace(nz * 0.15, nz * 0.85, slices).round().astype(int))
    for z in zs:
        sl = truth[z]
        for value in np.unique(sl):
            if value in exclude:
                continue
            mask = sl == value
            inner = ndi.binary_erosion(mask)
            pool = inner if inner.sum() > 20 else mask
            ys, xs = np.nonzero(pool)
            for _ in range(strokes_per_phase):
                i = rng.integers(ys.size)
                y, x = float(ys[i]), float(xs[i])
                ang = rng.uniform(0, 2 * np.pi)
                dy, dx = np.sin(ang), np.cos(ang)
                for _ in range(length):
                    iy, ix = int(round(y)), int(round(x))
                    if not (0 <= iy < sl.shape[0] and 0 <= ix < sl.shape[1]) or not pool[iy, ix]:
                        break
                    out[z, iy, ix] = value
                    y, x = y + dy, x + dx
    return out
