import numpy as np
import pytest
from scipy import ndimage as ndi

from volrecon.sample import make_phantom


def corrected(ph):
    """Undo the phantom's known detector gain/offset, shading and drift (stand-in for the correction stage)."""
    h = ph.labels.shape[1]
    out = np.empty(ph.labels.shape, np.float32)
    for z in range(out.shape[0]):
        a = ph.acquired[z, :h].astype(np.float32) / 255
        g, o = ph.brightness[z]
        out[z] = ndi.shift((a - o) / (g * ph.shading), ph.drift[z], order=3, mode="nearest")
    return out


@pytest.fixture(scope="session")
def diglyme():
    ph = make_phantom("diglyme", slices=16, shape=(160, 160), seed=3, artefacts="all", workers=2)
    return ph, corrected(ph)



@pytest.fixture(scope="session")
def framed():
    """A small carbonate phantom showing the face's frame (cap, trench walls)."""
    ph = make_phantom("carbonate", slices=8, shape=(128, 128), seed=5, artefacts="all", frame=True, workers=2)
    return ph, corrected(ph)
