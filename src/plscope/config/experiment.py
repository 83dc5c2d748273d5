"""experiment.toml: the numbers the instruments do not record.

The file is validated before any heavy work: types, ranges, required keys;
unknown keys are reported as warnings (with a suggestion when they look like
a typo). Files it names must lie inside the run folder (no absolute path, no
``..``, no symlink leading out) unless ``[inputs] allow_outside_run_folder =
true``. Physically implausible values that are still possible (a pixel size
outside 10 nm - 100 um, ...) are accepted with a warning that the pipeline
records in ``summary.json``. See ``docs/run-folder.md`` and
``docs/configuration.md``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import model_validator
from pydantic.dataclasses import dataclass

from ..errors import ConfigError, RunFolderError
from ._base import (
    MODEL_CONFIG,
    Bool,
    Float,
    FloatTuple,
    IndexOrName,
    Int,
    NonEmptyStr,
    Str,
    excerpt,
    load_toml,
    setting,
    split_unknown,
    to_plain,
    validate,
)

logger = logging.getLogger(__name__)

#: Name of the experiment file inside a run folder.
EXPERIMENT_FILE = "experiment.toml"
SCHEMA_VERSION = 1

#: Plausible ranges (warnings, not errors) of physical inputs.
PLAUSIBLE_PIXEL_SIZE_NM = (10.0, 100_000.0)
PLAUSIBLE_PSF_SIGMA_NM = (30.0, 5_000.0)
PLAUSIBLE_TEMPERATURE_K = (4.0, 500.0)
PLAUSIBLE_GAP_UM = (0.1, 10_000.0)
#: Largest plausible field at the particles (kV/cm): perovskite films break
#: down well below this; above it the gain, the gap or the voltage channel's
#: scaling is almost certainly wrong (``voltage x 1000`` gave 130 005 kV/cm).
PLAUSIBLE_MAX_FIELD_KV_PER_CM = 1000.0


# keys of both image-stack tables ([movie] and [spectra]); a function each, as every table needs its own field


def _frame_rate_hz(doc: str) -> Any:
    return setting(None, ge=1e-6, le=1e6, unit="Hz", example=5.0, doc=doc)


def _channel(doc: str) -> Any:
    return setting(None, example=0, doc=doc)


def _z_plane() -> Any:
    return setting(None, ge=0, le=1_000_000, example=0, doc="multi-dimensional files: z plane")


def _stage_position() -> Any:
    return setting(None, ge=0, le=1_000_000, example=0, doc="multi-dimensional files: stage position")


@dataclass(frozen=True, config=MODEL_CONFIG)
class SampleConfig:
    """The sample."""

    name: Str = setting("", doc="free text, shown in the report")
    temperature_K: Float = setting(
        296.15,
        gt=0,
        lt=2000,
        unit="K",
        rule="must be an absolute temperature in kelvin (0 < T < 2000)",
        doc="sample temperature, used by the Einstein relation D = mu kB T / q",
    )


@dataclass(frozen=True, config=MODEL_CONFIG)
class MovieConfig:
    """The PL image stack (optional if [spectra] is given)."""

    path: NonEmptyStr = setting(
        example="movie.tif",
        doc="image stack inside the run folder: TIFF / OME-TIFF / ImageJ / .spe / .sif / .nd2, "
        'or a glob such as "movie_*.tif" (a multi-file series in name order)',
    )
    pixel_size_nm: Float | None = setting(
        None,
        ge=0.1,
        le=1e6,
        unit="nm",
        example=100.0,
        doc="pixel size in the sample plane; optional when the file's metadata has it",
    )
    frame_rate_hz: Float | None = _frame_rate_hz("frame rate; used only when there is no TTL channel")
    psf_sigma_nm: Float | None = setting(
        None,
        ge=1.0,
        le=100_000.0,
        unit="nm",
        example=120.0,
        doc="PSF standard deviation; estimated from the data when absent",
    )
    channel: IndexOrName | None = _channel("multi-dimensional files (Nikon ND2): channel, by index or name")
    z: Int | None = _z_plane()
    position: Int | None = _stage_position()


@dataclass(frozen=True, config=MODEL_CONFIG)
class DaqConfig:
    """The DAQ log (camera TTL and function-generator voltage)."""

    path: NonEmptyStr = setting(
        example="daq.csv", doc="DAQ log inside the run folder: CSV (first column 'time_s'), NI .tdms or HDF5"
    )
    camera_ttl: NonEmptyStr = setting(
        "camera_ttl", doc="channel of the camera exposure output, one rising edge per frame"
    )
    voltage: NonEmptyStr = setting(
        "fg_voltage", doc="channel of the function-generator output as recorded by the DAQ"
    )
    dropped_frames: Literal["map", "error"] = setting(
        "map",
        doc='"map": a frame the camera dropped keeps the TTL pulse of its own slot (reported); '
        '"error": refuse such runs',
    )
    ttl_polarity: Literal["auto", "high", "low"] = setting(
        "auto",
        doc='level of the camera TTL during the exposure: "high", "low" (an inverted line) or "auto" '
        "(detected from the idle level before/after the frames, else from the exposure duty; reported in "
        "summary.json)",
    )
    sample_rate_hz: Float | None = setting(
        None,
        ge=1e-6,
        le=1e9,
        unit="Hz",
        example=1000.0,
        doc="samples per second of a log without a time column (time = row / rate)",
    )


@dataclass(frozen=True, config=MODEL_CONFIG)
class FieldConfig:
    """Electrode geometry and amplifier: field = |voltage| x gain / gap."""

    amplifier_gain: Float = setting(ge=1e-6, le=1e6, example=20.0, doc="electrode volts per recorded volt")
    electrode_gap_um: Float = setting(
        ge=1e-3, le=1e5, unit="um", example=10.0, doc="gap between the interpenetrating electrodes"
    )
    level_tolerance: Float = setting(
        0.02,
        gt=0,
        lt=0.5,
        rule="must be a fraction between 0 and 0.5",
        doc="largest relative spread of the field within one level",
    )


@dataclass(frozen=True, config=MODEL_CONFIG)
class SpectraConfig:
    """Spectrograph frames of single particles (optional)."""

    path: NonEmptyStr = setting(
        example="spectra.tif", doc="spectra stack inside the run folder (t, slit_row, wavelength_pixel)"
    )
    camera_ttl: NonEmptyStr = setting("camera_ttl", doc="channel whose rising edges time these frames")
    lamp: NonEmptyStr | None = setting(
        None, example="lamp.csv", doc="calibration lamp spectrum: columns 'pixel','counts'"
    )
    lamp_lines_nm: FloatTuple | None = setting(
        None,
        min_length=1,
        max_length=1000,
        unit="nm",
        example=[487.99, 546.07],
        doc="known wavelengths of the lamp lines in view",
    )
    dispersion_nm: FloatTuple | None = setting(
        None,
        min_length=1,
        max_length=10,
        unit="nm",
        example=[500.0, 0.1, 0.0],
        doc="instead of a lamp: lambda(px) = c0 + c1 px + c2 px^2 + ...",
    )
    dispersion_first_pixel: Int = setting(
        0,
        ge=0,
        le=1,
        rule="must be 0 or 1",
        doc="number of the first pixel in dispersion_nm: 0, or 1 for coefficients copied from "
        "Andor Solis or WinSpec (pixels counted from 1)",
    )
    calibration: NonEmptyStr | None = setting(
        None, example="calibration.json", doc="a calibration.json written by `plscope calibrate`"
    )
    frame_rate_hz: Float | None = _frame_rate_hz(
        "frame rate of the spectra when there is no DAQ log and the file records none"
    )
    channel: IndexOrName | None = _channel("multi-dimensional files: channel")
    z: Int | None = _z_plane()
    position: Int | None = _stage_position()


@dataclass(frozen=True, config=MODEL_CONFIG)
class InputsConfig:
    """Where input files may lie."""

    allow_outside_run_folder: Bool = setting(
        False,
        doc="allow absolute paths and '..' in the paths above (default: every file lies inside the run folder)",
    )


@dataclass(frozen=True, config=MODEL_CONFIG)
class ExperimentConfig:
    """Validated content of experiment.toml.

    Paths are kept as written in the file; :meth:`resolve` turns them into
    absolute paths inside the run folder.
    """

    run_dir: Str = setting(".", in_file=False, doc="the run folder (not a key of the file)")
    schema: Int = setting(SCHEMA_VERSION, doc="version of the file format")
    sample: SampleConfig = setting(default_factory=SampleConfig, doc="the sample")
    movie: MovieConfig | None = setting(None, doc="the PL image stack")
    daq: DaqConfig | None = setting(None, doc="the DAQ log")
    field: FieldConfig | None = setting(None, doc="field geometry")
    spectra: SpectraConfig | None = setting(None, doc="spectrograph frames")
    inputs: InputsConfig = setting(default_factory=InputsConfig, doc="where input files may lie")
    warnings: tuple[str, ...] = setting(
        (), in_file=False, doc="unknown keys and plausibility warnings (not a key)"
    )

    @model_validator(mode="after")
    def _consistent(self) -> ExperimentConfig:
        problems = []
        if self.schema != SCHEMA_VERSION:
            problems.append(f"'schema' is {self.schema!r}; this plscope reads schema {SCHEMA_VERSION}")
        if self.movie is None and self.spectra is None:
            problems.append("needs a [movie] table (or a [spectra] table)")
        if self.field is not None and self.daq is None:
            problems.append(
                "[field] is given but [daq] is missing: field levels are measured from the DAQ log"
            )
        spec = self.spectra
        if spec is not None:
            # none of them: the wavelength axis of the file (SIF, SPE), checked when it is opened
            if (spec.lamp is None) != (spec.lamp_lines_nm is None):
                problems.append("[spectra] 'lamp' and 'lamp_lines_nm' go together")
            given = [k for k in ("lamp", "dispersion_nm", "calibration") if getattr(spec, k) is not None]
            if len(given) > 1 and "calibration" in given:
                problems.append(f"[spectra] give one wavelength calibration, not {' and '.join(given)}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    # ---- paths -----------------------------------------------------------
    @property
    def file(self) -> Path:
        """The experiment.toml itself."""
        return Path(self.run_dir) / EXPERIMENT_FILE

    def resolve(self, relpath: str, *, key: str | None = None) -> Path:
        """Absolute path of a file named in experiment.toml, confined to the run folder.

        Raises
        ------
        ConfigError
            If the path is absolute, contains ``..`` or leads out of the run
            folder through a symlink, and ``[inputs] allow_outside_run_folder``
            is not set.
        """
        if key is None:  # name the key the path was given as
            key = next((k for _, k, name in named_files(self) if name == relpath), "path")
        p = Path(relpath)
        base = Path(self.run_dir)
        if self.inputs.allow_outside_run_folder:
            p = p.expanduser()
            return p if p.is_absolute() else base / p
        if p.is_absolute() or p.drive or ".." in p.parts or str(relpath).startswith("~"):
            raise ConfigError(self.file, _outside(key, relpath))
        target = base / p
        if not _inside(target, base):
            raise ConfigError(self.file, _outside(key, relpath, "through a symbolic link "))
        return target

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the configuration (for provenance)."""
        d = to_plain(self)
        d.pop("warnings")
        return d


