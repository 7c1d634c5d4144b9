"""The cap's edge lies where its rim is centred, not at the steepest step below it; a trench wall
cut off by the image's border is fitted on the rows where its crest is seen.

Edge brightening lights the cap's last rows and the specimen's first rows alike; blurred with
the step, the steepest descent lands about 0.7 px below the edge, and a mask ending there gives
the cap the specimen's first row in half of the columns."""

import numpy as np
import pytest
from scipy import ndimage as ndi

from volrecon.phases import REGIONS
from volrecon.sample import make_phantom
from volrecon.sample.oracle import oracle_correct
from volrecon.segment.frame import find_frame


def _capped(rim: float, slope: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A stack whose cap (0.85) ends at the integer row ``boundary[c]`` of a tilted line over a
    textured specimen (0.3), the ``rim`` (a share of the step) added to the row on each side of
    the edge, blurred by the probe (0.8 px) and noisy."""
    rng = np.random.default_rng(seed)
    rows, cols = 96, 160
    boundary = np.round(14.3 + slope * (np.arange(cols) + 0.5)).astype(int)
    r = np.arange(rows)[:, None]
    ideal = np.where(r < boundary[None, :], 0.85, 0.3 + 0.05 * ndi.gaussian_filter(rng.normal(size=(rows, cols)), 2))
    step = 0.85 - 0.3
    ideal = ideal + rim * step * ((r == boundary - 1) | (r == boundary))
    img = ndi.gaussian_filter(ideal, 0.8)
    stack = img[None] + rng.normal(0, 0.01, (6, rows, cols))
    return stack.astype(np.float32), boundary


@pytest.mark.parametrize("rim", [0.0, 0.5])
@pytest.mark.parametrize("slope", [0.0, 0.04])
def test_cap_edge_with_and_without_a_rim(rim, slope):
    stack, boundary = _capped(rim, slope)
    fm = find_frame(stack, cap_alone=True)
    assert fm.cap is not None
    cols = np.arange(stack.shape[2])
    line = fm.cap[0] + fm.cap[1] * (cols + 0.5)
    # the edge line within a fifth of a pixel of the true (pixel) edge (the steepest step: ~0.7 px
    # below it with the rim)
    assert abs(np.mean(line - boundary)) < 0.2
    cap_rows = fm.mask.sum(axis=0)
    assert np.mean(cap_rows == boundary) > 0.9
    if rim:
        # the rim's specimen row is shell: specimen, but lit by the cap
        assert np.mean(fm.shell[boundary, cols]) > 0.9
        assert not (fm.shell & fm.mask).any()


def test_phantom_cap_rows():
    ph = make_phantom("carbonate", slices=8, shape=(128, 128), seed=1, artefacts="all", frame=True, workers=1)
    fm = find_frame(oracle_correct(ph))
    truth = (ph.regions == REGIONS["frame"]).all(axis=0)
    # columns between the walls: the cap's rows are the truth's in nearly all of them
    inner = ~truth[truth.shape[0] // 2]
    inner[:4], inner[-4:] = False, False
    ok = fm.mask.sum(axis=0)[inner] == np.argmax(~truth, axis=0)[inner]
    assert ok.mean() > 0.9, f"cap rows right in {ok.mean():.0%} of the columns"


def test_wall_cut_off_by_the_border():
    # the right wall's crest leaves the image in the upper rows (a drift crop or a narrow field):
    # the line is fitted on the rows where the crest is seen, and the lit border column of the
    # others is shell, not frame
    rng = np.random.default_rng(3)
    rows, cols = 128, 160
    y, x = np.mgrid[:rows, :cols].astype(float)
    img = 0.3 + 0.05 * ndi.gaussian_filter(rng.normal(size=(rows, cols)), 2)
    below = np.maximum(y - 12, 0)
    left, right = 10.0 + 0.03 * below, 160.5 - 0.06 * below
    wl, wr = x <= left, x >= right
    # each wall lit at its edge, fading into the wall; its edge brightening lights the specimen
    img += 0.3 * np.exp(-np.abs(x - left) / 0.7) * ~wl + 0.3 * np.exp(-np.abs(right - x) / 0.7) * ~wr
    img[wl] = 0.3 + 0.6 * np.exp(-(left - x) / 2.5)[wl]
    img[wr] = 0.3 + 0.6 * np.exp(-(x - right) / 2.5)[wr]
    img[:12] = 0.9
    stack = ndi.gaussian_filter(img, 0.8)[None] + rng.normal(0, 0.01, (6, rows, cols))
    fm = find_frame(stack)
    assert fm.right is not None and fm.left is not None
    assert abs(fm.right[1] - (-0.06)) < 0.01
    top = slice(16, 32)  # the crest beyond the last column: no frame there, its lit column is shell
    assert not fm.mask[top, 150:].any()
    assert fm.shell[top, cols - 1].all()
    # where the wall is in the image, the mask ends within a column of it
    for r in (90, 110, 127):
        first = int(np.argmax(fm.mask[r, 100:])) + 100
        assert abs(first - np.ceil(right[r, 0])) <= 1


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("slope", [0.0, 0.04])
def test_shell_only_where_the_cap_has_a_rim(slope, seed):
    # the shell is the specimen the rim lights: the blurred step alone (half its height at the
    # edge) lights none, while a weak rim (a tenth of the step) still lights the specimen's first row
    cols = np.arange(160)
    stack, boundary = _capped(0.0, slope, seed)
    fm = find_frame(stack, cap_alone=True)
    assert fm.shell.sum() / stack.shape[2] < 0.1
    stack, boundary = _capped(0.1, slope, seed)
    fm = find_frame(stack, cap_alone=True)
    assert np.mean(fm.shell[boundary, cols]) > 0.9
    assert np.mean(fm.mask.sum(axis=0) == boundary) > 0.9
