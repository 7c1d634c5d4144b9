"""Microstructure analysis: fractions, profiles, connectivity, tortuosity, pore sizes, thickness.

Entry points: :func:`tortuosity`, :func:`sei_thickness`, :func:`analyze_volume` and
:func:`write_analysis` (metrics.json, tables/, figures/ of a run folder).
"""

from volrecon.analyze.connectivity import (
    ConnectivityResult, cluster_connectivity, label_clusters, label_clusters_chunked,
)
from volrecon.analyze.fractions import FractionsResult, count_table, phase_fractions
from volrecon.analyze.metrics import AnalysisResult, analyze_volume, write_analysis
from volrecon.analyze.poresize import PoreSizeResult, local_thickness, pore_size_distribution
from volrecon.analyze.profiles import DepthProfile, depth_profile
from volrecon.analyze.surface import SurfaceResult, specific_surface_area
from volrecon.analyze.thickness import ThicknessResult, sei_thickness
from volrecon.analyze.tortuosity import TortuosityResult, tortuosity

__all__ = [
    "AnalysisResult", "ConnectivityResult", "DepthProfile", "FractionsResult", "PoreSizeResult",
    "SurfaceResult", "ThicknessResult", "TortuosityResult", "analyze_volume", "cluster_connectivity",
    "count_table", "depth_profile", "label_clusters", "label_clusters_chunked", "local_thickness",
    "phase_fractions", "pore_size_distribution", "sei_thickness", "specific_surface_area",
    "tortuosity", "write_analysis",
]
