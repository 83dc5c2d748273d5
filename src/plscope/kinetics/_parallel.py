"""Per-particle loops over a map-like callable.

Every per-particle loop of the kinetics takes ``mapper``: a map-like callable
(``mapper(func, iterable)`` yields ``func(item)`` for every item, in order),
like the ``workers`` argument of :mod:`scipy.optimize`. The builtin
:func:`map` (the default) runs the loop in this process exactly as a plain
``for`` loop would; anything else, e.g. ``concurrent.futures.Executor.map`` of
a process pool or a Dask map built by the pipeline, receives a module-level
function and chunks of particles (one task carries many particles: pickling
and scheduling cost per task, not per particle). The results come back in the
particles' order, so the numbers do not depend on the mapper.

The science stays pure: no pool is made here (the pipeline makes it).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable
from typing import Any

from threadpoolctl import threadpool_limits

#: Chunks of a parallel loop: a few per core of a small machine (load balance) while a
#: task still carries many particles of a large run (200 particles: 13 per task).
N_CHUNKS = 16

Mapper = Callable[..., Iterable[Any]]


def map_particles(mapper: Mapper | None, func: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
    """``[func(item) for item in items]``, evaluated through ``mapper`` in chunks.

    Parameters
    ----------
    mapper : callable or None
        Map-like callable; ``None`` or the builtin :func:`map`: a plain loop here.
    func : callable
        Picklable (module-level function or :func:`functools.partial` of one).
    items : iterable
        Picklable inputs, one per particle.

    Returns
    -------
    list
        The results in the order of ``items``.
    """
    items = list(items)
    if mapper is None or mapper is map or len(items) <= 1:
        return [func(item) for item in items]
    size = math.ceil(len(items) / N_CHUNKS)
    chunks = [items[i : i + size] for i in range(0, len(items), size)]
    out: list[Any] = []
    for part in mapper(functools.partial(_run_chunk, func), chunks):
        out.extend(part)
    if len(out) != len(items):
        raise RuntimeError(f"mapper returned {len(out)} results for {len(items)} particles")
    return out


def chunked(mapper: Mapper | None) -> Mapper:
    """``mapper`` evaluating in chunks as :func:`map_particles` does (the builtin :func:`map` as it is).

    For a callee that maps one task per particle itself (the joint fit's inner fits).
    """
    if mapper is None or mapper is map:
        return map
    return functools.partial(map_particles, mapper)


def _run_chunk(func: Callable[[Any], Any], chunk: list[Any]) -> list[Any]:
    """One task: a chunk of particles, single-threaded BLAS (the workers share the cores)."""
    with threadpool_limits(limits=1):
        return [func(item) for item in chunk]
