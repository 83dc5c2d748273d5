"""detector.toml: the numbers the electrometer does not record (pydantic v2 schema).

See ``docs/detector-folder.md`` (the spec of ``shared/spec/detector-folder.md``
plus additions). :func:`load_detector_config` validates the file before any
work; a missing or invalid key ends in one :class:`~plscope.errors.ConfigError`
naming the file and the key.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..errors import ConfigError

__all__ = [
    "DETECTOR_FILE",
    "DetectorConfig",
    "DeviceConfig",
    "DriftConfig",
    "IVConfig",
    "PyroConfig",
    "StabilityConfig",
    "XrayConfig",
    "load_detector_config",
]

#: Name of the configuration file inside a detector run folder.
DETECTOR_FILE = "detector.toml"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SampleConfig(_Model):
    name: str = ""
    temperature_K: float = Field(default=296.15, gt=0)


class DeviceConfig(_Model):
    electrode_area_cm2: float = Field(gt=0)
    electrode_spacing_cm: float = Field(gt=0)


class _Trace(_Model):
    """A current record: file, current channel, optional stimulus gate."""

    path: str
    current: str = "current_A"
    time: str | None = None
    shutter: str | None = None
    #: on/off times in s when there is no shutter channel: [[on, off], ...]
    on_off_s: list[tuple[float, float]] | None = None
    #: "shutter" | "times" | "current" (step detector); default: shutter, else times, else current
    stimulus: str | None = Field(default=None, pattern="^(shutter|times|current)$")


class PyroConfig(_Trace):
    delta_T_K: float = Field(gt=0)
    wavelength_nm: float | None = Field(default=None, gt=0)
    power_density_mW_per_cm2: float | None = Field(default=None, gt=0)


class XrayConfig(_Trace):
    dose_rate_nGy_per_s: float = Field(gt=0)
    bias_V: float = 0.0


class IVConfig(_Model):
    dark: str | None = None
    irradiated: str | None = None
    hecht: str | None = None
    voltage: str = "voltage_V"
    current: str = "current_A"


class DriftConfig(_Model):
    path: str
    bias_V: float
    current: str = "current_A"
    time: str | None = None


class StabilityConfig(_Model):
    """Addition: current under continuous exposure (% change over the record)."""

    path: str
    current: str = "current_A"
    time: str | None = None
    dose_rate_nGy_per_s: float | None = None


class DetectorConfig(_Model):
    """Validated content of detector.toml (paths as written; see :meth:`resolve`)."""

    schema_: int = Field(default=1, alias="schema")
    sample: SampleConfig = SampleConfig()
    device: DeviceConfig
    pyro: list[PyroConfig] = []
    xray: list[XrayConfig] = []
    iv: IVConfig | None = None
    drift: DriftConfig | None = None
    stability: StabilityConfig | None = None

    @model_validator(mode="after")
    def _schema_known(self) -> DetectorConfig:
        if self.schema_ != 1:
            raise ValueError(f"schema {self.schema_} is not supported (this plscope reads schema 1)")
        return self

    def resolve(self, run_dir: str | os.PathLike, path: str) -> Path:
        """Absolute path of a file named in the TOML (relative to the run folder)."""
        p = Path(path)
        return p if p.is_absolute() else Path(run_dir) / p

    def input_files(self, run_dir: str | os.PathLike) -> list[Path]:
        """Every data file the TOML names, resolved."""
        names = [t.path for t in (*self.pyro, *self.xray)]
        if self.iv is not None:
            names += [p for p in (self.iv.dark, self.iv.irradiated, self.iv.hecht) if p]
        names += [t.path for t in (self.drift, self.stability) if t is not None]
        return [self.resolve(run_dir, n) for n in names]


def _where(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts[-1] = f"{parts[-1]}[{item}]" if parts else f"[{item}]"
        else:
            parts.append("schema" if item == "schema_" else str(item))
    return ".".join(parts)


def load_detector_config(run_dir: str | os.PathLike) -> DetectorConfig:
    """Read and validate ``RUN_DIR/detector.toml``.

    Raises
    ------
    ConfigError
        Missing file, TOML syntax error, or a missing/invalid key; the
        message names the file and the first offending key.
    """
    path = Path(run_dir) / DETECTOR_FILE
    if not path.is_file():
        raise ConfigError(path, "file does not exist (a detector run folder needs detector.toml)")
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, f"is not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(path, f"cannot be read: {exc.strerror}") from None
    try:
        return DetectorConfig.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = _where(err["loc"])
        if err["type"] == "missing":
            problem = f"missing key '{key}'"
        elif err["type"] == "extra_forbidden":
            problem = f"unknown key '{key}'"
        else:
            problem = f"key '{key}': {err['msg']}" if key else err["msg"]
        raise ConfigError(path, problem) from None
