"""Orchestration: run folders in, results folders out.

``pipeline`` only wires the pure stages together (:mod:`plscope.io`,
:mod:`plscope.sync`, :mod:`plscope.tracking`, :mod:`plscope.kinetics`) and
writes the outputs atomically; the science lives in those stages.
"""

from ..results import Extraction, RunResult, SpectraResult
from .imaging import (
    analyze_extraction,
    analyze_imaging,
    extract_imaging,
    reanalyze,
    run_imaging,
)
from .settings import AnalysisSettings, load_settings

__all__ = [
    "AnalysisSettings",
    "Extraction",
    "RunResult",
    "SpectraResult",
    "analyze_extraction",
    "analyze_imaging",
    "extract_imaging",
    "load_settings",
    "reanalyze",
    "run_imaging",
]
