"""Orchestration: run folders in, results folders out.

``pipeline`` only wires the pure stages together (:mod:`plscope.io`,
:mod:`plscope.sync`, :mod:`plscope.tracking`, :mod:`plscope.kinetics`) and
writes the outputs atomically; the science lives in those stages.
"""

from .run import RunResult, analyze_imaging, run_imaging

__all__ = ["RunResult", "analyze_imaging", "run_imaging"]
