"""Input checks shared by the segmentation functions (each raises a one-line VolreconError)."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from volrecon.errors import InputError, ParameterError


def check_voxel(voxel_size_nm: Sequence[float]) -> tuple[float, float, float]:
    """Three positive voxel sizes ``(z, y, x)`` in nm."""
    try:
        vox = tuple(float(v) for v in voxel_size_nm)
    except (TypeError, ValueError):
        vox = ()
    if len(vox) != 3 or not all(np.isfinite(v) and v > 0 for v in vox):
        raise ParameterError(f"voxel_size_nm={voxel_size_nm!r}: give three positive sizes (z, y, x) in nm")
    return vox  # type: ignore[return-value]


def check_image(image: Any) -> None:
    """A 3D, non-empty, real-valued image."""
    if getattr(image, "ndim", None) != 3:
        raise InputError(f"image has shape {getattr(image, 'shape', None)}; segmentation needs a (z, y, x) volume")
    if min(image.shape) < 1:
        raise InputError(f"image shape {tuple(image.shape)} is empty; check the crop or the input folder")
    if not (np.issubdtype(image.dtype, np.integer) or np.issubdtype(image.dtype, np.floating)):
        raise InputError(f"image dtype {image.dtype}: grey values must be integers or floats")


def check_phase_names(phase_names: Mapping[str, int]) -> dict[str, int]:
    """Name -> positive label value, values unique."""
    try:
        names = {str(k): int(v) for k, v in dict(phase_names).items()}
    except (TypeError, ValueError):
        raise ParameterError("phase_names: give a mapping of phase name -> label value, e.g. {'void': 1}") from None
    if not names:
        raise ParameterError("phase_names is empty: name at least two phases")
    if any(v <= 0 or v > 65535 for v in names.values()):
        raise ParameterError(f"phase_names {names}: label values must be 1..65535 (0 means unassigned)")
    if len(set(names.values())) != len(names):
        raise ParameterError(f"phase_names {names}: two phases share a label value; give each its own")
    return names


def check_scribbles(scribbles: Any, shape: Sequence[int], names: Mapping[str, int]) -> np.ndarray:
    """Scribbles as an integer numpy array on the image grid naming known phases (≥ 2 painted)."""
    if tuple(getattr(scribbles, "shape", ())) != tuple(shape):
        raise ParameterError(
            f"scribbles have shape {tuple(getattr(scribbles, 'shape', ()))} but the image is {tuple(shape)}; "
            "paint them on the same (z, y, x) grid as the image"
        )
    arr = np.asarray(scribbles.compute() if hasattr(scribbles, "compute") else scribbles)
    if not np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.floating) and np.all(np.mod(arr, 1) == 0):
            arr = arr.astype(np.int64)
        else:
            raise ParameterError(f"scribbles dtype {arr.dtype}: paint integer label values (0 = not painted)")
    values = np.unique(arr)
    values = values[values != 0]
    unknown = sorted(int(v) for v in values if int(v) not in set(names.values()))
    if unknown:
        raise ParameterError(
            f"scribbles contain label value(s) {unknown} that phase_names does not name; "
            f"known: {', '.join(f'{k}={v}' for k, v in names.items())}"
        )
    if values.size < 2:
        only = [k for k, v in names.items() if v in set(values.tolist())]
        raise ParameterError(
            f"scribbles paint {'only ' + only[0] if only else 'nothing'}; paint at least two phases "
            "(every phase you want the classifier to output)"
        )
    return arr
