"""Parse physical quantities given by users ("20nm", "0.02um", "2e-8m", "52deg").

volrecon works in nanometres (lengths) and degrees (angles) everywhere.
"""

from __future__ import annotations

import math
import re

from volrecon.errors import ParameterError

_LENGTH_TO_NM = {
    "pm": 1e-3,
    "nm": 1.0,
    "um": 1e3,
    "µm": 1e3,
    "μm": 1e3,
    "micron": 1e3,
    "microns": 1e3,
    "mm": 1e6,
    "cm": 1e7,
    "m": 1e9,
    "a": 0.1,
    "å": 0.1,
    "angstrom": 0.1,
}
_ANGLE_TO_DEG = {"deg": 1.0, "°": 1.0, "degree": 1.0, "degrees": 1.0, "rad": 180.0 / math.pi}
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_QUANTITY = re.compile(rf"^\s*({_NUMBER})\s*([^\d\s].*?)?\s*$")


def _split(text: str, what: str) -> tuple[float, str | None]:
    match = _QUANTITY.match(text)
    if not match:
        raise ParameterError(f"{what}: cannot read {text!r} as a number with units (e.g. '20nm')")
    value = float(match.group(1))
    unit = match.group(2)
    return value, (unit.strip().lower() if unit else None)


def parse_length(
    value: str | float | int, *, name: str = "length", default_unit: str = "nm", positive: bool = True
) -> float:
    """Return a length in nanometres.

    Parameters
    ----------
    value : str or float
        ``"20nm"``, ``"0.02um"``, ``"2e-8m"``, ``"20 nm"``; a bare number is in ``default_unit``.
    name : str
        Parameter name used in error messages (e.g. ``"--pixel-size"``).
    default_unit : str
        Unit of a bare number.
    positive : bool
        Refuse zero and negative values.

    Returns
    -------
    float
        The length in nm.

    Examples
    --------
    >>> parse_length("0.02um")
    20.0
    >>> parse_length("2e-8m")
    20.0
    """
    if isinstance(value, (int, float)):
        number, unit = float(value), None
    else:
        number, unit = _split(str(value), name)
    unit = unit or default_unit.lower()
    if unit not in _LENGTH_TO_NM:
        known = ", ".join(k for k in _LENGTH_TO_NM if k.isascii())
        raise ParameterError(f"{name}: unknown length unit {unit!r} in {value!r}; use one of {known}")
    nm = number * _LENGTH_TO_NM[unit]
    if not math.isfinite(nm):
        raise ParameterError(f"{name}: {value!r} is not a finite length")
    if positive and nm <= 0:
        raise ParameterError(f"{name}: {value!r} must be a positive length (e.g. '10nm')")
    return nm


def parse_angle(value: str | float | int, *, name: str = "angle") -> float:
    """Return an angle in degrees; a bare number is in degrees.

    Examples
    --------
    >>> parse_angle("52deg")
    52.0
    """
    if isinstance(value, (int, float)):
        number, unit = float(value), None
    else:
        number, unit = _split(str(value), name)
    unit = unit or "deg"
    if unit not in _ANGLE_TO_DEG:
        raise ParameterError(f"{name}: unknown angle unit {unit!r} in {value!r}; use 'deg' or 'rad'")
    deg = number * _ANGLE_TO_DEG[unit]
    if not math.isfinite(deg):
        raise ParameterError(f"{name}: {value!r} is not a finite angle")
    return deg
