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
        for domain, faces in ((None, ()), (dom, (0,)), (dom, ())):
            whole = cluster_connectivity(mask, connectivity=connectivity, labels=lab, domain=domain, face_axes=faces)
            assert whole.count >= 1
            for arr, slab in ((mask, 1), (da.from_array(mask, chunks=5), 4 * 31 * 29), (mask, 10**9)):
                got = cluster_connectivity(arr, connectivity=connectivity, domain=domain, face_axes=faces,
                                           slab_voxels=slab)
                assert got == whole
