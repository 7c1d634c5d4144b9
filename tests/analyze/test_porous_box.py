"""Through-plane tortuosity box: a dense slab labelled as cathode must not block it."""

import numpy as np

from volrecon.analyze import analyze_volume
from volrecon.analyze.layers import porous_extent


def _cathode_on_dense_slab(seed: int = 0):
    """Separator on top, a cathode of straight y-channels (pore 1/2), and below a rough
    interface at y = 40 +- 3 a dense slab to the image edge labelled as cathode (a collector
    the segmentation took for active material), with isolated speckle pores in it."""
    rng = np.random.default_rng(seed)
    nz, ny, nx = 8, 60, 32
    lab = np.full((nz, ny, nx), 3, np.uint8)
    reg = np.full_like(lab, 3)
    reg[:, :8] = 2
    lab[:, :8] = 5
    lab[:, 8:, ::2] = 2
    top = 40 + rng.integers(-3, 4, size=(nz, nx))
    yy = np.arange(ny)[None, :, None]
    dense = yy >= top[:, None, :]
    lab[dense] = 3
    speckle = dense & (rng.random(lab.shape) < 0.003)
    lab[speckle] = 2
    return lab, reg


def test_dense_end_slab_does_not_make_through_plane_tortuosity_infinite():
    lab, reg = _cathode_on_dense_slab()
    d = analyze_volume(lab, reg, voxel_size_nm=(20, 10, 10), pore_size=False, marching_cubes=False).to_dict()
    cat = d["regions"]["cathode"]
    assert d["through_plane_axis"] == "y"
    (_, _), (y0, y1), (_, _) = cat["tortuosity_box"]
    # both faces inside the porous layer: from the separator to within the roughness of y = 40
    assert y0 == 8 and 37 <= y1 <= 43
    tau = cat["tortuosity_factor"]["pore"]["through_plane"]
    # straight channels: tau 1, raised only by the channels that the rough slab ends early
    assert tau is not None and 1.0 <= tau < 1.5
    assert any("cut to the porous layer" in n for n in d["notes"])


def test_porous_extent_keeps_a_porous_layer_and_a_porosity_gradient():
    rng = np.random.default_rng(1)
    # porosity falling linearly from 0.5 to 0.3 through the layer: nothing is a dense slab
    eps = np.linspace(0.5, 0.3, 50)[None, :, None]
    pore = rng.random((6, 50, 40)) < eps
    assert porous_extent(pore, 1) == (0, 50)
    assert porous_extent(np.zeros((4, 10, 10), bool), 1) == (0, 10)
    pore[:, 45:] = False
    pore[:, :3] = False
    assert porous_extent(pore, 1) == (3, 45)
