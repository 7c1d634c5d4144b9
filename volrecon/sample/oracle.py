"""The ideal correction of a phantom: its known artefacts undone with their true parameters.

Used as the reference ("oracle") that a real correction is compared with, and as a stand-in for
the correction stage in tests that examine later stages on their own.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi


def oracle_correct(ph) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Undo the phantom's detector gain/offset, shading and drift (curtains and noise stay).

    Parameters
    ----------
    ph : Phantom
        From :func:`volrecon.sample.make_phantom`.

    Returns
    -------
    ndarray, float32, shape of ``ph.labels``
        The acquired stack (data bar removed) on the labels' grid, in units of the clean image.
    """
    h = ph.labels.shape[1]
    out = np.empty(ph.labels.shape, np.float32)
    for z in range(out.shape[0]):
        a = ph.acquired[z, :h].astype(np.float32) / 255
        gain, offset = ph.brightness[z]
        out[z] = ndi.shift((a - offset) / (gain * ph.shading), ph.drift[z], order=3, mode="nearest")
    return out
