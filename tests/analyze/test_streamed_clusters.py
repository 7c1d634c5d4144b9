"""Cluster statistics slab by slab (no whole-volume label image) equal the whole-array ones."""

import dask.array as da
import numpy as np
import pytest

from volrecon.analyze.connectivity import cluster_connectivity, label_clusters


@pytest.mark.parametrize("connectivity", [6, 18, 26])
def test_slabs_equal_whole_array(connectivity):
    rng = np.random.default_rng(connectivity)
    dom = np.zeros((23, 31, 29), bool)
    dom[:, 3:27, 2:] = True
    dom[5:9, :, :4] = False  # a notch: the domain's ends are not the faces on every line
    for p in (0.1, 0.3, 0.5):  # many small clusters to one spanning cluster
        mask = (rng.random(dom.shape) < p) & dom
        lab, _ = label_clusters(mask, connectivity=connectivity)
        beyond = {1: rng.random(dom.shape) < 0.5, 2: rng.random(dom.shape) < 0.5}
        for domain, faces, ends in ((None, (), None), (dom, (0,), None), (dom, (), None), (dom, (0,), beyond)):
            whole = cluster_connectivity(mask, connectivity=connectivity, labels=lab, domain=domain, face_axes=faces,
                                         end_beyond=ends)
            assert whole.count >= 1
            for arr, slab in ((mask, 1), (da.from_array(mask, chunks=5), 4 * 31 * 29), (mask, 10**9)):
                got = cluster_connectivity(arr, connectivity=connectivity, domain=domain, face_axes=faces,
                                           slab_voxels=slab, end_beyond=ends)
                assert got == whole


@pytest.mark.parametrize("connectivity", [6, 26])
def test_face_pairs_hold_one_pair_per_touching_cluster_pair(connectivity):
    # two clusters across a 40x40 face: thousands of touching voxels, two distinct pairs
    from volrecon.analyze.connectivity import _face_pairs

    lo = np.zeros((40, 40), np.int64)
    hi = np.zeros((40, 40), np.int64)
    lo[:, :20], lo[:, 22:] = 3, 5
    hi[:, :25], hi[:, 27:] = 7, 9
    a, b = _face_pairs(lo.astype(np.int32), hi.astype(np.int32), connectivity)
    assert a.dtype == np.int32 and sorted(zip(a.tolist(), b.tolist())) == [(3, 7), (5, 7), (5, 9)]
    big = 2**40  # labels whose pair key would overflow int64 take the row-wise path
    a, b = _face_pairs(np.where(lo == 5, big, lo), np.where(hi == 9, big, hi), connectivity)
    assert sorted(zip(a.tolist(), b.tolist())) == [(3, 7), (big, 7), (big, big)]
