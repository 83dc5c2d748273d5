"""``plscope config``: check any configuration file, print the defaults.

The kind of a file is told by its name (``experiment.toml``,
``detector.toml``) or given explicitly; anything else is a settings file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from ._base import load_toml, validate
from .experiment import EXPERIMENT_FILE, named_files, parse_experiment
from .settings import AnalysisSettings, defaults_toml

Kind = Literal["settings", "experiment", "detector"]
KINDS: tuple[str, ...] = ("settings", "experiment", "detector")


def kind_of(path: str | os.PathLike) -> Kind:
    """The kind of a configuration file, from its name."""
    name = Path(path).name.lower()
    if name == EXPERIMENT_FILE:
        return "experiment"
    if name == "detector.toml":
        return "detector"
    return "settings"


def check_file(path: str | os.PathLike, kind: Kind | None = None) -> tuple[Kind, list[str]]:
    """Validate one configuration file; returns its kind and the warnings.

    Raises
    ------
    ConfigError
        One line naming the file and every offending key.
    """
    path = Path(path)
    if path.is_dir():  # a run folder: its experiment.toml (or detector.toml)
        found = [path / n for n in (EXPERIMENT_FILE, "detector.toml") if (path / n).is_file()]
        path = found[0] if found else path / EXPERIMENT_FILE
    kind = kind or kind_of(path)
    if kind == "experiment":
        data = load_toml(path, what="experiment file")
        cfg = parse_experiment(data, path=path, run_dir=path.parent.resolve())
        for _, key, name in named_files(cfg):
            cfg.resolve(name, key=key)  # confined to the run folder
        return kind, list(cfg.warnings)
    if kind == "detector":
        from .detector import DetectorConfig

        validate(DetectorConfig, load_toml(path, what="detector file"), source=path)
        return kind, []
    AnalysisSettings.from_toml(path)
    return "settings", []


def defaults_text(kind: Kind = "settings") -> str:
    """The documented defaults of one kind of file."""
    if kind == "experiment":
        from .docs import experiment_example

        return experiment_example()
    if kind == "detector":
        from .docs import detector_example

        return detector_example()
    return defaults_toml()
