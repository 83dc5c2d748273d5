"""Analysis settings: the options of ``plscope run``, ``batch`` and ``reanalyze``.

``plscope config --print-defaults`` prints :func:`defaults_toml` (generated
from the fields below); a user copies it, edits what they need and passes it
as ``--config FILE``. Keys left out keep their defaults; unknown keys, wrong
types and values outside the ranges are refused with the file and key named.

Every range also bounds memory and time: no accepted value makes a run need
unbounded memory (``dt_s``, ``chunk_frames``, ``reference_frames``) or time
(``n_bootstrap``, ``n_bootstrap_cycles``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, field_validator
from pydantic.dataclasses import dataclass
from pydantic_core import PydanticCustomError

from ..errors import ConfigError
from ._base import MODEL_CONFIG, Bool, Float, FloatPair, Int, load_toml, setting, to_plain, validate

logger = logging.getLogger(__name__)

#: Largest number of bootstrap resamples (population statistics or cycles):
#: 1e5 resamples of a few hundred particles take seconds; the 95 % interval
#: of a bootstrap is converged to < 1 % long before.
MAX_BOOTSTRAP = 100_000
#: Most frames per dask chunk: 4096 frames of 2048 x 2048 float32 are 64 GB,
#: so the cap only refuses values that could never fit; the default (64) is
#: what the perf notes measured.
MAX_CHUNK_FRAMES = 4096
#: Finest grid step of the cycle averages, s. 1 ms is below the frame
#: interval of any PL camera (1 kHz); a finer grid only repeats frames and
#: multiplies memory (``dt_s = 1e-9`` asked for 24 GB).
MIN_DT_S = 1e-3
#: Longest plateau / grid step / transient, s (a day).
MAX_TIME_S = 86_400.0
#: Frames averaged into the reference image.
MAX_REFERENCE_FRAMES = 10_000
#: Most worker processes or SLURM jobs of a batch.
MAX_WORKERS = 1024


@dataclass(frozen=True, config=MODEL_CONFIG)
class DetectionSettings:
    """Particle detection on the reference image."""

    reference_frames: Int = setting(
        64, ge=1, le=MAX_REFERENCE_FRAMES, unit="frames", doc="frames averaged into the reference image"
    )
    threshold_sigma: Float = setting(
        5.0, gt=0, le=1000, unit="sigma", doc="detection threshold above the background, in noise sigmas"
    )
    min_area_px: Int = setting(4, ge=1, le=1_000_000, unit="px", doc="smallest object kept, pixels")
    exclude_border_px: Int = setting(
        0,
        ge=0,
        le=100_000,
        unit="px",
        doc="drop particles closer than this to the image border (0: flag only)",
    )
    split_touching: Bool = setting(True, doc="watershed split of touching particles")


def _drift_alias(value: Any) -> Any:
    """``traces.drift = "correct"`` (before 0.2) is the algorithm now called "follow"."""
    if value == "correct":
        logger.warning('traces.drift = "correct" is deprecated: the same algorithm is now called "follow"')
        return "follow"
    return value


@dataclass(frozen=True, config=MODEL_CONFIG)
class TraceSettings:
    """Intensity traces (apertures, drift)."""

    drift: Annotated[Literal["none", "estimate", "follow"], BeforeValidator(_drift_alias)] = setting(
        "follow",
        doc='"follow": apertures follow the whole-movie stage drift frame by frame | '
        '"estimate": fixed apertures, drift reported | "none" (old name of "follow": "correct")',
    )
    psf_margin_sigma: Float = setting(
        1.5, ge=0, le=20, unit="sigma", doc="aperture = particle + this many PSF sigmas (+ drift margin)"
    )
    drift_margin_px: Float = setting(
        0.5, ge=0, le=100, unit="px", doc="extra aperture margin for residual drift, px"
    )
    chunk_frames: Int = setting(
        64,
        ge=1,
        le=MAX_CHUNK_FRAMES,
        unit="frames",
        doc="frames per dask chunk when streaming the stack, at most 16 MiB of frames (memory ~ chunk x frame size)",
    )


def _workers(value: Any) -> Any:
    """``"auto"`` or a number of processes in ``[1, MAX_WORKERS]``."""
    if value == "auto":
        return value
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_WORKERS:
        raise PydanticCustomError("workers", f'must be "auto" or an integer in [1, {MAX_WORKERS}]')
    return value


#: Settings that change how fast the numbers come, never the numbers (left out of the digest).
SPEED_ONLY_SETTINGS = (("kinetics", "workers"),)


@dataclass(frozen=True, config=MODEL_CONFIG)
class KineticsSettings:
    """Options of :func:`~plscope.kinetics.analyze_particle` and :func:`~plscope.kinetics.analyze_population`."""

    plateau_s: Float = setting(
        3.0, gt=0, le=MAX_TIME_S, unit="s", doc="length of the stable plateaus before each switch, s"
    )
    correct_bleaching: Bool = setting(True, doc="divide out bleaching estimated from the field-off plateaus")
    bleach_plateau_fraction: Float = setting(
        0.3, gt=0, le=1, doc="end fraction of each off window used for the bleaching fit"
    )
    dt_s: Float | None = setting(
        None,
        ge=MIN_DT_S,
        le=MAX_TIME_S,
        unit="s",
        example=0.2,
        doc="grid step of the cycle averages, s (default: frame interval)",
    )
    outlier_k: Float = setting(
        4.0, gt=0, le=1000, doc="blink masking: robust sigmas from the median over cycles"
    )
    outlier_floor: Float = setting(0.02, ge=0, le=1, doc="... but never closer than this (normalized PL)")
    spoil_fraction: Float = setting(
        0.2, ge=0, le=1, doc="a cycle with more masked points than this is left out"
    )
    min_cycles: Int = setting(2, ge=1, le=1_000_000, doc="fewer usable cycles at a level: no fit (flagged)")
    min_points: Int = setting(
        8, ge=1, le=1_000_000, doc="fewer points in an averaged curve: no fit (flagged)"
    )
    model: Literal["auto", "biexp", "mono"] = setting(
        "auto", doc='"auto" (biexponential, mono by BIC/fallback) | "biexp" | "mono"'
    )
    tau_bounds_s: FloatPair | None = setting(
        None,
        unit="s",
        example=[0.06, 100.0],
        doc="search range [min, max] of time constants, s (default: from the data)",
    )
    weight_by_sem: Bool = setting(False, doc="weight fits by the SEM over cycles (overrides weight_by_noise)")
    weight_by_noise: Bool = setting(
        True, doc="weight fits by the measured per-frame noise / sqrt(cycles per point)"
    )
    transient_s: Float = setting(
        0.0, ge=0, le=MAX_TIME_S, unit="s", doc="leave out frames starting less than this after a switch, s"
    )
    shape_pooling: Bool = setting(
        True, doc="pool the biexponential shape over all particles (prior of every fit)"
    )
    min_pooled_curves: Int = setting(
        5, ge=1, le=1_000_000, doc="fewer usable curves in a phase: no pooling (free fits, BIC choice)"
    )
    n_bootstrap_cycles: Int = setting(
        100, ge=0, le=MAX_BOOTSTRAP, doc="bootstrap over cycles for a fit without covariance (0: off)"
    )
    n_bootstrap: Int = setting(
        2000, ge=0, le=MAX_BOOTSTRAP, doc="bootstrap resamples (whole particles) of the population statistics"
    )
    bootstrap_seed: Int = setting(
        0, ge=0, le=2**63 - 1, doc="seed of every bootstrap: the same data give the same numbers"
    )
    fit_method: Literal["curves", "trace"] = setting(
        "trace",
        doc='"trace": whole-trace fits, state carried across half cycles, bleaching fitted with them, '
        'shape pooled hierarchically (curves used with model = "mono" or correct_bleaching = false) '
        '| "curves": fits of the cycle-averaged curves',
    )
    min_tau_frames: Float = setting(
        2.0,
        ge=0,
        le=1000,
        unit="frames",
        doc="a time constant shorter than this many frame intervals is never fit_ok",
    )
    qc_max_excluded_fraction: Float = setting(
        0.25, ge=0, le=1, doc="QC warns when more rows than this are excluded (or not settled)"
    )
    qc_min_particles_per_field: Int = setting(
        5, ge=0, le=1_000_000, doc="QC warns when fewer particles than this are used at a field"
    )
    workers: Annotated[Literal["auto"] | int, BeforeValidator(_workers)] = setting(
        "auto",
        rule=f'must be "auto" or an integer in [1, {MAX_WORKERS}]',
        doc='processes of the per-particle fits of one run: "auto" (every core when there are enough '
        "particles for it to pay) or 1-1024 (1: serial); same numbers; serial inside plscope batch",
    )

    @field_validator("tau_bounds_s")
    @classmethod
    def _ordered_bounds(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
        if value is not None and not 0 < value[0] < value[1] <= MAX_TIME_S:
            raise ValueError(
                f"must be [min, max] with 0 < min < max <= {MAX_TIME_S:g} s, got [{value[0]:g}, {value[1]:g}]"
            )
        return value

    @classmethod
    def from_any(cls, settings: Any, *, error: type[Exception] = ConfigError) -> KineticsSettings:
        """Accept None, a KineticsSettings or a mapping of field names.

        Parameters
        ----------
        settings : KineticsSettings or mapping or None
        error : exception type
            Raised (with one line naming the keys) when the mapping is invalid.
        """
        if settings is None:
            return cls()
        if isinstance(settings, cls):
            return settings
        if isinstance(settings, Mapping):
            try:
                return validate(cls, settings, source="settings")
            except ConfigError as exc:
                if error is ConfigError:
                    raise
                raise error(str(exc)) from None
        raise error(f"settings: expected KineticsSettings or a mapping, got {type(settings).__name__}")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the settings."""
        return to_plain(self)


