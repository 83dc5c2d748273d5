"""Ion drift velocity, mobility and diffusion coefficient (the paper's last step).

- drift velocity ``v = L / tau_pol`` with ``L`` the particle size;
- mobility ``mu = v / E``; units: nm/s -> cm/s is x 1e-7, kV/cm -> V/cm is
  x 1e3, so ``mu[cm^2/Vs] = v[nm/s] * 1e-7 / (E[kV/cm] * 1e3)``;
- Einstein relation ``D = mu k_B T / q`` (CODATA constants from
  :mod:`scipy.constants`).

Worked example: ``L = 1000 nm``, ``tau = 3.0 s``, ``E = 130 kV/cm`` gives
``v = 333.3 nm/s`` and ``mu = 2.564e-10 cm^2/Vs``; ``D(2.56e-10, 296 K) =
6.53e-12 cm^2/s``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import constants

from ..results import PopulationSummary
from ._checks import KineticsInputError
from .stats import bootstrap_mean, cluster_bootstrap, field_dependence, level_consistency, linear_fit

__all__ = [
    "SlopeFit",
    "add_mobility_columns",
    "drift_velocity_nm_per_s",
    "einstein_diffusion_cm2_per_s",
    "mobility_cm2_per_Vs",
    "mobility_from_velocity_slope",
    "population_summary",
    "summarize_population",
]

logger = logging.getLogger(__name__)

_NM_PER_S_TO_CM_PER_S = 1e-7
_KV_PER_CM_TO_V_PER_CM = 1e3
_FIELD_ROUND_DECIMALS = 3


def drift_velocity_nm_per_s(size_nm, tau_s):
    """Drift velocity ``v = L / tau``.

    Parameters
    ----------
    size_nm : float or array_like
        Channel length (particle size) ``L``, nm.
    tau_s : float or array_like
        Polarization time, s.

    Returns
    -------
    float or ndarray
        nm/s; NaN where ``tau_s <= 0`` or an input is NaN.
    """
    L = np.asarray(size_nm, dtype=float)
    tau = np.asarray(tau_s, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        v = np.where(tau > 0, L / np.where(tau > 0, tau, 1.0), np.nan)
    return v if v.ndim else float(v)


def mobility_cm2_per_Vs(velocity_nm_per_s, field_kV_per_cm):
    """Mobility ``mu = v / E``.

    Parameters
    ----------
    velocity_nm_per_s : float or array_like
        Drift velocity, nm/s.
    field_kV_per_cm : float or array_like
        Field strength (magnitude), kV/cm.

    Returns
    -------
    float or ndarray
        cm^2 V^-1 s^-1; NaN where the field is 0 or NaN.
    """
    v = np.asarray(velocity_nm_per_s, dtype=float) * _NM_PER_S_TO_CM_PER_S
    E = np.abs(np.asarray(field_kV_per_cm, dtype=float)) * _KV_PER_CM_TO_V_PER_CM
    with np.errstate(divide="ignore", invalid="ignore"):
        mu = np.where(E > 0, v / np.where(E > 0, E, 1.0), np.nan)
    return mu if mu.ndim else float(mu)


def einstein_diffusion_cm2_per_s(mobility_cm2_per_Vs, temperature_K):
    """Diffusion coefficient ``D = mu k_B T / q`` (Einstein relation).

    Parameters
    ----------
    mobility_cm2_per_Vs : float or array_like
        Ion mobility, cm^2/Vs.
    temperature_K : float
        Absolute temperature, K.

    Returns
    -------
    float or ndarray
        cm^2/s.
    """
    mu = np.asarray(mobility_cm2_per_Vs, dtype=float)
    d = mu * constants.k * float(temperature_K) / constants.e
    return d if d.ndim else float(d)


@dataclass(frozen=True)
class SlopeFit:
    """Linear fit of drift velocity against field; the slope is the mobility.

    Attributes
    ----------
    slope_cm2_per_Vs, slope_err_cm2_per_Vs : float
        Slope ``dv/dE`` converted to cm^2/Vs, and its standard error.
    intercept_nm_per_s, intercept_err_nm_per_s : float
        Intercept (0 when ``through_origin``), nm/s.
    r2 : float
        Coefficient of determination.
    n : int
        Points used.
    through_origin : bool
    success : bool
    flags : tuple of str
        'too_few_points', 'single_field'.
    message : str
    """

    slope_cm2_per_Vs: float
    slope_err_cm2_per_Vs: float
    intercept_nm_per_s: float
    intercept_err_nm_per_s: float
    r2: float
    n: int
    through_origin: bool = False
    success: bool = True
    flags: tuple[str, ...] = ()
    message: str = ""

    def to_dict(self) -> dict:
        """Plain dict; ``flags`` ';'-joined."""
        d = dataclasses.asdict(self)
        d["flags"] = ";".join(self.flags)
        return d


def mobility_from_velocity_slope(
    field_kV_per_cm, velocity_nm_per_s, *, through_origin: bool = False
) -> SlopeFit:
    """Mobility as the slope of drift velocity against field (ordinary least squares).

    Parameters
    ----------
    field_kV_per_cm : array_like, shape (n,)
        Field strengths, kV/cm.
    velocity_nm_per_s : array_like, shape (n,)
        Drift velocities, nm/s (non-finite pairs are dropped).
    through_origin : bool
        Fit ``v = mu E`` without intercept (default: ``v = mu E + b``).

    Returns
    -------
    SlopeFit
        Never raises for bad data: too few points or a single field give
        ``success=False`` with NaN values.
    """
    E = np.asarray(field_kV_per_cm, dtype=float).ravel()
    v = np.asarray(velocity_nm_per_s, dtype=float).ravel()
    if E.shape != v.shape:
        raise KineticsInputError(f"field and velocity differ in length: {E.size} vs {v.size}")
    ok = np.isfinite(E) & np.isfinite(v)
    E, v = np.abs(E[ok]), v[ok]
    n = int(E.size)
    nan = float("nan")
    n_params = 1 if through_origin else 2
    scale = _NM_PER_S_TO_CM_PER_S / _KV_PER_CM_TO_V_PER_CM
    if n < n_params + 1:
        return _failed_slope(n, through_origin, "too_few_points", f"{n} finite point(s); need {n_params + 1}")
    if not through_origin and np.ptp(E) == 0:
        return _failed_slope(
            n, through_origin, "single_field", "all points at one field: the slope is undefined"
        )
    if through_origin:
        sxx = float(np.sum(E * E))
        if sxx == 0:
            return _failed_slope(n, through_origin, "single_field", "zero field")
        slope = float(np.sum(E * v) / sxx)
        intercept, intercept_err = 0.0, 0.0
        resid = v - slope * E
        s2 = float(np.sum(resid**2)) / (n - 1)
        slope_err = math.sqrt(s2 / sxx)
        ss_tot = float(np.sum(v * v))  # uncentred R^2 for a fit through the origin
    else:
        Em, vm = float(np.mean(E)), float(np.mean(v))
        sxx = float(np.sum((E - Em) ** 2))
        slope = float(np.sum((E - Em) * (v - vm)) / sxx)
        intercept = vm - slope * Em
        resid = v - (intercept + slope * E)
        s2 = float(np.sum(resid**2)) / (n - 2)
        slope_err = math.sqrt(s2 / sxx)
        intercept_err = math.sqrt(s2 * (1.0 / n + Em * Em / sxx))
        ss_tot = float(np.sum((v - vm) ** 2))
    ss_res = float(np.sum(resid**2))
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else nan
    return SlopeFit(
        slope * scale, slope_err * scale, float(intercept), float(intercept_err), r2, n, through_origin
    )


def _failed_slope(n: int, through_origin: bool, flag: str, message: str) -> SlopeFit:
    """A :class:`SlopeFit` with NaN values, ``success=False`` and one flag."""
    nan = float("nan")
    return SlopeFit(nan, nan, nan, nan, nan, n, through_origin, False, (flag,), message)


def add_mobility_columns(kinetics: pd.DataFrame, particles: pd.DataFrame) -> pd.DataFrame:
    """Fill ``size_nm``, ``velocity_nm_per_s`` and ``mobility_cm2_per_Vs`` from ``tau_pol_s``.

    Parameters
    ----------
    kinetics : DataFrame
        Per particle and level: ``particle_id, field_kV_per_cm, tau_pol_s``
        (+ anything).
    particles : DataFrame
        ``particle_id, size_nm``.

    Returns
    -------
    DataFrame
        A copy of ``kinetics`` with the three columns (re)computed; rows
        without a size get NaN.
    """
    k = kinetics.drop(columns=[c for c in ("size_nm",) if c in kinetics.columns])
    sizes = particles[["particle_id", "size_nm"]].drop_duplicates("particle_id")
    out = k.merge(sizes, on="particle_id", how="left")
    out["velocity_nm_per_s"] = drift_velocity_nm_per_s(
        out["size_nm"].to_numpy(dtype=float), out["tau_pol_s"].to_numpy(dtype=float)
    )
    out["mobility_cm2_per_Vs"] = mobility_cm2_per_Vs(
        out["velocity_nm_per_s"].to_numpy(dtype=float), out["field_kV_per_cm"].to_numpy(dtype=float)
    )
    return out


def _f(x):
    """JSON-friendly float (None for NaN/inf)."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _as_bool(series: pd.Series) -> np.ndarray:
    if series.dtype == bool:
        return series.to_numpy()
    s = series.astype(str).str.strip().str.lower()
    return s.isin(("true", "1", "yes", "1.0")).to_numpy()


