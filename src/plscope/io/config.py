"""experiment.toml: the numbers the instruments do not record.

The file is validated against a schema *before* any heavy work: types,
ranges, required keys; unknown keys are reported as warnings (with a
suggestion when they look like a typo). See ``shared/spec/run-folder.md``.
"""

from __future__ import annotations

import difflib
import logging
import math
import os
import tomllib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError

logger = logging.getLogger(__name__)

#: Name of the experiment file inside a run folder.
EXPERIMENT_FILE = "experiment.toml"
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class SampleConfig:
    name: str = ""
    temperature_K: float = 296.15


@dataclass(frozen=True)
class MovieConfig:
    path: str
    pixel_size_nm: float | None = None
    frame_rate_hz: float | None = None
    psf_sigma_nm: float | None = None
    #: multi-dimensional files (Nikon ND2): channel (index or name), z plane, stage position
    channel: int | str | None = None
    z: int | None = None
    position: int | None = None


@dataclass(frozen=True)
class DaqConfig:
    path: str
    camera_ttl: str = "camera_ttl"
    voltage: str = "fg_voltage"
    #: "map": frames keep the TTL pulse of their own slot when the camera
    #: dropped frames (reported); "error": refuse such runs.
    dropped_frames: str = "map"
    #: samples per second of a log without a time column (time = row / rate)
    sample_rate_hz: float | None = None


@dataclass(frozen=True)
class FieldConfig:
    amplifier_gain: float
    electrode_gap_um: float
    #: largest relative spread of the field within one level
    level_tolerance: float = 0.02


@dataclass(frozen=True)
class SpectraConfig:
    path: str
    camera_ttl: str = "camera_ttl"
    lamp: str | None = None
    lamp_lines_nm: tuple[float, ...] | None = None
    dispersion_nm: tuple[float, ...] | None = None
    #: number of the first pixel in ``dispersion_nm``: 0, or 1 for coefficients
    #: copied from Andor Solis or WinSpec, which count pixels from 1
    dispersion_first_pixel: int = 0
    #: a calibration.json written by ``plscope calibrate``
    calibration: str | None = None
    #: frame rate of the spectra when there is no DAQ log and the file records none
    frame_rate_hz: float | None = None
    channel: int | str | None = None
    z: int | None = None
    position: int | None = None


@dataclass(frozen=True)
class ExperimentConfig:
    """Validated content of experiment.toml.

    Paths are kept as written in the file; :meth:`resolve` turns them into
    absolute paths relative to the run folder.
    """

    run_dir: str
    schema: int = SCHEMA_VERSION
    sample: SampleConfig = field(default_factory=SampleConfig)
    movie: MovieConfig | None = None
    daq: DaqConfig | None = None
    field: FieldConfig | None = None
    spectra: SpectraConfig | None = None
    warnings: tuple[str, ...] = ()

    def resolve(self, relpath: str) -> Path:
        """Absolute path of a file named in experiment.toml."""
        p = Path(relpath).expanduser()
        return p if p.is_absolute() else Path(self.run_dir) / p

    @property
    def file(self) -> Path:
        return Path(self.run_dir) / EXPERIMENT_FILE

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("warnings")
        return d


# --------------------------------------------------------------------------
# schema
# --------------------------------------------------------------------------


def _positive(v: float) -> str | None:
    return None if v > 0 and math.isfinite(v) else "must be a positive number"


def _temperature(v: float) -> str | None:
    return None if 0 < v < 2000 else "must be an absolute temperature in kelvin (0 < T < 2000)"


def _nonempty(v: str) -> str | None:
    return None if v.strip() else "must not be empty"


def _fraction(v: float) -> str | None:
    return None if 0 < v < 0.5 else "must be a fraction between 0 and 0.5"


def _one_of(*choices: str) -> Callable[[str], str | None]:
    def check(v: str) -> str | None:
        return None if v in choices else "must be " + " or ".join(f"'{c}'" for c in choices)

    return check


def _index(v: int) -> str | None:
    return None if v >= 0 else "must be an index >= 0"


def _channel(v: int | str) -> str | None:
    if isinstance(v, int):
        return _index(v)
    return _nonempty(v)


def _float_list(v: Any) -> str | None:
    if (
        not isinstance(v, list)
        or not v
        or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)
    ):
        return "must be a non-empty list of numbers"
    return None


# key -> (python type(s), required, extra check)
_Spec = dict[str, tuple[tuple[type, ...], bool, Callable[[Any], str | None] | None]]
_NUM = (int, float)
_SCHEMA: dict[str, _Spec] = {
    "sample": {
        "name": ((str,), False, None),
        "temperature_K": (_NUM, False, _temperature),
    },
    "movie": {
        "path": ((str,), True, _nonempty),
        "pixel_size_nm": (_NUM, False, _positive),
        "frame_rate_hz": (_NUM, False, _positive),
        "psf_sigma_nm": (_NUM, False, _positive),
        "channel": ((int, str), False, _channel),
        "z": ((int,), False, _index),
        "position": ((int,), False, _index),
    },
    "daq": {
        "path": ((str,), True, _nonempty),
        "camera_ttl": ((str,), False, _nonempty),
        "voltage": ((str,), False, _nonempty),
        "dropped_frames": ((str,), False, _one_of("map", "error")),
        "sample_rate_hz": (_NUM, False, _positive),
    },
    "field": {
        "amplifier_gain": (_NUM, True, _positive),
        "electrode_gap_um": (_NUM, True, _positive),
        "level_tolerance": (_NUM, False, _fraction),
    },
    "spectra": {
        "path": ((str,), True, _nonempty),
        "camera_ttl": ((str,), False, _nonempty),
        "lamp": ((str,), False, _nonempty),
        "lamp_lines_nm": ((list,), False, _float_list),
        "dispersion_nm": ((list,), False, _float_list),
        "dispersion_first_pixel": ((int,), False, lambda v: None if v in (0, 1) else "must be 0 or 1"),
        "calibration": ((str,), False, _nonempty),
        "frame_rate_hz": (_NUM, False, _positive),
        "channel": ((int, str), False, _channel),
        "z": ((int,), False, _index),
        "position": ((int,), False, _index),
    },
}
_SECTION_TYPES = {
    "sample": SampleConfig,
    "movie": MovieConfig,
    "daq": DaqConfig,
    "field": FieldConfig,
    "spectra": SpectraConfig,
}
_TOP_LEVEL = {"schema", *_SCHEMA}


