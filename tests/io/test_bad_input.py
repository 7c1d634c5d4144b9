"""Bad input: one clear line naming the file or parameter and the fix; exit code 2; nothing lost."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from tests.conftest import thermo_ini, tree_digest, write_tiff
from volrecon.cli import main


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, capsys.readouterr().err


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    text = " ".join(err.split())  # rich may wrap long lines on narrow terminals
    assert text.startswith("volrecon: error:"), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in text, f"{needle!r} not in {text!r}"


def test_empty_folder(tmp_path: Path, capsys) -> None:
    (tmp_path / "empty").mkdir()
    assert_one_line_error(*run_cli(capsys, "info", str(tmp_path / "empty")), "empty", str(tmp_path / "empty"))


def test_missing_folder(tmp_path: Path, capsys) -> None:
    assert_one_line_error(*run_cli(capsys, "info", str(tmp_path / "nope")), "no such file or folder")


def test_non_tiff_files_only(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "pngs"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"\x89PNG")
    (folder / "notes.txt").write_text("x")
    assert_one_line_error(*run_cli(capsys, "info", str(folder)), "no TIFF slices", "a.png")


def test_corrupt_tiff(make_stack, capsys) -> None:
    folder = make_stack(3)
    (folder / "slice_00003_z=0.0600um.tif").write_bytes(b"II*\x00garbage")
    before = tree_digest(folder)
    assert_one_line_error(*run_cli(capsys, "info", str(folder)), "slice_00003", "not a readable TIFF")
    assert tree_digest(folder) == before


def test_mixed_shapes(make_stack, capsys) -> None:
    folder = make_stack(4, shape=(40, 50))
    write_tiff(folder / "slice_00004_z=0.0800um.tif", np.zeros((41, 50), np.uint8), thermo_ini())
    assert_one_line_error(*run_cli(capsys, "info", str(folder)), "slice_00004", "41×50", "40×50")


def test_mixed_dtypes(make_stack, capsys) -> None:
    folder = make_stack(4)
    write_tiff(folder / "slice_00004_z=0.0800um.tif", np.zeros((40, 50), np.uint16), thermo_ini())
    assert_one_line_error(*run_cli(capsys, "info", str(folder)), "slice_00004", "uint16", "uint8")


def test_duplicate_indices(make_stack, capsys) -> None:
    folder = make_stack(3, step_nm=None)
    write_tiff(folder / "slice_1.tif", np.zeros((40, 50), np.uint8), thermo_ini())
    assert_one_line_error(*run_cli(capsys, "info", str(folder)), "index 1 appears twice")


def test_rgb_slices_refused_then_converted(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "rgb"
    folder.mkdir()
    for i in range(3):
        tifffile.imwrite(folder / f"slice_{i}.tif", np.full((20, 30, 3), 50 + i, np.uint8), photometric="rgb")
    assert_one_line_error(*run_cli(capsys, "info", str(folder)), "colour", "--grey")
    code, _ = run_cli(capsys, "info", str(folder), "--grey", "--pixel-size", "5nm", "--slice-thickness", "10nm")
    assert code == 0


def test_one_slice_stack_cannot_be_assembled(make_stack, tmp_path: Path, capsys) -> None:
    folder = make_stack(1)
    assert_one_line_error(*run_cli(capsys, "assemble", str(folder), "-o", str(tmp_path / "out")), "1 slice", "at least 2")
    assert not (tmp_path / "out").exists()


def test_all_zero_slice_is_recorded_not_fatal(make_stack, tmp_path: Path) -> None:
    from volrecon.pipeline import assemble

    folder = make_stack(4)
    write_tiff(folder / "slice_00004_z=0.0800um.tif", np.zeros((40, 50), np.uint8), thermo_ini())
    result = assemble(folder, tmp_path / "out")
    assert result.details["blank_slices"] == [4]
    assert any("blank" in w and "slice_00004" in w for w in result.details["warnings"])
    assert "blank" in (tmp_path / "out" / "run.toml").read_text()


def test_unknown_units(make_stack, capsys) -> None:
    assert_one_line_error(*run_cli(capsys, "info", str(make_stack(3)), "--pixel-size", "5parsec"), "--pixel-size", "unit")


def test_negative_pixel_size(make_stack, capsys) -> None:
    assert_one_line_error(*run_cli(capsys, "info", str(make_stack(3)), "--pixel-size=-5nm"), "--pixel-size", "positive")


def test_nonsense_tilt(make_stack, capsys) -> None:
    assert_one_line_error(*run_cli(capsys, "info", str(make_stack(3)), "--tilt", "200deg"), "--tilt")


def test_crop_outside_image(make_stack, capsys) -> None:
    assert_one_line_error(*run_cli(capsys, "info", str(make_stack(3)), "--crop", "0:100,0:10"), "--crop", "outside")
    assert_one_line_error(*run_cli(capsys, "info", str(make_stack(3, name="b")), "--crop", "zero"), "--crop", "y0:y1,x0:x1")


def test_bad_databar(make_stack, capsys) -> None:
    assert_one_line_error(*run_cli(capsys, "info", str(make_stack(3)), "--databar", "lots"), "--databar")


def test_missing_slice_thickness(make_stack, tmp_path: Path, capsys) -> None:
    folder = make_stack(3, step_nm=None)
    assert_one_line_error(*run_cli(capsys, "assemble", str(folder), "-o", str(tmp_path / "o")), "--slice-thickness")
    assert not (tmp_path / "o").exists()


def test_output_exists_with_other_files(make_stack, tmp_path: Path, capsys) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.docx").write_text("precious")
    assert_one_line_error(*run_cli(capsys, "assemble", str(make_stack(3)), "-o", str(out)), "not a volrecon run")
    assert_one_line_error(*run_cli(capsys, "assemble", str(make_stack(3, name="b")), "-o", str(out), "--overwrite"), "never deletes")
    assert (out / "thesis.docx").read_text() == "precious"


def test_output_of_another_run_needs_overwrite(make_stack, tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    assert run_cli(capsys, "assemble", str(make_stack(3)), "-o", str(out))[0] == 0
    other = make_stack(3, name="other", seed=5)
    assert_one_line_error(*run_cli(capsys, "assemble", str(other), "-o", str(out)), "--overwrite")
    assert run_cli(capsys, "assemble", str(other), "-o", str(out), "--overwrite")[0] == 0
    from volrecon.io import read_ome_zarr

    first = sorted(other.glob("*.tif"))[0]
    np.testing.assert_array_equal(read_ome_zarr(out / "image.ome.zarr").data[0].compute(), tifffile.imread(first))


def test_output_inside_input(make_stack, capsys) -> None:
    folder = make_stack(3)
    before = tree_digest(folder)
    assert_one_line_error(*run_cli(capsys, "assemble", str(folder), "-o", str(folder / "out")), "inside the input")
    assert tree_digest(folder) == before


def test_output_is_a_file(make_stack, tmp_path: Path, capsys) -> None:
    target = tmp_path / "file.txt"
    target.write_text("keep")
    assert_one_line_error(*run_cli(capsys, "assemble", str(make_stack(3)), "-o", str(target)), "is a file")
    assert target.read_text() == "keep"


def test_read_only_output_location(make_stack, tmp_path: Path, capsys) -> None:
    # root ignores permission bits, so use a location no one can write: a path under /proc
    target = Path("/proc/volrecon-test-out")
    if os.access("/proc", os.W_OK) and target.parent.exists():
        try:
            target.mkdir()
            target.rmdir()
            pytest.skip("/proc is writable here")
        except OSError:
            pass
    assert_one_line_error(*run_cli(capsys, "assemble", str(make_stack(3)), "-o", str(target)), "cannot write")


def test_glob_with_no_match(tmp_path: Path, capsys) -> None:
    assert_one_line_error(*run_cli(capsys, "info", str(tmp_path / "*.tif")), "matches no file")


def test_cli_subprocess_exit_code_and_single_line(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "volrecon.cli", "info", str(tmp_path / "nothing")], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("volrecon: error:")
