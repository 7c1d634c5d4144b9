"""Instrument metadata written into the phantom's TIFF slices.

Two vendor layouts are produced, modelled on what the instruments write (values are the
phantom's own, nothing is copied from real files):

- Thermo Fisher / FEI: INI-style text in private tag 34682 (``FEI_HELIOS``), decoded by
  ``tifffile.TiffFile.fei_metadata``; lengths in metres, ``[Stage] StageT`` in radians,
  ``[EBeam] TiltCorrectionIsOn`` yes/no.
- Zeiss SmartSEM: ``CZ_SEM`` tag 34118, decoded by ``tifffile.TiffFile.sem_metadata``
  (``ap_image_pixel_size``, ``ap_fib_slice_height``, ``dp_tilt_correction`` ...).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

THERMO_TAG = 34682
ZEISS_TAG = 34118
Vendor = Literal["thermo", "zeiss"]

_START = datetime(2025, 3, 14, 9, 12, 5)


@dataclass(frozen=True)
class SliceInfo:
    """What the instrument knows when it saves slice ``index``."""

    index: int
    slices: int
    width: int
    height: int  # image rows without data bar
    databar_rows: int
    pixel_x_nm: float
    pixel_y_nm: float  # as recorded (before any foreshortening correction)
    slice_nm: float
    tilt_deg: float
    tilt_corrected: bool
    frame_seconds: float = 21.0

    @property
    def time(self) -> datetime:
        return _START + timedelta(seconds=self.index * (self.frame_seconds + 38.0))


def thermo_ini(info: SliceInfo) -> str:
    """Thermo/FEI ``[Section] key=value`` metadata text for one slice."""
    px, py = info.pixel_x_nm * 1e-9, info.pixel_y_nm * 1e-9
    hfw, vfw = px * info.width, py * info.height
    t = info.time
    tilt_rad = math.radians(info.tilt_deg)
    corr = "yes" if info.tilt_corrected else "no"
    corr_angle = math.radians(90.0 - info.tilt_deg) if info.tilt_corrected else 0.0
    dwell = 3e-6
    sections: list[tuple[str, list[tuple[str, object]]]] = [
        ("User", [("Date", t.strftime("%m/%d/%Y")), ("Time", t.strftime("%I:%M:%S %p")), ("User", "volrecon"),
                  ("UserText", f"volrecon phantom slice {info.index}")]),
        ("System", [("Type", "DualBeam"), ("Dnumber", "0000000"), ("Software", "volrecon-phantom"),
                    ("Source", "FEG"), ("Column", "Elstar"), ("FinalLens", "Elstar"), ("Chamber", "xT-SDB"),
                    ("Stage", "6inch"), ("Pump", "TMP"), ("ESEM", "no"), ("Aperture", "AVA"), ("Scan", "PIA 3.0"),
                    ("Acq", "PIA 3.0"), ("EucWD", "0.004"), ("SystemType", "Helios 5 CX (phantom)")]),
        ("Beam", [("HV", 2000), ("Spot", 3), ("StigmatorX", 0), ("StigmatorY", 0), ("BeamShiftX", 0),
                  ("BeamShiftY", 0), ("ScanRotation", 0), ("ImageMode", "Normal"), ("Beam", "EBeam"),
                  ("Scan", "EScan")]),
        ("EBeam", [("Source", "FEG"), ("ColumnType", "Elstar"), ("FinalLens", "Elstar"), ("Acq", "PIA 3.0"),
                   ("Aperture", "AVA"), ("ApertureDiameter", "3.2e-005"), ("HV", 2000), ("HFW", f"{hfw:g}"),
                   ("VFW", f"{vfw:g}"), ("WD", "0.00402"), ("BeamCurrent", "1e-010"),
                   ("TiltCorrectionIsOn", corr), ("DynamicFocusIsOn", "yes"), ("ScanRotation", 0),
                   ("LensMode", "Immersion"), ("ImageMode", "Normal"), ("StageX", "0.0012"),
                   ("StageY", "-0.00034"), ("StageZ", "0.00402"), ("StageR", "0.523599"),
                   ("StageTa", f"{tilt_rad:.6f}"), ("StageTb", 0), ("TiltCorrectionAngle", f"{corr_angle:.6f}"),
                   ("BeamMode", "N-Beam")]),
        ("IBeam", [("Source", "Ga"), ("HV", 30000), ("BeamCurrent", "7.9e-010"), ("Aperture", "")]),
        ("Scan", [("InternalScan", "true"), ("Dwelltime", f"{dwell:g}"), ("PixelWidth", f"{px:.6g}"),
                  ("PixelHeight", f"{py:.6g}"), ("HorFieldsize", f"{hfw:g}"), ("VerFieldsize", f"{vfw:g}"),
                  ("Average", 0), ("Integrate", 1), ("FrameTime", f"{info.frame_seconds:g}")]),
        ("EScan", [("Scan", "PIA 3.0"), ("InternalScan", "true"), ("Dwell", f"{dwell:g}"),
                   ("PixelWidth", f"{px:.6g}"), ("PixelHeight", f"{py:.6g}"), ("HorFieldsize", f"{hfw:g}"),
                   ("VerFieldsize", f"{vfw:g}"), ("FrameTime", f"{info.frame_seconds:g}"), ("LineIntegration", 1)]),
        ("Stage", [("StageX", "0.0012"), ("StageY", "-0.00034"), ("StageZ", "0.00402"), ("StageR", "0.523599"),
                   ("StageT", f"{tilt_rad:.6f}"), ("StageTb", 0), ("ActiveStage", "Bulk"),
                   ("WorkingDistance", "0.00402")]),
        ("Image", [("DigitalContrast", 1), ("DigitalBrightness", 0), ("DigitalGamma", 1), ("Average", 0),
                   ("Integrate", 1), ("ResolutionX", info.width), ("ResolutionY", info.height),
                   ("DriftCorrected", "Off"), ("ZoomFactor", "1.000000"), ("PostProcessing", "None"),
                   ("Transformation", "None")]),
        ("Vacuum", [("ChPressure", "8.1e-005"), ("UserMode", "High vacuum")]),
        ("Specimen", [("Temperature", "-165.0"), ("SpecimenCurrent", "")]),
        ("Detectors", [("Number", 1), ("Name", "TLD"), ("Mode", "BSE")]),
        ("TLD", [("Contrast", "61.3"), ("Brightness", "48.2"), ("Signal", "BSE"), ("Grid", "-2"),
                 ("MinimumDwellTime", "1e-007")]),
        ("Accessories", [("Number", 0)]),
        ("PrivateFei", [("BitShift", 0), ("DataBarSelected", "HV curr mag HFW det WD tilt Label MicronBar"),
                        ("DataBarAvailable", "HV curr mag HFW det WD tilt dwell Label MicronBar"),
                        ("TimeOfCreation", t.strftime("%d.%m.%Y %H:%M:%S")),
                        ("DatabarHeight", info.databar_rows)]),
    ]
    lines: list[str] = []
    for name, items in sections:
        lines.append(f"[{name}]")
        lines.extend(f"{k}={v}" for k, v in items)
        lines.append("")
    return "\r\n".join(lines) + "\r\n"


def zeiss_cz_sem(info: SliceInfo) -> str:
    """Zeiss SmartSEM ``CZ_SEM`` text (numeric header, then ``AP_/DP_`` key / ``Label = value`` pairs)."""
    t = info.time
    w_um, h_um = info.pixel_x_nm * info.width / 1e3, info.pixel_y_nm * info.height / 1e3
    header = ["0", "0", "0", f"{info.pixel_x_nm * 1e-9:e}", "2.0e+004", "6", "1.500000e+003", "2.3", "1.0e-007",
              "5.0e-003", "1"]
    pairs = [
        ("DP_DETECTOR_CHANNEL", "Signal A = InLens"),
        ("DP_DETECTOR_TYPE", "Detector = InLens"),
        ("DP_TILTED", "Stage Tilted = Yes"),
        ("DP_TILT_CORRECTION", f"Tilt Corrn. = {'On' if info.tilt_corrected else 'Off'}"),
        ("DP_DWELL_TIME", "Dwell Time = 300 ns"),
        ("AP_MANUALKV", "EHT Target = 1.50 kV"),
        ("AP_ACTUALKV", "EHT = 1.50 kV"),
        ("AP_WD", "WD = 5.0 mm"),
        ("AP_PIXEL_SIZE", f"Pixel Size = {info.pixel_x_nm:.4g} nm"),
        ("AP_IMAGE_PIXEL_SIZE", f"Image Pixel Size = {info.pixel_x_nm:.4g} nm"),
        ("AP_WIDTH", f"Width = {w_um:.4g} µm"),
        ("AP_HEIGHT", f"Height = {h_um:.4g} µm"),
        ("AP_TILT_ANGLE", f"Tilt Angle = {info.tilt_deg - 90.0:.1f} °"),
        ("AP_STAGE_AT_T", f"Stage at T = {info.tilt_deg:.1f} °"),
        # the angle between the beams: the face is imaged at it, so it is the one the render foreshortened by
        ("AP_FIB_SEM_ANGLE", f"FIB SEM Angle = {info.tilt_deg:.1f} °"),
        ("AP_FIB_SLICE_HEIGHT", f"Slice Height = {info.slice_nm:.4g} nm"),
        ("AP_FIB_SLICE_INDEX", f"Slice Index = {info.index}"),
        ("AP_FRAME_TIME", f"Cycle Time = {info.frame_seconds:.1f} Secs"),
        ("AP_DATE", f"Date = {t.strftime('%d %b %Y')}"),
        ("AP_TIME", f"Time = {t.strftime('%H:%M:%S')}"),
        ("SV_SERIAL_NUMBER", "Serial No. = Crossbeam phantom"),
        ("SV_USER_NAME", "User Name = VOLRECON"),
    ]
    lines = header + [str(len(pairs))]
    for key, value in pairs:
        lines += [key, value]
    return "\r\n".join(lines) + "\r\n"


def extratags(vendor: Vendor, info: SliceInfo) -> list[tuple[int, str, int, bytes, bool]]:
    """``tifffile`` ``extratags`` carrying the vendor metadata of one slice."""
    if vendor == "thermo":
        text = thermo_ini(info).encode("latin-1")
        return [(THERMO_TAG, "B", len(text), text, True)]
    if vendor == "zeiss":
        text = zeiss_cz_sem(info).encode("latin-1")
        return [(ZEISS_TAG, "B", len(text), text, True)]
    raise ValueError(f"unknown vendor {vendor!r}")