def _unknown(key: str, known: set[str], where: str) -> str:
    close = difflib.get_close_matches(key, sorted(known), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"unknown key '{where}{key}' ignored{hint}"


def _type_name(types: tuple[type, ...]) -> str:
    return "number" if types == _NUM else " or ".join(t.__name__ for t in types)


def parse_experiment(
    data: dict[str, Any], *, path: str | os.PathLike = EXPERIMENT_FILE, run_dir: str | os.PathLike = "."
) -> ExperimentConfig:
    """Validate a parsed experiment.toml mapping.

    Parameters
    ----------
    data : dict
        The parsed TOML document.
    path : path-like
        File name used in error messages.
    run_dir : path-like
        Folder that relative paths refer to.

    Returns
    -------
    ExperimentConfig

    Raises
    ------
    ConfigError
        Listing every problem found (wrong type, out of range, missing key).
    """
    problems: list[str] = []
    warnings: list[str] = []

    schema = data.get("schema", SCHEMA_VERSION)
    if schema != SCHEMA_VERSION:
        problems.append(f"'schema' is {schema!r}; this plscope reads schema {SCHEMA_VERSION}")

    for key in data:
        if key not in _TOP_LEVEL:
            warnings.append(_unknown(key, _TOP_LEVEL, ""))

    sections: dict[str, Any] = {}
    for name, spec in _SCHEMA.items():
        if name not in data:
            continue
        table = data[name]
        if not isinstance(table, dict):
            problems.append(f"[{name}] must be a table")
            continue
        values: dict[str, Any] = {}
        for key, value in table.items():
            if key not in spec:
                warnings.append(_unknown(key, set(spec), f"{name}."))
                continue
            types, _, check = spec[key]
            if isinstance(value, bool) or not isinstance(value, types):
                problems.append(f"'{name}.{key}' must be a {_type_name(types)}, got {value!r}")
                continue
            msg = check(value) if check else None
            if msg:
                problems.append(f"'{name}.{key}' {msg}, got {value!r}")
                continue
            if isinstance(value, list):
                value = tuple(float(x) for x in value)
            elif types == _NUM:
                value = float(value)
            values[key] = value
        for key, (_, required, _) in spec.items():
            if required and key not in table:
                problems.append(f"required key '{name}.{key}' is missing")
        sections[name] = values

    if "movie" not in data and "spectra" not in data:
        problems.append("needs a [movie] table (or a [spectra] table)")
    if "field" in data and "daq" not in data:
        problems.append("[field] is given but [daq] is missing: field levels are measured from the DAQ log")
    spec_tbl = sections.get("spectra")
    if spec_tbl is not None and not problems:
        # neither: the wavelength axis of the file (SIF, SPE), checked when the spectra are opened
        if ("lamp" in spec_tbl) != ("lamp_lines_nm" in spec_tbl):
            problems.append("[spectra] 'lamp' and 'lamp_lines_nm' go together")
        given = [k for k in ("lamp", "dispersion_nm", "calibration") if k in spec_tbl]
        if len(given) > 1 and "calibration" in given:
            problems.append(f"[spectra] give one wavelength calibration, not {' and '.join(given)}")

    if problems:
        raise ConfigError(path, "; ".join(problems))

    built = {name: _SECTION_TYPES[name](**values) for name, values in sections.items()}
    for w in warnings:
        logger.warning("%s: %s", path, w)
    return ExperimentConfig(
        run_dir=os.fspath(run_dir), schema=SCHEMA_VERSION, warnings=tuple(warnings), **built
    )


def load_experiment(run_dir: str | os.PathLike) -> ExperimentConfig:
    """Read and validate ``RUN_DIR/experiment.toml``.

    Also checks that every file it names exists (a glob must match at least
    one file), so that a run fails at the door rather than after the heavy work.

    Raises
    ------
    ConfigError
        If the folder or file is missing, the TOML is invalid, or the content
        does not match the schema.
    RunFolderError
        If a file it names does not exist.
    """
    from ..errors import RunFolderError

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunFolderError(run_dir, "run folder does not exist or is not a folder")
    path = run_dir / EXPERIMENT_FILE
    if not path.is_file():
        raise ConfigError(path, "missing: every run folder needs an experiment.toml")
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, f"not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, f"cannot be read: {exc}") from None
    cfg = parse_experiment(data, path=path, run_dir=run_dir.resolve())

    for section in ("movie", "daq", "spectra"):
        sub = getattr(cfg, section)
        if sub is None:
            continue
        names = [sub.path]
        if section == "spectra" and sub.lamp:
            names.append(sub.lamp)
        if section == "spectra" and sub.calibration:
            names.append(sub.calibration)
        for name in names:
            target = cfg.resolve(name)
            if any(ch in name for ch in "*?["):
                if not sorted(target.parent.glob(target.name)):
                    raise RunFolderError(
                        target, f"no file matches the pattern given as '{section}.path' in {path}"
                    )
            elif not target.is_file():
                raise RunFolderError(target, f"file named in {path} [{section}] does not exist")
    return cfg
