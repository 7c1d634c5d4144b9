"""Default phase and region vocabulary (see DESIGN.md, "Conventions").

Analysis asks for phases by *name*; the numbers below are only the default encoding used by
the phantom and by segmentation.  Label value 0 means unassigned.  ``frame`` marks everything
that is not specimen (protective cap, trench walls, the void in front of the face): it is
excluded from every metric.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Mapping

PHASES: Mapping[str, int] = MappingProxyType(
    {
        "void": 1,
        "electrolyte": 2,
        "active": 3,
        "binder": 4,
        "separator": 5,
        "sodium": 6,
        "sei": 7,
        "collector": 8,
        "frame": 9,
    }
)
"""Default phase name -> label value."""

REGIONS: Mapping[str, int] = MappingProxyType(
    {
        "anode": 1,
        "separator": 2,
        "cathode": 3,
        "collector": 4,
        "frame": 5,
    }
)
"""Default region (cell layer) name -> label value."""

PHASE_COLOURS: Mapping[str, str] = MappingProxyType(
    {
        "void": "#000000",
        "electrolyte": "#3a7bd5",
        "active": "#d98c2b",
        "binder": "#6b8e23",
        "separator": "#c9c9c9",
        "sodium": "#b0b7c6",
        "sei": "#d62728",
        "collector": "#8c564b",
        "frame": "#7f7f7f",
    }
)
"""Display colour of each default phase (hex RGB)."""

REGION_COLOURS: Mapping[str, str] = MappingProxyType(
    {
        "anode": "#b0b7c6",
        "separator": "#c9c9c9",
        "cathode": "#d98c2b",
        "collector": "#8c564b",
        "frame": "#7f7f7f",
    }
)
"""Display colour of each default region (hex RGB)."""


def phase_value(name: str, phase_names: Mapping[str, int] | None = None) -> int:
    """Return the label value of phase ``name``.

    Parameters
    ----------
    name : str
        Phase name, e.g. ``"void"``.
    phase_names : mapping, optional
        Name -> value mapping of the label image; the default vocabulary when omitted.

    Raises
    ------
    ParameterError
        If the phase is not in the mapping.
    """
    from volrecon.errors import ParameterError

    mapping = PHASES if phase_names is None else phase_names
    try:
        return int(mapping[name])
    except KeyError:
        known = ", ".join(sorted(mapping))
        raise ParameterError(
            f"unknown phase {name!r}: the label image names {known}; "
            "pass phase_names={...} to map your labels"
        ) from None
