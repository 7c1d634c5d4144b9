"""Voxel calibration with the provenance of every value."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from volrecon.errors import ParameterError


@dataclass(frozen=True)
class Value:
    """A calibrated number and where it came from.

    ``source`` is ``"metadata:<key>"``, ``"user"``, ``"default"`` or ``"derived:<how>"``.
    """

    value: float | None
    source: str

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "source": self.source}


@dataclass(frozen=True)
class Calibration:
    """Physical calibration of a slice-and-view stack.

    Attributes
    ----------
    pixel_size_x_nm, pixel_size_y_nm : Value
        Image pixel size as recorded by the instrument (before foreshortening correction).
    slice_thickness_nm : Value
        Milling step (z voxel size).
    tilt_deg : Value
        Angle between the block face and the imaging beam's normal plane used for
        cross-section foreshortening (52° on most Thermo DualBeams, 54°/36° on others).
    tilt_corrected_by_instrument : Value
        1.0 when the instrument already stretched y (Thermo ``TiltCorrectionIsOn``), else 0.0.
    apply_foreshortening : bool
        Whether volrecon divides y by sin(tilt) (False when the instrument did it).
    instrument, detector : str
        Free text from the metadata.
    extra : dict
        Other metadata found (beam energy, dwell time, time stamps …) with sources.
    """

    pixel_size_x_nm: Value = Value(None, "missing")
    pixel_size_y_nm: Value = Value(None, "missing")
    slice_thickness_nm: Value = Value(None, "missing")
    tilt_deg: Value = Value(52.0, "default")
    tilt_corrected_by_instrument: Value = Value(0.0, "default")
    apply_foreshortening: bool = True
    instrument: str = ""
    detector: str = ""
    extra: dict[str, Value] = field(default_factory=dict)

    @property
    def foreshortening_factor(self) -> float:
        """Factor by which image y is stretched to physical y (1/sin θ, or 1 when not applied)."""
        if not self.apply_foreshortening or self.tilt_deg.value is None:
            return 1.0
        s = math.sin(math.radians(self.tilt_deg.value))
        if s <= 0:
            raise ParameterError(f"--tilt {self.tilt_deg.value} deg gives sin(tilt) <= 0; use an angle in (0, 180)")
        return 1.0 / s

    @property
    def voxel_size_nm(self) -> tuple[float, float, float]:
        """Physical voxel size ``(z, y, x)`` in nm (y corrected for foreshortening).

        Raises
        ------
        ParameterError
            If a pixel size or the slice thickness is unknown.
        """
        missing = []
        if self.slice_thickness_nm.value is None:
            missing.append("slice thickness (--slice-thickness, e.g. 20nm)")
        if self.pixel_size_y_nm.value is None or self.pixel_size_x_nm.value is None:
            missing.append("pixel size (--pixel-size, e.g. 10nm)")
        if missing:
            raise ParameterError("calibration incomplete: give " + " and ".join(missing))
        return (
            float(self.slice_thickness_nm.value),
            float(self.pixel_size_y_nm.value) * self.foreshortening_factor,
            float(self.pixel_size_x_nm.value),
        )

    @property
    def complete(self) -> bool:
        """True when pixel size and slice thickness are both known."""
        return None not in (
            self.pixel_size_x_nm.value,
            self.pixel_size_y_nm.value,
            self.slice_thickness_nm.value,
        )

    def with_overrides(
        self,
        *,
        pixel_size_nm: float | None = None,
        pixel_size_y_nm: float | None = None,
        slice_thickness_nm: float | None = None,
        tilt_deg: float | None = None,
        tilt_corrected: bool | None = None,
    ) -> "Calibration":
        """Return a copy with user-given values (source ``"user"``)."""
        cal = self
        if pixel_size_nm is not None:
            cal = replace(cal, pixel_size_x_nm=Value(pixel_size_nm, "user"), pixel_size_y_nm=Value(pixel_size_nm, "user"))
        if pixel_size_y_nm is not None:
            cal = replace(cal, pixel_size_y_nm=Value(pixel_size_y_nm, "user"))
        if slice_thickness_nm is not None:
            cal = replace(cal, slice_thickness_nm=Value(slice_thickness_nm, "user"))
        if tilt_deg is not None:
            cal = replace(cal, tilt_deg=Value(tilt_deg, "user"))
        if tilt_corrected is not None:
            cal = replace(
                cal,
                tilt_corrected_by_instrument=Value(float(tilt_corrected), "user"),
                apply_foreshortening=not tilt_corrected,
            )
        return cal

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dictionary with every value and its source (lengths nm, angles deg)."""
        out: dict[str, Any] = {
            "pixel_size_x_nm": self.pixel_size_x_nm.to_dict(),
            "pixel_size_y_nm": self.pixel_size_y_nm.to_dict(),
            "slice_thickness_nm": self.slice_thickness_nm.to_dict(),
            "tilt_deg": self.tilt_deg.to_dict(),
            "tilt_corrected_by_instrument": bool(self.tilt_corrected_by_instrument.value),
            "tilt_corrected_source": self.tilt_corrected_by_instrument.source,
            "foreshortening_applied_by_volrecon": bool(self.apply_foreshortening),
            "foreshortening_factor": self.foreshortening_factor,
            "instrument": self.instrument,
            "detector": self.detector,
            "extra": {k: v.to_dict() for k, v in self.extra.items()},
        }
        if self.complete:
            z, y, x = self.voxel_size_nm
            out["voxel_size_nm"] = {"z": z, "y": y, "x": x}
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Calibration":
        """Inverse of :meth:`to_dict`."""

        def val(key: str) -> Value:
            d = data.get(key) or {}
            return Value(d.get("value"), d.get("source", "missing"))

        return cls(
            pixel_size_x_nm=val("pixel_size_x_nm"),
            pixel_size_y_nm=val("pixel_size_y_nm"),
            slice_thickness_nm=val("slice_thickness_nm"),
            tilt_deg=val("tilt_deg"),
            tilt_corrected_by_instrument=Value(
                float(bool(data.get("tilt_corrected_by_instrument"))), data.get("tilt_corrected_source", "default")
            ),
            apply_foreshortening=bool(data.get("foreshortening_applied_by_volrecon", True)),
            instrument=data.get("instrument", ""),
            detector=data.get("detector", ""),
            extra={k: Value(v.get("value"), v.get("source", "")) for k, v in (data.get("extra") or {}).items()},
        )
