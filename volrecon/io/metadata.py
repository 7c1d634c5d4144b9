"""Instrument metadata of FIB-SEM images: Thermo/FEI, Zeiss SmartSEM, Tescan, Zeiss/Fibics Atlas 3.

Every value is returned with its source key so that the calibration can say where it came from.
Malformed fields (``"notafloat"``, empty strings) are skipped, never fatal: metadata is advice,
the pixels are the data.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import tifffile

from volrecon.io.calibration import Value

TAG_FEI_INI = 34682
TAG_FEI_XML = 34683
TAG_CZ_SEM = 34118
TAG_TESCAN = 50431
TAG_FIBICS_XML = 51023

_LENGTH_UNITS_NM = {"pm": 1e-3, "nm": 1.0, "µm": 1e3, "μm": 1e3, "um": 1e3, "mm": 1e6, "m": 1e9}


@dataclass(frozen=True)
class InstrumentMetadata:
    """Normalised metadata of one image.

    Attributes
    ----------
    vendor : str
        ``"thermo"``, ``"zeiss"``, ``"tescan"``, ``"fibics"`` or ``"none"``.
    values : dict of str to Value
        Normalised quantities, each with its source:
        ``pixel_size_x_nm``, ``pixel_size_y_nm``, ``slice_thickness_nm``, ``tilt_deg``
        (FIB–SEM geometry angle used for foreshortening), ``stage_tilt_deg``,
        ``tilt_corrected`` (1.0/0.0), ``beam_energy_kv``, ``dwell_time_ns``, ``slice_index``.
    text : dict of str to str
        Free-text items: ``instrument``, ``detector``, ``timestamp``.
    databar_rows : int
        Rows at the bottom of the image occupied by the instrument's data bar (0 if none known).
    """

    vendor: str = "none"
    values: dict[str, Value] = field(default_factory=dict)
    text: dict[str, str] = field(default_factory=dict)
    databar_rows: int = 0

    def get(self, key: str) -> float | None:
        """Return the value of ``key`` or None."""
        v = self.values.get(key)
        return None if v is None else v.value

    def to_dict(self) -> dict[str, Any]:
        return {
            "vendor": self.vendor,
            "values": {k: v.to_dict() for k, v in self.values.items()},
            "text": dict(self.text),
            "databar_rows": self.databar_rows,
        }


def to_float(value: Any) -> float | None:
    """Return ``value`` as a finite float, or None when it is empty or malformed."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        f = float(value)
    else:
        text = str(value).strip().replace(",", ".") if isinstance(value, str) else str(value)
        if not text:
            return None
        try:
            f = float(text)
        except ValueError:
            return None
    return f if math.isfinite(f) else None


