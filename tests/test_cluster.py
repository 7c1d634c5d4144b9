"""The same assemble on a real distributed LocalCluster gives identical output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from volrecon.cluster import scheduler
from volrecon.errors import ParameterError
from volrecon.io import read_ome_zarr
from volrecon.pipeline import assemble


def test_assemble_on_local_cluster_matches_embedded(make_stack, tmp_path: Path) -> None:
    folder = make_stack(10, shape=(64, 80))
    with scheduler("threads"):
        assemble(folder, tmp_path / "threads")
    with scheduler("local", workers=2) as client:
        assert client is not None and len(client.scheduler_info()["workers"]) == 2
        assemble(folder, tmp_path / "cluster")
    a = read_ome_zarr(tmp_path / "threads" / "image.ome.zarr")
    b = read_ome_zarr(tmp_path / "cluster" / "image.ome.zarr")
    for la, lb in zip(a.levels, b.levels):
        np.testing.assert_array_equal(la.compute(), lb.compute())
    truth = np.stack([tifffile.imread(p) for p in sorted(folder.glob("*.tif"))])
    np.testing.assert_array_equal(b.data.compute(), truth)


def test_bad_scheduler_address() -> None:
    with pytest.raises(ParameterError, match="--scheduler"):
        with scheduler("nonsense"):
            pass
