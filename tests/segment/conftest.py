from typing import Any, Callable

import dask
import numpy as np
import pytest
from dask.callbacks import Callback

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


def _held_mb(run: Callable[[], Any], dtype: Any = None) -> float:
    """The most array memory (MB) the local scheduler held at once while ``run()`` ran (sync scheduler; a
    view counts as its whole base; ``dtype``: only arrays of that type)."""
    most = [0]

    def held(key, result, dsk, state, worker_id):
        bases = {}
        for value in state["cache"].values():
            while isinstance(getattr(value, "base", None), np.ndarray):
                value = value.base
            if isinstance(value, np.ndarray) and (dtype is None or value.dtype == dtype):
                bases[id(value)] = value.nbytes
        most[0] = max(most[0], sum(bases.values()))

    with dask.config.set(scheduler="sync"), Callback(posttask=held):
        run()
    return most[0] / 2**20


@pytest.fixture
def held_mb() -> Callable[..., float]:
    """:func:`_held_mb`: the most array memory (MB) the sync scheduler held while a call ran."""
    return _held_mb


@pytest.fixture(scope="session")
def pore_poor_foil_phantom():
    """A carbonate phantom whose cathode is pore-poor beside the collector foil (the true rows' pore
    share 0.23 / 0.20 against the bulk's 0.41), and its oracle-corrected image."""
    ph = make_phantom("carbonate", slices=16, shape=(160, 160), seed=1, artefacts="all", workers=2)
    return ph, corrected(ph)