def to_bool(value: Any) -> bool | None:
    """Interpret yes/no/on/off/true/false/1/0; None when unclear."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return bool(value)
    text = str(value).strip().lower()
    if text in {"yes", "on", "true", "1", "enabled"}:
        return True
    if text in {"no", "off", "false", "0", "disabled"}:
        return False
    return None


def _put(values: dict[str, Value], key: str, number: float | None, source: str, *, positive: bool = False) -> None:
    if number is None or key in values:
        return
    if positive and number <= 0:
        return
    values[key] = Value(number, source)


# ---------------------------------------------------------------- Thermo / FEI
def parse_fei(meta: Mapping[str, Mapping[str, Any]]) -> InstrumentMetadata:
    """Normalise a Thermo/FEI INI block as decoded by ``tifffile.TiffFile.fei_metadata``.

    Pixel size from ``[Scan] PixelWidth/PixelHeight`` (m), else the active beam's scan section
    (``[EScan]``/``[IScan]``).  Tilt correction from the active beam's ``TiltCorrectionIsOn``.
    Thermo DualBeams put the SEM column at 52° to the FIB column; the metadata does not record
    it, so the angle is reported with source ``default:thermo-dualbeam``.
    """
    values: dict[str, Value] = {}
    text: dict[str, str] = {}
    beam_section = str((meta.get("Beam") or {}).get("Beam", "") or "EBeam")
    scan_section = str((meta.get("Beam") or {}).get("Scan", "") or "EScan")
    for section in ("Scan", scan_section, "EScan", "IScan"):
        sec = meta.get(section) or {}
        for src, key in (("PixelWidth", "pixel_size_x_nm"), ("PixelHeight", "pixel_size_y_nm")):
            f = to_float(sec.get(src))
            _put(values, key, None if f is None else f * 1e9, f"metadata:[{section}] {src}", positive=True)
        dwell = to_float(sec.get("Dwelltime", sec.get("Dwell")))
        _put(values, "dwell_time_ns", None if dwell is None else dwell * 1e9, f"metadata:[{section}] Dwelltime", positive=True)
    beam = meta.get(beam_section) or {}
    hv = to_float((meta.get("Beam") or {}).get("HV")) or to_float(beam.get("HV"))
    _put(values, "beam_energy_kv", None if hv is None else hv / 1e3, "metadata:[Beam] HV", positive=True)
    corrected = to_bool(beam.get("TiltCorrectionIsOn"))
    if corrected is not None:
        values["tilt_corrected"] = Value(float(corrected), f"metadata:[{beam_section}] TiltCorrectionIsOn")
    stage_t = to_float((meta.get("Stage") or {}).get("StageT"))
    if stage_t is not None:
        values["stage_tilt_deg"] = Value(math.degrees(stage_t), "metadata:[Stage] StageT")
    values["tilt_deg"] = Value(52.0, "default:thermo-dualbeam (SEM column at 52° to the FIB)")
    system = meta.get("System") or {}
    text["instrument"] = " ".join(str(system.get(k, "")).strip() for k in ("SystemType",) if system.get(k))
    det = meta.get("Detectors") or {}
    if det.get("Name"):
        text["detector"] = f"{det.get('Name')} {det.get('Mode', '')}".strip()
    user = meta.get("User") or {}
    if user.get("Date"):
        text["timestamp"] = f"{user.get('Date')} {user.get('Time', '')}".strip()
    databar = 0
    image = meta.get("Image") or {}
    res_y = to_float(image.get("ResolutionY"))
    if res_y:
        text["scan_rows"] = str(int(res_y))
    bar = to_float((meta.get("PrivateFei") or {}).get("DatabarHeight"))
    if bar and bar > 0:
        databar = int(bar)
    return InstrumentMetadata("thermo", values, text, databar)


# ---------------------------------------------------------------- Zeiss SmartSEM
def _cz_value(entry: Any) -> tuple[Any, str | None]:
    """Split a decoded CZ_SEM entry ``(label, value[, unit])`` into value and unit."""
    if isinstance(entry, tuple):
        if len(entry) >= 3:
            return entry[1], str(entry[2])
        if len(entry) == 2:
            return entry[1], None
    return entry, None


def _cz_length_nm(entry: Any) -> float | None:
    value, unit = _cz_value(entry)
    f = to_float(value)
    if f is None:
        return None
    scale = _LENGTH_UNITS_NM.get((unit or "nm").strip(), None)
    return None if scale is None else f * scale


def parse_cz_sem(meta: Mapping[str, Any]) -> InstrumentMetadata:
    """Normalise a Zeiss SmartSEM ``CZ_SEM`` block as decoded by ``tifffile`` (``sem_metadata``).

    Pixel size from ``ap_image_pixel_size`` (the stored image's pixel; ``ap_pixel_size`` refers
    to the scan's store resolution and is the fallback), slice thickness from
    ``ap_fib_slice_height``, the FIB–SEM angle from ``ap_fib_sem_angle`` and tilt correction
    from ``dp_tilt_correction``.
    """
    values: dict[str, Value] = {}
    text: dict[str, str] = {}
    for key in ("ap_image_pixel_size", "ap_pixel_size"):
        if key in meta:
            nm = _cz_length_nm(meta[key])
            _put(values, "pixel_size_x_nm", nm, f"metadata:{key}", positive=True)
            _put(values, "pixel_size_y_nm", nm, f"metadata:{key}", positive=True)
    if "ap_fib_slice_height" in meta:
        _put(values, "slice_thickness_nm", _cz_length_nm(meta["ap_fib_slice_height"]), "metadata:ap_fib_slice_height", positive=True)
    angle = to_float(_cz_value(meta.get("ap_fib_sem_angle"))[0]) if "ap_fib_sem_angle" in meta else None
    if angle is not None and 0 < angle < 180:
        values["tilt_deg"] = Value(angle, "metadata:ap_fib_sem_angle")
    tilt = to_float(_cz_value(meta.get("ap_tilt_angle"))[0]) if "ap_tilt_angle" in meta else None
    _put(values, "stage_tilt_deg", tilt, "metadata:ap_tilt_angle")
    if "dp_tilt_correction" in meta:
        b = to_bool(_cz_value(meta["dp_tilt_correction"])[0])
        if b is not None:
            values["tilt_corrected"] = Value(float(b), "metadata:dp_tilt_correction")
    eht_value, eht_unit = _cz_value(meta.get("ap_actualkv", meta.get("ap_manualkv", None)))
    eht = to_float(eht_value)
    if eht is not None:
        _put(values, "beam_energy_kv", eht / 1e3 if (eht_unit or "").strip() == "V" else eht, "metadata:ap_actualkv", positive=True)
    if "dp_dwell_time" in meta:
        dv, du = _cz_value(meta["dp_dwell_time"])
        f = to_float(dv)
        scale = {"ns": 1.0, "µs": 1e3, "us": 1e3, "ms": 1e6, "s": 1e9}.get((du or "ns").strip())
        if f is not None and scale:
            _put(values, "dwell_time_ns", f * scale, "metadata:dp_dwell_time", positive=True)
    if "ap_fib_slice_index" in meta:
        _put(values, "slice_index", to_float(_cz_value(meta["ap_fib_slice_index"])[0]), "metadata:ap_fib_slice_index")
    det = _cz_value(meta.get("dp_detector_channel", meta.get("dp_detector_type", "")))[0]
    if det:
        text["detector"] = str(det)
    sem_id = _cz_value(meta.get("sv_serial_number", ""))[0]
    text["instrument"] = "Zeiss SmartSEM" + (f" {sem_id}" if sem_id else "")
    date = _cz_value(meta.get("ap_date", ""))[0]
    if date:
        text["timestamp"] = f"{date} {_cz_value(meta.get('ap_time', ''))[0]}".strip()
    return InstrumentMetadata("zeiss", values, text, 0)


# ---------------------------------------------------------------- Tescan
_TESCAN_LINE = re.compile(r"^([A-Za-z0-9_.]+)=(.*)$")


def parse_tescan_text(text: str) -> dict[str, dict[str, str]]:
    """Parse Tescan ``key=value`` text (``.hdr`` sidecar or the text inside tag 50431).

    Sections come from ``[MAIN]``/``[SEM]``/``[FIB]`` headers when present.
    """
    sections: dict[str, dict[str, str]] = {}
    current = sections.setdefault("MAIN", {})
    for raw in text.splitlines():
        line = raw.strip().strip("\x00")
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        m = _TESCAN_LINE.match(line)
        if m:
            current[m.group(1)] = m.group(2).strip()
    return sections


def tescan_text_from_tag(blob: bytes) -> str:
    """Extract the readable ``key=value`` text from Tescan's binary tag 50431."""
    pieces = re.findall(rb"(?:[A-Za-z0-9_.]+=[^\x00\n]*\n)+", blob)
    # The blob holds MAIN first and then SEM (or FIB) blocks; mark a section break between them.
    parts = []
    for i, p in enumerate(pieces):
        header = "[MAIN]" if i == 0 else ("[SEM]" if b"AcceleratorVoltage" in p or b"Detector" in p else f"[BLOCK{i}]")
        parts.append(header + "\n" + p.decode("latin-1"))
    return "\n".join(parts)


def parse_tescan(sections: Mapping[str, Mapping[str, str]]) -> InstrumentMetadata:
    """Normalise parsed Tescan sections (``PixelSizeX/Y`` in m, ``HV`` in V, ``StageTilt`` in °)."""
    values: dict[str, Value] = {}
    text: dict[str, str] = {}
    main = sections.get("MAIN", {})
    beam = sections.get("SEM") or sections.get("FIB") or {}
    for src, key in (("PixelSizeX", "pixel_size_x_nm"), ("PixelSizeY", "pixel_size_y_nm")):
        f = to_float(main.get(src))
        _put(values, key, None if f is None else f * 1e9, f"metadata:[MAIN] {src}", positive=True)
    hv = to_float(beam.get("HV") or beam.get("AcceleratorVoltage"))
    _put(values, "beam_energy_kv", None if hv is None else hv / 1e3, "metadata:HV", positive=True)
    dwell = to_float(beam.get("DwellTime"))
    _put(values, "dwell_time_ns", None if dwell is None else dwell * 1e9, "metadata:DwellTime", positive=True)
    tilt = to_float(beam.get("StageTilt"))
    _put(values, "stage_tilt_deg", tilt, "metadata:StageTilt")
    tc = beam.get("TiltCorrection")
    if tc is not None and to_bool(tc) is not None:
        values["tilt_corrected"] = Value(float(bool(to_bool(tc))), "metadata:TiltCorrection")
    values["tilt_deg"] = Value(55.0, "default:tescan (SEM–FIB angle 55°)")
    text["instrument"] = main.get("Device", "Tescan")
    if beam.get("Detector"):
        text["detector"] = beam["Detector"]
    if main.get("Date"):
        text["timestamp"] = f"{main.get('Date')} {main.get('Time', '')}".strip()
    return InstrumentMetadata("tescan", values, text, 0)


# ---------------------------------------------------------------- Zeiss / Fibics Atlas 3
def read_atlas3d_setup(path: str | Path) -> InstrumentMetadata:
    """Read a Zeiss/Fibics Atlas 3 job file (``*.a3d-setup``, XML).

    ``Settings/Imaging/Interval`` is the slice interval (µm); ``FibicsRasterInfo/PixelSizeX/Y``
    the imaging pixel (µm); ``Options/TiltCorrectionEnabled`` the tilt-correction flag;
    ``Detector``/``DetectorB`` the channels.
    """
    root = ET.parse(str(path)).getroot()
    values: dict[str, Value] = {}
    text: dict[str, str] = {}

    def find(xpath: str) -> str | None:
        node = root.find(xpath)
        return None if node is None or node.text is None else node.text.strip()

    interval = to_float(find("Settings/Imaging/Interval"))
    _put(values, "slice_thickness_nm", None if interval is None else interval * 1e3, "metadata:Settings/Imaging/Interval", positive=True)
    for axis in ("X", "Y"):
        f = to_float(find(f"Settings/Imaging/FibicsRasterInfo/PixelSize{axis}"))
        _put(values, f"pixel_size_{axis.lower()}_nm", None if f is None else f * 1e3,
             f"metadata:Settings/Imaging/FibicsRasterInfo/PixelSize{axis}", positive=True)
    dwell = to_float(find("Settings/Imaging/FibicsRasterInfo/Dwell"))
    _put(values, "dwell_time_ns", None if dwell is None else dwell * 1e3, "metadata:FibicsRasterInfo/Dwell", positive=True)
    tc = find("Settings/Options/TiltCorrectionEnabled")
    if tc is not None and to_bool(tc) is not None:
        values["tilt_corrected"] = Value(float(bool(to_bool(tc))), "metadata:Settings/Options/TiltCorrectionEnabled")
    values["tilt_deg"] = Value(54.0, "default:zeiss-crossbeam (FIB–SEM angle 54°)")
    channels = [c for c in (find("Settings/Imaging/Detector"), find("Settings/Imaging/DetectorB")) if c]
    text["detector"] = " + ".join(channels)
    text["channels"] = ",".join(channels)
    text["instrument"] = "Zeiss/Fibics Atlas 3"
    job = find("JobName")
    if job:
        text["job"] = job
    return InstrumentMetadata("fibics", values, text, 0)


def _fibics_xml(xml_text: str) -> InstrumentMetadata:
    values: dict[str, Value] = {}
    try:
        root = ET.fromstring(xml_text)
    except ET.ParseError:
        return InstrumentMetadata("fibics", {}, {"instrument": "Fibics"}, 0)
    # Fibics NPVE stores the scan's field of view (µm) and raster width; pixel = FOV / width.
    def num(tag: str) -> float | None:
        node = root.find(f".//{tag}")
        return None if node is None else to_float(node.text)

    fov, width = num("FOV_X") or num("FOV"), num("Width")
    if fov and width:
        _put(values, "pixel_size_x_nm", fov * 1e3 / width, "metadata:FibicsXML FOV/Width", positive=True)
        _put(values, "pixel_size_y_nm", fov * 1e3 / width, "metadata:FibicsXML FOV/Width", positive=True)
    return InstrumentMetadata("fibics", values, {"instrument": "Zeiss/Fibics"}, 0)


# ---------------------------------------------------------------- dispatch
def _decoded(tags: Any, code: int) -> dict[str, Any] | None:
    """The tag's value when tifffile decoded it into a dict (per page), else None."""
    try:
        value = tags[code].value
    except Exception:  # noqa: BLE001 - a damaged tag is treated as absent
        return None
    return value if isinstance(value, dict) and value else None


def read_tiff_metadata(path: str | Path, *, page: int = 0) -> InstrumentMetadata:
    """Read the instrument metadata of a TIFF file, whichever vendor wrote it.

    Parameters
    ----------
    path : path-like
        TIFF file. A Tescan ``.hdr`` sidecar next to it is read when present.
    page : int
        Page whose tags to read (multi-page files).

    Returns
    -------
    InstrumentMetadata
        ``vendor == "none"`` when nothing was recognised.

    Examples
    --------
    >>> meta = read_tiff_metadata("slice_0000.tif")            # doctest: +SKIP
    >>> meta.get("pixel_size_x_nm"), meta.values["pixel_size_x_nm"].source  # doctest: +SKIP
    (3.3724, 'metadata:[Scan] PixelWidth')
    """
    path = Path(path)
    with tifffile.TiffFile(path) as tif:
        tags = tif.pages[page].tags
        if TAG_FEI_INI in tags or TAG_FEI_XML in tags:
            fei = _decoded(tags, TAG_FEI_INI)
            if fei is None and page == 0:
                try:
                    fei = tif.fei_metadata
                except Exception:  # a corrupt INI block must not stop ingest
                    fei = None
            if fei:
                return parse_fei(fei)
        if TAG_CZ_SEM in tags:
            sem = _decoded(tags, TAG_CZ_SEM)
            if sem:
                return parse_cz_sem(sem)
        hdr = path.with_suffix(".hdr")
        if hdr.is_file():
            return parse_tescan(parse_tescan_text(hdr.read_text(errors="replace")))
        if TAG_TESCAN in tags:
            blob = tags[TAG_TESCAN].value
            if isinstance(blob, (bytes, bytearray)):
                return parse_tescan(parse_tescan_text(tescan_text_from_tag(bytes(blob))))
        if TAG_FIBICS_XML in tags:
            value = tags[TAG_FIBICS_XML].value
            return _fibics_xml(value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value))
    return InstrumentMetadata()
