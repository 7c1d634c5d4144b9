"""Segmentation: phases (thresholds or a trainable pixel classifier), cleanup and cell layers.

>>> from volrecon.segment import segment_volume, train_classifier, PixelClassifier
"""

from volrecon.segment.api import OTSU_ORDER, SegmentationResult, segment_volume
from volrecon.segment.classifier import ForestSettings, PixelClassifier, train_classifier
from volrecon.segment.features import FeatureSettings, compute_features, feature_names, feature_reach
from volrecon.segment.frame import FrameMask, find_frame
from volrecon.segment.layers import INTERFACES, Layers, detect_layers, refine_interface
from volrecon.segment.output import write_segmentation
from volrecon.segment.scribbles import read_scribbles
from volrecon.segment.watershed import separate_particles

__all__ = [
    "FeatureSettings", "ForestSettings", "FrameMask", "INTERFACES", "Layers", "OTSU_ORDER", "PixelClassifier",
    "SegmentationResult", "compute_features", "detect_layers", "feature_names", "feature_reach", "find_frame",
    "read_scribbles", "refine_interface", "segment_volume", "separate_particles", "train_classifier", "write_segmentation",
]
