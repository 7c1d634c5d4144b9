"""Weight the tiles of the structure estimate by how persistently their content moves.

The drift is one rigid shift common to the whole face. A tile's content moves on top of it
when features cross the slice plane at an angle (rods, fibres, a rough surface): for as long
as a feature lives the motion keeps its direction, so the tile's own chained trajectory
departs *steadily* from the common one, by far more than its per-pair noise suggests.
Measured on the rod-cathode phantom (1024 px, 200 slices, no drift): tiles over the fibre
layer and the rough top surface wander 15–40 px RMS from the consensus trajectory, tiles in
the electrode 4–6 px. A per-pair consensus cannot see this (each step is within its window);
the whole stack can.

So after the streaming pass each tile's neighbour-pair shifts are chained against the
consensus, and the tile is weighted by the inverse of its 2 x 2 wander covariance plus the median
tile's variance (:func:`wander_information`): tiles that wander most lose their weight, along the
direction they wander in (an inclined rod moves along its own elongation, and across it the tile
still measures the drift); the median keeps an ordinary tile at about half of a still one (so a
stack whose tiles all wander alike is weighted evenly).

Measured without a frame (200 slices, ``estimate_drift(anchor="none")``): invented drift on the
zero-drift stack 0.961 -> 0.926 px RMS, random walk 1.422 -> 1.174 px (1024 px), see
``benchmarks/results/registration.md``. It removes what moves *differently* from most of the
face; content motion shared by most tiles (the mean velocity of many inclined features) is
left, and is what remains of the error.

The same wanders say which errors dominate the chained consensus (:func:`chain_errors`): the
persistent content motion, or independent per-pair noise. Only independent errors are cut down
by pairs over longer baselines; a persistent error is carried by every baseline alike, and a
longer pair adds a content bias of its own (its slices share less content, the inclined
features' peaks separate further from the drift peak). Measured on the rod-cathode phantom
(1024 px, 200 slices, no frame): the consensus' persistent error is ~0.8 px against ~0.2 px
of random walk, and neighbour pairs alone beat neighbour + second-neighbour pairs (zero drift
0.93 -> 0.87 px RMS, random walk 1.17 -> 1.17, a second random-walk seed 1.69 -> 1.18).
So where the persistent error dominates, a longer pair is the consensus of the tiles whose
content stays alike over its baseline and wanders no more than the median tile (the face's
frame, a fiducial: static content that a long pair locks onto), and without such tiles it only
bridges what the neighbour pairs miss (blank slices, rejected pairs); on static, noisy content
every pair keeps its weight (see ``estimate_drift``).
"""

from __future__ import annotations

import numpy as np


def tile_wander(shifts: np.ndarray, votes: np.ndarray, consensus: np.ndarray) -> np.ndarray:
    """RMS departure (px) of each tile's chained trajectory from the consensus trajectory.

    Parameters
    ----------
    shifts : ndarray, shape (P, T, 2)
        Shift of every tile for ``P`` consecutive neighbour pairs (in slice order).
    votes : ndarray of bool, shape (P, T)
        Which tiles voted in each pair (a tile that did not vote adds no departure).
    consensus : ndarray, shape (P, 2)
        The consensus shift of each pair.

    Returns
    -------
    ndarray, shape (T,)
    """
    departure = np.where(votes[..., None], shifts - consensus[:, None, :], 0.0)
    path = np.cumsum(departure, axis=0)
    path -= path.mean(axis=0)
    return np.sqrt(np.mean(np.sum(path**2, axis=2), axis=0))


def wander_information(shifts: np.ndarray, votes: np.ndarray, consensus: np.ndarray) -> np.ndarray:
    """Per-tile 2 x 2 weight: the inverse of its wander covariance plus the median tile's variance.

    Content that crosses the slice plane at an angle moves along one in-plane direction (an
    inclined rod or fibre is cut in an ellipse drawn out along its own motion), so a tile's
    departure from the consensus is mostly along that direction: across it the tile still
    measures the drift. Weighting each tile by the inverse of its 2 x 2 wander covariance keeps
    what it says across its content's motion and drops what it says along it; the median tile's
    variance (per axis) as a floor keeps a still tile at about twice an ordinary one's weight.
    Scaled so that the largest trace is 2 (a still tile of a scalar weighting).

    Parameters
    ----------
    shifts, votes, consensus
        As for :func:`tile_wander` (neighbour pairs in slice order).

    Returns
    -------
    ndarray, shape (T, 2, 2)
        Symmetric positive definite weights.
    """
    departure = np.where(votes[..., None], shifts - consensus[:, None, :], 0.0)
    path = np.cumsum(departure, axis=0)
    path -= path.mean(axis=0)
    cov = np.einsum("pti,ptj->tij", path, path) / max(len(path), 1)
    floor = float(np.median(np.trace(cov, axis1=1, axis2=2))) / 2.0 + 1e-12
    info = np.linalg.inv(cov + floor * np.eye(2)[None])
    return 2.0 * info / float(np.trace(info, axis1=1, axis2=2).max())


def chain_errors(
    shifts: np.ndarray, votes: np.ndarray, consensus: np.ndarray, weights: np.ndarray
) -> tuple[float, float]:
    """Expected trajectory error (px RMS) of the weighted consensus chain: persistent and random parts.

    Each tile's departure from the consensus is split into white per-pair noise (variance from
    the first differences of its departures in the pairs it voted in, taken in order: a slowly
    varying content motion hardly has them; the pairs it did not vote in add no departure, and
    a jump between a vote and no vote is not noise) and the rest; the random walk the noise
    alone would make over the steps it voted in is taken out of the tile's wander, what is
    left is its persistent content motion. Both parts are combined over the tiles with ``weights`` as independent errors.

    Departures are measured from the consensus, so ``persistent`` cannot see content motion
    shared by all tiles (the mean velocity of inclined features across the whole face moves the
    consensus itself): it is the error of the tiles' disagreement, a lower bound on the
    consensus' persistent error.

    Parameters
    ----------
    shifts, votes, consensus
        As for :func:`tile_wander` (neighbour pairs in slice order).
    weights : ndarray, shape (T,)
        The tiles' weights in the consensus.

    Returns
    -------
    persistent, random : float
        ``persistent_px`` and ``random_px`` of the drift estimate's regime.
    """
    departure = shifts - consensus[:, None, :]
    walk = np.zeros(shifts.shape[1])
    for t in range(shifts.shape[1]):
        voted = departure[votes[:, t], t]
        if len(voted) > 1:
            noise = np.mean(np.sum(np.diff(voted, axis=0) ** 2, axis=1)) / 2.0  # per step, both axes
            walk[t] = noise * len(voted) / 6.0  # mean square of a mean-removed random walk over the voted steps
    persistent = np.maximum(tile_wander(shifts, votes, consensus) ** 2 - walk, 0.0)
    w = np.asarray(weights, float)
    total = float(w.sum()) or 1.0
    return float(np.sqrt(np.sum(w**2 * persistent)) / total), float(np.sqrt(np.sum(w**2 * walk)) / total)
