"""volrecon: FIB-SEM slice-and-view stacks to calibrated 3D volumes and electrode microstructure."""

from volrecon.errors import VolreconError

__version__ = "0.1.0"
__all__ = ["VolreconError", "__version__"]
