"""Pairwise translation by SimpleITK (Mattes mutual information), for stacks whose intensity
changes between slices (detector gain, charging) so that correlation of grey values is unreliable.

Same interface as :class:`~volrecon.correct._registration_phase.PhaseCorrelator`: ``prepare``
once per slice, ``pair_shift`` per pair.
"""

from __future__ import annotations

import numpy as np

from volrecon.correct._registration_phase import SpectrumGeometry, bin_image


class SitkRegistrar:
    """Translation registration with Mattes mutual information on binned slices.

    Parameters
    ----------
    geometry : SpectrumGeometry
        Region and binning (``decimate`` and ``curtain_rows`` are not used).
    bins : int
        Histogram bins of the Mattes metric.
    iterations : int
        Optimizer iterations per resolution level.
    """

    def __init__(self, geometry: SpectrumGeometry, *, bins: int = 32, iterations: int = 60) -> None:
        import SimpleITK as sitk  # imported lazily: only this method needs it

        self._sitk = sitk
        self.geometry = geometry
        self.bins = bins
        self.iterations = iterations

    def prepare(self, region: np.ndarray):
        """Binned float32 SimpleITK image of one slice's region."""
        data = bin_image(np.asarray(region, dtype=np.float32), self.geometry.bin)
        return self._sitk.GetImageFromArray(np.ascontiguousarray(data, dtype=np.float32))

    def pair_shift(self, fixed, moving) -> tuple[np.ndarray, float]:
        """Shift (``scipy.ndimage.shift`` sense, full-resolution px) registering ``moving`` onto ``fixed``."""
        sitk = self._sitk
        reg = sitk.ImageRegistrationMethod()
        reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=self.bins)
        reg.SetMetricSamplingStrategy(reg.RANDOM)
        reg.SetMetricSamplingPercentage(0.25, seed=1)
        reg.SetInterpolator(sitk.sitkLinear)
        reg.SetOptimizerAsRegularStepGradientDescent(
            learningRate=2.0, minStep=1e-3, numberOfIterations=self.iterations, relaxationFactor=0.6
        )
        reg.SetOptimizerScalesFromPhysicalShift()
        reg.SetShrinkFactorsPerLevel([4, 2, 1])
        reg.SetSmoothingSigmasPerLevel([2, 1, 0])
        reg.SetInitialTransform(sitk.TranslationTransform(2), inPlace=False)
        try:
            transform = reg.Execute(fixed, moving)
        except RuntimeError:
            return np.zeros(2), 0.0
        # The transform maps fixed-image points into the moving image: moving(x + p) ~ fixed(x),
        # i.e. the moving content sits at +p, and shifting it by -p registers it.
        px, py = transform.GetParameters()
        quality = float(np.clip(-reg.GetMetricValue(), 0.0, 1.0))
        b = self.geometry.bin
        return -np.array([py, px]) * b, quality
