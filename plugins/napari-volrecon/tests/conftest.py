"""Shared phantom volumes for the plugin tests (small: the tests run under Xvfb in CI)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def phantom():
    from volrecon.sample import Artefacts, make_phantom

    # drift off so the true labels lie on the image; every other artefact on
    return make_phantom("diglyme", slices=12, shape=(192, 192), frame=True, artefacts=Artefacts(drift=False), seed=3)


@pytest.fixture(scope="session")
def run_like_folder(tmp_path_factory, phantom):
    """A folder laid out like a volrecon run: image.ome.zarr with phases/regions label images + run.toml."""
    import numpy as np

    from volrecon.io.omezarr import write_label_image, write_ome_zarr
    from volrecon.phases import PHASE_COLOURS, PHASES, REGION_COLOURS, REGIONS

    out = tmp_path_factory.mktemp("run")
    image = out / "image.ome.zarr"
    write_ome_zarr(np.asarray(phantom.acquired), image, voxel_size_nm=phantom.voxel_size_nm)
    write_label_image(phantom.labels, image, "phases", names=PHASES, colours=PHASE_COLOURS)
    write_label_image(phantom.regions, image, "regions", names=REGIONS, colours=REGION_COLOURS)
    (out / "run.toml").write_text('[run]\nsource = "phantom"\n')
    return out
