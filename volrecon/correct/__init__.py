"""Corrections of slice-and-view artefacts: estimate a small result, then apply it lazily."""

from volrecon.correct._registration_table import DriftTable
from volrecon.correct.drift import apply_drift, estimate_drift, output_geometry, plot_drift
from volrecon.correct.frame import FrameInfo, detect_frame

__all__ = [
    "DriftTable",
    "FrameInfo",
    "apply_drift",
    "detect_frame",
    "estimate_drift",
    "output_geometry",
    "plot_drift",
]

# intensity corrections and the correct stage (issue 6)
from volrecon.correct.brightness import BrightnessTable, apply_brightness, estimate_brightness
from volrecon.correct.curtains import CurtainSettings, apply_curtains, estimate_curtains
from volrecon.correct.denoise import denoise
from volrecon.correct.shading import ShadingField, apply_shading, estimate_shading
from volrecon.correct.stage import CorrectionResult, correct_volume, correction_figures, save_corrections

__all__ += [
    "BrightnessTable", "CorrectionResult", "CurtainSettings", "ShadingField", "apply_brightness", "apply_curtains",
    "apply_shading", "correct_volume", "correction_figures", "denoise", "estimate_brightness", "estimate_curtains",
    "estimate_shading", "save_corrections",
]