def _slope_cm2_per_Vs(E, v) -> float:
    """OLS slope of v (nm/s) against E (kV/cm) in cm^2/Vs (NaN when undefined)."""
    if E.size < 3 or np.ptp(E) == 0:
        return float("nan")
    Em = E.mean()
    slope_nm_per_s_per_kV_per_cm = float(np.sum((E - Em) * (v - v.mean())) / np.sum((E - Em) ** 2))
    return slope_nm_per_s_per_kV_per_cm * _NM_PER_S_TO_CM_PER_S / _KV_PER_CM_TO_V_PER_CM


def rows_used(k: pd.DataFrame, mu: np.ndarray, v: np.ndarray, E: np.ndarray) -> np.ndarray:
    """Rows of a kinetics table that enter the statistics: ``fit_ok``, finite mobility and
    velocity, a non-zero field, no ``exclusion_reason`` (and no particle-level ``excluded``)."""
    fit_ok = _as_bool(k["fit_ok"]) if len(k) else np.zeros(0, bool)
    used = fit_ok & np.isfinite(mu) & np.isfinite(v) & (np.abs(E) > 0)
    for col in ("exclusion_reason", "excluded"):
        if col in k.columns:
            used &= k[col].fillna("").astype(str).to_numpy() == ""
    return used


