"""Declarative schemas (pydantic v2) of the TOML files plscope reads.

One configuration mechanism: experiment.toml (:mod:`.experiment`), analysis
settings (:mod:`.settings`), detector.toml (:mod:`.detector`) and the
simulator parameters. A floor-1 leaf package (imports nothing of plscope but
:mod:`plscope.errors`). Every key is declared once (type, default, range,
unit, doc); validation, ``plscope config --print-defaults`` and
``docs/configuration.md`` all come from that declaration.
"""

from .detector import DetectorConfig, load_detector_config
from .experiment import ExperimentConfig, input_files, load_experiment, parse_experiment
from .settings import (
    DEFAULTS_TOML,
    AnalysisSettings,
    DetectionSettings,
    ExclusionSettings,
    KineticsSettings,
    TraceSettings,
    load_settings,
)

__all__ = [
    "DEFAULTS_TOML",
    "AnalysisSettings",
    "DetectionSettings",
    "DetectorConfig",
    "ExclusionSettings",
    "ExperimentConfig",
    "KineticsSettings",
    "TraceSettings",
    "input_files",
    "load_detector_config",
    "load_experiment",
    "load_settings",
    "parse_experiment",
]
