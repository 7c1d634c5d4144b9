"""Choose the pair baselines from the data: split-half agreement of two independent trajectories.

Longer baselines stop independent pair errors from adding up like a random walk. But features
that cross the slice plane at an angle move like drift, and how their errors behave with the
baseline depends on the specimen: on a wide field of small, fast rods a long pair sees the
content decorrelated and adds error that is correlated with the short pairs it spans
(1024 px rod-cathode phantom without drift: 1.0 px RMS invented from neighbour pairs alone,
2.5 px with baselines up to 16), while on a small field dominated by a few rods the short
pairs share those rods' motion and the long ones cut it down (256 px: 5.9 px from neighbours,
2.3 px with all). No fixed rule is right for both.

What the data can tell: content motion in the left half of the face is independent of that in
the right half, while the drift is common to both. So the trajectory is estimated from each
half on its own for each candidate baseline set (the shortest 2, 3 ... baselines); the two
disagree by about twice the content-induced error of either, and the set with the smallest
disagreement is used for the whole region.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from volrecon.correct._registration_phase import PhaseCorrelator, SpectrumGeometry, coherence_sigma
from volrecon.correct._registration_solve import Observations, solve_trajectory

#: narrowest half (px after binning) that stands in for the whole region: a half must hold
#: many independent features, and be wide against the drift over the longest baseline, or its
#: own long pairs fail where the whole region's would not (a 64 px half of a 128 px stack
#: rejects baselines that the whole stack needs to bridge an outlier slice)
MIN_HALF_WIDTH = 256


class HalfSplit:
    """Global phase correlation of the left and right halves of the structure region.

    Parameters
    ----------
    geometry : SpectrumGeometry
        Geometry of the whole structure region (binning, decimation, curtain rows).
    """

    def __init__(self, geometry: SpectrumGeometry) -> None:
        y0, y1, x0, x1 = geometry.box
        self.cut = (x1 - x0) // 2
        halves = ((0, y1 - y0, 0, self.cut), (0, y1 - y0, 0, (x1 - x0) - self.cut))
        self.correlators = [
            PhaseCorrelator(SpectrumGeometry(h, geometry.bin, geometry.decimate, geometry.curtain_rows, geometry.sigma))
            for h in halves
        ]

    @staticmethod
    def possible(geometry: SpectrumGeometry) -> bool:
        """True when each half is wide enough to be correlated on its own."""
        y0, y1, x0, x1 = geometry.box
        return (x1 - x0) // 2 // geometry.bin >= MIN_HALF_WIDTH and (y1 - y0) // geometry.bin >= MIN_HALF_WIDTH

    def prepare(self, region: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Spectra of the two halves of one slice's region."""
        return (self.correlators[0].prepare(region[:, : self.cut]), self.correlators[1].prepare(region[:, self.cut :]))

    def pair_shifts(self, a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> list[tuple[np.ndarray, float]]:
        """``(shift, measured sigma)`` of each half (sigma NaN for a peak too weak to use)."""
        out = []
        for corr, sa, sb in zip(self.correlators, a, b):
            shift, q = corr.pair_shift(sa, sb)
            out.append((shift, coherence_sigma(q) if q > 0.01 else float("nan")))
        return out


@dataclass(frozen=True)
class BaselineChoice:
    """The baselines kept and the split-half disagreement (px RMS) of every candidate set."""

    used: tuple[int, ...]
    disagreement: dict[tuple[int, ...], float]

    def to_dict(self) -> dict[str, Any]:
        return {
            "used": list(self.used),
            "split_half_disagreement_px": {",".join(map(str, k)): v for k, v in self.disagreement.items()},
        }


def choose_baselines(halves: tuple[Observations, Observations], baselines: tuple[int, ...]) -> BaselineChoice:
    """The prefix of ``baselines`` whose two half trajectories agree best.

    Parameters
    ----------
    halves : (Observations, Observations)
        Pairs measured on the left and the right half, every baseline.
    baselines : tuple of int
        Candidate baselines, shortest first; candidates are ``baselines[:2]``, ``[:3]`` ...
        (never fewer than two: a second baseline bridges outlier pairs and blank slices).
    """
    disagreement: dict[tuple[int, ...], float] = {}
    for m in range(min(2, len(baselines)), len(baselines) + 1):
        subset = tuple(baselines[:m])
        traj = []
        for obs in halves:
            part = obs.only_baselines(subset)
            if not part.pair_a:
                break
            traj.append(solve_trajectory(part, posterior=False).shifts)
        if len(traj) < 2:
            continue
        diff = traj[0] - traj[1]
        diff -= diff.mean(axis=0)
        disagreement[subset] = float(np.sqrt(np.mean(np.sum(diff**2, axis=1))))
    if not disagreement:
        return BaselineChoice(tuple(baselines), {})
    # a longer set that changed nothing in the halves (no pair of its new baseline was measured
    # there) is not judged against; keep it, the whole region may measure it
    best = min(disagreement, key=lambda subset: (round(disagreement[subset], 9), -len(subset)))
    return BaselineChoice(best, disagreement)
