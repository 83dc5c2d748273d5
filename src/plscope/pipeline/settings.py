"""Analysis settings: moved to :mod:`plscope.config.settings` (one declarative schema).

This module only re-exports those names for code that imports them from here.
"""

from ..config.settings import (
    DEFAULTS_TOML,
    AnalysisSettings,
    DetectionSettings,
    ExclusionSettings,
    KineticsSettings,
    TraceSettings,
    defaults_toml,
    load_settings,
)

__all__ = [
    "DEFAULTS_TOML",
    "AnalysisSettings",
    "DetectionSettings",
    "ExclusionSettings",
    "KineticsSettings",
    "TraceSettings",
    "defaults_toml",
    "load_settings",
]
