import numpy as np
import pytest

from volrecon.sample import make_phantom
from volrecon.sample.oracle import oracle_correct


def corrected(ph):
    """Undo the phantom's known detector gain/offset, shading and drift (stand-in for the correction stage)."""
    return oracle_correct(ph)


@pytest.fixture(scope="session")
def diglyme():
    ph = make_phantom("diglyme", slices=16, shape=(160, 160), seed=3, artefacts="all", workers=2)
    return ph, corrected(ph)



@pytest.fixture(scope="session")
def framed():
    """A small carbonate phantom showing the face's frame (cap, trench walls)."""
    ph = make_phantom("carbonate", slices=8, shape=(128, 128), seed=5, artefacts="all", frame=True, workers=2)
    return ph, corrected(ph)


@pytest.fixture(scope="module")
def first_guess(diglyme):
    """The diglyme phantom's phases and layers before the anode surfaces are placed (no grey-edge
    refinement): ``(phantom, image, phases, layers, result)``."""
    from volrecon.segment import detect_layers, segment_volume

    ph, img = diglyme
    res = segment_volume(img, voxel_size_nm=ph.voxel_size_nm, method="auto", refine_anode=False)
    phases = np.asarray(res.phases)
    lay = detect_layers(phases, phase_names=res.phase_names, voxel_size_nm=ph.voxel_size_nm)
    return ph, img, phases, lay, res
