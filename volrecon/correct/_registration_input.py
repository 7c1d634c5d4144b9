"""Input checks and slice-by-slice streaming for drift estimation (numpy or dask stacks)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np

from volrecon.errors import InputError, ParameterError

T = TypeVar("T")
MIN_SIDE = 32


def is_dask(image: Any) -> bool:
    """True for a dask array (checked without importing dask)."""
    return type(image).__module__.startswith("dask")


def check_stack(image: Any) -> tuple[int, int, int]:
    """Validate a ``(z, y, x)`` stack for registration and return its shape."""
    shape = tuple(int(s) for s in getattr(image, "shape", ()))
    if len(shape) != 3:
        raise InputError(f"drift estimation needs a 3D (z, y, x) stack, got shape {shape or 'none'}")
    if shape[0] < 2:
        raise InputError(f"drift estimation needs at least 2 slices, the stack has {shape[0]}")
    if shape[1] < MIN_SIDE or shape[2] < MIN_SIDE:
        raise InputError(
            f"slices of {shape[1]}x{shape[2]} px are too small to register (need at least {MIN_SIDE}x{MIN_SIDE})"
        )
    dtype = np.dtype(getattr(image, "dtype", np.float64))
    if not (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating) or dtype == bool):
        raise InputError(f"drift estimation needs a numeric stack, got dtype {dtype}")
    return shape  # type: ignore[return-value]


def check_box(box: Any, shape: tuple[int, int], name: str) -> tuple[int, int, int, int]:
    """Validate a rectangle ``(y0, y1, x0, x1)`` inside a slice of ``shape``."""
    try:
        y0, y1, x0, x1 = (int(round(float(v))) for v in box)
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"{name}={box!r}: give a rectangle (y0, y1, x0, x1) in pixels") from exc
    if not (0 <= y0 < y1 <= shape[0] and 0 <= x0 < x1 <= shape[1]):
        raise ParameterError(
            f"{name}={box!r} is outside the {shape[0]}x{shape[1]} slice; give 0 <= y0 < y1 <= {shape[0]}, "
            f"0 <= x0 < x1 <= {shape[1]}"
        )
    if y1 - y0 < 16 or x1 - x0 < 16:
        raise ParameterError(f"{name}={box!r} is smaller than 16x16 px; mark a larger rectangle")
    return (y0, y1, x0, x1)


def slice_reader(image: Any) -> Callable[[int], np.ndarray]:
    """Return ``read(z) -> 2D ndarray`` in the stack's dtype; dask slices are computed one at a time.

    Not converted to float: consumers convert only the pixels they use (binning accumulates
    in float32), which saves a full-slice copy per slice.
    """
    if is_dask(image):

        def read(z: int) -> np.ndarray:
            return np.asarray(image[z].compute(scheduler="synchronous"))

    else:
        arr = np.asarray(image)

        def read(z: int) -> np.ndarray:
            return np.asarray(arr[z])

    return read


def check_slice(z: int, data: np.ndarray, *, floating: bool) -> None:
    """Raise for NaN/inf pixels (only possible in floating-point stacks)."""
    if floating and not np.isfinite(data).all():
        bad = int((~np.isfinite(data)).sum())
        raise InputError(
            f"slice {z} has {bad} NaN/inf pixels; fill them (e.g. numpy.nan_to_num) or exclude them with mask="
        )


def blank_reason(data: np.ndarray, dtype: np.dtype) -> str:
    """``"blank"`` for a (nearly) constant slice, ``"saturated"`` for one mostly at its limits, else ``""``."""
    lo, hi = float(data.min()), float(data.max())
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        if np.count_nonzero(data >= info.max) >= 0.9 * data.size:
            return "saturated"
    if hi - lo <= 1e-6 * max(1.0, abs(hi)):
        return "blank"
    sample = data[:: max(1, data.shape[0] // 64), :: max(1, data.shape[1] // 64)]
    spread = float(np.ptp(np.percentile(sample, [2, 98])))
    if spread <= 1e-6 * max(1.0, abs(hi)):
        return "blank"
    return ""


def static_rows(read: Callable[[int], np.ndarray], slices: list[int], *, fraction: float = 0.9) -> np.ndarray:
    """Rows that are identical in the first three usable slices (a data bar or overlay).

    Registered content moves and carries noise; an overlay burned into every image does not, and
    would pull every estimate toward zero. Returns a boolean array over rows (True = static).
    """
    if len(slices) < 3:
        return np.zeros(0, dtype=bool)
    a, b, c = (read(z) for z in slices[:3])
    same = (a == b) & (b == c)
    varying = a.std(axis=1) > 0
    return (same.mean(axis=1) >= fraction) & varying


def ordered_map(func: Callable[[int], T], items: list[int], workers: int, ahead: int = 4) -> Iterator[tuple[int, T]]:
    """``(item, func(item))`` in order, computed by a small thread pool with bounded look-ahead."""
    if workers <= 1:
        for item in items:
            yield item, func(item)
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: dict[int, Future] = {}
        nxt = 0
        for i, item in enumerate(items):
            while nxt < len(items) and nxt < i + ahead * workers:
                pending[nxt] = pool.submit(func, items[nxt])
                nxt += 1
            yield item, pending.pop(i).result()
