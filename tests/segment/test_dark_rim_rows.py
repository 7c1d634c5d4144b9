"""The particle-edge rule's image model (segment.api._dark_rim_length) reads its sampled slices one
chunk row at a time."""

import numpy as np


def test_the_dark_rim_fit_computes_one_chunk_row_at_a_time(monkeypatch):
    """Six slices spread over a 40-slice stack in 8-slice chunks lie in five chunk rows: the lazy
    classes, grey and gradient they are read from are computed a row at a time (the old single
    compute held the five rows' chunks at once: on a 400-slice stack six rows, +300-400 MB,
    ``benchmarks/results/segment_memory.md``), and the model and the rule are those of one chunk."""
    import dask.array as da

    from volrecon.sample import make_phantom
    from volrecon.sample.oracle import oracle_correct
    from volrecon.segment import api, segment_volume

    ph = make_phantom("diglyme", slices=40, shape=(128, 128), seed=1, artefacts="all", workers=1)
    img = oracle_correct(ph)
    inside, slices = [False], []
    fit, gradient = api._dark_rim_length, api._gradient

    def fit_rec(*a, **k):
        inside[0] = True
        try:
            return fit(*a, **k)
        finally:
            inside[0] = False

    def gradient_rec(grey, *a, **k):
        if inside[0]:
            slices.append(int(grey.shape[0]))
        return gradient(grey, *a, **k)

    monkeypatch.setattr(api, "_dark_rim_length", fit_rec)
    monkeypatch.setattr(api, "_gradient", gradient_rec)
    kw = dict(voxel_size_nm=ph.voxel_size_nm, method="auto")
    whole = segment_volume(img, chunks=img.shape, **kw)
    assert slices == [6]
    del slices[:]
    chunks = (8, 128, 128)
    rows = segment_volume(da.from_array(img, chunks=chunks), chunks=chunks, **kw)
    assert sorted(slices) == [1, 1, 1, 1, 2]  # slices 0, 8, 16 23, 31, 39
    edges = whole.parameters["cathode_rims"]["particle_edges"]
    assert "image_model" in edges
    assert rows.parameters["cathode_rims"]["particle_edges"] == edges
    assert int((np.asarray(whole.phases) != np.asarray(rows.phases)).sum()) == 0
