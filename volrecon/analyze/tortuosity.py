"""Tortuosity factor of a conducting phase by steady-state diffusion.

Definition (TauFactor convention, DESIGN.md): ``tau = eps * D_bulk / D_eff`` where ``eps`` is the
volume fraction of the phase in the analysed box (all of it, connected or not) and ``D_eff`` the
effective diffusivity of the box along the transport axis, from a steady-state solve with fixed
concentrations on the two faces normal to that axis and no-flux walls elsewhere.  The MacMullin
number is ``N_M = D_bulk / D_eff = tau / eps``.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import scipy.ndimage as ndi

from volrecon.analyze._common import AXIS_NAMES, axis_index, check_volume, json_float, voxel_triplet
from volrecon.analyze._multigrid import solve_conductance

__all__ = ["TortuosityResult", "tortuosity", "percolating_cluster", "BOUNDARY_CONDITIONS"]

BOUNDARY_CONDITIONS = (
    "fixed concentration 1 and 0 on the two faces normal to the transport axis (half a voxel "
    "outside the first and last planes); no-flux on the four side faces; voxels of the phase not "
    "connected (6-connectivity) to both faces carry no flux"
)


@dataclass(frozen=True)
class TortuosityResult:
    """Tortuosity factor of one phase along one axis.

    Attributes
    ----------
    axis : int
        Transport axis (0 = z, 1 = y, 2 = x).
    tortuosity_factor : float
        ``eps * D_bulk / D_eff``; ``inf`` when the phase does not percolate, ``nan`` when it is
        absent (see ``reason``).
    porosity : float
        Volume fraction ``eps`` of the phase in the box.
    effective_diffusivity : float
        ``D_eff / D_bulk`` (0 when not percolating).
    percolating : bool
        Whether a 6-connected path of the phase joins the two faces.
    through_fraction : float
        Share of the phase's voxels in clusters joining both faces.
    macmullin : float
        MacMullin number ``D_bulk / D_eff = tau / eps``.
    voxel_size_nm : tuple of float
        (z, y, x) voxel size used.
    shape : tuple of int
        Box shape.
    iterations, relative_residual, converged, levels
        Solver record (preconditioned CG with an aggregation-multigrid V-cycle).
    flux_imbalance : float
        ``|F_in - F_out| / F`` at the end of the solve, where ``F`` is the flux from the
        dissipation (used for D_eff); face fluxes converge only linearly, so this is an
        upper bound of the D_eff error, typically 10x pessimistic.
    seconds : float
        Wall time of the whole call.
    reason : str or None
        Why no finite value was produced.
    boundary_conditions : str
        Statement of the boundary conditions.
    """

    axis: int
    tortuosity_factor: float
    porosity: float
    effective_diffusivity: float
    percolating: bool
    through_fraction: float
    macmullin: float
    voxel_size_nm: tuple[float, float, float]
    shape: tuple[int, int, int]
    iterations: int = 0
    relative_residual: float = 0.0
    converged: bool = True
    levels: int = 0
    flux_imbalance: float = 0.0
    seconds: float = 0.0
    reason: str | None = None
    boundary_conditions: str = BOUNDARY_CONDITIONS

    @property
    def axis_name(self) -> str:
        return AXIS_NAMES[self.axis]

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dictionary (non-finite numbers become ``None``; see ``reason``)."""
        d = asdict(self)
        for key in ("tortuosity_factor", "macmullin", "effective_diffusivity", "porosity",
                    "through_fraction", "relative_residual", "flux_imbalance"):
            d[key] = json_float(d[key])
        d["axis_name"] = self.axis_name
        d["voxel_size_nm"] = {n: v for n, v in zip(AXIS_NAMES, self.voxel_size_nm)}
        d["shape"] = list(self.shape)
        d["units"] = {
            "tortuosity_factor": "1",
            "porosity": "1 (volume fraction)",
            "effective_diffusivity": "D_eff / D_bulk",
            "macmullin": "D_bulk / D_eff",
            "voxel_size_nm": "nm",
            "seconds": "s",
        }
        d["definition"] = "tau = porosity * D_bulk / D_eff"
        return d


