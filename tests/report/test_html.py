"""The report page: self-contained, shows calibration sources, warnings, metrics and figures."""

from __future__ import annotations

import json
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from volrecon.pipeline import assemble, report


def test_report_is_self_contained_and_complete(make_stack, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assemble(make_stack(5), out)
    (out / "figures").mkdir()
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    fig.savefig(out / "figures" / "drift_trajectory.png")
    plt.close(fig)
    clusters = {"count": 605, "resolved": {"count": 168, "min_volume_nm3": 14137.2}}
    (out / "metrics.json").write_text(json.dumps({"regions": {"cathode": {"porosity": 0.42, "void_fraction": 0.11,
                                                                          "void_clusters": clusters}}}))
    result = report(out, title="test run")
    page = (out / "report.html").read_text()
    assert result.outputs == ("report.html",)
    assert "test run" in page
    assert "metadata:[Scan] PixelWidth" in page  # the calibration's source is shown
    assert "cathode porosity" in page and "0.42" in page
    # the void clusters: every piece, and those a segmentation can resolve
    assert "void clusters (every piece)" in page and "605" in page
    assert "void clusters at or above the resolvable volume" in page and "168" in page
    assert "<h2>Registration</h2>" in page and "data:image/png;base64," in page
    # nothing is fetched from outside the page
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert not re.search(r'src="(?!data:)', page)