def kinetics_used(k: pd.DataFrame) -> np.ndarray:
    """:func:`rows_used` from a table's own ``mobility_cm2_per_Vs, velocity_nm_per_s, field_kV_per_cm``."""
    if len(k) == 0:
        return np.zeros(0, bool)
    col = lambda c: k[c].to_numpy(float) if c in k.columns else np.full(len(k), np.nan)  # noqa: E731
    return rows_used(k, col("mobility_cm2_per_Vs"), col("velocity_nm_per_s"), col("field_kV_per_cm"))


def summarize_population(kinetics: pd.DataFrame, particles: pd.DataFrame, **options: Any) -> dict:
    """Run-level results with their uncertainties, as the JSON-ready dict of summary.json.

    ``population_summary(kinetics, particles, **options).to_dict()``: the
    options are those of :func:`population_summary`; the keys are described
    in :class:`~plscope.results.PopulationSummary`.
    """
    return population_summary(kinetics, particles, **options).to_dict()


def population_summary(
    kinetics: pd.DataFrame,
    particles: pd.DataFrame,
    *,
    temperature_K: float,
    n_bootstrap: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
    population=None,
) -> PopulationSummary:
    """Run-level results with their uncertainties, from per-particle, per-level rows.

    Parameters
    ----------
    kinetics : DataFrame
        Columns ``particle_id, field_kV_per_cm, tau_pol_s, tau_rec_s,
        switching_efficiency, velocity_nm_per_s, mobility_cm2_per_Vs,
        fit_ok`` (+ optional ``tau_*_err_s``, ``exclusion_reason``,
        ``*_delta_bic``, ``*_model``). Missing
        ``velocity_nm_per_s``/``mobility_cm2_per_Vs`` values are computed
        from ``tau_pol_s`` and the particle size.
    particles : DataFrame
        ``particle_id, size_nm``.
    temperature_K : float
        Sample temperature for the Einstein relation, K.
    n_bootstrap : int
        Resamples of the cluster bootstrap (particles are resampled whole).
    seed : int
        Seed of the bootstrap.
    confidence : float
        Level of every interval (summary keys say ``ci95`` for the default 0.95).
    population : PopulationKinetics, optional
        Adds ``shape_priors``, ``kinetics_flags`` and ``trace_shape``.

    Returns
    -------
    PopulationSummary
        Mobility (mean, spread, cluster-bootstrap error and interval, slope of
        velocity against field), diffusion coefficient, time constant against
        size and field, model choice and per-field statistics; ``warnings``
        names every quantity that could not be computed (also logged).

    Notes
    -----
    A row is used when ``fit_ok`` is true (and its ``exclusion_reason``, if
    the column exists, is empty) and its mobility and velocity are finite
    with a positive field.
    """
    k = _rows_with_sizes(kinetics, particles)
    E, v, mu = _velocity_and_mobility(k)
    used = rows_used(k, mu, v, E)
    pid = k["particle_id"].to_numpy()
    level_name = f"ci{round(100 * confidence):d}"
    boot = {"n_boot": n_bootstrap, "confidence": confidence, "seed": seed}
    warnings_out: list[str] = []

    fields = sorted({round(float(abs(x)), _FIELD_ROUND_DECIMALS) for x in E if np.isfinite(x)})
    out = _counts(k, particles, used, fields, temperature_K, confidence, n_bootstrap, seed)
    out.update(_mobility_mean(mu[used], pid[used], boot, level_name, warnings_out))
    out.update(_mobility_slope(np.abs(E[used]), v[used], pid[used], boot, warnings_out))
    _scale_by_field_consistency(out, mu[used], np.abs(E[used]), pid[used], boot)
    out.update(_diffusion(out, temperature_K, warnings_out))
    out.update(_tau_against_size(k, E, used, confidence, warnings_out))
    out.update(_field_dependences(k, used, fields, confidence))
    out["model_choice"] = _model_choice(k)
    out["per_field"] = _per_field(k, fields, E, used, mu, pid, n_bootstrap, confidence, seed)
    if population is not None:
        out.update(_population_extras(population))
    out["warnings"] = warnings_out
    for w in warnings_out:
        logger.warning("%s", w)
    return PopulationSummary(**out)


