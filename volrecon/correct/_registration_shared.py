"""Content motion shared by the whole face: the part of the structure error the halves cannot see.

Content that moves the same way everywhere (texture layers or fibres all leaning one way) moves
the drift estimate of the left and the right half alike, so the halves' disagreement
(:mod:`volrecon.correct._registration_split`) misses it, and so does the tiles' scatter around
their consensus (every tile sees the same blend). Measured on ``make_stack(inclined=...)``
without drift (32 x 256 x 512 and 48-64 x 512 x 512): the halves disagree by 0.02-0.07 px per
axis while the trajectory is wrong by 0.6-3.0 px; the tiles scatter by 0.03-0.11 px per pair.

What does see it: a rigid translation adds up exactly along the stack, so a pair ``K`` slices
apart must equal the sum of the ``K`` neighbour pairs it spans. Content that moves at several
velocities (a weak still layer under moving ones, the truth's reference) does not: at one slice
apart the layers' correlation peaks merge into one, further apart they separate and the long
pair follows another blend. The misclosure ``m = d(a, a+K) - sum d(i, i+1)`` is that content's
inconsistency; on the halves, motion local to one half (particles, rods) makes independent
misclosures, motion shared by the whole face the same misclosure in both. Their correlation
across the halves says which (electrode phantoms 512-1024 px: |rho| <= 0.4 at every baseline,
never significant; inclined ``make_stack``: rho 0.7-1.0 from ``K = 4``). When it is significant,
the shared misclosure per slice, ``sqrt(rho * <m_L^2>^0.5 <m_R^2>^0.5) / K``, is taken as the
rate at which the chained trajectory walks away, steadily (a layer's velocity persists), so
over ``n`` slices the mean-removed error is that rate times ``n / 12**0.5``.

It is a lower estimate of the shared error: the long pair's own blend also leans towards the
moving content (``make_stack`` 64 x 512 x 512, inclined 0.15 and 0.35: 0.31 and 1.09 px
predicted against 1.06 and 2.35 measured). Motion shared perfectly, at one velocity (a sheared
volume), is a translation in every image measure and cannot be seen at all.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from volrecon.correct._registration_solve import Observations


def misclosures(obs: Observations) -> dict[tuple[int, int], np.ndarray]:
    """``(a, b) -> d(a, b) - sum of the neighbour pairs from a to b`` for every pair longer than one slice
    whose span has all its neighbour pairs (per axis, px)."""
    step = {a: np.asarray(d, float) for a, b, d in zip(obs.pair_a, obs.pair_b, obs.pair_d) if b - a == 1}
    out: dict[tuple[int, int], np.ndarray] = {}
    for a, b, d in zip(obs.pair_a, obs.pair_b, obs.pair_d):
        if b - a > 1 and all(i in step for i in range(a, b)):
            out[(a, b)] = np.asarray(d, float) - np.sum([step[i] for i in range(a, b)], axis=0)
    return out


def shared_motion_error(halves: tuple[Observations, Observations]) -> dict[str, Any]:
    """Expected per-axis trajectory error (px RMS) from content motion shared by both halves of the face.

    Parameters
    ----------
    halves : (Observations, Observations)
        The left and the right half's pairs, every baseline (before the baselines are chosen).

    Returns
    -------
    dict
        ``shared_px`` (0.0 unless the halves' misclosures are significantly correlated at some
        baseline) and per baseline ``correlation``, the ``threshold`` it had to pass (two
        standard errors of a correlation of the independent misclosures: pairs ``K`` apart
        overlap, ``count / K`` of them are independent, two axes each) and the shared
        ``misclosure_px`` per axis.
    """
    left, right = misclosures(halves[0]), misclosures(halves[1])
    n = halves[0].n
    per_baseline: dict[str, dict[str, float]] = {}
    significant = False
    rate = 0.0
    for k in sorted({b - a for a, b in left}):
        keys = [key for key in left if key in right and key[1] - key[0] == k]
        if len(keys) < 2:
            continue
        ml = np.stack([left[key] for key in keys])
        mr = np.stack([right[key] for key in keys])
        power = math.sqrt(float(np.mean(ml**2)) * float(np.mean(mr**2)))
        rho = float(np.sum(ml * mr)) / (len(keys) * 2 * power) if power > 0 else 0.0
        threshold = 2.0 / math.sqrt(2.0 * max(1.0, len(keys) / k))
        shared = math.sqrt(max(rho, 0.0) * power)
        significant |= rho > threshold
        rate = max(rate, shared / k)
        per_baseline[str(k)] = {"correlation": rho, "threshold": threshold, "misclosure_px": shared}
    level = rate * n / math.sqrt(12.0) if significant else 0.0
    return {"shared_px": level, "per_baseline": per_baseline}
