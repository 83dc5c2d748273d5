"""Imported once by the fork server of the parallel kinetics (:mod:`plscope.pipeline.parallel`).

Outside :mod:`plscope.pipeline`: importing that package imports the whole pipeline (report,
matplotlib, spectra), which the workers do not need (~2.5 s more per process).

Every worker is a fork of that server, so what is done here is done once per
process that analyses, not once per worker: the modules the per-particle fits
use (some are imported lazily by scipy and Dask), and every numba kernel the
workers run, with the argument types they run it with (:func:`warm_up`): loaded
from numba's on-disk cache (``__pycache__`` next to the kernel's module, or
``NUMBA_CACHE_DIR``), or compiled -- and cached -- once here on the first run
after an install or a change to a kernel, instead of once in every worker
(~10 s CPU per process).
"""

from __future__ import annotations

import dask.local
import dask.multiprocessing  # noqa: F401
import numpy as np
import pandas as pd
import scipy.linalg
import scipy.optimize  # noqa: F401

import plscope.kinetics.population as _population
import plscope.kinetics.refine  # noqa: F401
from plscope.kinetics import _lsq
from plscope.kinetics import cycles as _cycles
from plscope.kinetics import trace_fit as _trace_fit


def warm_up() -> None:
    """Run every compiled kernel of the per-particle kinetics once on a tiny problem (a few ms
    once compiled), through the functions that call them, so with the types they are called with:
    the MINPACK curve fits (:func:`plscope.kinetics._lsq.leastsq`), the whole-trace fit's rows,
    streamed Gram matrix and compiled trust-region solve, the pooled shape's profile chi-square, and
    the first pass's plateau means and cycle interpolation."""
    t = np.arange(40) * 0.25
    y = 1.0 - 0.4 * np.exp(-t / 1.5) + 0.01 * np.sin(7.0 * t)
    _lsq.leastsq(
        _lsq.MONO, t, y, None, 0.2, [1.0, 0.4, 1.0], [-np.inf, -np.inf, 0.01], [np.inf] * 3, max_nfev=50
    )
    cycles = pd.DataFrame(
        {"level": [0, 1], "on_start_s": [1.0, 5.0], "on_end_s": [3.0, 7.0], "off_end_s": [5.0, 9.0]}
    )
    g = _trace_fit.trace_geometry(t, y, cycles, 0.2)
    assert g is not None
    x = _trace_fit._start(g, None, _trace_fit.ShapeHyper())
    rows = np.arange(g.t.size, dtype=np.int64)
    _trace_fit._residuals(x, g, rows, 1.0, True)
    _trace_fit._gram(x, g, rows, 1.0, _trace_fit._F_SCALE)
    for loss in ("soft_l1", "linear"):  # the compiled trust-region solve of either loss
        problem = _trace_fit._TraceProblem(
            g, np.ones(g.t.size, bool), 1.0, _trace_fit.ShapeHyper(), loss=loss
        )
        _trace_fit._solve(problem, x, _trace_fit._bounds(g))
    curves = _population._PackedCurves(
        t=t[None, :], y=y[None, :], w=np.ones((1, t.size)), tau0=np.array([1.5]), exposure=np.array([0.2])
    )
    _population._profile_chi2(curves, 0.5, 1.0)
    # the first pass's plateau means and interpolation onto the cycles' grid
    _cycles._plateau_levels(t, y, np.array([1.0]), np.array([3.0]), 0.2)
    _cycles._interp_cycle(t[:10], y[:10], t[:10] + 0.01, 0.3)


try:
    warm_up()
except Exception:
    # the fork server imports this at its start and survives only an ImportError: any other error here
    # would end it, and every worker the process starts afterwards would fail ("EOFError: unexpected
    # EOF" from the pool, the server being kept); without the warm-up each worker compiles what it
    # runs (and reports any error of the fits itself)
    pass
