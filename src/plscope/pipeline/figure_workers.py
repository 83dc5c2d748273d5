"""Worker processes that draw the report's figures of one run (issue 16).

matplotlib holds the GIL while it lays out and draws, so threads do not help
(measured: no gain for the SVG and PDF files). Each figure of the report
(:func:`plscope.report.html.write_report`) is drawn, and its PNG, SVG and
PDF files written, in one of two worker processes while this process renders
the gallery and the tables; the page embeds the PNG bytes the workers
return. The files and the page are those of the serial drawing, byte for
byte (tested).

The workers are forks of the fork server of :mod:`plscope.pipeline.parallel`
(shared with the parallel kinetics), and the same rules keep the drawing in
this process: inside a task of a Dask cluster or a daemonic process, under
Dask's synchronous scheduler, with ``kinetics.workers = 1``, on one core,
and for runs of fewer than :data:`~plscope.pipeline.parallel.MIN_PARALLEL_PARTICLES`
particles (two worker processes cost more than the figures of a small run).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from ..errors import PlscopeError
from .parallel import MIN_PARALLEL_PARTICLES, _context, must_stay_serial

__all__ = ["figure_mapper"]

#: processes drawing the figures (the machine this was measured on has 2 cores)
FIGURE_WORKERS = 2


def _parallel(n_particles: int, kinetics_workers: Any) -> bool:
    from dask.system import CPU_COUNT

    return (
        CPU_COUNT >= 2
        and kinetics_workers != 1
        and n_particles >= MIN_PARALLEL_PARTICLES
        and not must_stay_serial()
    )


@contextlib.contextmanager
def figure_mapper(n_particles: int, kinetics_workers: Any = "auto") -> Iterator[Callable | None]:
    """A map over worker processes for ``write_report(mapper=...)``, or None: draw in this process.

    Parameters
    ----------
    n_particles : int
        Particles of the run.
    kinetics_workers : int or "auto"
        The setting ``kinetics.workers`` (1: no worker processes at all).
    """
    if not _parallel(n_particles, kinetics_workers):
        yield None
        return
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(FIGURE_WORKERS, mp_context=_context()) as pool:

        def mapper(func: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
            return _checked(pool.map(func, items))

        yield mapper


def _checked(results: Iterator[Any]) -> Iterator[Any]:
    try:
        yield from results
    except BrokenProcessPool:
        raise PlscopeError(
            "a worker process drawing the report's figures died (out of memory, or a script calling "
            'plscope without the `if __name__ == "__main__":` guard); set kinetics.workers = 1 to draw '
            "them in the main process"
        ) from None
