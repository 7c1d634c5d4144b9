"""Evaluate a lazy dask chain into a store one z-row of chunks at a time (bounded memory).

``da.store`` hands the whole task graph to the scheduler, which is free to start many rows at
once and to keep every chunk it has computed until all its dependents are done: a chain of
overlapping filters over a long stack then holds a number of chunks that grows with the slice
count.  Here the rows of output chunks run one after the other, each task in the first row that
needs it, and what a row hands on to later rows is as little as the graph allows:

- a *computing* task (a filter, a classifier, any function of the user's) runs exactly once; its
  block is kept for the later rows that read it (the chunk a filter computed a row ahead for the
  context it lends, :func:`dask.array.map_overlap`), whole up to the last row that reads it
  whole; for the rows after that, which read only slices of it, only the slices are kept (the
  thin context a chunk lends its neighbours along z: the chunk a row ahead is read whole by the
  next row, then a slice of it by the row after, and must not be kept whole for that one);
- a *moving* task (reading a chunk from the store, slicing, concatenating, rechunking, a type
  cast or an elementwise operator) is run again in every row that needs it rather than kept:
  keeping the chunk a row read ahead for its first few slices would keep a whole chunk row;
- a slice a row takes of a block (the context a chunk lends its neighbours) is copied when it is a
  view: a view keeps its whole block for as long as the slice waits to be assembled into a
  neighbour's padded block, and the scheduler runs a row's tasks in an order of its own (the float
  chunks of the rows ahead, read for their thin context slices, were held at once: 2.5 rows of
  them in ``test_rows_context_slices_do_not_keep_their_whole_chunks``, 1.3 copied).

Nothing is run ahead of the row that needs it, so a row holds its own chunks, the chunks of the
computing steps a row ahead (one per overlapping step of the chain) and thin context slices,
whatever the number of rows.  The values are those ``da.store`` writes.
"""

from __future__ import annotations

import operator
from collections import defaultdict
from itertools import chain, product
from typing import Any, Callable, Hashable, Iterable

import dask
import dask.array as da
import dask.local
import dask.multiprocessing
import dask.threaded
import numpy as np
from dask.array import chunk as da_chunk
from dask.array import core as da_core
from dask.base import get_scheduler
from dask.core import get_deps
from dask.task_spec import Alias, DataNode, GraphNode, Task, TaskRef

Key = Hashable

_MOVES: frozenset[Callable[..., Any]] = frozenset({
    operator.getitem, da_chunk.getitem, da_chunk.astype, da_core.getter, da_core.getter_nofancy, da_core.getter_inline,
    da_core.concatenate_shaped, da_core.concatenate3, np.concatenate, np.broadcast_to,
})
"""Functions that move or cast values without computing on them (cheaper to run again than to keep)."""


def _local_get() -> Callable[..., Any] | None:
    """The configured scheduler's ``get`` when it is one of dask's local schedulers, else None."""
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


def _moving(node: Any) -> bool:
    """True for a task that only moves, slices, casts or combines elementwise (see :data:`_MOVES`),
    fused tasks included; False for anything that computes (kept, never run twice)."""
    if isinstance(node, (DataNode, Alias, TaskRef)):
        return True
    if not isinstance(node, Task):
        return not isinstance(node, GraphNode)  # a literal argument
    func = node.func
    runner = _subgraph_runner()
    if runner is not None and func is runner:
        inner: dict = node.args[0]
        return all(_moving(t) for t in inner.values())
    simple = (func in _MOVES or isinstance(func, np.ufunc) or getattr(func, "__module__", None) in ("_operator", "operator")
              or func is getattr(node, "to_container", None))
    return simple and all(_moving(a) for a in chain(node.args, node.kwargs.values()))


def _subgraph_runner() -> Callable[..., Any] | None:
    """dask's runner of fused tasks (a private name): None where a dask version lacks it, and a
    fused task then counts as computing (kept, never run twice: safe, only less memory saved)."""
    try:
        from dask._task_spec import _execute_subgraph
    except ImportError:
        return None
    return _execute_subgraph


def _slices(node: Any, source: Key) -> bool:
    """True for a task that takes a slice of ``source`` and nothing else."""
    return (isinstance(node, Task) and node.func in (operator.getitem, da_chunk.getitem)
            and node.dependencies == frozenset({source}))


