"""Per-particle kinetics: one row per field level from one PL trace.

:func:`analyze_particle` chains the stages of the paper's analysis:

1. photobleaching estimated from the field-OFF plateaus and divided out
   (:func:`~plscope.kinetics.cycles.bleach_curve`);
2. per field level, the polarization and recovery halves of every cycle are
   normalized to the cycle's pre-ON bright level, superposed relative to the
   switching edge and averaged, with blink-spoiled cycles left out
   (:func:`~plscope.kinetics.cycles.superpose_cycles`);
3. switching efficiency per cycle from the stable plateaus, averaged over
   the cycles used;
4. biexponential (or, by BIC, monoexponential) fits of the averaged curves
   giving the amplitude-weighted ``tau_pol_s`` and ``tau_rec_s``
   (:func:`~plscope.kinetics.fits.fit_decay`).

The fits are unweighted by default: the SEM of 3-10 cycles is itself too
noisy to be a good weight, and after normalization the noise is nearly
homoscedastic; parameter errors are scaled by the residual scatter.

Degenerate input never raises: the row of a level always exists, with NaN
where a quantity cannot be computed, ``fit_ok=False`` and the reason in
``flags``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from ._checks import KineticsInputError, as_1d_float, check_cycles, check_exposure, check_time
from .cycles import (BleachModel, SuperposedCycles, bleach_curve, superpose_cycles,
                     switching_efficiency_per_cycle)
from .fits import DecayFit, fit_decay
from .mobility import drift_velocity_nm_per_s, mobility_cm2_per_Vs

__all__ = ["CURVE_COLUMNS", "CURVE_TABLE_COLUMNS", "KINETICS_COLUMNS", "KineticsSettings", "ParticleKinetics",
           "analyze_particle"]

logger = logging.getLogger(__name__)

KINETICS_COLUMNS = (
    "particle_id", "level", "field_kV_per_cm",
    "n_cycles", "n_cycles_used", "n_cycles_used_rec", "n_cycles_spoiled",
    "switching_efficiency", "switching_efficiency_std", "switching_efficiency_fit",
    "tau_pol_s", "tau_pol_err_s", "tau_rec_s", "tau_rec_err_s",
    "tau_pol_fast_s", "tau_pol_slow_s", "tau_rec_fast_s", "tau_rec_slow_s",
    "pol_model", "rec_model", "pol_fit_ok", "rec_fit_ok", "fit_ok",
    "size_nm", "velocity_nm_per_s", "mobility_cm2_per_Vs",
    "bleach_percent_per_min", "flags",
)
"""Columns of :attr:`ParticleKinetics.table` (one row per field level)."""

CURVE_COLUMNS = ("t_s", "mean", "sem", "n_cycles", "fit")
"""Leading columns of each frame in :attr:`ParticleKinetics.curves`; per-cycle
curves follow as ``cycle_<id>``."""

CURVE_TABLE_COLUMNS = ("particle_id", "level", "field_kV_per_cm", "phase", *CURVE_COLUMNS)
"""Columns of :meth:`ParticleKinetics.curve_table` (long format, one row per grid point)."""


@dataclass(frozen=True)
class KineticsSettings:
    """Options of :func:`analyze_particle`.

    Attributes
    ----------
    plateau_s : float
        Length of the stable plateaus (pre-ON bright level, quenched level), s.
    correct_bleaching : bool
        Divide out the bleaching estimated from the field-OFF plateaus.
    bleach_plateau_fraction : float
        Fraction of each OFF window (at its end) used for the bleaching fit.
    dt_s : float or None
        Grid step of the averaged curves; default the frame interval.
    outlier_k, outlier_floor, spoil_fraction : float
        Blink detection (see :func:`~plscope.kinetics.cycles.superpose_cycles`).
    min_cycles : int
        Fewer cycles at a level: no fit, flag 'too_few_cycles'.
    min_points : int
        Fewer points in an averaged curve: no fit, flag 'too_few_points'.
    model : {'auto', 'biexp', 'mono'}
        Decay model ('auto': biexponential, monoexponential by BIC/fallback).
    tau_bounds_s : (float, float) or None
        Search range of time constants; default 0.3 frame interval to 5 x window.
    weight_by_sem : bool
        Weight the fits by the SEM over cycles (default unweighted).
    """

    plateau_s: float = 3.0
    correct_bleaching: bool = True
    bleach_plateau_fraction: float = 0.3
    dt_s: float | None = None
    outlier_k: float = 4.0
    outlier_floor: float = 0.02
    spoil_fraction: float = 0.2
    min_cycles: int = 2
    min_points: int = 8
    model: Literal["auto", "biexp", "mono"] = "auto"
    tau_bounds_s: tuple[float, float] | None = None
    weight_by_sem: bool = False

    @classmethod
    def from_any(cls, settings) -> "KineticsSettings":
        """Accept None, a KineticsSettings or a mapping of field names."""
        if settings is None:
            return cls()
        if isinstance(settings, cls):
            return settings
        if isinstance(settings, Mapping):
            names = {f.name for f in dataclasses.fields(cls)}
            unknown = sorted(set(settings) - names)
            if unknown:
                raise KineticsInputError(f"settings: unknown key(s) {unknown}; known: {sorted(names)}")
            return cls(**dict(settings))
        raise KineticsInputError("settings: expected KineticsSettings or a mapping, "
                                 f"got {type(settings).__name__}")

    def to_dict(self) -> dict:
        """Plain dict of the settings."""
        return dataclasses.asdict(self)


@dataclass(frozen=True, eq=False)
class ParticleKinetics:
    """Kinetics of one particle.

    Attributes
    ----------
    table : DataFrame
        One row per field level, columns :data:`KINETICS_COLUMNS`.
    curves : dict
        ``(field_kV_per_cm, phase) -> DataFrame`` for the report, ``phase``
        'pol' or 'rec'; columns :data:`CURVE_COLUMNS`: ``t_s`` (time from the
        switching edge to mid-exposure), ``mean``/``sem`` over the used
        cycles (normalized to the pre-ON level), ``n_cycles`` per point,
        ``fit`` (fitted model, NaN without a fit), then ``cycle_<id>``: each
        cycle's normalized curve (NaN where masked as a blink; spoiled cycles
        included). The key's field equals the row's ``field_kV_per_cm``.
    fits : dict
        ``(level, phase) -> DecayFit`` (keyed by level, which stays unique
        when a run returns to a field it already used; ``curves`` is keyed
        by field for the report, and a repeated field keeps its last level).
    superposed : dict
        ``(level, phase) -> SuperposedCycles`` (per-cycle curves, spoiled
        cycles, noise).
    bleach : BleachModel or None
        The bleaching model divided out (None when not corrected).
    flags : tuple of str
        Particle-level flags ('no_data', 'no_cycles', 'bleach_uncorrected').
    """

    table: pd.DataFrame
    curves: dict = field(default_factory=dict)
    fits: dict = field(default_factory=dict)
    superposed: dict = field(default_factory=dict)
    bleach: BleachModel | None = None
    flags: tuple[str, ...] = ()

    @property
    def rows(self) -> list[dict]:
        """The table as a list of dicts."""
        return self.table.to_dict(orient="records")

    def curve_table(self) -> pd.DataFrame:
        """All averaged curves in long format, columns :data:`CURVE_TABLE_COLUMNS`."""
        frames = []
        for (field_kV_per_cm, phase), df in self.curves.items():
            level = self.table.loc[self.table["field_kV_per_cm"] == field_kV_per_cm, "level"]
            pid = self.table["particle_id"].iloc[0] if len(self.table) else None
            f = df[list(CURVE_COLUMNS)].copy()
            f.insert(0, "phase", phase)
            f.insert(0, "field_kV_per_cm", field_kV_per_cm)
            f.insert(0, "level", level.iloc[0] if len(level) else None)
            f.insert(0, "particle_id", pid)
            frames.append(f)
        if not frames:
            return pd.DataFrame(columns=list(CURVE_TABLE_COLUMNS))
        return pd.concat(frames, ignore_index=True)

    def to_dict(self) -> dict:
        """``rows``, ``bleach`` and ``flags`` as plain Python objects."""
        return {"rows": self.rows, "bleach": None if self.bleach is None else self.bleach.to_dict(),
                "flags": ";".join(self.flags)}


def _empty_row(particle_id, level, field_kV_per_cm, n_cycles, size_nm, bleach_pct) -> dict:
    nan = float("nan")
    row = {c: nan for c in KINETICS_COLUMNS}
    row.update(particle_id=particle_id, level=level, field_kV_per_cm=field_kV_per_cm,
               n_cycles=int(n_cycles), n_cycles_used=0, n_cycles_used_rec=0, n_cycles_spoiled=0,
               pol_model="none", rec_model="none", pol_fit_ok=False, rec_fit_ok=False,
               fit_ok=False, size_nm=nan if size_nm is None else float(size_nm),
               bleach_percent_per_min=bleach_pct, flags="")
    return row


def _fit_phase(sup: SuperposedCycles, s: KineticsSettings, exposure_s: float):
    """Fit one averaged curve; returns the fit (or None) and flags."""
    finite = np.isfinite(sup.mean)
    if np.count_nonzero(finite) < s.min_points:
        return None, ["too_few_points"]
    sigma = None
    if s.weight_by_sem:
        sem = sup.sem
        good = np.isfinite(sem) & (sem > 0)
        if np.count_nonzero(good & finite) >= s.min_points:
            sigma = np.where(good, sem, np.nan)
    fit = fit_decay(sup.time_s, sup.mean, model=s.model, sigma=sigma, exposure_s=exposure_s,
                    tau_bounds_s=s.tau_bounds_s)
    return fit, []


def analyze_particle(time_s, intensity, cycles: pd.DataFrame, *, exposure_s: float,
                     settings: KineticsSettings | Mapping | None = None,
                     particle_id=None, size_nm: float | None = None) -> ParticleKinetics:
    """Switching efficiency and polarization/recovery times of one particle.

    Parameters
    ----------
    time_s : array_like, shape (n,)
        Mid-exposure time of each frame (DAQ clock), s; strictly increasing
        (NaN marks a frame without a time: it is dropped, flag
        'frames_without_time').
    intensity : array_like, shape (n,)
        Background-subtracted integrated PL of the particle per frame (NaN
        marks a missing frame).
    cycles : DataFrame
        One row per field-ON segment: ``cycle, level, field_kV_per_cm, sign,
        on_start_s, on_end_s, off_end_s``.
    exposure_s : float
        Frame exposure, s.
    settings : KineticsSettings or mapping, optional
        Analysis options (defaults: :class:`KineticsSettings`).
    particle_id : optional
        Copied into the ``particle_id`` column.
    size_nm : float, optional
        Particle size ``L``; when given, ``velocity_nm_per_s = L / tau_pol``
        and ``mobility_cm2_per_Vs = v / E`` are filled in.

    Returns
    -------
    ParticleKinetics
        One row per field level (levels in order of appearance). Never raises
        for bad data; raises :class:`~plscope.kinetics.KineticsInputError`
        only for structurally wrong input (lengths, missing columns).

    Notes
    -----
    Row flags (';'-joined): particle/level problems ('no_data',
    'too_few_cycles', 'no_switching_efficiency', 'bleach_uncorrected',
    'frames_without_time'), and
    per phase 'pol:...'/'rec:...' the superposition flags
    ('spoiled_cycles_excluded', 'outlier_points_masked',
    'outlier_detection_skipped', 'cycles_without_plateau', 'no_data') and the
    fit flags of :class:`~plscope.kinetics.fits.DecayFit` ('fit_failed',
    'no_covariance', 'tau_at_bound', 'amplitude_too_small', 'too_few_points',
    'tau_poorly_determined', 'biexp_degenerate', ...).
    ``switching_efficiency`` is the mean over the cycles of
    ``1 - quenched / bright`` from the plateaus (last ``plateau_s`` of the ON
    window vs. pre-ON); when the ON window is too short for the slow
    component to settle it underestimates the stable SE, and
    ``switching_efficiency_fit = 1 - I0`` (asymptote of the normalized
    polarization fit) is the extrapolated value.
    ``n_cycles_used`` counts the cycles in the polarization average (also
    used for the switching efficiency), ``n_cycles_used_rec`` those in the
    recovery average; ``n_cycles_spoiled`` the cycles left out of either.
    ``fit_ok`` requires both the polarization and the recovery fit to be ok.
    """
    s = KineticsSettings.from_any(settings)
    t_raw = as_1d_float("time_s", time_s)
    y = as_1d_float("intensity", intensity, length=t_raw.size)
    exposure_s = check_exposure(exposure_s)
    c = check_cycles(cycles)
    particle_flags: list[str] = []
    timed = np.isfinite(t_raw)
    if not np.all(timed):
        # frames without a time (e.g. a dropped TTL edge flagged upstream) are treated as missing
        particle_flags.append("frames_without_time")
        t_raw, y = t_raw[timed], y[timed]
    t = check_time(t_raw)

    finite = np.isfinite(y)
    bleach = None
    bleach_pct = float("nan")
    if np.count_nonzero(finite) == 0:
        particle_flags.append("no_data")
    if len(c) == 0:
        particle_flags.append("no_cycles")
    y_norm = y
    if s.correct_bleaching and "no_data" not in particle_flags and len(c):
        bleach = bleach_curve(t, y, c, exposure_s=exposure_s,
                              plateau_fraction=s.bleach_plateau_fraction)
        if bleach.success:
            y_norm = bleach.correct(t, y)
            bleach_pct = bleach.loss_percent_per_min
        else:
            particle_flags.append("bleach_uncorrected")
            logger.debug("particle %s: bleaching not corrected (%s)", particle_id, bleach.message)

    rows, curves, fits, sups = [], {}, {}, {}
    levels = list(dict.fromkeys(c["level"].tolist()))
    se_table = (switching_efficiency_per_cycle(t, y_norm, c, exposure_s=exposure_s, plateau_s=s.plateau_s)
                if len(c) and t.size else None)
    for level in levels:
        cl = c[c["level"] == level]
        field_kV_per_cm = float(np.median(np.abs(cl["field_kV_per_cm"].to_numpy(dtype=float))))
        row = _empty_row(particle_id, level, field_kV_per_cm, len(cl), size_nm, bleach_pct)
        flags = list(particle_flags)
        if "no_data" in particle_flags:
            row["flags"] = ";".join(dict.fromkeys(flags))
            rows.append(row)
            continue
        if len(cl) < s.min_cycles:
            flags.append("too_few_cycles")
            row["flags"] = ";".join(dict.fromkeys(flags))
            rows.append(row)
            continue
        phase_fits: dict[str, DecayFit | None] = {}
        for phase in ("pol", "rec"):
            sup = superpose_cycles(t, y_norm, cl, phase=phase, exposure_s=exposure_s, dt_s=s.dt_s,
                                   plateau_s=s.plateau_s, outlier_k=s.outlier_k,
                                   outlier_floor=s.outlier_floor, spoil_fraction=s.spoil_fraction)
            sups[(level, phase)] = sup
            flags += [f"{phase}:{f}" for f in sup.flags]
            fit, fflags = _fit_phase(sup, s, exposure_s)
            flags += [f"{phase}:{f}" for f in fflags]
            phase_fits[phase] = fit
            if fit is not None:
                fits[(level, phase)] = fit
                flags += [f"{phase}:{f}" for f in fit.flags]
            if sup.time_s.size:
                cols = {"t_s": sup.time_s, "mean": sup.mean, "sem": sup.sem, "n_cycles": sup.n,
                        "fit": fit.curve(sup.time_s) if fit is not None else np.full(sup.time_s.size, np.nan)}
                cols.update({f"cycle_{cid}": sup.curves[i] for i, cid in enumerate(sup.cycle)})
                curves[(field_kV_per_cm, phase)] = pd.DataFrame(cols)
        sp, sr = sups[(level, "pol")], sups[(level, "rec")]
        row["n_cycles_used"] = sp.n_used
        row["n_cycles_used_rec"] = sr.n_used
        row["n_cycles_spoiled"] = int(np.count_nonzero(sp.spoiled | sr.spoiled))
        # switching efficiency over the cycles of the polarization average
        se = se_table.set_index("cycle").loc[sp.cycle[sp.used], "switching_efficiency"].to_numpy(dtype=float)
        se = se[np.isfinite(se)]
        if se.size:
            row["switching_efficiency"] = float(np.mean(se))
            row["switching_efficiency_std"] = float(np.std(se, ddof=1)) if se.size > 1 else float("nan")
        else:
            flags.append("no_switching_efficiency")
        for phase, key in (("pol", "tau_pol"), ("rec", "tau_rec")):
            fit = phase_fits[phase]
            if fit is None:
                continue
            row[f"{phase}_model"] = fit.model
            row[f"{phase}_fit_ok"] = bool(fit.ok)
            row[f"{key}_s"] = fit.tau_s
            row[f"{key}_err_s"] = fit.tau_err_s
            row[f"{key}_fast_s"] = fit.tau1_s
            row[f"{key}_slow_s"] = fit.tau2_s if fit.model == "biexp" else fit.tau1_s
        pol_fit = phase_fits["pol"]
        if pol_fit is not None and pol_fit.ok:
            # asymptote of the normalized polarization curve: the stable quenched level
            row["switching_efficiency_fit"] = 1.0 - pol_fit.i0
        row["fit_ok"] = bool(row["pol_fit_ok"] and row["rec_fit_ok"])
        if size_nm is not None and row["pol_fit_ok"]:
            v = float(drift_velocity_nm_per_s(size_nm, row["tau_pol_s"]))
            row["velocity_nm_per_s"] = v
            row["mobility_cm2_per_Vs"] = float(mobility_cm2_per_Vs(v, field_kV_per_cm))
        row["flags"] = ";".join(dict.fromkeys(flags))
        rows.append(row)

    table = pd.DataFrame(rows, columns=list(KINETICS_COLUMNS))
    return ParticleKinetics(table=table, curves=curves, fits=fits, superposed=sups, bleach=bleach,
                            flags=tuple(dict.fromkeys(particle_flags)))
