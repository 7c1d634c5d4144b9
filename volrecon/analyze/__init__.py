"""Microstructure analysis: fractions, profiles, connectivity, tortuosity, pore sizes, thickness."""

from volrecon.analyze.tortuosity import TortuosityResult, tortuosity

__all__ = ["TortuosityResult", "tortuosity"]
