"""experiment.toml: moved to :mod:`plscope.config.experiment` (one declarative schema).

This module only re-exports those names for code that imports them from here.
"""

from ..config.experiment import (
    EXPERIMENT_FILE,
    SCHEMA_VERSION,
    DaqConfig,
    ExperimentConfig,
    FieldConfig,
    InputsConfig,
    MovieConfig,
    SampleConfig,
    SpectraConfig,
    input_files,
    load_experiment,
    parse_experiment,
)

__all__ = [
    "EXPERIMENT_FILE",
    "SCHEMA_VERSION",
    "DaqConfig",
    "ExperimentConfig",
    "FieldConfig",
    "InputsConfig",
    "MovieConfig",
    "SampleConfig",
    "SpectraConfig",
    "input_files",
    "load_experiment",
    "parse_experiment",
]
