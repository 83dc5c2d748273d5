"""Per-particle kinetics: one row per field level from one PL trace.

:func:`analyze_particle` chains the stages of the paper's analysis:

1. photobleaching estimated from the field-OFF plateaus and divided out
   (:func:`~plscope.kinetics.cycles.bleach_curve`; model
   ``b(t) = exp(-k (t - t0))``, see :class:`~plscope.kinetics.cycles.BleachModel`);
2. per field level, the polarization and recovery halves of every cycle are
   normalized to the cycle's pre-ON bright level, superposed relative to the
   switching edge and averaged, with blink-spoiled cycles left out
   (:func:`~plscope.kinetics.cycles.superpose_cycles`);
3. switching efficiency per cycle from the stable plateaus, averaged over
   the cycles used (:attr:`ParticleKinetics.se_cycles` keeps every cycle);
4. biexponential (or, by BIC, monoexponential) fits of the averaged curves
   giving the amplitude-weighted ``tau_pol_s`` and ``tau_rec_s``
   (:func:`~plscope.kinetics.fits.fit_models`), or -- when shape priors from
   the population are given (:func:`plscope.kinetics.population.analyze_population`)
   -- the pooled biexponential (:func:`~plscope.kinetics.fits.fit_biexponential_pooled`).

Weights: by default each averaged point is weighted by the measured noise,
``sigma = noise / sqrt(n_cycles)``, with ``noise`` the robust per-frame scatter
of the normalized frames (frame-to-frame differences) and ``n_cycles`` the
cycles contributing to that point (fewer where a blink was masked). Free fits
scale their covariance by the reduced chi-square; a pooled fit takes the
absolute scale from the free fit of the same curve.

Uncertainty of ``tau``: the fit covariance where it is valid; otherwise a
bootstrap over the used cycles (resampled with replacement, averaged and
refitted), ``tau_*_err_method`` says which. Mobility errors propagate the
``tau`` and size errors: ``(dmu/mu)^2 = (dtau/tau)^2 + (dL/L)^2``.

Degenerate input never raises: the row of a level always exists, with NaN
where a quantity cannot be computed, ``fit_ok=False``, the machine-readable
reason in ``flags`` and a sentence in ``exclusion_reason``.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import math
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..columns import KINETICS_COLUMNS, SE_CYCLE_COLUMNS
from ..config.settings import KineticsSettings  # declared once, with ranges, in plscope.config
from ._checks import KineticsInputError, as_1d_float, check_cycles, check_exposure, check_time
from .cycles import (
    _SE_COLUMNS,
    BleachModel,
    SuperposedCycles,
    _bleach_model,
    _cycle_times,
    _pre_on_plateaus,
    _se_table,
    _sorted_cycles,
    _stats,
    _superpose_windows,
    _window_arrays,
    _windows_of,
    bleach_curve,
    switching_efficiency_per_cycle,
)
from .fits import DecayFit, ShapePrior, fit_biexponential_pooled, fit_decay, fit_models
from .mobility import drift_velocity_nm_per_s, mobility_cm2_per_Vs

__all__ = [
    "CURVE_COLUMNS",
    "CURVE_TABLE_COLUMNS",
    "KINETICS_COLUMNS",
    "SE_CYCLE_COLUMNS",
    "KineticsSettings",
    "ParticleKinetics",
    "analyze_particle",
    "exclusion_reason",
    "refit_particle",
]

logger = logging.getLogger(__name__)


CURVE_COLUMNS = ("t_s", "mean", "sem", "n_cycles", "fit")
"""Leading columns of each frame in :attr:`ParticleKinetics.curves`; per-cycle
curves follow as ``cycle_<id>``."""

CURVE_TABLE_COLUMNS = ("particle_id", "level", "field_kV_per_cm", "phase", *CURVE_COLUMNS, "fit_source")
"""Columns of :meth:`ParticleKinetics.curve_table` (long format, one row per grid point)."""

"""Columns of :attr:`ParticleKinetics.se_cycles` (one row per cycle; ``used``: in the
polarization average, i.e. not spoiled by a blink)."""


@dataclass(frozen=True, eq=False)
class _Level:
    """One field level of a particle's cycle table, computed once per particle.

    ``cycle`` are the level's cycle ids sorted by ``on_start_s``, ``windows`` their window arrays
    (:func:`~plscope.kinetics.cycles.cycle_windows` of the level's cycles alone) and ``window_s`` the
    median ON ('pol') and OFF ('rec') window lengths, s.
    """

    level: Any
    field_kV_per_cm: float
    n_cycles: int
    cycle: np.ndarray
    windows: dict
    window_s: dict


@dataclass(frozen=True, eq=False)
class _Context:
    """What :func:`refit_particle` needs to rebuild the table without redoing the superposition."""

    particle_id: object
    size_nm: float
    size_err_nm: float
    exposure_s: float
    settings: KineticsSettings
    cycles: pd.DataFrame
    particle_flags: tuple[str, ...]
    bleach_pct: float
    se_table: pd.DataFrame | None
    free_fits: dict
    phase_flags: dict
    frame_interval_s: float = float("nan")
    time_s: np.ndarray | None = None
    norm_intensity: np.ndarray | None = None
    raw_intensity: np.ndarray | None = None
    levels: tuple[_Level, ...] = ()


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
        ``attrs['fit_source']`` says which fit ``fit`` draws: 'curve_fit' the
        fit of this curve, 'trace_fit' the whole-trace fit the row reports
        (:mod:`.model_curves`), '' none.
    fits : dict
        ``(level, phase) -> DecayFit`` reported (keyed by level, which stays
        unique when a run returns to a field it already used; ``curves`` is
        keyed by field for the report, and a repeated field keeps its last level).
    superposed : dict
        ``(level, phase) -> SuperposedCycles`` (per-cycle curves, spoiled
        cycles, noise).
    bleach : BleachModel or None
        The bleaching model divided out (None when not corrected).
    flags : tuple of str
        Particle-level flags ('no_data', 'no_cycles', 'bleach_uncorrected').
    free_fits : dict
        ``(level, phase) -> {'auto', 'biexp', 'mono'} -> DecayFit`` of the
        free (unpooled) fits (see :func:`~plscope.kinetics.fits.fit_models`).
    se_cycles : DataFrame
        Switching efficiency of every cycle, columns :data:`SE_CYCLE_COLUMNS`.
    shape_priors : dict
        ``phase -> ShapePrior`` used for the reported fits (empty: free fits).

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
    'tau_poorly_determined', 'biexp_degenerate', 'shape_prior',
    'bootstrap_error', ...).
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

    table: pd.DataFrame
    curves: dict = field(default_factory=dict)
    fits: dict = field(default_factory=dict)
    superposed: dict = field(default_factory=dict)
    bleach: BleachModel | None = None
    flags: tuple[str, ...] = ()
    free_fits: dict = field(default_factory=dict)
    se_cycles: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(SE_CYCLE_COLUMNS)))
    shape_priors: dict = field(default_factory=dict)
    _context: _Context | None = field(default=None, repr=False)

    @property
    def particle_id(self):
        """The particle id given to :func:`analyze_particle`."""
        return None if self._context is None else self._context.particle_id

    @property
    def rows(self) -> list[dict]:
        """The table as a list of dicts."""
        return self.table.to_dict(orient="records")

    def without_trace(self) -> ParticleKinetics:
        """This result without its copies of the whole trace (times, raw and normalized intensities).

        Only the whole-trace fits (:func:`~plscope.kinetics.refine.refine_population`) read them;
        once the population's tables are made they are 3 x 8 bytes a frame per particle held to
        the end of a run (38 MB at 8000 frames x 200 particles). :func:`refit_particle` still
        works on the result; a whole-trace refinement of it keeps its curve fits.
        """
        ctx = self._context
        if ctx is None or (ctx.time_s is None and ctx.norm_intensity is None and ctx.raw_intensity is None):
            return self
        bare = dataclasses.replace(ctx, time_s=None, norm_intensity=None, raw_intensity=None)
        return dataclasses.replace(self, _context=bare)

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
            f["fit_source"] = df.attrs.get("fit_source", "")
            frames.append(f)
        if not frames:
            return pd.DataFrame(columns=list(CURVE_TABLE_COLUMNS))
        return pd.concat(frames, ignore_index=True)

    def to_dict(self) -> dict:
        """``rows``, ``bleach``, ``flags`` and ``shape_priors`` as plain Python objects."""
        return {
            "rows": self.rows,
            "bleach": None if self.bleach is None else self.bleach.to_dict(),
            "flags": ";".join(self.flags),
            "shape_priors": {k: v.to_dict() for k, v in self.shape_priors.items()},
        }


# --------------------------------------------------------------------------
# reasons
# --------------------------------------------------------------------------

_REASONS = {
    "no_data": "no finite intensity in the trace",
    "no_cycles": "no field cycle during the movie",
    "too_few_points": "too few frames in the switching window",
    "amplitude_too_small": "no significant switching (step < 3 standard errors: flat trace or pure noise)",
    "fit_failed": "the fit did not converge",
    "no_covariance": "the time constant has no uncertainty (degenerate fit)",
    "tau_at_bound": "the time constant is at the edge of the search range",
    "tau_poorly_determined": "the time constant is uncertain by more than 50 %",
    "tau_below_min_frames": "the time constant is shorter than the frames resolve (min_tau_frames)",
}
_PHASE_REASONS = {**_REASONS, "no_data": "no data in the cycles at this field"}
_PHASE_NAMES = {"pol": "polarization", "rec": "recovery"}


def exclusion_reason(row: Mapping, *, min_cycles: int = 2) -> str:
    """Sentence saying why a kinetics row does not enter the mobility statistics.

    Parameters
    ----------
    row : mapping
        A row of :data:`KINETICS_COLUMNS` (``fit_ok``, ``pol_fit_ok``,
        ``rec_fit_ok``, ``flags``, ``n_cycles``, ``mobility_cm2_per_Vs``, ``size_nm``).
    min_cycles : int
        The setting used (for the message).

    Returns
    -------
    str
        '' when the row is used.
    """
    flags = [f for f in str(row.get("flags") or "").split(";") if f]
    for f in ("no_data", "no_cycles"):
        if f in flags:
            return _REASONS[f]
    if "too_few_cycles" in flags:
        n = row.get("n_cycles")
        n = int(n) if n is not None and np.isfinite(n) else 0
        return f"only {n} cycle(s) at this field (need {min_cycles})"
    parts = []
    for phase in ("pol", "rec"):
        if bool(row.get(f"{phase}_fit_ok")):
            continue
        if f"{phase}:too_few_usable_cycles" in flags:
            key = "n_cycles_used" if phase == "pol" else "n_cycles_used_rec"
            n = row.get(key)
            n = int(n) if n is not None and np.isfinite(n) else 0
            parts.append(
                f"{_PHASE_NAMES[phase]}: only {n} usable cycle(s) at this field (need {min_cycles}; "
                "the others have no data or are spoiled by blinks)"
            )
            continue
        mine = [f.split(":", 1)[1] for f in flags if f.startswith(f"{phase}:")]
        if "no_data" in mine:
            mine = ["no_data"]
        why = [_PHASE_REASONS[f] for f in mine if f in _PHASE_REASONS]
        parts.append(f"{_PHASE_NAMES[phase]}: " + ("; ".join(dict.fromkeys(why)) or "no fit"))
    if parts:
        return " | ".join(parts)
    mu = row.get("mobility_cm2_per_Vs")
    if mu is None or not np.isfinite(float(mu)):
        size = row.get("size_nm")
        if size is None or not np.isfinite(float(size)):
            return "no particle size (mobility undefined)"
        return "no mobility (field or time constant not usable)"
    return ""


# --------------------------------------------------------------------------
# fitting one phase
# --------------------------------------------------------------------------


def _sigma(sup: SuperposedCycles, s: KineticsSettings):
    """Standard errors of the averaged points (None: unweighted)."""
    finite = np.isfinite(sup.mean)
    if s.weight_by_sem:
        good = np.isfinite(sup.sem) & (sup.sem > 0)
        if np.count_nonzero(good & finite) >= s.min_points:
            return np.where(good, sup.sem, np.nan)
    if s.weight_by_noise and np.isfinite(sup.noise) and sup.noise > 0:
        n = np.maximum(sup.n, 1).astype(float)
        return sup.noise / np.sqrt(n)
    return None


def _fit_free(sup: SuperposedCycles, s: KineticsSettings, exposure_s: float):
    """Free fits of one averaged curve: dict of DecayFit (or None) and flags."""
    finite = np.isfinite(sup.mean)
    if np.count_nonzero(finite) < s.min_points:
        return None, ["too_few_points"]
    if sup.n_used < s.min_cycles:
        # e.g. the particle left the field of view, or blinks spoiled the other cycles
        return None, ["too_few_usable_cycles"]
    sigma = _sigma(sup, s)
    if s.model == "mono":
        mono = fit_decay(
            sup.time_s,
            sup.mean,
            model="mono",
            sigma=sigma,
            exposure_s=exposure_s,
            tau_bounds_s=s.tau_bounds_s,
        )
        return {"auto": mono, "biexp": None, "mono": mono}, []
    fits = fit_models(sup.time_s, sup.mean, sigma=sigma, exposure_s=exposure_s, tau_bounds_s=s.tau_bounds_s)
    if s.model == "biexp" and fits["biexp"] is not None:
        fits = {**fits, "auto": fits["biexp"]}
    return fits, []


def _noise_scale(free: dict | None) -> float:
    """Factor taking the measured noise to the absolute scale of a curve: sqrt(reduced chi-square) of its
    free fit (>= sqrt(0.5); interpolating frames onto the grid averages some noise away)."""
    start = (free or {}).get("auto")
    if start is not None and np.isfinite(start.redchi) and start.redchi > 0:
        return math.sqrt(max(start.redchi, 0.5))
    return 1.0


def _fit_pooled(sup: SuperposedCycles, s: KineticsSettings, exposure_s: float, prior: ShapePrior, free: dict):
    """Pooled fit of one curve, noise scaled by the free fit's reduced chi-square."""
    sigma = _sigma(sup, s)
    if sigma is not None:
        sigma = sigma * _noise_scale(free)
    return fit_biexponential_pooled(
        sup.time_s,
        sup.mean,
        prior=prior,
        sigma=sigma,
        exposure_s=exposure_s,
        tau_bounds_s=s.tau_bounds_s,
        start=free.get("auto"),
    )


def _bootstrap_tau_err(sup: SuperposedCycles, refit, *, n_boot: int, rng: np.random.Generator) -> float:
    """Standard deviation of ``tau`` over cycles resampled with replacement (NaN if unusable)."""
    used = np.flatnonzero(sup.used)
    if used.size < 3 or n_boot <= 0:
        return float("nan")
    taus = []
    for _ in range(int(n_boot)):
        idx = rng.choice(used, size=used.size, replace=True)
        if np.unique(idx).size < 2:
            continue
        mean, _, n = _stats(sup.curves[idx])
        fit = refit(mean, n)
        if fit is not None and fit.success and np.isfinite(fit.tau_s):
            taus.append(fit.tau_s)
    if len(taus) < max(10, n_boot // 2):
        return float("nan")
    return float(np.std(taus, ddof=1))


def _with_bootstrap(
    fit: DecayFit,
    sup: SuperposedCycles,
    s: KineticsSettings,
    exposure_s: float,
    prior: ShapePrior | None,
    seed_key,
    *,
    noise_scale: float = 1.0,
) -> DecayFit:
    """Replace a missing covariance error by a bootstrap over cycles (each resample refitted alike)."""
    if fit is None or np.isfinite(fit.tau_err_s) or not np.isfinite(fit.tau_s) or s.n_bootstrap_cycles <= 0:
        return fit
    other_problems = set(fit.flags) & (DecayFit.BAD_FLAGS - {"no_covariance", "tau_poorly_determined"})
    if not fit.success or other_problems:
        return fit  # a flat, failed or out-of-range fit stays flagged: resampling cannot rescue it
    noise = (
        sup.noise * noise_scale
        if (s.weight_by_noise or s.weight_by_sem) and np.isfinite(sup.noise) and sup.noise > 0
        else None
    )

    def refit(mean, n):
        sigma = None if noise is None else noise / np.sqrt(np.maximum(n, 1))
        if prior is not None:
            return fit_biexponential_pooled(
                sup.time_s,
                mean,
                prior=prior,
                sigma=sigma,
                exposure_s=exposure_s,
                tau_bounds_s=s.tau_bounds_s,
                start=fit,
            )
        return fit_decay(
            sup.time_s,
            mean,
            model=fit.model if fit.model in ("biexp", "mono") else "auto",
            sigma=sigma,
            exposure_s=exposure_s,
            tau_bounds_s=s.tau_bounds_s,
        )

    rng = np.random.default_rng([int(s.bootstrap_seed), *seed_key])
    err = _bootstrap_tau_err(sup, refit, n_boot=s.n_bootstrap_cycles, rng=rng)
    if not np.isfinite(err):
        return fit
    flags = [f for f in fit.flags if f != "no_covariance"]
    if fit.tau_s > 0 and err / fit.tau_s > 0.5:
        flags.append("tau_poorly_determined")
    return fit._with(
        tau_err_s=err,
        tau_err_method="bootstrap_cycles",
        flags=tuple(dict.fromkeys([*flags, "bootstrap_error"])),
    )


# --------------------------------------------------------------------------
# assembling the table
# --------------------------------------------------------------------------


def _empty_row(ctx: _Context, level, field_kV_per_cm, n_cycles) -> dict:
    nan = float("nan")
    row: dict[str, Any] = {c: nan for c in KINETICS_COLUMNS}
    row.update(
        particle_id=ctx.particle_id,
        level=level,
        field_kV_per_cm=field_kV_per_cm,
        n_cycles=int(n_cycles),
        n_cycles_used=0,
        n_cycles_used_rec=0,
        n_cycles_spoiled=0,
        pol_model="none",
        rec_model="none",
        pol_fit_ok=False,
        rec_fit_ok=False,
        fit_ok=False,
        not_settled=False,
        size_nm=ctx.size_nm,
        size_err_nm=ctx.size_err_nm,
        bleach_percent_per_min=ctx.bleach_pct,
        flags="",
        tau_pol_err_method="none",
        tau_rec_err_method="none",
        exclusion_reason="",
    )
    return row


SETTLED_FRACTION = 0.95
"""A response that has not reached this fraction by the end of its window is ``not_settled``."""


def _too_fast(tau_s: float, frame_interval_s: float, min_frames: float) -> bool:
    return bool(
        np.isfinite(frame_interval_s) and np.isfinite(tau_s) and tau_s < min_frames * frame_interval_s
    )


def _window_s(start_s: np.ndarray, end_s: np.ndarray) -> float:
    """Median length of the windows ``start_s .. end_s`` (a level's ON or OFF windows), s."""
    d = end_s - start_s
    d = d[np.isfinite(d)]
    return float(np.median(d)) if d.size else float("nan")


def settled_fraction(fit: DecayFit, window_s: float) -> float:
    """Fraction of a fitted response reached ``window_s`` after its edge (1: settled).

    ``1 - (I1 exp(-T/tau1) + I2 exp(-T/tau2)) / (I1 + I2)`` of the fitted
    components; NaN without a usable fit or window.
    """
    if fit is None or not np.isfinite(window_s) or not np.isfinite(fit.tau1_s) or fit.tau1_s <= 0:
        return float("nan")
    i1 = fit.i1
    i2 = fit.i2 if (fit.model == "biexp" and np.isfinite(fit.i2) and np.isfinite(fit.tau2_s)) else 0.0
    total = i1 + i2
    if not np.isfinite(total) or total == 0:
        return float("nan")
    rest = i1 * math.exp(-window_s / fit.tau1_s)
    if i2:
        rest += i2 * math.exp(-window_s / fit.tau2_s)
    return float(1.0 - rest / total)


def _level_rows(c: pd.DataFrame) -> list[tuple[Any, np.ndarray]]:
    """``(level, row positions)`` of every level of ``c`` in order of appearance (the rows of
    ``c[c['level'] == level]``)."""
    col = c["level"]
    values = col.tolist()
    keys = dict.fromkeys(values)
    if isinstance(col.dtype, np.dtype):  # python == on the values is numpy's (and pandas') ==
        return [(k, np.array([i for i, v in enumerate(values) if v == k], dtype=np.intp)) for k in keys]
    return [(k, np.flatnonzero((col == k).to_numpy(dtype=bool))) for k in keys]


def _level_plan(c: pd.DataFrame, fast: bool, plateau_s: float, record_start_s: float) -> tuple[_Level, ...]:
    """The levels of the checked cycle table ``c`` (sorted by ``on_start_s``) with their cycles and
    windows, as the per-level tables ``c[c['level'] == level]`` give them (``fast``: the table's
    columns are numeric, :func:`~plscope.kinetics.cycles._sorted_cycles`)."""
    field = c["field_kV_per_cm"].to_numpy(dtype=float)
    if fast:
        times = [c[k].to_numpy(dtype=float) for k in ("on_start_s", "on_end_s", "off_end_s")]
        cycle_ids = c["cycle"].to_numpy()
    out = []
    for level, rows in _level_rows(c):
        if fast:
            rows = rows[np.argsort(times[0][rows], kind="stable")]
            on_start, on_end, off_end = (a[rows] for a in times)
            cycle = cycle_ids[rows]
            win = _window_arrays(on_start, on_end, off_end, plateau_s, record_start_s)
        else:  # a table the fast path cannot read: the superposition's own (checking) path
            cols, win = _windows_of(c.iloc[rows], plateau_s, record_start_s)
            cycle = cols["cycle"]
            cl = c.iloc[rows]
            on_start, on_end, off_end = (
                cl[k].to_numpy(float) for k in ("on_start_s", "on_end_s", "off_end_s")
            )
        window_s = {"pol": _window_s(on_start, on_end), "rec": _window_s(on_end, off_end)}
        field_kV_per_cm = float(np.median(np.abs(field[rows])))
        out.append(_Level(level, field_kV_per_cm, int(rows.size), cycle, win, window_s))
    return tuple(out)


def _assemble(ctx: _Context, sups: dict, fits: dict, sup_flags: dict) -> tuple[pd.DataFrame, dict]:
    """Rows and report curves from the superposed cycles and the reported fits."""
    s = ctx.settings
    rows, curves = [], {}
    se_by_cycle = _se_by_cycle(ctx.se_table)
    for lv in ctx.levels:
        level, field_kV_per_cm = lv.level, lv.field_kV_per_cm
        row = _empty_row(ctx, level, field_kV_per_cm, lv.n_cycles)
        flags = list(ctx.particle_flags)
        if "no_data" in ctx.particle_flags or lv.n_cycles < s.min_cycles:
            if "no_data" not in ctx.particle_flags:
                flags.append("too_few_cycles")
            row["flags"] = ";".join(dict.fromkeys(flags))
            row["exclusion_reason"] = exclusion_reason(row, min_cycles=s.min_cycles)
            rows.append(row)
            continue
        for phase in ("pol", "rec"):
            sup = sups[(level, phase)]
            flags += [f"{phase}:{f}" for f in sup_flags.get((level, phase), ())]
            fit = fits.get((level, phase))
            if fit is not None:
                flags += [f"{phase}:{f}" for f in fit.flags]
            if sup.time_s.size:
                curves[(field_kV_per_cm, phase)] = _report_curve(sup, fit)
        sp, sr = sups[(level, "pol")], sups[(level, "rec")]
        row["n_cycles_used"] = sp.n_used
        row["n_cycles_used_rec"] = sr.n_used
        row["n_cycles_spoiled"] = int(np.count_nonzero(sp.spoiled | sr.spoiled))
        _fill_window_switching_efficiency(row, se_by_cycle, sp, flags)
        for phase in ("pol", "rec"):
            _fill_phase(
                row, ctx, phase, fits.get((level, phase)), ctx.free_fits.get((level, phase)), lv, flags
            )
        pol_fit = fits.get((level, "pol"))
        if pol_fit is not None and pol_fit.ok:
            # asymptote of the normalized polarization curve: the stable quenched level
            row["switching_efficiency_fit"] = 1.0 - pol_fit.i0
        settled = row["switching_efficiency_fit"] if row["pol_fit_ok"] else float("nan")
        row["switching_efficiency"] = settled if np.isfinite(settled) else row["switching_efficiency_window"]
        reached = [row[f"{ph}_settled_fraction"] for ph in ("pol", "rec") if row[f"{ph}_fit_ok"]]
        row["not_settled"] = bool(any(r < SETTLED_FRACTION for r in reached if np.isfinite(r)))
        row["fit_ok"] = bool(row["pol_fit_ok"] and row["rec_fit_ok"])
        if np.isfinite(ctx.size_nm) and row["pol_fit_ok"]:
            _fill_mobility(row, ctx, field_kV_per_cm)
        row["flags"] = ";".join(dict.fromkeys(flags))
        row["exclusion_reason"] = exclusion_reason(row, min_cycles=s.min_cycles)
        rows.append(row)
    table = pd.DataFrame(rows, columns=list(KINETICS_COLUMNS))
    return table, curves


def _report_curve(sup: SuperposedCycles, fit: DecayFit | None) -> pd.DataFrame:
    """The report's curve table of one level and phase (mean, sem, fit, every cycle)."""
    cols = {
        "t_s": sup.time_s,
        "mean": sup.mean,
        "sem": sup.sem,
        "n_cycles": sup.n,
        "fit": fit.curve(sup.time_s) if fit is not None else np.full(sup.time_s.size, np.nan),
    }
    cols.update({f"cycle_{cid}": sup.curves[i] for i, cid in enumerate(sup.cycle)})
    df = pd.DataFrame(cols)
    df.attrs["fit_source"] = "curve_fit" if fit is not None else ""  # 'trace_fit': .model_curves
    return df


def _se_by_cycle(se_table: pd.DataFrame | None) -> dict | None:
    """``cycle -> switching efficiency`` of the per-cycle table (a plain lookup: an indexed pandas
    ``.loc`` per row was slow)."""
    if se_table is None:
        return None
    return dict(
        zip(se_table["cycle"].tolist(), se_table["switching_efficiency"].to_numpy(float), strict=True)
    )


def _fill_window_switching_efficiency(
    row: dict, by_cycle: dict | None, sp: SuperposedCycles, flags: list
) -> None:
    """Switching efficiency over the cycles of the polarization average (``by_cycle``: :func:`_se_by_cycle`)."""
    se = np.empty(0)
    if by_cycle is not None:
        se = np.array([by_cycle[c] for c in sp.cycle[sp.used].tolist()], dtype=float)
    se = se[np.isfinite(se)]
    if se.size:
        row["switching_efficiency_window"] = float(np.mean(se))
        row["switching_efficiency_std"] = float(np.std(se, ddof=1)) if se.size > 1 else float("nan")
    else:
        flags.append("no_switching_efficiency")


def _fill_phase(row: dict, ctx: _Context, phase: str, fit, free, lv: _Level, flags: list) -> None:
    """The time constants, model and fit checks of one phase ('pol' or 'rec')."""
    key = f"tau_{phase}"
    free = free or {}
    if free.get("biexp") is not None:
        row[f"{phase}_delta_bic"] = free["biexp"].delta_bic
    if fit is None:
        return
    row[f"{phase}_model"] = fit.model
    row[f"{phase}_fit_ok"] = bool(fit.ok)
    if fit.ok and _too_fast(fit.tau_s, ctx.frame_interval_s, ctx.settings.min_tau_frames):
        row[f"{phase}_fit_ok"] = False
        flags.append(f"{phase}:tau_below_min_frames")
    row[f"{phase}_settled_fraction"] = settled_fraction(fit, lv.window_s[phase])
    row[f"{key}_s"] = fit.tau_s
    row[f"{key}_err_s"] = fit.tau_err_s
    row[f"{key}_err_method"] = fit.tau_err_method
    row[f"{key}_fast_s"] = fit.tau1_s
    row[f"{key}_slow_s"] = fit.tau2_s if fit.model == "biexp" else fit.tau1_s
    row[f"{phase}_frac"] = fit.frac if fit.model == "biexp" else 1.0


def _fill_mobility(row: dict, ctx: _Context, field_kV_per_cm: float) -> None:
    """Drift velocity and mobility from the polarization time and the size, with propagated errors."""
    tau, tau_err = row["tau_pol_s"], row["tau_pol_err_s"]
    v = float(drift_velocity_nm_per_s(ctx.size_nm, tau))
    row["velocity_nm_per_s"] = v
    row["mobility_cm2_per_Vs"] = float(mobility_cm2_per_Vs(v, field_kV_per_cm))
    size_rel = ctx.size_err_nm / ctx.size_nm if np.isfinite(ctx.size_err_nm) else 0.0
    rel = math.hypot(tau_err / tau, size_rel) if np.isfinite(tau_err) and tau > 0 else float("nan")
    row["velocity_err_nm_per_s"] = v * rel
    row["mobility_err_cm2_per_Vs"] = row["mobility_cm2_per_Vs"] * rel


# --------------------------------------------------------------------------
# entry points
# --------------------------------------------------------------------------


def _report_fits(
    sups: dict,
    free_fits: dict,
    s: KineticsSettings,
    exposure_s: float,
    shape_priors: Mapping | None,
    particle_id,
) -> dict:
    """Reported fit per (level, phase): pooled when a prior exists, else the free selection."""
    fits = {}
    pid_key = zlib.crc32(str(particle_id).encode())
    for (level, phase), free in free_fits.items():
        if free is None:
            continue
        prior = (shape_priors or {}).get(phase) if s.model != "mono" else None
        sup = sups[(level, phase)]
        fit = _fit_pooled(sup, s, exposure_s, prior, free) if prior is not None else free["auto"]
        level_key = zlib.crc32(str(level).encode())
        fits[(level, phase)] = _with_bootstrap(
            fit,
            sup,
            s,
            exposure_s,
            prior,
            (pid_key, level_key, 0 if phase == "pol" else 1),
            noise_scale=_noise_scale(free) if prior is not None else 1.0,
        )
    return fits


def analyze_particle(
    time_s,
    intensity,
    cycles: pd.DataFrame,
    *,
    exposure_s: float,
    settings: KineticsSettings | Mapping | None = None,
    particle_id=None,
    size_nm: float | None = None,
    size_err_nm: float | None = None,
    shape_priors: Mapping[str, ShapePrior] | None = None,
    report: bool = True,
) -> ParticleKinetics:
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
    size_err_nm : float, optional
        Standard error of ``size_nm`` (propagated into the mobility error).
    shape_priors : mapping, optional
        ``phase -> ShapePrior``: report pooled fits for these phases (see
        :func:`~plscope.kinetics.population.analyze_population`, which
        estimates them from all particles).
    report : bool, optional
        False: the reported fits, the table and the curves are left empty, for a caller that
        makes them with :func:`refit_particle` (with the population's shape priors, or none for
        the free fits: the same result as ``report=True``); the superposition, the free fits and
        ``se_cycles`` are made as always. A population's first pass does not build tables it
        replaces.

    Returns
    -------
    ParticleKinetics
        One row per field level (levels in order of appearance). Never raises
        for bad data; raises :class:`~plscope.kinetics.KineticsInputError`
        only for structurally wrong input (lengths, missing columns).

    Notes
    -----
    The table's flags and switching-efficiency columns are described in
    :class:`ParticleKinetics`.
    """
    s = KineticsSettings.from_any(settings, error=KineticsInputError)
    t, y, c, exposure_s, particle_flags = _checked_inputs(time_s, intensity, cycles, exposure_s)
    sorted_c = _sorted_cycles(c)  # the cycles' arrays, read once (None: a table for the pandas path)
    y_norm, bleach, bleach_pct = _correct_bleaching(
        t, y, c, sorted_c, exposure_s, s, particle_flags, particle_id
    )
    record_start_s = float(t[0]) - exposure_s / 2 if t.size else -np.inf
    se_table, plateaus = _cycle_se_table(t, y_norm, c, sorted_c, exposure_s, s.plateau_s, record_start_s)
    no_data = "no_data" in particle_flags
    levels = _level_plan(c, sorted_c is not None, s.plateau_s, record_start_s)
    frame_interval_s = float(np.median(np.diff(t))) if t.size > 1 else float("nan")
    sups, sup_flags, free_fits = (
        ({}, {}, {})
        if no_data
        else _superpose_and_fit(t, y_norm, levels, exposure_s, s, frame_interval_s, plateaus)
    )
    ctx = _Context(
        particle_id=particle_id,
        size_nm=float("nan") if size_nm is None else float(size_nm),
        size_err_nm=float("nan") if size_err_nm is None else float(size_err_nm),
        exposure_s=exposure_s,
        settings=s,
        cycles=c,
        particle_flags=tuple(dict.fromkeys(particle_flags)),
        bleach_pct=bleach_pct,
        se_table=se_table,
        free_fits=free_fits,
        phase_flags=sup_flags,
        frame_interval_s=frame_interval_s,
        time_s=t,
        norm_intensity=np.asarray(y_norm, dtype=float),
        raw_intensity=np.asarray(y, dtype=float),
        levels=levels,
    )
    return _particle_result(ctx, sups, bleach, shape_priors, report=report)


def _particle_result(
    ctx: _Context, sups: dict, bleach: BleachModel | None, shape_priors, *, report: bool = True
) -> ParticleKinetics:
    """Reported fits, table and curves of a particle from its superposed cycles and free fits
    (``report=False``: left empty, see :func:`analyze_particle`)."""
    priors = {k: v for k, v in (shape_priors or {}).items() if v is not None}
    fits: dict = {}
    curves: dict = {}
    table = pd.DataFrame(columns=list(KINETICS_COLUMNS))
    if report:
        fits = _report_fits(sups, ctx.free_fits, ctx.settings, ctx.exposure_s, priors, ctx.particle_id)
        table, curves = _assemble(ctx, sups, fits, ctx.phase_flags)
    return ParticleKinetics(
        table=table,
        curves=curves,
        fits=fits,
        superposed=sups,
        bleach=bleach,
        flags=ctx.particle_flags,
        free_fits=ctx.free_fits,
        se_cycles=_se_cycles(ctx.se_table, sups, ctx.particle_id),
        shape_priors=priors,
        _context=ctx,
    )


def _checked_inputs(time_s, intensity, cycles, exposure_s):
    """Checked ``(t, y, cycles, exposure_s, particle_flags)``; frames without a time are dropped."""
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
    if np.count_nonzero(np.isfinite(y)) == 0:
        particle_flags.append("no_data")
    if len(c) == 0:
        particle_flags.append("no_cycles")
    return t, y, c, exposure_s, particle_flags


_BLEACH_REJECT_K = inspect.signature(bleach_curve).parameters["reject_k"].default


def _correct_bleaching(
    t, y, c, sorted_c, exposure_s, s: KineticsSettings, particle_flags: list[str], particle_id
):
    """``(y_norm, bleach model or None, loss %/min)``; appends 'bleach_uncorrected' when it fails
    (``sorted_c``: :func:`~plscope.kinetics.cycles._sorted_cycles` of the checked cycles ``c``)."""
    if not (s.correct_bleaching and "no_data" not in particle_flags and len(c)):
        return y, None, float("nan")
    # the inputs are checked (bleach_curve would check them again): its model of them
    times = _cycle_times(c) if sorted_c is None else sorted_c[1:]
    bleach = _bleach_model(t, y, times, exposure_s, s.bleach_plateau_fraction, _BLEACH_REJECT_K)
    if bleach.success:
        return bleach.correct(t, y), bleach, bleach.loss_percent_per_min
    particle_flags.append("bleach_uncorrected")
    logger.debug("particle %s: bleaching not corrected (%s)", particle_id, bleach.message)
    return y, bleach, float("nan")


def _cycle_se_table(t, y_norm, c, sorted_c, exposure_s: float, plateau_s: float, record_start_s: float):
    """Switching efficiency of every cycle (:func:`~plscope.kinetics.cycles.switching_efficiency_per_cycle`
    of the checked inputs; ``sorted_c``: :func:`~plscope.kinetics.cycles._sorted_cycles` of ``c``), None
    without cycles or frames; and ``(start_s, end_s) -> level`` of its pre-ON plateaus (a level's
    superposition divides by the same plateaus where its windows are the same)."""
    if not (len(c) and t.size):
        return None, {}
    if sorted_c is None:
        table = switching_efficiency_per_cycle(t, y_norm, c, exposure_s=exposure_s, plateau_s=plateau_s)
        return table, {}
    order, on_start, on_end, off_end = sorted_c
    cols = {k: c[k].to_numpy()[order] for k in _SE_COLUMNS}
    win = _window_arrays(on_start, on_end, off_end, plateau_s, record_start_s)
    table = _se_table(t, np.asarray(y_norm, dtype=float), cols, win, exposure_s)
    windows = zip(win["bright_start_s"].tolist(), win["bright_end_s"].tolist(), strict=True)
    return table, dict(zip(windows, table["bright"].tolist(), strict=True))


def _level_plateaus(t, y, windows: dict, exposure_s: float, known: dict) -> np.ndarray:
    """The pre-ON plateaus of a level's cycles: those of the same windows in ``known`` (the same
    robust means of the same frames), the others computed."""
    keys = list(zip(windows["bright_start_s"].tolist(), windows["bright_end_s"].tolist(), strict=True))
    if all(k in known for k in keys):
        return np.array([known[k] for k in keys], dtype=float)
    return _pre_on_plateaus(t, y, windows, exposure_s)


def _superpose_and_fit(
    t, y_norm, levels: tuple[_Level, ...], exposure_s, s: KineticsSettings, frame_interval_s: float, plateaus
) -> tuple[dict, dict, dict]:
    """Superposed cycles, their flags and the free fits per ``(level, phase)`` of every level with
    enough cycles (``plateaus``: known pre-ON plateaus, :func:`_cycle_se_table`)."""
    sups, sup_flags, free_fits = {}, {}, {}
    y = np.asarray(y_norm, dtype=float)
    blinks = (s.outlier_k, s.outlier_floor, s.spoil_fraction)
    for lv in levels:
        if lv.n_cycles < s.min_cycles:
            continue
        plateau = _level_plateaus(t, y, lv.windows, exposure_s, plateaus)  # both phases divide by it
        for phase in ("pol", "rec"):
            sup = _superpose_windows(
                t,
                y,
                lv.cycle,
                lv.windows,
                phase=phase,
                exposure_s=exposure_s,
                dt_s=s.dt_s,
                blinks=blinks,
                transient_s=s.transient_s,
                frame_dt_s=frame_interval_s,
                plateau=plateau,
            )
            sups[(lv.level, phase)] = sup
            free, fflags = _fit_free(sup, s, exposure_s)
            sup_flags[(lv.level, phase)] = (*sup.flags, *fflags)
            free_fits[(lv.level, phase)] = free
    return sups, sup_flags, free_fits


def _se_cycles(se_table: pd.DataFrame | None, sups: dict, particle_id) -> pd.DataFrame:
    """The switching efficiency of every cycle with ``particle_id`` and ``used`` (in the polarization
    average of its level), columns :data:`SE_CYCLE_COLUMNS`."""
    if se_table is None or len(se_table) == 0:
        return pd.DataFrame(columns=list(SE_CYCLE_COLUMNS))
    pol_used = [sup.cycle[sup.used] for (_, phase), sup in sups.items() if phase == "pol"]
    cycle = se_table["cycle"].to_numpy()
    used = np.isin(cycle, np.concatenate(pol_used)) if pol_used else np.zeros(cycle.size, bool)
    cols: dict[str, Any] = {"particle_id": particle_id}
    cols.update({k: se_table[k] for k in SE_CYCLE_COLUMNS[1:-1]})
    cols["used"] = used
    return pd.DataFrame(cols, index=se_table.index)


def refit_particle(
    kinetics: ParticleKinetics, shape_priors: Mapping[str, ShapePrior] | None
) -> ParticleKinetics:
    """Refit a particle's averaged curves with shape priors (no new superposition).

    Parameters
    ----------
    kinetics : ParticleKinetics
        From :func:`analyze_particle`.
    shape_priors : mapping or None
        ``phase -> ShapePrior``; phases without a prior keep their free fit.

    Returns
    -------
    ParticleKinetics
        A new result with the reported fits, table and curves replaced.
    """
    ctx = kinetics._context
    if ctx is None:
        raise KineticsInputError("refit_particle: the result was not made by analyze_particle")
    priors = {k: v for k, v in (shape_priors or {}).items() if v is not None}
    fits = _report_fits(
        kinetics.superposed, ctx.free_fits, ctx.settings, ctx.exposure_s, priors, ctx.particle_id
    )
    table, curves = _assemble(ctx, kinetics.superposed, fits, ctx.phase_flags)
    return dataclasses.replace(kinetics, table=table, curves=curves, fits=fits, shape_priors=priors)
