"""The trace step of ``plscope run``, with the pipeline's defaults.

:func:`extract_traces` is the general tool (its defaults measure a
particle's *total* light: an aperture of 3 PSF sigmas + 2 px, fixed). The
pipeline needs *normalized* traces, for which a tight aperture that follows
the stage drift halves the background noise; :func:`extract_run_traces` is
that step (one pass over a dask stack of camera frames,
:func:`~plscope.tracking.streaming.stream_drift_and_traces`), with its defaults taken from
:class:`~plscope.config.settings.TraceSettings` -- the same declaration that
``plscope run`` reads -- so a notebook calling it with defaults gets the
traces ``plscope run`` computes.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd

from ..config.settings import TraceSettings
from .drift import estimate_drift
from .streaming import stream_drift_and_traces
from .traces import extract_traces


def extract_run_traces(
    stack: Any,
    particles: pd.DataFrame,
    *,
    labels: np.ndarray | None = None,
    reference: np.ndarray | None = None,
    settings: TraceSettings | None = None,
    progress: bool = False,
    scratch: str | os.PathLike | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Traces of every particle as ``plscope run`` extracts them.

    Parameters
    ----------
    stack : ndarray or dask.array.Array, shape (t, rows, cols)
        Raw frames in ADU.
    particles : pandas.DataFrame
        The particles of :func:`~plscope.tracking.find_particles`.
    labels : ndarray, optional
        Their label image.
    reference : ndarray, optional
        The image the positions refer to (default: the reference image of the stack).
    settings : TraceSettings, optional
        Aperture margins and drift handling (default: ``TraceSettings()``, the
        defaults of ``plscope run``). ``drift = "follow"``: the whole-movie
        drift of :func:`~plscope.tracking.estimate_drift`, apertures following
        it frame by frame; ``"estimate"``: fixed apertures, drift reported;
        ``"none"``: fixed apertures.
    progress : bool
        Show a progress bar.
    scratch : path-like, optional
        Where the traces may be filled particle-major instead of held
        (:func:`~plscope.tracking.streaming.stream_drift_and_traces`): then
        ``traces`` is that file's :class:`~plscope._particle_traces.ParticleTraces`.

    Returns
    -------
    traces : pandas.DataFrame
        The table of :func:`extract_traces` with centroids and peaks.
    drift : pandas.DataFrame or None
        The drift table with ``drift = "follow"``, else None.
    """
    tr = settings or TraceSettings()
    if tr.drift == "follow":  # a dask stack of camera frames: drift and traces in one pass
        options: dict[str, Any] = {
            "radius_px": None,  # extract_traces' defaults, as the two passes below use them
            "annulus_px": (2.0, 3.0),
            "labels": labels,
            "aperture": "square",
            "background": "plane",
            "drift_margin_px": tr.drift_margin_px,
            "psf_margin_sigma": tr.psf_margin_sigma,
        }
        streamed = stream_drift_and_traces(
            stack, particles, options, reference=reference, progress=progress, scratch=scratch
        )
        if streamed is not None:
            return streamed
    drift = estimate_drift(stack, reference=reference) if tr.drift == "follow" else None
    traces = extract_traces(
        stack,
        particles,
        labels=labels,
        progress=progress,
        drift=drift if drift is not None else tr.drift,
        reference=reference,
        psf_margin_sigma=tr.psf_margin_sigma,
        drift_margin_px=tr.drift_margin_px,
        centroids=True,
        peaks=True,
    )
    return traces, drift
