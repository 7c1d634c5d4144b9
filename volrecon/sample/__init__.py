"""Synthetic slice-and-view phantoms with ground truth (see DESIGN.md and issue 4).

>>> from volrecon.sample import make_phantom, write_phantom, Artefacts
>>> ph = make_phantom("diglyme", slices=8, shape=(96, 96), seed=0, workers=1)
>>> ph.labels.shape
(8, 96, 96)
"""

from volrecon.sample.artefacts import Artefacts, resolve_artefacts
from volrecon.sample.io import generate, load_truth, slice_name, write_phantom
from volrecon.sample.params import PRESETS, REFERENCE_CYCLES, SpecimenParams, specimen_params
from volrecon.sample.phantom import Phantom, make_phantom, plan_phantom

__all__ = [
    "Artefacts", "PRESETS", "Phantom", "REFERENCE_CYCLES", "SpecimenParams", "generate", "load_truth",
    "make_phantom", "plan_phantom", "resolve_artefacts", "slice_name", "specimen_params", "write_phantom",
]