def _rows_with_sizes(kinetics: pd.DataFrame, particles: pd.DataFrame | None) -> pd.DataFrame:
    """A copy of the kinetics rows, checked, with ``size_nm`` filled from the particle table."""
    k = kinetics.copy()
    need = ("particle_id", "field_kV_per_cm", "tau_pol_s", "fit_ok")
    missing = [c for c in need if c not in k.columns]
    if missing:
        raise KineticsInputError(f"kinetics: missing column(s) {missing}")
    if "size_nm" not in k.columns:
        k["size_nm"] = np.nan
    if particles is not None and len(particles) and "size_nm" in particles.columns:
        # sizes from the particle table fill what the kinetics rows do not carry
        sizes = (
            particles[["particle_id", "size_nm"]]
            .drop_duplicates("particle_id")
            .rename(columns={"size_nm": "_size_from_particles"})
        )
        k = k.merge(sizes, on="particle_id", how="left")
        own = k["size_nm"].to_numpy(dtype=float)
        k["size_nm"] = np.where(np.isfinite(own), own, k["_size_from_particles"].to_numpy(dtype=float))
        k = k.drop(columns="_size_from_particles")
    return k


def _velocity_and_mobility(k: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Field, drift velocity and mobility per row; missing values computed from ``tau_pol_s`` and size."""
    E = k["field_kV_per_cm"].to_numpy(dtype=float)
    v_calc = drift_velocity_nm_per_s(k["size_nm"].to_numpy(dtype=float), k["tau_pol_s"].to_numpy(dtype=float))
    v = (
        k["velocity_nm_per_s"].to_numpy(dtype=float)
        if "velocity_nm_per_s" in k.columns
        else np.full(len(k), np.nan)
    )
    v = np.where(np.isfinite(v), v, v_calc)
    mu = (
        k["mobility_cm2_per_Vs"].to_numpy(dtype=float)
        if "mobility_cm2_per_Vs" in k.columns
        else np.full(len(k), np.nan)
    )
    mu = np.where(np.isfinite(mu), mu, mobility_cm2_per_Vs(v, E))
    return E, v, mu


def _counts(k, particles, used, fields, temperature_K, confidence, n_bootstrap, seed) -> dict[str, Any]:
    """Fields, particle and row counts, the interval level and the bootstrap used."""
    n_particles = (
        int(particles["particle_id"].nunique())
        if particles is not None and len(particles)
        else int(k["particle_id"].nunique())
    )
    return {
        "fields_kV_per_cm": fields,
        "temperature_K": _f(temperature_K),
        "n_particles": n_particles,
        "n_particles_used": int(k.loc[used, "particle_id"].nunique()),
        "n_rows": int(len(k)),
        "n_rows_used": int(np.count_nonzero(used)),
        "n_rows_excluded": int(len(k) - np.count_nonzero(used)),
        "confidence": float(confidence),
        "bootstrap": {
            "n_resamples": int(n_bootstrap),
            "seed": int(seed),
            "method": "cluster bootstrap over particles, expanded percentile interval "
            "(Hesterberg 2015); standard errors x sqrt(G/(G-1)) for G particles; mobility errors "
            "x the fields' scale factor (field_consistency) when above 1",
        },
        "kinetics_excluded_particles": _excluded_particles(k, used),
    }


def _mobility_mean(mu_u, pid_u, boot, level_name, warnings_out) -> dict[str, Any]:
    """Mean, median and spread of the used mobilities; cluster-bootstrap error and interval of the mean."""
    out: dict[str, Any] = {}
    if mu_u.size:
        out["ion_mobility_cm2_per_Vs"] = _f(np.mean(mu_u))
        out["ion_mobility_median_cm2_per_Vs"] = _f(np.median(mu_u))
    else:
        out["ion_mobility_cm2_per_Vs"] = out["ion_mobility_median_cm2_per_Vs"] = None
        warnings_out.append(
            "ion_mobility_cm2_per_Vs: no row with fit_ok and a finite mobility "
            "(needs tau_pol_s, size_nm and field)"
        )
    if mu_u.size >= 2:
        out["ion_mobility_std_cm2_per_Vs"] = _f(np.std(mu_u, ddof=1))
    else:
        out["ion_mobility_std_cm2_per_Vs"] = None
        warnings_out.append(f"ion_mobility_std_cm2_per_Vs: {mu_u.size} usable row(s); need 2")
    ci = bootstrap_mean(mu_u, groups=pid_u, **boot)
    ci_ok = np.isfinite(ci.low) and np.isfinite(ci.high)
    out["ion_mobility_sem_cm2_per_Vs"] = _f(ci.std_error) if ci_ok else None
    out["ion_mobility_ci_cm2_per_Vs"] = [_f(ci.low), _f(ci.high)] if ci_ok else None
    if not ci_ok:
        warnings_out.append(
            f"ion_mobility_{level_name}_cm2_per_Vs: {ci.n_groups} particle(s) with a "
            "usable mobility; the bootstrap needs 2"
        )
    return out


def _mobility_slope(absE_u, v_u, pid_u, boot, warnings_out) -> dict[str, Any]:
    """Mobility as the slope of velocity against field, with its cluster-bootstrap error."""
    slope = mobility_from_velocity_slope(absE_u, v_u)
    ok = slope.success
    out: dict[str, Any] = {
        "ion_mobility_fit_cm2_per_Vs": _f(slope.slope_cm2_per_Vs) if ok else None,
        "ion_mobility_fit_err_ols_cm2_per_Vs": _f(slope.slope_err_cm2_per_Vs) if ok else None,
        "ion_mobility_fit_intercept_nm_per_s": _f(slope.intercept_nm_per_s) if ok else None,
        "ion_mobility_fit_r2": _f(slope.r2) if ok else None,
    }
    out["ion_mobility_fit_err_cm2_per_Vs"] = out["ion_mobility_fit_err_ols_cm2_per_Vs"]
    out["ion_mobility_fit_ci_cm2_per_Vs"] = None
    if ok:
        bs = cluster_bootstrap((absE_u, v_u), pid_u, _slope_cm2_per_Vs, **boot)
        if bs.n_groups >= 3 and np.isfinite(bs.std_error):
            out["ion_mobility_fit_err_cm2_per_Vs"] = _f(bs.std_error)
            out["ion_mobility_fit_ci_cm2_per_Vs"] = [_f(bs.low), _f(bs.high)]
    else:
        warnings_out.append(f"ion_mobility_fit_cm2_per_Vs: {slope.message}")
    return out


def _scale_by_field_consistency(out: dict[str, Any], mu_u, absE_u, pid_u, boot) -> None:
    """Widen the mobility errors when the mean mobility differs between fields beyond its errors.

    The mobility does not depend on the field (``v = mu E``), so the mean
    mobilities of the fields differ only by their errors; a cluster bootstrap
    over particles sees the errors of each particle but not those shared by
    every particle at one field (a shape or settling error of the model that
    depends on the field, as with a slow component unsettled at the low
    fields), and the slope of ``v`` against ``E`` is most sensitive to those.
    The standard errors and intervals (about the estimate) of the mean and
    the slope mobility are multiplied by the scale factor ``sqrt(chi^2 /
    dof)`` of the field means when it is above 1
    (:func:`~plscope.kinetics.stats.level_consistency`), recorded in
    ``bootstrap['field_consistency']``.
    """
    fields = np.round(absE_u, _FIELD_ROUND_DECIMALS)
    cons = level_consistency(mu_u, fields, pid_u, n_boot=boot["n_boot"], seed=boot["seed"])
    out["bootstrap"] = {**out["bootstrap"], "field_consistency": cons.to_dict()}
    if cons.scale <= 1.0:
        return
    for est, err, ci in (
        ("ion_mobility_cm2_per_Vs", "ion_mobility_sem_cm2_per_Vs", "ion_mobility_ci_cm2_per_Vs"),
        ("ion_mobility_fit_cm2_per_Vs", "ion_mobility_fit_err_cm2_per_Vs", "ion_mobility_fit_ci_cm2_per_Vs"),
    ):
        x = out.get(est)
        if out.get(err) is not None:
            out[err] = _f(out[err] * cons.scale)
        if x is not None and out.get(ci) is not None and None not in out[ci]:
            lo, hi = out[ci]
            out[ci] = [_f(x - cons.scale * (x - lo)), _f(x + cons.scale * (hi - x))]


def _diffusion(mobility: dict[str, Any], temperature_K, warnings_out) -> dict[str, Any]:
    """Einstein relation applied to the mean mobility, its spread, error and interval."""
    T = float(temperature_K) if temperature_K is not None else float("nan")
    kT_q = einstein_diffusion_cm2_per_s(1.0, T) if np.isfinite(T) and T > 0 else float("nan")
    keys = ("cm2_per_s", "std_cm2_per_s", "err_cm2_per_s", "ci_cm2_per_s")
    out: dict[str, Any] = {f"diffusion_coefficient_{key}": None for key in keys}
    mean = mobility["ion_mobility_cm2_per_Vs"]
    if mean is None or not np.isfinite(kT_q):
        why = "no mobility" if mean is None else f"temperature_K={temperature_K!r}"
        warnings_out.append(f"diffusion_coefficient_cm2_per_s: {why}")
        return out
    out["diffusion_coefficient_cm2_per_s"] = _f(mean * kT_q)
    std = mobility["ion_mobility_std_cm2_per_Vs"]
    out["diffusion_coefficient_std_cm2_per_s"] = _f(std * kT_q) if std is not None else None
    sem = mobility["ion_mobility_sem_cm2_per_Vs"]
    out["diffusion_coefficient_err_cm2_per_s"] = _f(sem * kT_q) if sem is not None else None
    mci = mobility["ion_mobility_ci_cm2_per_Vs"]
    out["diffusion_coefficient_ci_cm2_per_s"] = (
        [_f(mci[0] * kT_q), _f(mci[1] * kT_q)] if mci is not None else None
    )
    return out


def _tau_against_size(k, E, used, confidence, warnings_out) -> dict[str, Any]:
    """OLS of the time constants against particle size over the used rows at the highest field."""
    out: dict[str, Any] = dict(
        tau_size_slope_s_per_nm=None,
        tau_size_slope_err_s_per_nm=None,
        tau_size_intercept_s=None,
        tau_size_field_kV_per_cm=None,
        tau_size_n=0,
        tau_pol_size_fit=None,
        tau_rec_size_fit=None,
    )
    if not np.any(used):
        warnings_out.append("tau_size_slope_s_per_nm: no usable row")
        return out
    size = k["size_nm"].to_numpy(dtype=float)
    e_max = float(np.max(np.abs(E[used])))
    at = used & np.isclose(np.abs(E), e_max, rtol=1e-3, atol=0.0)
    out["tau_size_field_kV_per_cm"] = _f(e_max)
    for col, key in (("tau_pol_s", "tau_pol_size_fit"), ("tau_rec_s", "tau_rec_size_fit")):
        if col not in k.columns:
            continue
        tau = k[col].to_numpy(dtype=float)
        sel = at & np.isfinite(size) & np.isfinite(tau)
        fit = linear_fit(size[sel], tau[sel], confidence=confidence)
        if col == "tau_pol_s":
            out["tau_size_n"] = int(np.count_nonzero(sel))
        if fit.success:
            d = fit.to_dict()
            d["field_kV_per_cm"] = _f(e_max)
            out[key] = d
            if col == "tau_pol_s":
                out["tau_size_slope_s_per_nm"] = _f(fit.slope)
                out["tau_size_slope_err_s_per_nm"] = _f(fit.slope_err)
                out["tau_size_intercept_s"] = _f(fit.intercept)
        elif col == "tau_pol_s":
            warnings_out.append(
                f"tau_size_slope_s_per_nm: {fit.n} particle(s) with a size at "
                f"{e_max:g} kV/cm (need 3 with different sizes)"
            )
    return out


def _field_dependences(k, used, fields, confidence) -> dict[str, Any]:
    """Does a time constant depend on the field? (power law within particles)."""
    out: dict[str, Any] = {}
    for col, key in (("tau_pol_s", "tau_pol_field_dependence"), ("tau_rec_s", "tau_rec_field_dependence")):
        out[key] = None
        if col in k.columns and len(fields) >= 2:
            dep = field_dependence(k, col, used=used, confidence=confidence)
            if dep.success:
                out[key] = dep.to_dict()
    rec_dep = out["tau_rec_field_dependence"]
    out["recovery_independent_of_field"] = None if rec_dep is None else bool(rec_dep["independent"])
    return out


def _population_extras(population) -> dict[str, Any]:
    """Shape priors, kinetics flags and the whole-trace shape of a :class:`PopulationKinetics`."""
    trace_shape = getattr(population, "trace_shape", None)
    return {
        "shape_priors": {ph: pr.to_dict() for ph, pr in population.shape_priors.items()},
        "kinetics_flags": list(population.flags),
        "trace_shape": None if trace_shape is None else trace_shape.to_dict(),
    }


def _excluded_particles(k: pd.DataFrame, used: np.ndarray) -> list[dict]:
    """Particles whose kinetics could not be used, with the reason."""
    excluded = []
    if len(k):
        reasons = (
            k["exclusion_reason"].fillna("").astype(str)
            if "exclusion_reason" in k.columns
            else pd.Series("", index=k.index)
        )
        for p_id, idx in k.groupby("particle_id", sort=True).groups.items():
            if np.any(used[k.index.get_indexer(idx)]):
                continue
            rs = [r for r in dict.fromkeys(reasons.loc[idx].tolist()) if r]
            excluded.append(
                {
                    "particle_id": _jsonable_id(p_id),
                    "reason": "; ".join(rs) or "no fit with a usable time constant",
                }
            )
    return excluded


def _model_choice(k: pd.DataFrame) -> dict:
    """Per phase: free fits won by each model (BIC), models reported, pooled fits."""
    choice = {}
    for phase in ("pol", "rec"):
        d: dict[str, Any] = {}
        if f"{phase}_delta_bic" in k.columns:
            dbic = k[f"{phase}_delta_bic"].to_numpy(dtype=float)
            d["biexp_by_bic"] = int(np.count_nonzero(dbic < 0))
            d["mono_by_bic"] = int(np.count_nonzero(dbic >= 0))
        if f"{phase}_model" in k.columns:
            models = k[f"{phase}_model"].astype(str)
            d["reported"] = {str(m): int(n) for m, n in models.value_counts().items()}
        if "flags" in k.columns:
            d["pooled"] = int(k["flags"].fillna("").astype(str).str.contains(f"{phase}:shape_prior").sum())
        choice[phase] = d
    return choice


def _per_field(k, fields, E, used, mu, pid, n_bootstrap, confidence, seed) -> list[dict]:
    """Means and spreads of the used rows at every field."""
    per_field = []
    absE = np.abs(E)
    for f in fields:
        m = used & np.isclose(absE, f, rtol=1e-3, atol=10.0**-_FIELD_ROUND_DECIMALS)

        def stat(col, fn, m=m):
            if col not in k.columns:
                return None
            x = k[col].to_numpy(dtype=float)[m]
            x = x[np.isfinite(x)]
            if fn == "std":
                return _f(np.std(x, ddof=1)) if x.size > 1 else None
            return _f(np.mean(x)) if x.size else None

        mci = bootstrap_mean(mu[m], groups=pid[m], n_boot=n_bootstrap, confidence=confidence, seed=seed)
        per_field.append(
            {
                "field_kV_per_cm": f,
                "n_used": int(np.count_nonzero(m)),
                "tau_pol_mean_s": stat("tau_pol_s", "mean"),
                "tau_pol_std_s": stat("tau_pol_s", "std"),
                "tau_rec_mean_s": stat("tau_rec_s", "mean"),
                "tau_rec_std_s": stat("tau_rec_s", "std"),
                "switching_efficiency_mean": stat("switching_efficiency", "mean"),
                "switching_efficiency_std": stat("switching_efficiency", "std"),
                "switching_efficiency_cycle_std": stat("switching_efficiency_std", "mean"),
                "mobility_mean_cm2_per_Vs": _f(np.mean(mu[m])) if np.any(m) else None,
                "mobility_sem_cm2_per_Vs": _f(mci.std_error) if np.isfinite(mci.std_error) else None,
            }
        )
    return per_field


def _jsonable_id(x):
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating,)):
        return float(x)
    return x
