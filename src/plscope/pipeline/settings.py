"""Analysis settings: a documented, validated TOML file with defaults.

``plscope config --print-defaults`` prints :data:`DEFAULTS_TOML`; a user
copies it, edits what they need and passes it as ``--config FILE`` to
``run``, ``batch`` or ``reanalyze``. Keys left out keep their defaults;
unknown keys and wrong types are refused with the file and key named.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import os
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..errors import ConfigError
from ..kinetics import KineticsSettings


@dataclass(frozen=True)
class DetectionSettings:
    reference_frames: int = 64
    threshold_sigma: float = 5.0
    min_area_px: int = 4
    exclude_border_px: int = 0
    split_touching: bool = True


@dataclass(frozen=True)
class TraceSettings:
    drift: Literal["none", "estimate", "correct"] = "correct"
    psf_margin_sigma: float = 1.5
    drift_margin_px: float = 0.5
    chunk_frames: int = 64


@dataclass(frozen=True)
class ExclusionSettings:
    exclude_border: bool = True
    exclude_near_diffraction_limit: bool = False
    exclude_failed_size_fit: bool = True
    exclude_poor_quality: bool = True


@dataclass(frozen=True)
class AnalysisSettings:
    """All analysis settings of a run (sections of the settings TOML)."""

    detection: DetectionSettings = field(default_factory=DetectionSettings)
    traces: TraceSettings = field(default_factory=TraceSettings)
    kinetics: KineticsSettings = field(default_factory=KineticsSettings)
    exclusion: ExclusionSettings = field(default_factory=ExclusionSettings)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def digest(self) -> str:
        """SHA-256 of the canonical JSON form (to detect changed settings)."""
        text = json.dumps(self.to_dict(), sort_keys=True, default=list)
        return hashlib.sha256(text.encode()).hexdigest()

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str | os.PathLike = "settings") -> AnalysisSettings:
        """Build validated settings from a (partial) nested mapping."""
        problems: list[str] = []
        sections = {f.name: f for f in dataclasses.fields(cls)}
        built = {}
        for key in data:
            if key not in sections:
                problems.append(_unknown(key, sections, ""))
        for name, f in sections.items():
            section_cls = f.default_factory  # type: ignore[misc]
            table = data.get(name, {})
            if not isinstance(table, dict):
                problems.append(f"[{name}] must be a table")
                continue
            built[name] = _build_section(section_cls, table, name, problems)
        if problems:
            raise ConfigError(source, "; ".join(problems))
        return cls(**built)

    @classmethod
    def from_toml(cls, path: str | os.PathLike) -> AnalysisSettings:
        path = Path(path)
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(path, "settings file does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(path, f"not valid TOML: {exc}") from None
        except OSError as exc:
            raise ConfigError(path, f"cannot be read: {exc.strerror or exc}") from None
        return cls.from_dict(data, source=path)


def load_settings(path: str | os.PathLike | None) -> AnalysisSettings:
    """Settings from a TOML file, or the defaults when ``path`` is None."""
    return AnalysisSettings() if path is None else AnalysisSettings.from_toml(path)


def _unknown(key: str, known, where: str) -> str:
    close = difflib.get_close_matches(key, sorted(known), n=1)
    hint = f" (did you mean '{where}{close[0]}'?)" if close else ""
    return f"unknown key '{where}{key}'{hint}"


def _check(value: Any, tp: Any) -> tuple[bool, Any]:
    """Whether ``value`` fits the annotation ``tp``; returns (ok, converted)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            ok, v = _check(value, arg)
            if ok:
                return True, v
        return False, value
    if tp is type(None):
        return value is None, value
    if origin is Literal:
        return value in typing.get_args(tp), value
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            return False, value
        out = []
        for v, a in zip(value, args):
            ok, cv = _check(v, a)
            if not ok:
                return False, value
            out.append(cv)
        return True, tuple(out)
    if tp is bool:
        return isinstance(value, bool), value
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return ok, float(value) if ok else value
    if tp is str:
        return isinstance(value, str), value
    return isinstance(value, tp), value


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp))
    if tp is type(None):
        return "absent"
    if origin is tuple:
        return f"a list of {len(typing.get_args(tp))} numbers"
    return getattr(tp, "__name__", str(tp))


