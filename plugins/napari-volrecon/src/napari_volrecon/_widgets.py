"""Dock widgets: train on scribbles and segment, measure a labelled volume, run the pipeline.

Each widget only gathers its inputs from layers and fields, runs one volrecon function in a
worker thread (the viewer stays responsive, progress shows in the activity dock) and turns the
result into layers or a table.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, Label, LineEdit, PushButton, Table

from napari_volrecon._layers import labels_layer, layer_names, voxel_size_of
from napari_volrecon._progress import NapariProgress

if TYPE_CHECKING:
    import napari


def _layers_of(viewer: "napari.Viewer", kind: str) -> list[Any]:
    from napari.layers import Image, Labels

    cls = {"image": Image, "labels": Labels}[kind]
    return [layer for layer in viewer.layers if isinstance(layer, cls)]


class _WorkerWidget(Container):
    """A container with a run button whose work runs in a thread and reports in a status line."""

    button_text = "Run"

    def __init__(self, napari_viewer: "napari.Viewer", fields: list[Any]) -> None:
        self.viewer = napari_viewer
        self.button = PushButton(text=self.button_text)
        self.status = Label(value="")
        super().__init__(widgets=[*fields, self.button, self.status])
        self.button.changed.connect(self.run)
        self.worker: Any = None
        self.busy = False

    def work(self) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def done(self, result: Any) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def run(self) -> Any:
        """Start the work in a thread; returns the worker (its ``finished`` signal ends it)."""
        from napari.qt.threading import create_worker

        self.button.enabled = False
        self.status.value = "working…"
        self.worker = create_worker(self.work, _ignore_errors=True)  # errors go to _failed, not re-raised
        self.worker.returned.connect(self.done)
        self.worker.errored.connect(self._failed)
        self.worker.finished.connect(self._finished)
        self.busy = True
        self.worker.start()
        return self.worker

    def _finished(self) -> None:
        self.button.enabled = True
        self.busy = False

    def _failed(self, exc: BaseException) -> None:
        # volrecon's errors are one line that names the input and the fix: show exactly that
        self.status.value = f"error: {exc}"
        from napari.utils.notifications import show_error

        show_error(str(exc))


class SegmentWidget(_WorkerWidget):
    """Train volrecon's pixel classifier on painted scribbles and segment the whole volume.

    Paint a few strokes per phase on a labels layer (values = phase values, e.g. from
    :data:`volrecon.phases.PHASES`); the result is a ``phases`` and a ``regions`` layer.
    """

    button_text = "Train and segment"

    def __init__(self, napari_viewer: "napari.Viewer") -> None:
        self.image = ComboBox(label="image", choices=lambda _: _layers_of(napari_viewer, "image"))
        self.scribbles = ComboBox(label="scribbles", choices=lambda _: _layers_of(napari_viewer, "labels"))
        self.save_to = FileEdit(label="save classifier", mode="w", filter="*.skops", value="")
        super().__init__(napari_viewer, [self.image, self.scribbles, self.save_to])
        napari_viewer.layers.events.inserted.connect(self.reset_choices)
        napari_viewer.layers.events.removed.connect(self.reset_choices)

    def work(self) -> Any:
        from volrecon.segment import segment_volume, train_classifier

        image, scribbles = self.image.value, self.scribbles.value
        if image is None or scribbles is None:
            raise ValueError("choose an image layer and a labels layer with painted scribbles")
        vox = voxel_size_of(image)
        names = layer_names(scribbles)
        bars = NapariProgress()
        try:
            clf = train_classifier(image.data, np.asarray(scribbles.data), voxel_size_nm=vox, phase_names=names)
            target = str(self.save_to.value)
            if target not in ("", "."):
                clf.save(target)
            result = segment_volume(image.data, voxel_size_nm=vox, method="classifier", classifier=clf,
                                    progress=bars.callback("segment"))
            return result, np.asarray(result.phases), np.asarray(result.regions)
        finally:
            bars.close()

    def done(self, result: Any) -> None:
        seg, phases, regions = result
        vox = seg.voxel_size_nm
        for data, name, names in ((phases, "phases", seg.phase_names), (regions, "regions", seg.region_names)):
            data_, meta, _ = labels_layer(data, name=name, voxel_size_nm=vox, names=names)
            if name in self.viewer.layers:
                self.viewer.layers.remove(name)
            self.viewer.add_labels(data_, **{k: v for k, v in meta.items() if k != "multiscale"})
        absent = seg.interfaces.get("absent_layers") or []
        self.status.value = "segmented" + (f"; layers not in view: {', '.join(absent)}" if absent else "")


class MetricsWidget(_WorkerWidget):
    """Measure a labelled volume: fractions, cathode porosity and voids, tortuosity, SEI thickness.

    Results appear in a table (the keys of ``metrics.json``); optionally they are written, with
    figures and tables, to a new folder.
    """

    button_text = "Measure"

    def __init__(self, napari_viewer: "napari.Viewer") -> None:
        self.phases = ComboBox(label="phases", choices=lambda _: _layers_of(napari_viewer, "labels"))
        self.regions = ComboBox(label="regions", choices=lambda _: _layers_of(napari_viewer, "labels"))
        self.tortuosity = CheckBox(label="tortuosity", value=True)
        self.save_to = FileEdit(label="write to folder", mode="d", value="")
        self.table = Table(value={"metric": [], "value": []})
        super().__init__(napari_viewer, [self.phases, self.regions, self.tortuosity, self.save_to])
        self.append(self.table)
        napari_viewer.layers.events.inserted.connect(self.reset_choices)
        napari_viewer.layers.events.removed.connect(self.reset_choices)
        self.result: Any = None
        self.rows: dict[str, Any] = {}

    def work(self) -> Any:
        from volrecon.analyze.metrics import analyze_volume, write_analysis

        phases, regions = self.phases.value, self.regions.value
        if phases is None or regions is None or phases is regions:
            raise ValueError("choose the phases layer and the regions (cell layers) layer")
        target = str(self.save_to.value)
        if target not in ("", ".") and Path(target).exists() and any(Path(target).iterdir()):
            raise ValueError(f"{target}: folder is not empty; choose a new folder (results are never written over)")
        result = analyze_volume(
            np.asarray(phases.data), np.asarray(regions.data), voxel_size_nm=voxel_size_of(phases),
            phase_names=layer_names(phases), region_names=layer_names(regions),
            tortuosity_axes=None if self.tortuosity.value else (),
        )
        if target not in ("", "."):
            write_analysis(result, target)
        return result

    def done(self, result: Any) -> None:
        from volrecon.report.html import flatten_metrics

        self.result = result
        rows = flatten_metrics(result.to_dict())
        self.rows = dict(rows)
        self.table.value = {"metric": [k for k, _ in rows], "value": [v for _, v in rows]}
        self.status.value = f"{len(rows)} metrics"


class RunWidget(_WorkerWidget):
    """Run the whole pipeline (assemble → correct → segment → analyze → report) and open the result."""

    button_text = "Run pipeline"

    def __init__(self, napari_viewer: "napari.Viewer") -> None:
        self.source = FileEdit(label="slices folder", mode="d", value="")
        self.output = FileEdit(label="run folder", mode="d", value="")
        self.slice_thickness = LineEdit(label="slice thickness", value="", tooltip="e.g. 20nm; empty: from the metadata")
        self.pixel_size = LineEdit(label="pixel size", value="", tooltip="e.g. 5nm; empty: from the metadata")
        self.overwrite = CheckBox(label="overwrite an earlier run", value=False)
        super().__init__(napari_viewer, [self.source, self.output, self.slice_thickness, self.pixel_size, self.overwrite])
        self.result: Any = None

    def work(self) -> Any:
        from volrecon.pipeline import run

        bars = NapariProgress()
        try:
            ingest = {k: w.value.strip() for k, w in (("slice_thickness", self.slice_thickness),
                                                        ("pixel_size", self.pixel_size)) if w.value.strip()}
            return run(Path(self.source.value), Path(self.output.value), overwrite=bool(self.overwrite.value),
                       ingest=ingest or None, progress_for=bars.callback)
        finally:
            bars.close()

    def done(self, result: Any) -> None:
        from napari_volrecon._reader import read_volume

        self.result = result
        for data, meta, kind in read_volume(str(self.output.value)):
            getattr(self.viewer, f"add_{kind}")(data, **meta)
        self.status.value = f"report: {Path(self.output.value) / 'report.html'}"