def percolating_cluster(mask: np.ndarray, axis: int = 0) -> tuple[np.ndarray, int]:
    """Voxels of ``mask`` 6-connected to both faces normal to ``axis``.

    Returns
    -------
    cluster : ndarray of bool
    n_through : int
        Number of voxels in ``cluster``.
    """
    lab, n = ndi.label(mask)
    if n == 0:
        return np.zeros(mask.shape, bool), 0
    first = np.take(lab, 0, axis=axis)
    last = np.take(lab, -1, axis=axis)
    both = np.intersect1d(np.unique(first), np.unique(last))
    both = both[both > 0]
    keep = np.zeros(n + 1, dtype=bool)
    keep[both] = True
    cluster = keep[lab]
    del lab
    return cluster, int(np.count_nonzero(cluster))


def tortuosity(
    mask: Any,
    *,
    axis: int | str,
    voxel_size_nm: Any = (1.0, 1.0, 1.0),
    rtol: float = 1e-6,
    etol: float = 3e-5,
    max_iter: int = 500,
) -> TortuosityResult:
    """Tortuosity factor of a phase by steady-state diffusion along one axis.

    Parameters
    ----------
    mask : array_like of bool, shape (z, y, x)
        True where the conducting phase is (numpy or dask).
    axis : int or {'z', 'y', 'x'}
        Transport direction.
    voxel_size_nm : float or (float, float, float)
        Voxel size (z, y, x) in nm; anisotropic voxels are handled exactly by the
        finite-volume conductances ``A_face / h``.
    rtol : float
        Relative residual at which conjugate gradients stop.
    etol : float
        Conjugate gradients also stop when an iteration lowers the Dirichlet energy by less
        than ``etol`` of its value.  ``D_eff`` is computed from the energy (dissipation) of the
        final field, which overestimates the exact value by the squared energy-norm error, so
        the default (3e-5) keeps ``D_eff`` within ~0.01 % of a tightly converged solve.
    max_iter : int
        Iteration limit; a run that hits it is flagged ``converged=False``.

    Returns
    -------
    TortuosityResult

    Examples
    --------
    >>> import numpy as np
    >>> from volrecon.analyze import tortuosity
    >>> m = np.zeros((20, 20, 20), bool); m[:, 5:15, 5:15] = True
    >>> round(tortuosity(m, axis="z").tortuosity_factor, 6)
    1.0
    """
    t0 = time.perf_counter()
    arr = check_volume(mask, "mask").astype(bool, copy=False)
    ax = axis_index(axis)
    vs = voxel_triplet(voxel_size_nm)
    shape = tuple(int(n) for n in arr.shape)
    n_phase = int(np.count_nonzero(arr))
    eps = n_phase / arr.size
    common = dict(axis=ax, voxel_size_nm=vs, shape=shape, porosity=eps)
    if n_phase == 0:
        return TortuosityResult(
            tortuosity_factor=math.nan, effective_diffusivity=0.0, percolating=False,
            through_fraction=0.0, macmullin=math.nan, seconds=time.perf_counter() - t0,
            reason="the phase is absent from the volume (porosity 0)", **common,
        )
    # transport along axis 0 in the solver
    order = (ax,) + tuple(a for a in range(3) if a != ax)
    moved = np.ascontiguousarray(np.transpose(arr, order))
    h = [vs[a] for a in order]
    cluster, n_through = percolating_cluster(moved, 0)
    del moved
    if n_through == 0:
        return TortuosityResult(
            tortuosity_factor=math.inf, effective_diffusivity=0.0, percolating=False,
            through_fraction=0.0, macmullin=math.inf, seconds=time.perf_counter() - t0,
            reason=f"the phase does not percolate along {AXIS_NAMES[ax]} "
            "(no 6-connected path joins the two faces)", **common,
        )
    g = tuple((h[0] / hh) ** 2 for hh in h)
    conc, stats = solve_conductance(
        cluster.view(np.uint8), g, rtol=rtol, etol=etol, max_iter=max_iter
    )
    del conc
    n0, n1, n2 = cluster.shape
    flux = stats.dissipation
    deff = flux * n0 / (n1 * n2)
    tau = eps / deff
    reason = None if stats.converged else f"solver stopped at max_iter={max_iter} (residual {stats.relative_residual:.2e})"
    return TortuosityResult(
        tortuosity_factor=tau, effective_diffusivity=deff, percolating=True,
        through_fraction=n_through / n_phase, macmullin=1.0 / deff,
        iterations=stats.iterations, relative_residual=stats.relative_residual,
        converged=stats.converged, levels=stats.levels,
        flux_imbalance=abs(stats.flux_in - stats.flux_out) / flux,
        seconds=time.perf_counter() - t0, reason=reason, **common,
    )
