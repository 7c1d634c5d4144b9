"""Reading slice stacks and instrument metadata; OME-Zarr and run-folder files."""

from volrecon.io.calibration import Calibration, Value
from volrecon.io.metadata import InstrumentMetadata, read_atlas3d_setup, read_tiff_metadata
from volrecon.io.omezarr import OmeZarrImage, read_label_names, read_ome_zarr, write_label_image, write_ome_zarr
from volrecon.io.runfolder import RunFolder
from volrecon.io.stack import Stack, detect_databar, open_stack

__all__ = [
    "Calibration",
    "InstrumentMetadata",
    "OmeZarrImage",
    "RunFolder",
    "Stack",
    "Value",
    "detect_databar",
    "open_stack",
    "read_atlas3d_setup",
    "read_label_names",
    "read_ome_zarr",
    "read_tiff_metadata",
    "write_label_image",
    "write_ome_zarr",
]
