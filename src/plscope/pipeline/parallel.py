"""Worker processes for the per-particle kinetics of one run (setting ``kinetics.workers``).

The per-particle fits hold the GIL (lmfit, scipy least squares), so threads
do not help: :func:`particle_mapper` gives
:func:`~plscope.kinetics.analyze_population` a map over a pool of processes,
run by Dask's ``processes`` scheduler (one pool for the whole analysis: the
workers import plscope once). Where a Dask ``distributed`` client is the
default of this process (a notebook on a cluster), the map runs on its
cluster instead. The numbers are those of the serial loop, exactly: every
particle is fitted by the same code, alone, and the results are put back in
the particles' order.

Serial (the builtin :func:`map`) when

- ``workers = 1``, or one core;
- ``workers = "auto"`` and fewer than :data:`MIN_PARALLEL_PARTICLES`
  particles (starting the processes would cost more than it saves);
- inside a task of a Dask cluster (each run of ``plscope batch`` is one task
  on a single-threaded worker: the batch is parallel across runs, never
  nested), or in a daemonic process, or when Dask's synchronous scheduler is
  configured (``dask.config.set(scheduler="synchronous")``).

Worker processes are forks of a ``multiprocessing`` fork server that has
imported the kinetics and loaded (or, on the first run after an install,
compiled and cached) their numba kernels once (:mod:`plscope._kinetics_worker`;
started at the first parallel run of the process and kept; it does not import
the user's ``__main__``). Where there is no
fork server (Windows), Dask's ``multiprocessing.context`` (``spawn``) is
used, and a script that calls plscope needs the usual
``if __name__ == "__main__":`` guard (or ``kinetics.workers = 1``).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import multiprocessing
import sys
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from ..errors import PlscopeError
from .memory import release_free_memory

logger = logging.getLogger(__name__)

#: Fewer particles: ``workers = "auto"`` runs the kinetics serially. The break-even measured on
#: the shared 2-core machine (benchmarks/README.md, issue 16): 2 workers lost at 24 particles,
#: were even at 48 and ahead at 200 (the fork server costs ~2-3 s of CPU once per process).
MIN_PARALLEL_PARTICLES = 48

_SERIAL_SCHEDULERS = frozenset({"sync", "synchronous", "single-threaded"})


def _in_cluster_task() -> bool:
    """Inside a task of a Dask ``distributed`` worker (never when distributed is not even imported)."""
    if "distributed" not in sys.modules:
        return False
    try:
        from distributed import get_worker

        get_worker()
    except (ImportError, ValueError):
        return False
    return True


def must_stay_serial() -> bool:
    """Whether the kinetics of this process must not start workers (see the module docstring)."""
    import dask

    if _in_cluster_task() or multiprocessing.current_process().daemon:
        return True
    return str(dask.config.get("scheduler", None) or "") in _SERIAL_SCHEDULERS


def _default_client() -> Any:
    """The default ``distributed`` client of this process, or None."""
    if "distributed" not in sys.modules:
        return None
    try:
        from distributed import default_client

        return default_client()
    except (ImportError, ValueError):
        return None


def kinetics_workers(workers: int | str, n_particles: int) -> int:
    """Processes for the per-particle kinetics (1: serial).

    Parameters
    ----------
    workers : int or "auto"
        The setting ``kinetics.workers``.
    n_particles : int
        Particles of the run.
    """
    from dask.system import CPU_COUNT

    if must_stay_serial() or n_particles < 2:
        return 1
    if workers == "auto":
        return CPU_COUNT if n_particles >= MIN_PARALLEL_PARTICLES else 1
    return max(1, min(int(workers), n_particles))


@contextlib.contextmanager
def particle_mapper(workers: int | str, n_particles: int) -> Iterator[Callable[..., Iterable[Any]]]:
    """A map-like callable for :func:`~plscope.kinetics.analyze_population` (closed on exit).

    Parameters
    ----------
    workers : int or "auto"
        The setting ``kinetics.workers``.
    n_particles : int
        Particles of the run.

    Yields
    ------
    callable
        ``mapper(func, items)``: the builtin :func:`map` when serial.
    """
    n = kinetics_workers(workers, n_particles)
    if n <= 1:
        yield map
        return
    client = _default_client()
    if client is not None:
        logger.info("kinetics: per-particle fits on the Dask cluster %s", client)
        yield functools.partial(_dask_map, scheduler=client)
        return
    from concurrent.futures import ProcessPoolExecutor

    import dask.multiprocessing

    logger.info("kinetics: per-particle fits in %d processes", n)
    with ProcessPoolExecutor(n, mp_context=_context()) as pool:
        # the scheduler function itself: named "processes", Dask imports distributed to look for a client
        # (~0.7 s CPU); chunksize 1: every chunk of particles its own submission (Dask's default batches 6
        # ready tasks per submission, so 16 tasks on 2 workers split 10 : 6, the one waiting for the other)
        yield functools.partial(
            _dask_map, scheduler=dask.multiprocessing.get, pool=pool, num_workers=n, chunksize=1
        )


#: Imported once by the fork server; its forks start with them (not the user's ``__main__``).
_PRELOAD = ["plscope._kinetics_worker"]


def _context() -> multiprocessing.context.BaseContext:
    """``forkserver`` where there is one (the server imports plscope once, each worker is a fork of
    it: 0.1 s instead of ~1.5-3 s of imports per spawned worker), else Dask's context (``spawn``)."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        from dask.multiprocessing import get_context

        return get_context()
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(_PRELOAD)  # no effect once the server runs (then workers import)
    return ctx


def _dask_map(func: Callable[[Any], Any], items: Iterable[Any], **compute: Any) -> list[Any]:
    """``[func(x) for x in items]`` as Dask tasks, results in order.

    The items go into the graph as they are (not traversed nor hashed by Dask).
    """
    import uuid

    import dask

    fn = dask.delayed(func, pure=False)
    token = uuid.uuid4().hex
    tasks = [
        fn(dask.delayed(item, name=f"particles-{token}-{i}", traverse=False)) for i, item in enumerate(items)
    ]
    try:
        return list(dask.compute(*tasks, **compute))
    except BrokenProcessPool:
        raise PlscopeError(
            "a worker process of the kinetics died (out of memory, or a script calling plscope "
            'without the `if __name__ == "__main__":` guard); set kinetics.workers = 1 to run serially'
        ) from None
    finally:
        # the pickled tasks and results freed: the kinetics run many maps, each leaving holes
        release_free_memory(collect=False)