def _build_section(section_cls, table: dict[str, Any], name: str, problems: list[str]):
    hints = typing.get_type_hints(section_cls)
    fields = {f.name for f in dataclasses.fields(section_cls)}
    values = {}
    for key, value in table.items():
        if key not in fields:
            problems.append(_unknown(key, fields, f"{name}."))
            continue
        ok, converted = _check(value, hints[key])
        if not ok:
            problems.append(f"'{name}.{key}' must be {_describe(hints[key])}, got {value!r}")
            continue
        values[key] = converted
    try:
        return section_cls(**values)
    except (TypeError, ValueError) as exc:
        problems.append(f"[{name}]: {exc}")
        return section_cls()


DEFAULTS_TOML = """\
# plscope analysis settings (defaults). Copy, edit, and pass with --config.
# Keys left out keep these values; unknown keys are refused.

[detection]
reference_frames = 64        # frames averaged into the reference image (detection, size)
threshold_sigma = 5.0        # detection threshold above the background, in noise sigmas
min_area_px = 4              # smallest object kept, pixels
exclude_border_px = 0        # drop particles closer than this to the image border (0: flag only)
split_touching = true        # watershed split of touching particles

[traces]
drift = "correct"            # "none" | "estimate" | "correct" (apertures follow the stage drift)
psf_margin_sigma = 1.5       # aperture = particle + this many PSF sigmas (+ drift margin)
drift_margin_px = 0.5        # extra aperture margin for residual drift, px
chunk_frames = 64            # frames per dask chunk when streaming the stack

[kinetics]
plateau_s = 3.0              # length of the stable plateaus before each switch, s
correct_bleaching = true     # divide out bleaching estimated from the field-off plateaus
bleach_plateau_fraction = 0.3  # end fraction of each off window used for the bleaching fit
# dt_s = 0.2                 # grid step of the cycle averages, s (default: frame interval)
outlier_k = 4.0              # blink masking: robust sigmas from the median over cycles
outlier_floor = 0.02         # ... but never closer than this (normalized PL)
spoil_fraction = 0.2         # a cycle with more masked points than this is left out
min_cycles = 2               # fewer usable cycles at a level: no fit (flagged)
min_points = 8               # fewer points in an averaged curve: no fit (flagged)
model = "auto"               # "auto" (biexponential, mono by BIC/fallback) | "biexp" | "mono"
# tau_bounds_s = [0.06, 100.0]  # search range of time constants, s (default: from the data)
weight_by_sem = false        # weight fits by the SEM over cycles (overrides weight_by_noise)
weight_by_noise = true       # weight fits by the measured per-frame noise / sqrt(cycles per point)
transient_s = 0.0            # leave out frames starting less than this after a switching edge, s
shape_pooling = true         # pool the biexponential shape over all particles (prior of every fit)
min_pooled_curves = 5        # fewer usable curves in a phase: no pooling (free fits, BIC model choice)
n_bootstrap_cycles = 100     # bootstrap over cycles for a fit without covariance (0: off)
n_bootstrap = 2000           # bootstrap resamples (whole particles) of the population statistics
bootstrap_seed = 0           # seed of every bootstrap: the same data give the same numbers
fit_method = "curves"        # "curves": fits of the cycle-averaged curves | "trace": whole-trace
                             # fits, state carried over, shape pooled hierarchically (experimental)
min_tau_frames = 2.0         # a time constant shorter than this many frame intervals is never fit_ok
qc_max_excluded_fraction = 0.25  # QC warns when more rows than this are excluded (or not settled)
qc_min_particles_per_field = 5   # QC warns when fewer particles than this are used at a field

[exclusion]
exclude_border = true                   # leave particles touching the border out of the statistics
exclude_near_diffraction_limit = false  # leave out particles too small for a meaningful size
exclude_failed_size_fit = true          # leave out particles whose size fit failed
exclude_poor_quality = true             # leave out particles failing the quality flags (SNR, blinking,
                                        # bleaching, saturation, crowding; see particles.csv 'reason')
"""