def _outside(key: str, relpath: str, how: str = "") -> str:
    return (
        f"'{key}' = {excerpt(str(relpath))} leads {how}outside the run folder; "
        "set [inputs] allow_outside_run_folder = true to allow it"
    )


def _inside(target: Path, base: Path) -> bool:
    """Whether ``target`` (followed through symlinks, as far as it exists) lies in ``base``."""
    try:
        real_base = base.resolve()
        real = target.resolve()
    except (OSError, RuntimeError):
        return False
    return real == real_base or real_base in real.parents


# --------------------------------------------------------------------------
# parsing and loading
# --------------------------------------------------------------------------


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
        With ``warnings``: unknown keys (ignored) and implausible values.

    Raises
    ------
    ConfigError
        Listing every problem found (wrong type, out of range, missing key).
    """
    if not isinstance(data, dict):
        raise ConfigError(path, "must be a table of keys")
    clean, notes = split_unknown(ExperimentConfig, data)
    for name in ("sample", "movie", "daq", "field", "spectra", "inputs"):
        if name in clean and not isinstance(clean[name], dict):
            raise ConfigError(path, f"[{name}] must be a table")
    cfg = validate(ExperimentConfig, {**clean, "run_dir": os.fspath(run_dir)}, source=path)
    warnings = [*notes, *plausibility_warnings(cfg)]
    for w in warnings:
        logger.warning("%s: %s", path, w)
    return dataclasses.replace(cfg, warnings=tuple(warnings))


def load_experiment(run_dir: str | os.PathLike) -> ExperimentConfig:
    """Read and validate ``RUN_DIR/experiment.toml``.

    Also checks that every file it names exists inside the run folder (a glob
    must match at least one file), so that a run fails at the door rather
    than after the heavy work.

    Raises
    ------
    ConfigError
        If the folder or file is missing, the TOML is invalid, the content
        does not match the schema, or a path leads outside the run folder.
    RunFolderError
        If a file it names does not exist.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunFolderError(run_dir, "run folder does not exist or is not a folder")
    path = run_dir / EXPERIMENT_FILE
    if not path.is_file():
        raise ConfigError(path, "missing: every run folder needs an experiment.toml")
    data = load_toml(path, what="experiment file")
    cfg = parse_experiment(data, path=path, run_dir=run_dir.resolve())
    for section, key, name in named_files(cfg):
        files = _matches(cfg, name, key)
        if not files:
            target = cfg.resolve(name, key=key)
            if is_glob(name):
                raise RunFolderError(target, f"no file matches the pattern given as '{key}' in {path}")
            raise RunFolderError(target, f"file named in {path} [{section}] does not exist")
    return cfg


