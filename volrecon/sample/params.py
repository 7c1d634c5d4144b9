"""Specimen parameters and the electrolyte presets (``carbonate``, ``diglyme``).

All lengths are in nanometres; fractions are 0-1.  A preset describes a cell after
``REFERENCE_CYCLES`` cycles; :func:`specimen_params` scales the degradation (SEI growth,
electrolyte loss to voids) linearly with the number of cycles.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from volrecon.errors import ParameterError

REFERENCE_CYCLES = 100
"""Number of cycles the preset figures describe."""

LayerOrder = Literal["anode_top", "cathode_top"]


@dataclass(frozen=True)
class SpecimenParams:
    """Geometry of the imaged full cell (see :func:`volrecon.sample.make_phantom`).

    Attributes
    ----------
    layer_fractions : dict
        Share of the face height (below the cap) taken by ``anode``, ``separator``,
        ``cathode`` and ``collector``, in stacking order from the anode.
    order : {"anode_top", "cathode_top"}
        Which end of the stack is at the top of the image.
    sodium_roughness_nm, sodium_corr_nm : float
        RMS height and lateral correlation length of the sodium surface.
    sei_mean_nm, sei_cv, sei_corr_nm, sei_min_nm : float
        SEI thickness field ``t``: log-normal with this mean and coefficient of variation,
        lateral correlation length, and floor.
    interface_roughness_nm : float
        RMS height of the separator/cathode interface (the collector interface gets half).
    rod_radius_nm, rod_radius_sd_nm : float
        Radius of the Na0.44MnO2 rods (normal, truncated at 40 %).
    rod_length_nm : tuple of float
        Uniform range of rod length (cylinder part).
    rod_tilt_deg : tuple of float
        Uniform range of the angle between rod axis and the milling direction z; rods are never
        parallel to z, so their sections move across the image from slice to slice.
    active_fraction : float
        Target volume share of active material in the cathode (Boolean model).
    binder_share : float
        Target share of the non-active cathode volume taken by carbon-binder domain.
    binder_reach_nm, binder_corr_nm : float
        The binder prefers the first ``binder_reach_nm`` around particles; blob size.
    fibre_radius_nm, fibre_radius_sd_nm, fibre_fraction, fibre_elevation_deg : float
        Glass fibres of the separator: radius, solid volume share, and the largest angle
        between a fibre and the separator plane (x-z).
    void_share : float
        Share of the cathode pore (void + electrolyte) that has lost its electrolyte.
    void_decay : float or None
        If given, void density decays away from the separator as ``exp(-xi/void_decay)``,
        ``xi`` the depth into the cathode as a fraction of its thickness (mean share kept).
    void_corr_nm : float
        Size of void blobs.
    """

    layer_fractions: dict[str, float] = field(
        default_factory=lambda: {"anode": 0.17, "separator": 0.23, "cathode": 0.48, "collector": 0.12}
    )
    order: LayerOrder = "anode_top"
    sodium_roughness_nm: float = 70.0
    sodium_corr_nm: float = 700.0
    sei_mean_nm: float = 30.0
    sei_cv: float = 0.25
    sei_corr_nm: float = 900.0
    sei_min_nm: float = 8.0
    interface_roughness_nm: float = 60.0
    rod_radius_nm: float = 110.0
    rod_radius_sd_nm: float = 25.0
    rod_length_nm: tuple[float, float] = (500.0, 1500.0)
    rod_tilt_deg: tuple[float, float] = (25.0, 65.0)
    active_fraction: float = 0.45
    binder_share: float = 0.22
    binder_reach_nm: float = 90.0
    binder_corr_nm: float = 110.0
    fibre_radius_nm: float = 170.0
    fibre_radius_sd_nm: float = 45.0
    fibre_fraction: float = 0.32
    fibre_elevation_deg: float = 12.0
    void_share: float = 0.05
    void_decay: float | None = None
    void_corr_nm: float = 170.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dictionary (lengths nm)."""
        d = asdict(self)
        d["rod_length_nm"] = list(self.rod_length_nm)
        d["rod_tilt_deg"] = list(self.rod_tilt_deg)
        return d


_PRESETS: dict[str, dict[str, Any]] = {
    # EC/DEC: thick, uneven SEI (hundreds of nm), rough sodium, few cathode voids
    "carbonate": dict(
        sei_mean_nm=260.0, sei_cv=0.35, sei_corr_nm=800.0, sodium_roughness_nm=110.0,
        void_share=0.05, void_decay=None,
    ),
    # diglyme: thin SEI (tens of nm), electrolyte lost to voids, denser near the separator
    "diglyme": dict(
        sei_mean_nm=32.0, sei_cv=0.22, sei_corr_nm=900.0, sodium_roughness_nm=60.0,
        void_share=0.38, void_decay=0.45,
    ),
}
_PRISTINE = {"sei_mean_nm": 12.0, "void_share": 0.01}

PRESETS: tuple[str, ...] = tuple(_PRESETS)
"""Names of the electrolyte presets."""


def specimen_params(preset: str, *, cycles: float | None = None, **overrides: Any) -> SpecimenParams:
    """Specimen parameters of an electrolyte preset after ``cycles`` cycles.

    Parameters
    ----------
    preset : {"carbonate", "diglyme"}
        Electrolyte of the cell.
    cycles : float, optional
        Number of cycles; degradation (SEI mean thickness above the pristine 12 nm, void share
        above the pristine 1 %) scales linearly, reaching the preset's figures at
        ``REFERENCE_CYCLES`` (100).  Default: ``REFERENCE_CYCLES``.
    **overrides
        Any :class:`SpecimenParams` field, applied last.

    Raises
    ------
    ParameterError
        Unknown preset or field, or a value out of range.
    """
    if preset not in _PRESETS:
        raise ParameterError(f"unknown phantom preset {preset!r}; use one of {', '.join(PRESETS)}")
    values = dict(_PRESETS[preset])
    if cycles is not None:
        if cycles < 0:
            raise ParameterError(f"cycles={cycles}: give a number of cycles >= 0")
        k = float(cycles) / REFERENCE_CYCLES
        for key, pristine in _PRISTINE.items():
            values[key] = pristine + (values[key] - pristine) * k
        values["void_share"] = min(values["void_share"], 0.9)
    unknown = set(overrides) - set(SpecimenParams.__dataclass_fields__)
    if unknown:
        raise ParameterError(f"unknown specimen parameter(s) {', '.join(sorted(unknown))}")
    params = replace(SpecimenParams(), **{**values, **overrides})  # an override may name a preset's field
    _validate(params)
    return params


def _validate(p: SpecimenParams) -> None:
    needed = {"anode", "separator", "cathode", "collector"}
    if set(p.layer_fractions) != needed or any(v <= 0 for v in p.layer_fractions.values()):
        raise ParameterError(
            f"layer_fractions={p.layer_fractions}: give positive shares for {', '.join(sorted(needed))}"
        )
    if p.order not in ("anode_top", "cathode_top"):
        raise ParameterError(f"order={p.order!r}: use 'anode_top' or 'cathode_top'")
    for name in ("active_fraction", "binder_share", "fibre_fraction", "void_share"):
        v = getattr(p, name)
        if not 0 <= v < 1:
            raise ParameterError(f"{name}={v}: give a fraction in [0, 1)")
    if p.sei_mean_nm <= 0 or p.rod_radius_nm <= 0 or p.fibre_radius_nm <= 0:
        raise ParameterError("sei_mean_nm, rod_radius_nm and fibre_radius_nm must be positive lengths in nm")
