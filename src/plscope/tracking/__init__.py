"""Particles: detection, PSF-aware size, intensity traces.

Typical use on a movie ``stack`` (t, rows, cols)::

    ref = reference_image(stack, n_frames=64)
    particles, labels = detect_particles(ref)
    sizes, psf_sigma_nm = measure_sizes(ref, particles, pixel_size_nm=100.0,
                                        labels=labels)
    traces = extract_traces(stack, sizes, labels=labels)

Modules: :mod:`.detect` (reference image, background, segmentation),
:mod:`.size` (blurred-square fits), :mod:`.traces` (one streaming pass of
sparse aperture sums), :mod:`.models` (the image model shared with the
simulator).
"""

from __future__ import annotations

from . import models
from .detect import PARTICLE_COLUMNS, detect_particles, estimate_background, reference_image
from .size import SIZE_COLUMNS, measure_sizes
from .traces import DRIFT_COLUMNS, TRACE_COLUMNS, TraceWeights, extract_traces, trace_weights

__all__ = [
    "DRIFT_COLUMNS",
    "PARTICLE_COLUMNS",
    "SIZE_COLUMNS",
    "TRACE_COLUMNS",
    "TraceWeights",
    "detect_particles",
    "estimate_background",
    "extract_traces",
    "measure_sizes",
    "models",
    "reference_image",
    "trace_weights",
]
