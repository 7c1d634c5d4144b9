"""The segmentation stage's output: a :class:`~volrecon.segment.api.SegmentationResult` written as
OME-NGFF label images beside the image it was computed from.

The last step of the stage (:func:`volrecon.pipeline.segment`, after
:func:`volrecon.segment.api.segment_volume`): ``labels/phases`` and ``labels/regions`` in the run
folder's ``image.ome.zarr``, with the phases' and regions' names and colours in their metadata
(:func:`volrecon.io.omezarr.write_label_image`).  Also importable as
``volrecon.segment.write_segmentation`` and ``volrecon.segment.api.write_segmentation``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from volrecon.phases import PHASE_COLOURS, REGION_COLOURS

if TYPE_CHECKING:  # annotations only: api imports this module
    from volrecon.segment.api import Progress, SegmentationResult


def write_segmentation(result: SegmentationResult, image_path: str | Path, *, progress: Progress | None = None) -> dict[str, Path]:
    """Write ``labels/phases`` and ``labels/regions`` next to an OME-Zarr image, named and coloured.

    Parameters
    ----------
    result : SegmentationResult
        From :func:`~volrecon.segment.api.segment_volume`, on the image's grid.
    image_path : path-like
        The ``image.ome.zarr`` group.

    Returns
    -------
    dict
        ``{"phases": path, "regions": path}``.
    """
    from volrecon.io.omezarr import write_label_image

    pcol = {k: PHASE_COLOURS[k] for k in result.phase_names if k in PHASE_COLOURS}
    rcol = {k: REGION_COLOURS[k] for k in result.region_names if k in REGION_COLOURS}
    p = write_label_image(result.phases, image_path, "phases", names=result.phase_names, colours=pcol, progress=progress)
    r = write_label_image(result.regions, image_path, "regions", names=result.region_names, colours=rcol)
    return {"phases": p, "regions": r}
