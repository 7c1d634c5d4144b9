"""The trench walls' bright rims reach into the face: the frame mask covers them, so the columns
beside a wall read specimen grey and keep their layer heights (a rim read as the anode's film
put the sodium surface 15-20 voxels off in the columns next to the wall)."""

import numpy as np
import pytest

from volrecon.phases import PHASES, REGIONS
from volrecon.sample import make_phantom
from volrecon.sample.oracle import oracle_correct
from volrecon.segment import segment_volume
from volrecon.segment.frame import _rim_reach, find_frame


@pytest.fixture(scope="module")
def framed():
    ph = make_phantom("carbonate", slices=8, shape=(128, 128), seed=0, artefacts="all", frame=True, workers=1)
    return ph, oracle_correct(ph)


def test_mask_ends_at_the_wall_and_the_shell_covers_the_rim(framed):
    ph, img = framed
    fm = find_frame(img)
    truth = (ph.regions == REGIONS["frame"]).all(axis=0)
    rows = slice(int(np.ceil(fm.cap[0])) + 4, None)
    # the mask follows the true walls within about a pixel per side; the rim shell lies beyond it
    missed = truth[rows] & ~fm.mask[rows]
    extra = fm.mask[rows] & ~truth[rows]
    assert missed.sum(axis=1).mean() < 1.0 and extra.sum(axis=1).mean() < 1.0
    assert not (fm.shell & fm.mask).any()
    assert (fm.shell & truth)[rows].sum(axis=1).mean() < 1.0
    assert 1.0 <= fm.shell[rows].sum(axis=1).mean() <= 8.0
    assert any("reaching" in n for n in fm.notes)


def test_anode_heights_beside_the_walls(framed):
    ph, img = framed
    res = segment_volume(img, voxel_size_nm=ph.voxel_size_nm, method="auto")
    heights = res.interfaces["heights_nm"]["sodium|sei"] / ph.voxel_size_nm[1]
    spec = ph.regions != REGIONS["frame"]
    top = np.argmax(spec, axis=1)
    true = (ph.labels == PHASES["sodium"]).sum(axis=1) + top
    frame_cols = (~spec).all(axis=1)
    phases = np.asarray(res.phases)
    found_frame = (phases == PHASES["frame"]).all(axis=1)
    for side in (slice(0, 24), slice(-24, None)):
        cols = ~frame_cols[:, side] & ~found_frame[:, side]
        err = np.abs(heights[:, side] - true[:, side])[cols]
        assert err.mean() < 1.5, f"sodium surface beside the wall off by {err.mean():.1f} voxels"


def _frame_beyond_crests(img: np.ndarray, xl: float, xr: float, rng: np.random.Generator) -> tuple[int, int]:
    """Walls (grey 0.5) left of ``xl`` and right of ``xr`` and a cap (0.95) over ``img``'s first 12
    rows, 4 noisy slices: the frame columns (mask and rim shell) beyond each wall's crest on row 80."""
    img = img.copy()
    x = np.arange(img.shape[1])[None, :]
    img[np.broadcast_to(x < xl, img.shape)] = 0.5
    img[np.broadcast_to(x > xr, img.shape)] = 0.5
    img[:12] = 0.95
    fm = find_frame(np.repeat(img[None], 4, 0) + rng.normal(0, 0.01, (4,) + img.shape))
    row = fm.mask[80] | fm.shell[80]
    half = img.shape[1] // 2
    return int(row[:half].sum()) - int(xl) - 1, int(row[half:].sum()) - (img.shape[1] - 1 - int(xr) + 1)


@pytest.mark.parametrize("decay_px", [1.5, 6.0])
def test_reach_follows_the_rim_width(decay_px):
    # trench walls whose rims fade into the face with an exponential of `decay_px` pixels: the
    # frame and its rim shell reach to the rim's half height (decay * ln 2 from its crest), the
    # same on both sides
    rng = np.random.default_rng(0)
    y, x = np.mgrid[:128, :192].astype(float)
    xl, xr = 14.0, 177.0
    img = 0.3 + 0.6 * np.exp(-(x - xl) / decay_px) * (x >= xl) + 0.6 * np.exp(-(xr - x) / decay_px) * (x <= xr)
    left, right = _frame_beyond_crests(img, xl, xr, rng)
    half = decay_px * np.log(2)
    assert left == right
    assert half - 1.0 <= left <= half + 2.0


def test_reach_from_the_specimen_beside_the_rim():
    # the specimen is darker 20-60 px from the left wall and brighter 20-60 px from the right one
    # (large structures a column average keeps): the rim's half height is still read against the
    # specimen's grey beside it, so both shells reach the same half height
    rng = np.random.default_rng(1)
    y, x = np.mgrid[:128, :192].astype(float)
    xl, xr, decay = 14.0, 177.0, 3.0
    img = np.full(x.shape, 0.3)
    img[(x > xl + 20) & (x < xl + 60)] = 0.18
    img[(x < xr - 20) & (x > xr - 60)] = 0.42
    img += 0.6 * np.exp(-(x - xl) / decay) * (x >= xl) + 0.6 * np.exp(-(xr - x) / decay) * (x <= xr)
    left, right = _frame_beyond_crests(img, xl, xr, rng)
    half = decay * np.log(2)
    assert left == right
    assert half - 1.0 <= left <= half + 1.0


@pytest.mark.parametrize("specimen", ["flat", "darker", "brighter"])
@pytest.mark.parametrize("shape, width", [("exp", 1.5), ("exp", 2.5), ("exp", 5.0), ("exp", 8.0),
                                          ("gauss", 1.5), ("gauss", 4.0)])
def test_rim_reach_is_the_half_lift(shape, width, specimen):
    # a rim fading exponentially (an edge's electrons lost through the wall) or as a Gaussian (the
    # probe) into a specimen of grey 0.3, flat or with a structure 0.12 darker or brighter from six
    # half-lift distances on: the reach is where the rim's lift above 0.3 halves, on both walls
    rng = np.random.default_rng(2)
    true = width * np.log(2) if shape == "exp" else width * np.sqrt(2 * np.log(2))
    k = np.arange(160, dtype=float)  # distance from the crest
    lift = np.exp(-k / width) if shape == "exp" else np.exp(-0.5 * (k / width) ** 2)
    grey = np.full(k.shape, 0.3)
    grey[k >= 6 * true] += {"flat": 0.0, "darker": -0.12, "brighter": 0.12}[specimen]
    face = grey + 0.6 * lift
    xl = 20
    row = np.concatenate([np.full(xl, 0.5), face])  # wall, crest at column xl, face
    img = np.repeat(row[None], 64, 0) + rng.normal(0, 0.01, (64, row.size))
    left = _rim_reach(img, 0, float(xl), 0.0, +1, span=48)
    right = _rim_reach(img[:, ::-1], 0, float(row.size - 1 - xl), 0.0, -1, span=48)
    assert abs(left - true) < 0.15 and abs(right - true) < 0.15, (left, right, true)
