"""Sample data and the three dock widgets, driven in a real viewer (Xvfb)."""

from __future__ import annotations

import numpy as np
import pytest


def _run(qtbot, widget, timeout_ms=240_000):
    widget.run()
    qtbot.waitUntil(lambda: not widget.busy, timeout=timeout_ms)


def test_sample_data_has_image_and_truth(make_napari_viewer):
    viewer = make_napari_viewer()
    layers = viewer.open_sample("napari-volrecon", "diglyme")
    assert [type(layer).__name__ for layer in layers] == ["Image", "Labels", "Labels"]
    assert layers[0].data.shape == layers[1].data.shape


def _dice(a, b):
    return 2 * np.logical_and(a, b).sum() / max(a.sum() + b.sum(), 1)


def test_segment_widget_trains_on_scribbles(make_napari_viewer, qtbot, phantom):
    from volrecon.phases import PHASES
    from volrecon.segment.scribbles import synthetic_scribbles

    from napari_volrecon._layers import labels_layer
    from napari_volrecon._widgets import SegmentWidget

    from volrecon.sample.oracle import oracle_correct

    viewer = make_napari_viewer()
    # the widget segments the image it is given; corrections are the core's (tested there)
    viewer.add_image(oracle_correct(phantom), name="corrected", scale=phantom.voxel_size_nm)
    data, meta, _ = labels_layer(synthetic_scribbles(phantom.labels, slices=3, seed=0), name="scribbles",
                                 voxel_size_nm=phantom.voxel_size_nm, names=PHASES)
    viewer.add_labels(data, **{k: v for k, v in meta.items() if k != "multiscale"})
    widget = SegmentWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.image.value = viewer.layers["corrected"]
    widget.scribbles.value = viewer.layers["scribbles"]
    _run(qtbot, widget)
    assert widget.status.value.startswith("segmented"), widget.status.value
    phases = viewer.layers["phases"].data
    assert phases.shape == phantom.labels.shape
    for name in ("active", "sodium", "collector"):
        v = PHASES[name]
        assert _dice(phases == v, phantom.labels == v) > 0.9, name
    assert "regions" in viewer.layers


def test_segment_widget_reports_missing_input(make_napari_viewer, qtbot):
    from napari_volrecon._widgets import SegmentWidget

    viewer = make_napari_viewer()
    widget = SegmentWidget(viewer)
    _run(qtbot, widget, 30_000)
    assert widget.status.value.startswith("error: choose an image layer")


def test_metrics_widget_matches_core_on_truth(make_napari_viewer, qtbot, phantom, tmp_path):
    from volrecon.analyze.metrics import analyze_volume
    from volrecon.phases import PHASES, REGIONS

    from napari_volrecon._layers import labels_layer
    from napari_volrecon._widgets import MetricsWidget

    viewer = make_napari_viewer()
    for arr, name, names in ((phantom.labels, "phases", PHASES), (phantom.regions, "regions", REGIONS)):
        data, meta, _ = labels_layer(arr, name=name, voxel_size_nm=phantom.voxel_size_nm, names=names)
        viewer.add_labels(data, **{k: v for k, v in meta.items() if k != "multiscale"})
    widget = MetricsWidget(viewer)
    widget.phases.value = viewer.layers["phases"]
    widget.regions.value = viewer.layers["regions"]
    widget.tortuosity.value = False
    widget.save_to.value = tmp_path / "metrics"
    _run(qtbot, widget)
    assert widget.status.value.endswith("metrics"), widget.status.value
    assert widget.table.shape[0] == len(widget.rows) > 20
    expected = analyze_volume(phantom.labels, phantom.regions, voxel_size_nm=phantom.voxel_size_nm,
                              tortuosity_axes=()).to_dict()
    porosity = expected["regions"]["cathode"]["porosity"]
    assert porosity == pytest.approx(phantom.truth["regions"]["cathode"]["porosity"], abs=1e-9)
    assert float(widget.rows["regions.cathode.porosity"]) == pytest.approx(porosity)
    assert (tmp_path / "metrics" / "metrics.json").is_file()


def test_run_widget_runs_pipeline_and_opens_result(make_napari_viewer, qtbot, tmp_path):
    from volrecon.sample import generate

    from napari_volrecon._widgets import RunWidget

    slices = tmp_path / "slices"
    generate("diglyme", slices, slices=10, shape=(160, 160), seed=3, frame=True, write_clean=False)
    viewer = make_napari_viewer()
    widget = RunWidget(viewer)
    widget.source.value = slices
    widget.output.value = tmp_path / "run"
    _run(qtbot, widget, 600_000)
    assert widget.status.value == "error: calibration incomplete: give slice thickness (--slice-thickness, e.g. 20nm)"
    widget.slice_thickness.value = "20nm"
    _run(qtbot, widget, 600_000)
    assert widget.status.value.startswith("report:"), widget.status.value
    assert (tmp_path / "run" / "report.html").is_file()
    assert [layer.name for layer in viewer.layers][1:] == ["phases", "regions"]
    # a second run into the same folder without "overwrite" resumes (nothing to redo), never destroys it
    _run(qtbot, widget, 600_000)
    assert widget.status.value.startswith("report:"), widget.status.value
