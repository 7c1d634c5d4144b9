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
consensus, and the tile is weighted by ``1 / (wander² + median wander²)``: tiles that wander
most lose their weight, the median keeps an ordinary tile at about half of a still one
(so a stack whose tiles all wander alike is weighted evenly).

Measured without a frame (200 slices, ``estimate_drift(anchor="none")``): invented drift on the
zero-drift stack 0.961 -> 0.926 px RMS, random walk 1.422 -> 1.174 px (1024 px), see
``benchmarks/results/registration.md``. It removes what moves *differently* from most of the
face; content motion shared by most tiles (the mean velocity of many inclined features) is
left, and is what remains of the error.
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


def persistence_weights(wander: np.ndarray) -> np.ndarray:
    """Tile weights ``1 / (wander² + median²)``, scaled to a maximum of 1 (see module docstring)."""
    wander = np.asarray(wander, float)
    if wander.size == 0:
        return wander
    floor = float(np.median(wander)) ** 2 + 1e-12
    w = 1.0 / (wander**2 + floor)
    return w / w.max()
