"""A thin film under the separator's fibres takes the thickness its pore columns show
(volrecon.segment.regional.sei_outer_surface)."""

import numpy as np
import pytest

from tests.segment.test_sei_edges import _film_stack, _layers
from volrecon.segment.layers import refine_interface
from volrecon.segment.regional import sei_outer_surface


@pytest.mark.parametrize("seed", [0, 1])
def test_thin_film_under_fibres_takes_the_pore_columns_thickness(seed):
    """A 3-voxel film with fibres lying on 70 % of it (pore patches 12 voxels wide elsewhere).

    Under a fibre the film -> fibre rise lies within the sodium edge's reach: only a crossing is
    seen there, and its lateral average put the outer surface 0.19 / 0.26 voxels off on average
    (seeds 0 / 1); the thickness the pore columns measure sharply, carried to the fibre columns
    around, keeps it within 0.15 voxels (0.11 / 0.10 measured)."""
    vox = (20.0, 10.0, 10.0)
    img, na, share = _film_stack(0.3, t=3, seed=seed, noise=0.02, patch=12)
    assert 0.15 < share < 0.45
    lay = refine_interface(img, _layers(na, 3), "sodium|sei", voxel_size_nm=vox, rim=True)
    out, info = sei_outer_surface(img, lay, voxel_size_nm=vox)
    assert info["found"], info.get("reason")
    err = out.heights["sei|separator"] - na - 3.0
    assert float(np.mean(np.abs(err))) < 0.15
    assert abs(float(np.mean(err))) < 0.1
