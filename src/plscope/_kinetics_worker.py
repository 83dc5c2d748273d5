"""Imported once by the fork server of the parallel kinetics (:mod:`plscope.pipeline.parallel`).

Outside :mod:`plscope.pipeline`: importing that package imports the whole pipeline (report,
matplotlib, spectra), which the workers do not need (~2.5 s more per process).

Every worker is a fork of that server, so what is done here is done once per
process that analyses, not once per worker: the modules the per-particle fits
use (some are imported lazily by scipy and Dask) and numba's compiled-code
machinery, initialized by loading one cached kernel (~0.9 s on first use).
"""

from __future__ import annotations

import dask.local
import dask.multiprocessing  # noqa: F401
import numpy as np
import scipy.linalg
import scipy.optimize  # noqa: F401

import plscope.kinetics.population as _population
import plscope.kinetics.refine  # noqa: F401

_population._grid_steps(np.zeros((1, 2)), np.zeros((1, 2)))
