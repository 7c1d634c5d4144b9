"""napari plugin for volrecon (npe2).

Open a volrecon run folder (or any volrecon OME-Zarr volume) with its phases and regions named
and coloured, paint scribbles and train the pixel classifier, measure a labelled volume, and run
the whole pipeline, each widget a thin layer over :mod:`volrecon`.
"""

__version__ = "0.1.0"