def is_glob(name: str) -> bool:
    """Whether a path of experiment.toml is a pattern (``movie_*.tif``)."""
    return any(ch in name for ch in "*?[")


def named_files(cfg: ExperimentConfig) -> Iterable[tuple[str, str, str]]:
    """(section, key, path as written) of every file experiment.toml names."""
    for section in ("movie", "spectra", "daq"):
        sub = getattr(cfg, section)
        if sub is None:
            continue
        yield section, f"{section}.path", sub.path
        if section == "spectra" and sub.lamp:
            yield section, "spectra.lamp", sub.lamp
        if section == "spectra" and sub.calibration:
            yield section, "spectra.calibration", sub.calibration


def _matches(cfg: ExperimentConfig, name: str, key: str) -> list[Path]:
    target = cfg.resolve(name, key=key)
    if is_glob(name):
        found = sorted(target.parent.glob(target.name))
        if not cfg.inputs.allow_outside_run_folder:
            base = Path(cfg.run_dir)
            for f in found:
                if not _inside(f, base):
                    raise ConfigError(
                        cfg.file, _outside(key, os.path.relpath(f, base), "through a symbolic link ")
                    )
        return [f for f in found if f.is_file()]
    try:
        return [target] if target.is_file() else []
    except OSError as exc:  # e.g. a name longer than the file system allows (pathlib lets that through)
        raise RunFolderError(
            target, f"cannot be opened ({exc.strerror}), named as '{key}' in {cfg.file}"
        ) from None


