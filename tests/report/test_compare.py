"""Cohort comparison: the bootstrap finds real differences and not invented ones."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from volrecon.errors import InputError, OutputError, ParameterError
from volrecon.report.compare import compare_runs, write_comparison

KEY = "regions.cathode.void_fraction"


def make_run(folder: Path, value: float, sub: list[float] | None = None) -> Path:
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps({"regions": {"cathode": {"void_fraction": value}}}))
    if sub:
        (folder / "tables").mkdir()
        with (folder / "tables" / "subvolumes.csv").open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow([KEY])
            w.writerows([[v] for v in sub])
    return folder


def test_detects_a_real_difference_and_its_sign(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    a = [make_run(tmp_path / f"a{i}", 0, list(0.05 + 0.01 * rng.standard_normal(8))) for i in range(2)]
    b = [make_run(tmp_path / f"b{i}", 0, list(0.15 + 0.01 * rng.standard_normal(8))) for i in range(2)]
    result = compare_runs({"carbonate": a, "diglyme": b}, metrics=[KEY])
    d = result.difference(KEY, "carbonate", "diglyme")
    assert d.difference == pytest.approx(0.10, abs=0.01)
    assert d.significant and d.ci_low > 0.08 and d.p_value < 0.01
    s = result.stat("diglyme", KEY)
    assert s.ci_low < 0.15 < s.ci_high and s.n_runs == 2 and s.n_samples == 16
    page = write_comparison(result, tmp_path / "cmp")
    assert page.exists() and (tmp_path / "cmp" / "comparison.csv").exists()


def test_no_invented_difference(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    a = [make_run(tmp_path / f"a{i}", 0, list(0.1 + 0.02 * rng.standard_normal(10))) for i in range(2)]
    b = [make_run(tmp_path / f"b{i}", 0, list(0.1 + 0.02 * rng.standard_normal(10))) for i in range(2)]
    d = compare_runs({"x": a, "y": b}, metrics=[KEY]).difference(KEY, "x", "y")
    assert not d.significant and d.p_value > 0.05


def test_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="--group"):
        compare_runs({"x": []})
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="volrecon analyze"):
        compare_runs({"x": [tmp_path / "empty"]}, metrics=[KEY])


def test_one_value_per_group_is_never_called_significant(tmp_path: Path) -> None:
    # one run each and no sub-volume samples: resampling a single value gives a zero-width interval
    a = [make_run(tmp_path / "a", 0.05)]
    b = [make_run(tmp_path / "b", 0.15)]
    result = compare_runs({"x": a, "y": b}, metrics=[KEY])
    d = result.difference(KEY, "x", "y")
    assert d.difference == pytest.approx(0.10)
    assert not d.testable and not d.significant
    page = write_comparison(result, tmp_path / "cmp")
    saved = json.loads((tmp_path / "cmp" / "comparison.json").read_text())
    assert saved["differences"][0]["ci_low"] is None and saved["differences"][0]["testable"] is False
    assert "one value per group" in page.read_text()


def test_an_earlier_comparison_is_kept_unless_overwrite(tmp_path: Path) -> None:
    result = compare_runs({"x": [make_run(tmp_path / "a", 0.05)], "y": [make_run(tmp_path / "b", 0.15)]}, metrics=[KEY])
    out = tmp_path / "cmp"
    write_comparison(result, out)
    (out / "comparison.csv").write_text("edited")
    with pytest.raises(OutputError, match="--overwrite"):
        write_comparison(result, out)
    assert (out / "comparison.csv").read_text() == "edited"
    write_comparison(result, out, overwrite=True)
    assert (out / "comparison.csv").read_text().startswith("metric,")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary folder left


def test_a_folder_that_is_not_a_comparison_is_never_replaced(tmp_path: Path) -> None:
    result = compare_runs({"x": [make_run(tmp_path / "a", 0.05)], "y": [make_run(tmp_path / "b", 0.15)]}, metrics=[KEY])
    for overwrite in (False, True):
        with pytest.raises(OutputError, match="not a volrecon comparison"):
            write_comparison(result, tmp_path / "a", overwrite=overwrite)  # a run folder
    assert (tmp_path / "a" / "metrics.json").exists()


def test_cli_usage_error_is_one_line_with_exit_code_2(capsys: pytest.CaptureFixture[str]) -> None:
    from volrecon.cli import main

    with pytest.raises(SystemExit) as stop:
        main(["compare", "--no-such-option"])
    assert stop.value.code == 2
    assert "Traceback" not in capsys.readouterr().err