class _Plan:
    """What each row computes and what it keeps for later rows (see the module's docstring).

    Attributes
    ----------
    computes : list of set
        Per row, the keys run in it.
    keep : dict
        Row -> keys run in it whose values later rows read.
    last_use : dict
        Kept key -> last row that reads it.
    """

    def __init__(self, graph: dict[Key, Any], deps: dict[Key, set], rows: list[list[tuple[Key, Any]]]) -> None:
        moving = {k: _moving(v) for k, v in graph.items()}
        made_at: dict[Key, int] = {}  # a computing task -> the row that runs it
        # a computing task run in an earlier row -> row -> what reads it there (None: the write)
        readers: dict[Key, dict[int, set]] = defaultdict(lambda: defaultdict(set))
        self.computes: list[set] = []
        for r, row in enumerate(rows):
            run: set = set()
            todo = []
            for key, _ in row:
                if made_at.get(key, r) < r:
                    readers[key][r].add(None)
                else:
                    todo.append(key)
            while todo:
                k = todo.pop()
                if k in run:
                    continue
                run.add(k)
                if not moving[k]:
                    made_at[k] = r
                for d in deps[k]:
                    if made_at.get(d, r) < r:
                        readers[d][r].add(k)
                    elif d not in run:
                        todo.append(d)
            self.computes.append(run)
        self.keep: dict[int, list[Key]] = defaultdict(list)
        self.last_use: dict[Key, int] = {}
        for x, by_row in readers.items():
            self._split(x, made_at[x], by_row, graph)

    def _split(self, x: Key, at: int, by_row: dict[int, set], graph: dict[Key, Any]) -> None:
        """Keep ``x`` (run in row ``at``) whole up to the last row that reads it whole, and only
        the slices that the rows after that read (the context it lends further on).

        Parameters
        ----------
        x : hashable
            A computing task that later rows read.
        at : int
            The row that runs it.
        by_row : dict
            Later row -> the tasks that read ``x`` there (None: the write of ``x`` itself).
        graph : dict
            The whole graph (what each reader does).
        """
        whole = [r for r, us in by_row.items() if None in us or not all(_slices(graph[u], x) for u in us)]
        upto = max(whole, default=at)
        if whole:
            self.keep[at].append(x)
            self.last_use[x] = upto
        for u in set().union(*by_row.values()) - {None}:
            used = [r for r, us in by_row.items() if u in us]
            if max(used) <= upto or not _slices(graph[u], x):
                continue
            for r in used:
                self.computes[r].discard(u)
            self.computes[at].add(u)
            self.keep[at].append(u)
            self.last_use[u] = max(used)


def _owned(value: Any) -> Any:
    """``value``, copied when it is a view of a larger array (a kept slice must not keep its chunk)."""
    if isinstance(value, np.ndarray) and value.base is not None and value.nbytes < getattr(value.base, "nbytes", 0):
        return value.copy()
    return value


def _sliced(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``func(*args, **kwargs)`` (a slice of a block), copied when it is a view of a larger array."""
    return _owned(func(*args, **kwargs))


def _copying(node: Any) -> Any:
    """``node``, made to copy its value when it slices a block (see :func:`_owned`), else ``node``.

    The thin context slices a chunk lends its neighbours (:func:`dask.array.map_overlap`) are views
    of the whole chunk: held until the neighbour's padded block is assembled, each would keep its
    whole chunk (the chunks of the rows ahead, whose slices the row's own blocks wait for, were
    held at once).  Copied, the chunk is freed once it has been sliced and read whole; the copies
    are the thin context, which the padded blocks copy again (little work beside the filters).
    """
    if isinstance(node, Task) and node.func in (operator.getitem, da_chunk.getitem):
        return Task(node.key, _sliced, node.func, *node.args, **node.kwargs)
    return node


def store_by_rows(arr: da.Array, store: Any) -> None:
    """Compute ``arr`` into ``store`` (``store[region] = block``, one call per chunk of ``arr``),
    one row of chunks along axis 0 after the other.

    The chunks of ``arr`` must not straddle the store's own chunks when the writes run in
    parallel (the caller aligns them).  Under a scheduler other than dask's local ones (a
    distributed cluster), the whole graph goes to ``da.store`` instead.  A numpy ``store`` lives
    in this process's memory: where the tasks run in other processes (dask's ``processes``
    scheduler, a cluster's workers) its blocks come back and are written here, since a write
    task would fill a copy of it in the worker and leave this one untouched.
    """
    get = _local_get()
    here = isinstance(store, np.ndarray) and get not in (dask.threaded.get, dask.local.get_sync)
    if get is None or len(arr.chunks[0]) < 2:
        if here:
            store[...] = np.asarray(arr.compute())
        else:
            da.store(arr, store, lock=False)
        return
    (arr,) = dask.optimize(arr)
    rows = _rows(arr)
    graph = dict(arr.__dask_graph__())
    deps, _ = get_deps(graph)
    plan = _Plan(graph, deps, rows)
    del deps
    carried: dict[Key, Any] = {}
    for r, row in enumerate(rows):
        sub: dict[Key, Any] = {k: _copying(graph[k]) for k in plan.computes[r]}
        for k in _inputs(sub, graph, carried):
            sub[k] = DataNode(k, carried[k])
        writes = []
        for key, region in row:
            if key not in sub:
                sub[key] = DataNode(key, carried[key])
            if here:
                writes.append(key)
                continue
            wkey = ("store-row", *key[1:])
            sub[wkey] = Task(wkey, _write, TaskRef(key), store, region)
            writes.append(wkey)
        keep = plan.keep.get(r, [])
        values = get(sub, writes + keep)
        if here:
            for (_, region), block in zip(row, values):
                store[region] = block
        carried.update((k, _owned(v)) for k, v in zip(keep, values[len(writes):]))
        del values, sub
        for k in [k for k in carried if plan.last_use[k] <= r]:
            del carried[k]


def _inputs(sub: dict[Key, Any], graph: dict[Key, Any], carried: dict[Key, Any]) -> Iterable[Key]:
    """Keys that the tasks of ``sub`` read and that earlier rows kept."""
    return {d for k in list(sub) for d in graph[k].dependencies if d not in sub and d in carried}
