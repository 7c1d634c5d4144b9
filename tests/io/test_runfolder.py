"""Atomic stages, resume after interruption, run.toml contents."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import numpy as np
import pytest
import tifffile

from volrecon.io import read_ome_zarr
from volrecon.io.runfolder import RunFolder
from volrecon.pipeline import assemble


def test_run_toml_records_parameters_versions_and_calibration(make_stack, tmp_path: Path) -> None:
    folder = make_stack(5, step_nm=25.0)
    assemble(folder, tmp_path / "out", pixel_size="4nm")
    data = tomllib.loads((tmp_path / "out" / "run.toml").read_text())
    assert data["stages"]["assemble"]["completed"] is True
    assert data["stages"]["assemble"]["params"]["pixel_size"] == "4nm"
    assert data["versions"]["volrecon"] and data["versions"]["zarr"]
    assert data["calibration"]["pixel_size_x_nm"] == {"value": 4.0, "source": "user"}
    assert data["calibration"]["slice_thickness_nm"]["value"] == pytest.approx(25.0)
    img = read_ome_zarr(tmp_path / "out" / "image.ome.zarr")
    assert img.voxel_size_nm[0] == pytest.approx((25.0, 4.0 / np.sin(np.radians(52)), 4.0))
    stack = np.stack([tifffile.imread(p) for p in sorted(folder.glob("*.tif"))])
    np.testing.assert_array_equal(img.data.compute(), stack)


def test_failure_mid_stage_leaves_nothing_that_looks_complete(make_stack, tmp_path: Path, monkeypatch) -> None:
    folder = make_stack(6)
    out = tmp_path / "out"
    import volrecon.io.omezarr as omezarr

    real = omezarr._write_levels
    calls = {"n": 0}

    def failing(*args, **kwargs):
        calls["n"] += 1
        raise KeyboardInterrupt("interrupted")

    monkeypatch.setattr(omezarr, "_write_levels", failing)
    with pytest.raises(KeyboardInterrupt):
        assemble(folder, out)
    assert not (out / "image.ome.zarr").exists()
    assert not list(out.glob(".tmp-*"))
    assert tomllib.loads((out / "run.toml").read_text())["stages"]["assemble"]["completed"] is False
    monkeypatch.setattr(omezarr, "_write_levels", real)
    result = assemble(folder, out)
    assert not result.skipped
    assert read_ome_zarr(out / "image.ome.zarr").data.shape == (6, 40, 50)
    again = assemble(folder, out)
    assert again.skipped  # resume: finished stage is not redone


def test_changed_parameters_redo_the_stage(make_stack, tmp_path: Path) -> None:
    folder = make_stack(4)
    assemble(folder, tmp_path / "out")
    redo = assemble(folder, tmp_path / "out", crop="0:20,0:30")
    assert not redo.skipped
    assert read_ome_zarr(tmp_path / "out" / "image.ome.zarr").data.shape == (4, 20, 30)


def test_stage_rerun_invalidates_later_stages(tmp_path: Path) -> None:
    run = RunFolder(tmp_path / "r", source="x")
    for name in ("assemble", "correct"):
        with run.stage(name, {"a": 1}, [f"{name}.txt"]) as tmp:
            (tmp / f"{name}.txt").write_text(name)
    assert run.stage_done("correct", {"a": 1})
    with run.stage("assemble", {"a": 2}, ["assemble.txt"]) as tmp:
        (tmp / "assemble.txt").write_text("again")
    assert run.stage_done("assemble", {"a": 2})
    assert not run.stage_done("correct", {"a": 1})


def test_kill_9_during_assemble_then_resume(make_stack, tmp_path: Path) -> None:
    """A real SIGKILL in the middle of writing; the re-run completes with identical data."""
    folder = make_stack(60, shape=(256, 256))
    out = tmp_path / "out"
    code = (
        "import time, volrecon.io.omezarr as o, volrecon.pipeline as p\n"
        "real = o._write_levels\n"
        "def slow(*a, **k):\n"
        "    open(%r, 'w').write('started'); time.sleep(30)\n"
        "o._write_levels = slow\n"
        "p.assemble(%r, %r)\n"
    ) % (str(tmp_path / "started"), str(folder), str(out))
    proc = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.time() + 60
    while not (tmp_path / "started").exists() and time.time() < deadline:
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert list(out.glob(".tmp-*")), "the killed stage left its temporary folder"
    assert not (out / "image.ome.zarr").exists()
    result = assemble(folder, out)
    assert not result.skipped and not list(out.glob(".tmp-*"))
    stack = np.stack([tifffile.imread(p) for p in sorted(folder.glob("*.tif"))])
    np.testing.assert_array_equal(read_ome_zarr(out / "image.ome.zarr").data.compute(), stack)
