import math

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from volrecon.analyze import tortuosity
from volrecon.analyze._multigrid import solve_conductance
from volrecon.errors import VolreconError


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_straight_channels_tau_one(axis):
    m = np.zeros((24, 20, 16), bool)
    sl = [slice(4, 12)] * 3
    sl[axis] = slice(None)
    m[tuple(sl)] = True
    r = tortuosity(m, axis=axis, voxel_size_nm=(20, 10, 5))
    assert r.percolating
    assert r.tortuosity_factor == pytest.approx(1.0, abs=1e-4)
    assert r.effective_diffusivity == pytest.approx(r.porosity, rel=1e-4)


def test_series_serpentine_channel_analytic():
    # a one-voxel-wide serpentine: links in series, resistance summed exactly
    n0, n1 = 9, 7
    m = np.zeros((n0, n1, 1), bool)
    m[0:3, 1] = True
    m[2, 1:6] = True
    m[2:7, 5] = True
    m[6, 2:6] = True
    m[6:9, 2] = True
    h = (2.0, 3.0, 1.0)
    g = [(h[0] / x) ** 2 for x in h]
    links0 = 2 + 4 + 2  # axis-0 links along the path
    links1 = 4 + 3
    resistance = links0 / g[0] + links1 / g[1] + 2 * (1 / (2 * g[0]))
    deff = (1 / resistance) * n0 / (n1 * 1)
    r = tortuosity(m, axis=0, voxel_size_nm=h)
    assert r.effective_diffusivity == pytest.approx(deff, rel=1e-4)
    assert r.tortuosity_factor == pytest.approx(m.mean() / deff, rel=1e-4)


def test_parallel_layers_analytic():
    m = np.zeros((12, 12, 12), bool)
    m[:, :, :3] = True
    m[:, :, 6:7] = True
    r = tortuosity(m, axis=1, voxel_size_nm=(1, 2, 3))
    assert r.tortuosity_factor == pytest.approx(1.0, abs=1e-4)
    assert r.porosity == pytest.approx(4 / 12)


def test_matches_sparse_direct_reference_anisotropic():
    rng = np.random.default_rng(3)
    import scipy.ndimage as ndi

    m = ndi.gaussian_filter(rng.random((18, 16, 14)), 1.2) > 0.49
    r = tortuosity(m, axis=2, voxel_size_nm=(30, 10, 15))
    # sparse reference of the same discretisation (float64, direct)
    from volrecon.analyze.tortuosity import percolating_cluster

    mm = np.ascontiguousarray(np.transpose(m, (2, 0, 1)))
    c, _ = percolating_cluster(mm, 0)
    h = (15.0, 30.0, 10.0)
    g = [(h[0] / x) ** 2 for x in h]
    idx = -np.ones(c.shape, int)
    idx[c] = np.arange(c.sum())
    rows, cols, vals = [], [], []
    diag = np.zeros(c.sum())
    b = np.zeros(c.sum())
    for a in range(3):
        s0 = [slice(None)] * 3
        s1 = [slice(None)] * 3
        s0[a] = slice(0, -1)
        s1[a] = slice(1, None)
        both = c[tuple(s0)] & c[tuple(s1)]
        i, j = idx[tuple(s0)][both], idx[tuple(s1)][both]
        rows += [i, j]
        cols += [j, i]
        vals += [np.full(i.size, -g[a])] * 2
        np.add.at(diag, i, g[a])
        np.add.at(diag, j, g[a])
    first, last = idx[0][c[0]], idx[-1][c[-1]]
    diag[first] += 2 * g[0]
    diag[last] += 2 * g[0]
    b[first] = 2 * g[0]
    A = sp.coo_matrix((np.concatenate(vals + [diag]), (np.concatenate(rows + [np.arange(diag.size)]),
                       np.concatenate(cols + [np.arange(diag.size)])))).tocsr()
    x = spla.spsolve(A, b)
    flux = (2 * g[0] * (1 - x[first])).sum()
    deff = flux * c.shape[0] / (c.shape[1] * c.shape[2])
    assert r.effective_diffusivity == pytest.approx(deff, rel=5e-4)


