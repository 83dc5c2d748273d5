"""Particles: detection, PSF-aware size, drift, traces, tracking and quality.

Typical use on a movie ``stack`` (t, rows, cols)::

    ref = reference_image(stack, n_frames=64)
    particles, labels, psf_sigma_nm = find_particles(ref, pixel_size_nm=100.0)
    traces, drift = extract_run_traces(stack, particles, labels=labels, reference=ref)
    # (the trace step of `plscope run`, its defaults from plscope.config.TraceSettings;
    #  extract_traces is the general tool, by default the total light in fixed apertures)
    quality = quality_flags(traces, particles)
    shifts = centroid_shift(traces, cycles, frame_time_s)     # with a field

and for a movie of moving particles (colloids, single molecules), locate spots
with ``trackpy.batch`` and link them with :func:`link_features`.

Modules: :mod:`.detect` (reference image, background, segmentation),
:mod:`.size` (blurred-square fits, equivalent diameters),
:mod:`.segment` (detection refined by the fit residuals),
:mod:`.drift` (whole-movie drift), :mod:`.traces` (one streaming pass of
sparse aperture sums), :mod:`.linking` (trackpy linking,
centroid shift), :mod:`.quality` (per-particle flags),
:mod:`.models` (the image model shared with the simulator).
"""

from __future__ import annotations

from ..columns import TRACE_CENTROID_COLUMNS as CENTROID_COLUMNS
from ..columns import TRACE_COLUMNS
from ..columns import TRACE_DRIFT_COLUMNS as DRIFT_COLUMNS
from ..columns import TRACE_PEAK_COLUMNS as PEAK_COLUMNS
from . import models
from .detect import PARTICLE_COLUMNS, detect_particles, estimate_background, reference_image
from .drift import DRIFT_TABLE_COLUMNS, estimate_drift
from .linking import (
    CENTROID_SHIFT_COLUMNS,
    centroid_shift,
    filter_tracks,
    link_features,
    link_particle_centroids,
)
from .quality import QUALITY_COLUMNS, blink_mask, quality_flags
from .run_traces import extract_run_traces
from .segment import find_particles, residual_seeds
from .size import SIZE_COLUMNS, measure_sizes
from .traces import TraceWeights, extract_traces, trace_weights

__all__ = [
    "CENTROID_COLUMNS",
    "CENTROID_SHIFT_COLUMNS",
    "DRIFT_COLUMNS",
    "DRIFT_TABLE_COLUMNS",
    "PARTICLE_COLUMNS",
    "PEAK_COLUMNS",
    "QUALITY_COLUMNS",
    "SIZE_COLUMNS",
    "TRACE_COLUMNS",
    "TraceWeights",
    "blink_mask",
    "centroid_shift",
    "detect_particles",
    "estimate_background",
    "estimate_drift",
    "extract_run_traces",
    "extract_traces",
    "filter_tracks",
    "find_particles",
    "link_features",
    "link_particle_centroids",
    "measure_sizes",
    "models",
    "quality_flags",
    "reference_image",
    "residual_seeds",
    "trace_weights",
]
