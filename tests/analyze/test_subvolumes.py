"""Sub-volume samples: blocks partition the volume, so their figures average back to the whole."""

from __future__ import annotations

import numpy as np
import pytest

from volrecon.analyze.subvolumes import subvolume_table
from volrecon.phases import PHASES, REGIONS


def test_blocks_measure_known_fractions() -> None:
    labels = np.full((6, 8, 8), PHASES["active"], np.uint8)
    regions = np.full(labels.shape, REGIONS["cathode"], np.uint8)
    # left half (x < 4): 25 % void; right half: 50 % electrolyte, no void
    labels[:, :, :4][:, ::2, ::2] = PHASES["void"]
    labels[:, :, 4:][:, :, ::2] = PHASES["electrolyte"]
    sei = np.full((6, 8), 30.0)
    sei[:, 4:] = 50.0
    rows = subvolume_table(labels, regions, through_plane_axis=1, sei_map=sei, splits=(1, 2))
    assert [r["block"] for r in rows] == ["0,0", "0,1"]
    left, right = rows
    assert left["regions.cathode.void_fraction"] == pytest.approx(0.25)
    assert left["regions.cathode.void_share_of_pore"] == pytest.approx(1.0)
    assert right["regions.cathode.porosity"] == pytest.approx(0.5)
    assert right["regions.cathode.void_share_of_pore"] == pytest.approx(0.0)
    assert left["regions.anode.sei_thickness_nm.mean"] == pytest.approx(30.0)
    assert right["regions.anode.sei_thickness_nm.mean"] == pytest.approx(50.0)


def test_no_cathode_gives_nan_not_zero() -> None:
    labels = np.zeros((4, 4, 4), np.uint8)
    regions = np.full(labels.shape, REGIONS["anode"], np.uint8)
    row = subvolume_table(labels, regions, through_plane_axis=0, splits=(1, 1))[0]
    assert np.isnan(row["regions.cathode.porosity"])
