"""Reader (run folders, OME-Zarr) and scribble writer, in a real viewer."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_volrecon._reader import get_reader, image_path_of
from napari_volrecon._writer import write_scribbles


def test_reader_declines_foreign_paths(tmp_path):
    (tmp_path / "slice_000.tif").write_bytes(b"")
    assert get_reader(str(tmp_path)) is None
    assert get_reader(str(tmp_path / "slice_000.tif")) is None


def test_run_folder_opens_named_and_calibrated(make_napari_viewer, run_like_folder, phantom):
    from volrecon.phases import PHASES

    assert image_path_of(run_like_folder) == run_like_folder / "image.ome.zarr"
    viewer = make_napari_viewer()
    layers = viewer.open(str(run_like_folder), plugin="napari-volrecon")
    names = [layer.name for layer in layers]
    assert names[1:] == ["phases", "regions"]
    image, phases = layers[0], viewer.layers["phases"]
    np.testing.assert_allclose(image.scale, phantom.voxel_size_nm)
    np.testing.assert_allclose(phases.scale, phantom.voxel_size_nm)
    # full-resolution labels are the phantom's truth, and every value is named after its phase
    np.testing.assert_array_equal(np.asarray(phases.data[0] if phases.multiscale else phases.data), phantom.labels)
    named = dict(zip(phases.features["index"], phases.features["phases"]))
    assert all(named[v] == n for n, v in PHASES.items())
    # the colour of a value is its phase colour (sei is red in volrecon's palette)
    rgba = phases.colormap.map(np.array([PHASES["sei"]]))[0]
    assert rgba[0] > 0.8 and rgba[1] < 0.3
    shot = viewer.screenshot(canvas_only=True)
    assert shot.std() > 0  # something was drawn


def test_scribbles_round_trip_through_volrecon(tmp_path, phantom):
    from volrecon.phases import PHASES
    from volrecon.segment import read_scribbles
    from volrecon.segment.scribbles import synthetic_scribbles

    scr = synthetic_scribbles(phantom.labels, slices=2, seed=1)
    feats = {"index": [0, *PHASES.values()], "phases": ["unassigned", *PHASES]}
    import pandas as pd

    files = write_scribbles(str(tmp_path / "strokes"), scr, {"features": pd.DataFrame(feats)})
    assert files[0].endswith("strokes.npy")
    arr, names = read_scribbles(files[0])
    np.testing.assert_array_equal(arr, scr)
    painted = {int(v) for v in np.unique(scr) if v}
    assert set(names.values()) == painted
    assert json.loads((tmp_path / "strokes.npy.json").read_text()) == names


def test_scribbles_refuse_unknown_values(tmp_path):
    scr = np.zeros((2, 8, 8), np.uint8)
    scr[0, 0, 0] = 42
    with pytest.raises(ValueError, match="42"):
        write_scribbles(str(tmp_path / "bad.npy"), scr, {})
    assert not list(tmp_path.iterdir())
