"""Which dask scheduler runs the work: embedded (default), a local cluster, or a remote one.

The library itself never starts a scheduler: it calls ``.compute()`` and dask uses whatever is
active.  This module gives the CLI and scripts one way to choose.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import dask

from volrecon.errors import ParameterError


@contextmanager
def scheduler(address: str | None = None, *, workers: int | None = None, threads_per_worker: int | None = None) -> Iterator[object | None]:
    """Run the enclosed work on the chosen dask scheduler.

    Parameters
    ----------
    address : str, optional
        ``None`` or ``"threads"``: dask's embedded threaded scheduler (no server, the default);
        ``"local"``: a :class:`distributed.LocalCluster` on this machine (processes, with the
        dashboard off); ``"tcp://host:port"``: an existing scheduler (e.g. one started by
        dask-jobqueue on a cluster).
    workers, threads_per_worker : int, optional
        Size of a ``"local"`` cluster.

    Yields
    ------
    distributed.Client or None
        The client when a distributed scheduler is used.
    """
    if address in (None, "", "threads"):
        with dask.config.set(scheduler="threads"):
            yield None
        return
    from distributed import Client, LocalCluster

    if address == "local":
        with LocalCluster(
            n_workers=workers or 2,
            threads_per_worker=threads_per_worker or 1,
            processes=True,
            dashboard_address=None,
        ) as cluster, Client(cluster) as client:
            yield client
        return
    if not address.startswith(("tcp://", "tls://", "inproc://", "ucx://")):
        raise ParameterError(f"--scheduler {address!r}: use 'threads', 'local' or a scheduler address like tcp://host:8786")
    try:
        client = Client(address, timeout="10s")
    except OSError as exc:
        raise ParameterError(f"--scheduler {address}: cannot reach the scheduler ({exc}); check the address") from None
    with client:
        yield client
