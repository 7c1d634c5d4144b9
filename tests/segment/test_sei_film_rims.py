"""A thick film's outer edge is placed with its own edge rims, fitted on its falls, not with the sodium
edge's (volrecon.segment.regional.sei_outer_surface, _rises_refitted)."""

import numpy as np
import pytest

from tests.segment.test_sei_edges import _film_stack, _layers
from volrecon.sample.render import INTENSITY
from volrecon.segment.layers import refine_interface
from volrecon.segment.regional import sei_outer_surface

T, SEP = 12, 34
"""The film's thickness and where the cathode starts (voxels): a 22-voxel separator."""


def _outer_surface_errors(seed: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """The found ``sei|separator`` less the truth per column, which columns have a fibre lying on the
    film, and what ``sei_outer_surface`` measured."""
    vox = (20.0, 10.0, 10.0)
    img, na, _ = _film_stack(0.4, t=T, seed=seed, noise=0.02, sep=SEP, sodium_rim=0.25)
    lay = refine_interface(img, _layers(na, T, sep=SEP), "sodium|sei", voxel_size_nm=vox, rim=True)
    out, info = sei_outer_surface(img, lay, voxel_size_nm=vox)
    zz, xx = np.indices(na.shape)
    fibre = img[zz, (na + T + 3).astype(int), xx] > 0.5 * (INTENSITY["sei"] + INTENSITY["separator"])
    return out.heights["sei|separator"] - na - T, fibre, info


@pytest.mark.parametrize("seed", [0, 1])
def test_thick_film_edge_takes_its_own_rims(seed):
    """A 12-voxel film with fibres lying on about 60 % of it, the sodium|film edge's rims half as
    bright as the film's outer edge's (gain 0.25 and 0.5 of the steps: edge brightening depends on
    the materials on each side).

    Moved by the sodium edge's rim shift (0.24-0.26 voxels), the falls onto the pores lay 0.25-0.27
    voxels late and the rises onto the fibres 0.14-0.20 early (mean absolute error 0.29 over the
    columns).  With the film's own rims, fitted on its falls (rim ratio 0.53-0.57), and each rise
    placed by a fit of that blurred step from the film's level to the fibres', both lie within 0.15
    voxels of the truth on average (falls +0.02 / +0.08, rises +0.08 / +0.11 measured), the mean
    absolute error 0.13-0.14."""
    err, fibre, info = _outer_surface_errors(seed)
    assert info["found"]
    assert float(np.abs(err).mean()) < 0.2
    assert abs(float(err[fibre].mean())) < 0.15 and abs(float(err[~fibre].mean())) < 0.15
    assert info["rise_fit"]["columns"] > 0.5 * fibre.sum()
    assert 0.35 < info["rise_fit"]["rim_ratio"] < 0.8  # the film's outer edge's rims, not the sodium's


def test_thin_mat_rises_keep_their_first_estimate():
    """A fibre in a mat thinner than the fit's window and its far edge's reach is a sliver of one:
    the step model does not describe it and the rise is not refitted (the separator here is 5
    voxels thick)."""
    vox = (20.0, 10.0, 10.0)
    img, na, _ = _film_stack(0.4, t=T, seed=0, noise=0.02, sep=T + 17, sodium_rim=0.25)
    lay = refine_interface(img, _layers(na, T, sep=T + 17), "sodium|sei", voxel_size_nm=vox, rim=True)
    lay.heights["separator|cathode"] = na + T + 5.0  # the layers' cut 5 voxels beyond the film
    _, info = sei_outer_surface(img, lay, voxel_size_nm=vox)
    assert info["rise_fit"]["columns"] == 0