def input_files(cfg: ExperimentConfig) -> list[Path]:
    """Every input file of a run folder (experiment.toml, movie files, DAQ log, ...)."""
    files = [cfg.file]
    for _, key, name in named_files(cfg):
        files.extend(_matches(cfg, name, key) if is_glob(name) else [cfg.resolve(name, key=key)])
    return files


# --------------------------------------------------------------------------
# plausibility (warnings, not errors)
# --------------------------------------------------------------------------


def _outside_range(value: float | None, lo_hi: tuple[float, float]) -> bool:
    return value is not None and not lo_hi[0] <= value <= lo_hi[1]


def plausibility_warnings(cfg: ExperimentConfig) -> list[str]:
    """Warnings for physical inputs that are possible but almost certainly a mistake."""
    out: list[str] = []
    movie = cfg.movie
    if movie is not None and _outside_range(movie.pixel_size_nm, PLAUSIBLE_PIXEL_SIZE_NM):
        out.append(
            f"movie.pixel_size_nm = {movie.pixel_size_nm:g} nm is outside the plausible "
            "10 nm - 100 um of a PL microscope: check the unit (nm in the sample plane)"
        )
    if movie is not None and _outside_range(movie.psf_sigma_nm, PLAUSIBLE_PSF_SIGMA_NM):
        out.append(
            f"movie.psf_sigma_nm = {movie.psf_sigma_nm:g} nm is outside the plausible 30 nm - 5 um "
            "of an optical PSF: check the unit (nm, standard deviation)"
        )
    if _outside_range(cfg.sample.temperature_K, PLAUSIBLE_TEMPERATURE_K):
        out.append(
            f"sample.temperature_K = {cfg.sample.temperature_K:g} K is outside 4 - 500 K: "
            "check the unit (kelvin)"
        )
    if cfg.field is not None and _outside_range(cfg.field.electrode_gap_um, PLAUSIBLE_GAP_UM):
        out.append(
            f"field.electrode_gap_um = {cfg.field.electrode_gap_um:g} um is outside 0.1 um - 10 mm: "
            "check the unit (micrometres)"
        )
    return out


def field_warning(max_field_kV_per_cm: float, source: str = "[field]") -> str | None:
    """A warning when the largest measured field is implausibly high, else None."""
    if max_field_kV_per_cm > PLAUSIBLE_MAX_FIELD_KV_PER_CM:
        return (
            f"largest field {max_field_kV_per_cm:.6g} kV/cm exceeds {PLAUSIBLE_MAX_FIELD_KV_PER_CM:g} kV/cm: "
            f"check {source} amplifier_gain, electrode_gap_um and the voltage channel's scaling"
        )
    return None
