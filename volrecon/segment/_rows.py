"""Evaluate a lazy dask chain into a store one z-row of chunks at a time (bounded memory).

``da.store`` hands the whole task graph to the scheduler, which is free to start many rows at
once and to keep every chunk it has computed until all its dependents are done: a chain of
overlapping filters over a long stack then holds a number of chunks that grows with the slice
count.  Here each task is given to the first row of output chunks that needs it, moved earlier
when everything it reads is already computed (the thin context slices that a chunk lends its
neighbours along z, :func:`dask.array.map_overlap`), and the rows run one after the other; what
a later row still reads (those context slices) is carried over, nothing else.  Every task runs
exactly once, so the result is the one ``da.store`` writes, with memory bounded by one row of
chunks whatever the number of rows.
"""

from __future__ import annotations

from collections import defaultdict
from itertools import product
from typing import Any, Callable, Hashable

import dask
import dask.array as da
from dask.core import get_deps
from dask.task_spec import DataNode, Task, TaskRef


Key = Hashable


def _local_get() -> Callable[..., Any] | None:
    """The configured scheduler's ``get`` when it is one of dask's local schedulers, else None."""
    import dask.local
    import dask.multiprocessing
    import dask.threaded
    from dask.base import get_scheduler

    get = get_scheduler()
    if get is None:
        return dask.threaded.get
    return get if get in (dask.threaded.get, dask.local.get_sync, dask.multiprocessing.get) else None


def _write(block: Any, store: Any, region: tuple[slice, ...]) -> None:
    store[region] = block


def _rows(arr: da.Array) -> list[list[tuple[Key, tuple[slice, ...]]]]:
    """Output chunk keys and their regions, grouped by chunk row along axis 0."""
    starts = [[0] for _ in arr.chunks]
    for ax, c in enumerate(arr.chunks):
        for n in c:
            starts[ax].append(starts[ax][-1] + n)
    rows: list[list[tuple[Key, tuple[slice, ...]]]] = [[] for _ in arr.chunks[0]]
    for idx in product(*(range(len(c)) for c in arr.chunks)):
        region = tuple(slice(starts[ax][i], starts[ax][i + 1]) for ax, i in enumerate(idx))
        rows[idx[0]].append(((arr.name, *idx), region))
    return rows


def store_by_rows(arr: da.Array, store: Any) -> None:
    """Compute ``arr`` into ``store`` (``store[region] = block``, one call per chunk of ``arr``),
    one row of chunks along axis 0 after the other.

    The chunks of ``arr`` must not straddle the store's own chunks when the writes run in
    parallel (the caller aligns them).  Under a scheduler other than dask's local ones (a
    distributed cluster), the whole graph goes to ``da.store`` instead.
    """
    get = _local_get()
    if get is None or len(arr.chunks[0]) < 2:
        da.store(arr, store, lock=False)
        return
    (arr,) = dask.optimize(arr)
    rows = _rows(arr)
    graph = dict(arr.__dask_graph__())
    deps, _ = get_deps(graph)
    # first row whose outputs need each task
    row_of: dict[Key, int] = {}
    for r, row in enumerate(rows):
        stack = [k for k, _ in row]
        while stack:
            k = stack.pop()
            if k not in row_of:
                row_of[k] = r
                stack.extend(deps[k])
    # run a task as soon as all it reads is there (the context a chunk lends the next row).  Tasks
    # that read nothing (the handle of a zarr source, a constant) do not count: every row can have
    # them, and counting them would pull all that reads them into their first row.
    run_at: dict[Key, int] = {}

    def when(k: Key) -> int:
        todo = [k]
        while todo:
            key = todo[-1]
            if key in run_at:
                todo.pop()
                continue
            inner = [d for d in deps[key] if deps[d]]
            missing = [d for d in inner if d not in run_at]
            if missing:
                todo.extend(missing)
                continue
            run_at[key] = max((run_at[d] for d in inner), default=row_of[key])
            todo.pop()
        return run_at[k]

    roots = {k: r for k, r in row_of.items() if not deps[k]}
    for k in row_of:
        if k not in roots:
            when(k)
    # a task that reads nothing runs in the first row that uses it (or writes it)
    for k, ds in deps.items():
        if k in run_at:
            for d in ds & roots.keys():
                roots[d] = min(roots[d], run_at[k])
    run_at.update(roots)
    last_use: dict[Key, int] = defaultdict(lambda: -1)
    for k, ds in deps.items():
        if k in run_at:
            for d in ds:
                last_use[d] = max(last_use[d], run_at[k])
    by_row: dict[int, list[Key]] = defaultdict(list)
    for k, r in run_at.items():
        by_row[r].append(k)
    writes_at: dict[int, list[tuple[Key, tuple[slice, ...]]]] = defaultdict(list)
    for row in rows:
        for key, region in row:
            writes_at[run_at[key]].append((key, region))
    carried: dict[Key, Any] = {}
    for r in range(len(rows)):
        sub: dict[Key, Any] = {k: graph[k] for k in by_row[r]}
        for k in by_row[r]:
            for d in deps[k]:
                if d not in sub:
                    sub[d] = DataNode(d, carried[d])
        writes = []
        for key, region in writes_at[r]:
            wkey = ("store-row", *key[1:])
            sub[wkey] = Task(wkey, _write, TaskRef(key), store, region)
            writes.append(wkey)
        keep = [k for k in by_row[r] if last_use[k] > r]
        if not writes and not keep:
            continue
        values = get(sub, writes + keep)
        carried.update(zip(keep, values[len(writes):]))
        for k in [k for k in carried if last_use[k] <= r]:
            del carried[k]