def test_float32_solver_close_to_tight_float64():
    rng = np.random.default_rng(0)
    import scipy.ndimage as ndi
    from volrecon.analyze.tortuosity import percolating_cluster

    m = ndi.gaussian_filter(rng.random((40, 40, 40)), 1.5) > 0.5
    c, _ = percolating_cluster(m, 0)
    _, ref = solve_conductance(c.view(np.uint8), (1, 1, 1), rtol=1e-12, dtype=np.float64)
    _, st = solve_conductance(c.view(np.uint8), (1, 1, 1), rtol=1e-6, etol=3e-5)
    assert st.dissipation == pytest.approx(ref.dissipation, rel=5e-4)


def test_not_percolating_is_explicit():
    m = np.zeros((10, 10, 10), bool)
    m[:4] = True
    r = tortuosity(m, axis="z")
    assert not r.percolating and math.isinf(r.tortuosity_factor) and r.reason
    assert r.to_dict()["tortuosity_factor"] is None
    r = tortuosity(np.zeros((5, 5, 5), bool), axis=0)
    assert math.isnan(r.tortuosity_factor) and "absent" in r.reason


def test_one_voxel_thick_volume():
    m = np.ones((1, 8, 8), bool)
    assert tortuosity(m, axis=0).tortuosity_factor == pytest.approx(1.0, abs=1e-4)
    assert tortuosity(m, axis=1).tortuosity_factor == pytest.approx(1.0, abs=1e-4)


def test_bad_arguments():
    with pytest.raises(VolreconError):
        tortuosity(np.ones((4, 4, 4), bool), axis="w")
    with pytest.raises(VolreconError):
        tortuosity(np.ones((4, 4, 4), bool), axis=0, voxel_size_nm=(1, -1, 1))
    with pytest.raises(VolreconError):
        tortuosity(np.ones((4, 4), bool), axis=0)


def test_taufactor_nmc_reference(nmc):
    pore = nmc == 0
    r0 = tortuosity(pore[:, :, :], axis=0, voxel_size_nm=390.625)
    assert r0.porosity == pytest.approx(0.449917, abs=2e-6)
    assert r0.tortuosity_factor == pytest.approx(2.0776, rel=5e-3)
    r1 = tortuosity(pore, axis=1, voxel_size_nm=390.625)
    assert r1.tortuosity_factor == pytest.approx(2.0766, rel=5e-3)


def test_semi_coarsening_merges_only_short_axes():
    from volrecon.analyze._multigrid import _merge_axes

    assert _merge_axes((12, 12, 12), [1.0, 1.0, 1.0]) == (1, 1, 1)
    assert _merge_axes((12, 12, 12), [2.0, 1.0, 1.0]) == (0, 1, 1)  # 20 x 10 x 10 nm voxels
    assert _merge_axes((12, 12, 12), [1.3, 1.0, 1.0]) == (1, 1, 1)
    assert _merge_axes((3, 12, 12), [1.0, 2.0, 2.0]) == (0, 1, 1)  # interior of one cell: kept
    assert _merge_axes((3, 3, 3), [1.0, 1.0, 1.0]) is None


def test_slabs_on_strongly_anisotropic_voxels():
    # two slabs along z; the second one stops short along x, so along x it adds porosity but no
    # flux: tau_x = eps / D_eff = (180 / 480) / (120 / 480) = 1.5 exactly, tau_z = 1
    m = np.zeros((16, 24, 20), bool)
    m[:, 3:9, :] = True
    m[:, 14:20, 5:15] = True
    assert tortuosity(m, axis=0, voxel_size_nm=(20, 10, 10)).tortuosity_factor == pytest.approx(1.0, abs=1e-5)
    assert tortuosity(m, axis=2, voxel_size_nm=(20, 10, 10)).tortuosity_factor == pytest.approx(1.5, abs=1e-5)


def test_repeated_solves_are_bit_identical():
    """The solver reads no uninitialised memory: a solve after others (a dirty heap) gives the same bits."""
    from scipy import ndimage as ndi

    rng = np.random.default_rng(1)
    field = ndi.gaussian_filter(rng.random((24, 64, 64)), 2)
    mask = field > np.quantile(field, 0.55)
    first = [tortuosity(mask, axis=a, voxel_size_nm=(20, 10, 10)) for a in (0, 1, 2)]
    again = [tortuosity(mask, axis=a, voxel_size_nm=(20, 10, 10)) for a in (0, 1, 2)]
    for a, b in zip(first, again):
        assert (a.tortuosity_factor, a.relative_residual, a.iterations) == (b.tortuosity_factor, b.relative_residual, b.iterations)
