"""Edges of a thin film (the diglyme SEI): the rim model of its sodium edge and its thickness do not
depend on what lies beyond the film (volrecon.segment.regional / layers)."""

import numpy as np
import pytest
from scipy import ndimage as ndi

from volrecon.sample.render import INTENSITY, edge_field
from volrecon.segment.layers import Layers, move_interface, refine_interface
from volrecon.segment.regional import sei_outer_surface

N, NA, SEP, COLL = 52, 12, 30, 42
"""Stack length and the starts of the film (mean), the cathode and the collector (voxels, anode first)."""


def _film_stack(pore_share: float, t: int = 3, seed: int = 0, shape: tuple[int, int] = (6, 192)):
    """A sodium | thin film | separator | cathode | collector stack as an SEM image renders it.

    The film (``t`` voxels) lies on a gently rough sodium surface; beyond it the separator is pore
    (electrolyte) in lateral patches covering ``pore_share`` of the columns and fibre elsewhere;
    the cathode is a uniform binder layer on a collector foil (a thick edge).  Every boundary
    carries edge-brightening rims (gain 0.5 times the step, one pixel each side), then the probe
    blur (0.8 px) and noise.  Returns the image (z, y, x), the true sodium surface per (z, x)
    column and the pore share.
    """
    rng = np.random.default_rng(seed)
    nz, nx = shape
    yy = np.arange(N)[None, :, None]
    b = NA + np.round(1.5 * np.sin(np.arange(nx) / 23.0))[None, None, :] + np.zeros((nz, 1, 1))
    patch = 8
    pore = np.kron(rng.random((-(-nz // 2), -(-nx // patch))) < pore_share, np.ones((2, patch), bool))
    pore = pore[:nz, :nx][:, None, :]
    sep = np.where(pore, INTENSITY["electrolyte"], INTENSITY["separator"])
    base = np.select([yy < b, yy < b + t, yy < SEP, yy < COLL],
                     [INTENSITY["sodium"], INTENSITY["sei"], sep, INTENSITY["binder"]], INTENSITY["collector"])
    base = np.broadcast_to(base, (nz, N, nx)).astype(np.float32)
    img = np.stack([ndi.gaussian_filter(s + np.float32(0.5) * edge_field(s, (10.0, 10.0)), 0.8, mode="nearest")
                    for s in base])
    img += rng.normal(0.0, 0.01, img.shape).astype(np.float32)
    return img, b[:, 0, :], float(pore.mean())


def _layers(na: np.ndarray, t: int) -> Layers:
    """The first guess: the sodium surface 0.7 voxels off (a class-based cut), the rest where they are."""
    full = np.full(na.shape, 0.0)
    return Layers(axis=1, anode_first=True,
                  heights={"sodium|sei": na + 0.7, "sei|separator": na + t, "separator|cathode": full + SEP,
                           "cathode|collector": full + COLL},
                  present={"sodium": True, "sei": True, "separator": True, "cathode": True, "collector": True},
                  length=N)


@pytest.mark.parametrize("pore_share", [0.3, 0.7])
def test_thin_film_edges_do_not_follow_the_pore_share(pore_share):
    """A 3-voxel film with a pore beyond it in 30 % or 70 % of the columns.

    The single-step rim fit on the sodium edge spans the whole film and what lies beyond it: there
    it fitted a shift of 0.02 voxels with 30 % pore (the sodium surface 0.48 voxels too deep into
    the sodium, the film 0.5-1 voxel too thick) and 0.42 with 70 %.  With the rims measured on the
    collector's edge (thick on both sides) both surfaces and the thickness are within 0.15 voxels
    of the truth, whatever the pore share."""
    vox = (20.0, 10.0, 10.0)
    img, na, share = _film_stack(pore_share)
    assert abs(share - pore_share) < 0.1
    lay = refine_interface(img, _layers(na, 3), "sodium|sei", voxel_size_nm=vox, rim=True)
    out, info = sei_outer_surface(img, lay, voxel_size_nm=vox)
    assert info["found"] and info["rim_source"] == "cathode|collector"
    h_na = out.heights["sodium|sei"]
    thick = out.heights["sei|separator"] - h_na
    assert abs(float(np.mean(h_na - na))) < 0.15
    assert abs(float(np.mean(thick)) - 3.0) < 0.15
    assert out.edges["sodium|sei"]["rim_ratio"] > 0.2


def test_thick_film_keeps_its_own_rim_fit():
    """A film thicker than the sodium edge's profile: its own edge is a clean single step, fitted
    there (no reference edge is read), and the sodium surface is within 0.15 voxels."""
    vox = (20.0, 10.0, 10.0)
    img, na, _ = _film_stack(0.5, t=10)
    lay = refine_interface(img, _layers(na, 10), "sodium|sei", voxel_size_nm=vox, rim=True)
    out, info = sei_outer_surface(img, lay, voxel_size_nm=vox)
    assert info["rim_source"] == "sodium|sei"
    assert abs(float(np.mean(out.heights["sodium|sei"] - na))) < 0.15


@pytest.mark.parametrize("anode_first", [True, False])
def test_move_interface_towards_the_bright_side(anode_first):
    """Moving a rising edge towards its bright side goes towards the cathode in either orientation."""
    h = np.full((2, 3), 10.0)
    lay = Layers(axis=1, anode_first=anode_first, heights={"sodium|sei": h}, present={}, length=30)
    moved = move_interface(lay, "sodium|sei", 0.5, sign=1.0).heights["sodium|sei"]
    assert np.allclose(moved - h, 0.5 if anode_first else -0.5)
    assert np.allclose(move_interface(lay, "sodium|sei", 0.5, sign=-1.0).heights["sodium|sei"] - h,
                       -0.5 if anode_first else 0.5)