@dataclass(frozen=True, config=MODEL_CONFIG)
class ExclusionSettings:
    """Which particles are left out of the population statistics."""

    exclude_border: Bool = setting(True, doc="leave particles touching the border out of the statistics")
    exclude_near_diffraction_limit: Bool = setting(
        False, doc="leave out particles too small for a meaningful size"
    )
    exclude_failed_size_fit: Bool = setting(True, doc="leave out particles whose size fit failed")
    exclude_poor_quality: Bool = setting(
        True,
        doc="leave out particles failing the quality flags (SNR, blinking, bleaching, saturation, "
        "crowding; see particles.csv 'reason')",
    )


@dataclass(frozen=True, config=MODEL_CONFIG)
class AnalysisSettings:
    """All analysis settings of a run (sections of the settings TOML)."""

    detection: DetectionSettings = setting(default_factory=DetectionSettings, doc="particle detection")
    traces: TraceSettings = setting(default_factory=TraceSettings, doc="intensity traces")
    kinetics: KineticsSettings = setting(default_factory=KineticsSettings, doc="kinetics fits and statistics")
    exclusion: ExclusionSettings = setting(default_factory=ExclusionSettings, doc="population exclusions")

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (tuples as lists)."""
        return to_plain(self)

    def digest(self) -> str:
        """SHA-256 of the canonical JSON form (to detect changed settings).

        Settings that change only the speed (:data:`SPEED_ONLY_SETTINGS`) are left out.
        """
        data = self.to_dict()
        for section, key in SPEED_ONLY_SETTINGS:
            data.get(section, {}).pop(key, None)
        text = json.dumps(data, sort_keys=True, default=list)
        return hashlib.sha256(text.encode()).hexdigest()

    @classmethod
    def from_dict(cls, data: Any, *, source: str | os.PathLike = "settings") -> AnalysisSettings:
        """Build validated settings from a (partial) nested mapping.

        Raises
        ------
        ConfigError
            Naming ``source`` and every offending key (unknown keys with a suggestion).
        """
        return validate(cls, data, source=source)

    @classmethod
    def from_toml(cls, path: str | os.PathLike) -> AnalysisSettings:
        """Read and validate a settings TOML file."""
        return cls.from_dict(load_toml(path, what="settings file"), source=path)


@dataclass(frozen=True, config=MODEL_CONFIG)
class BatchOptions:
    """Options of ``plscope batch`` (command line; not part of the settings file)."""

    workers: Int | None = setting(
        None, ge=1, le=MAX_WORKERS, doc="worker processes (local) or SLURM jobs (default: one per core)"
    )

    @classmethod
    def check(cls, *, source: str = "--workers", **values: Any) -> BatchOptions:
        """Validated options; :class:`ConfigError` naming ``source``."""
        return validate(cls, {k: v for k, v in values.items() if v is not None}, source=source)


def load_settings(path: str | os.PathLike | None) -> AnalysisSettings:
    """Settings from a TOML file, or the defaults when ``path`` is None."""
    return AnalysisSettings() if path is None else AnalysisSettings.from_toml(path)


_HEADER = """\
# plscope analysis settings (defaults). Copy, edit, and pass with --config.
# Keys left out keep these values; unknown keys are refused.
# Generated from plscope.config.settings; see docs/configuration.md for types and ranges."""


def defaults_toml() -> str:
    """The documented defaults file (``plscope config --print-defaults``)."""
    from .render import defaults_toml as render

    return render(AnalysisSettings, _HEADER)


#: The documented defaults file, generated from the fields above.
DEFAULTS_TOML = defaults_toml()
