"""The cathode's denoising and rim gradient read lengths in nm along both image axes on the
benchmark's anisotropic grid (20 nm slices, 12.69 nm rows = 10 nm / sin 52 deg, 10 nm columns).

Known answers: a ramp of a given slope in grey per nm, and the spread (nm) of the denoising's
response to a single bright voxel, are the same along the rows and the columns.  Both hold where
the Gaussian's sigma is at least about 0.6 voxel (here 0.79 and 1.0 voxel for 10 nm); on a grid
whose pixel exceeds about twice the sigma (the shipped 40 nm samples: 25.4 nm rows, 20 nm
columns) the sampled kernels lose their tails between the samples (ramp response and variance
0.46 along the rows, 0.86 along the columns), which these tests do not cover.
"""

import numpy as np
import pytest

from volrecon.segment.cathode_rims import RIM_GRADIENT_NM, gradient_magnitude
from volrecon.segment.regional import smooth

VOX = (20.0, 10.0 / np.sin(np.radians(52.0)), 10.0)
"""The benchmark phantoms' voxel (z, y, x) in nm."""


@pytest.mark.parametrize("axis", [1, 2])
def test_gradient_reads_a_ramp_per_nm_along_rows_and_columns(axis):
    """A ramp of 0.01 grey per nm along y or along x reads 0.01 grey per nm (to the kernel's sampling,
    1.1 % at 0.79 voxel), and an oblique ramp its slope's magnitude."""
    slope = 0.01
    n = 48
    coords = np.arange(n, dtype=np.float32) * np.float32(VOX[axis])
    grey = np.broadcast_to(slope * coords.reshape([n if a == axis else 1 for a in range(3)]), (3, n, n)).astype(np.float32)
    g = gradient_magnitude(grey, VOX, RIM_GRADIENT_NM)
    np.testing.assert_allclose(g[1, 16:32, 16:32], slope, rtol=0.015)
    yy, xx = np.meshgrid(np.arange(n) * VOX[1], np.arange(n) * VOX[2], indexing="ij")
    oblique = np.broadcast_to(slope * (0.6 * yy + 0.8 * xx), (3, n, n)).astype(np.float32)
    np.testing.assert_allclose(gradient_magnitude(oblique, VOX, RIM_GRADIENT_NM)[1, 16:32, 16:32], slope, rtol=0.015)


def test_denoising_spreads_a_voxel_over_the_same_nm_along_rows_and_columns():
    """The 10 nm denoising's response to one bright voxel has a spread (standard deviation, nm) of
    10 nm along y and along x, to the kernel's truncation at 3 sigma and its sampling (3 %)."""
    sigma_nm = 10.0
    img = np.zeros((9, 33, 33), np.float32)
    img[4, 16, 16] = 1.0
    out = smooth(img, sigma_nm, VOX)[4]
    for axis, line in ((1, out[:, 16]), (2, out[16, :])):
        pos = (np.arange(line.size) - 16) * VOX[axis]
        spread = float(np.sqrt(np.sum(line * pos ** 2) / np.sum(line)))
        assert abs(spread - sigma_nm) < 0.03 * sigma_nm, (axis, spread)
