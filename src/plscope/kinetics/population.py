"""All particles of a run: per-particle kinetics with the biexponential shape pooled.

Why pool
--------
With 3-10 cycles per field the two components of a single curve are rarely
identifiable; the amplitude-weighted ``tau`` (the area under the normalized
response) is, but only if the extrapolation of the unobserved parts (the
first fraction of a frame after the edge, the unsettled tail at the end of a
half period) has the right shape. Falling back to a monoexponential biases
``tau`` low by 5-10 % for biexponential data; a free biexponential is
unbiased but scatters by ~10 %. Particles of one sample share their
mechanism, so :func:`analyze_population` estimates the shape (the fast
fraction ``f`` and ``rho = ln(tau2/tau1)``) from the population and refits
every curve with that shape as a Gaussian prior (empirical Bayes / partial
pooling):

1. every particle is analysed on its own (:func:`~plscope.kinetics.analysis.analyze_particle`,
   free fits);
2. per phase, the prior centre is the shape shared by all curves with a
   usable free fit (complete pooling): the ``(f, rho)`` minimizing the sum
   over curves of each curve's chi-square profiled over its own ``i0``,
   ``A`` (solved linearly) and ``tau`` (a grid of +-50 % around its free
   estimate, parabolic refinement), each curve weighted by its measured
   noise scaled to a reduced chi-square of 1 by its free fit. This is the
   maximum-likelihood shape of the population; averaging per-curve shape
   estimates instead is biased, because the single-curve estimator of
   ``(f, rho)`` is strongly skewed along the ``f``-``rho`` degeneracy;
3. the prior width is the between-curve spread of the well-determined free
   biexponential shapes (ok, not degenerate, ``0.02 < f < 0.98``,
   ``rho > 0.05``, finite errors; DerSimonian-Laird moment estimate), never
   below ``frac_sd_floor`` / ``log_ratio_sd_floor``;
4. every curve is refitted with :func:`~plscope.kinetics.fits.fit_biexponential_pooled`.

If a population shows a real spread of shapes, the estimated width is large
and the prior weak; with fewer than ``min_pooled_curves`` usable curves (a
handful of particles), or when the pooled shape is monoexponential
(``rho < 0.1`` or ``f`` within 0.03 of 0 or 1), nothing is pooled and the
free fits (BIC selection) are reported.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numba
import numpy as np
import pandas as pd

from ._checks import KineticsInputError
from ._meta import random_effects as _random_effects
from ._parallel import Mapper, map_particles
from .analysis import (
    KINETICS_COLUMNS,
    SE_CYCLE_COLUMNS,
    KineticsSettings,
    ParticleKinetics,
    analyze_particle,
    refit_particle,
)
from .fits import DecayFit, ShapePrior
from .refine import refine_population

if TYPE_CHECKING:  # trace_fit imports this module
    from .trace_fit import ShapeHyper

__all__ = [
    "PopulationKinetics",
    "analyze_population",
    "estimate_shape_priors",
    "pooled_shape",
    "shape_estimates",
]

logger = logging.getLogger(__name__)

_FRAC_RANGE = (0.02, 0.98)
_MIN_LOG_RATIO = 0.05
_MAX_FRAC_ERR = 0.5
_MAX_LOG_RATIO_ERR = 2.0


@dataclass(frozen=True, eq=False)
class PopulationKinetics:
    """Kinetics of every particle of a run.

    Attributes
    ----------
    table : DataFrame
        All rows (:data:`~plscope.kinetics.analysis.KINETICS_COLUMNS`), sorted
        by ``particle_id`` and field.
    particles : dict
        ``particle_id -> ParticleKinetics`` (with the reported, pooled fits).
    shape_priors : dict
        ``phase -> ShapePrior`` used ('pol', 'rec'; a phase is missing when it
        was not pooled).
    se_cycles : DataFrame
        Switching efficiency of every particle and cycle
        (:data:`~plscope.kinetics.analysis.SE_CYCLE_COLUMNS`).
    flags : tuple of str
        'pol:not_pooled', 'rec:not_pooled' (too few well-determined curves;
        the curve fits). Rows from whole-trace fits carry the row flag 'trace_fit'.
    trace_shape : ShapeHyper or None
        Hierarchical shape prior of the whole-trace fits (None: curve fits reported).
    """

    table: pd.DataFrame
    particles: dict = field(default_factory=dict)
    shape_priors: dict = field(default_factory=dict)
    se_cycles: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(SE_CYCLE_COLUMNS)))
    flags: tuple[str, ...] = ()
    trace_shape: ShapeHyper | None = None

    @property
    def curves(self) -> dict:
        """``(particle_id, field_kV_per_cm, phase) -> DataFrame`` of averaged curves (for the report)."""
        return {(pid, *key): df for pid, pk in self.particles.items() for key, df in pk.curves.items()}

    def excluded(self) -> pd.DataFrame:
        """Particles with no row in the mobility statistics: ``particle_id, reason``.

        The reason is that of the particle's rows (joined when they differ).
        """
        t = self.table
        if len(t) == 0:
            return pd.DataFrame(columns=["particle_id", "reason"])
        used = t["exclusion_reason"].fillna("") == ""
        out = []
        for pid, g in t.groupby("particle_id", sort=True):
            if used[g.index].any():
                continue
            reasons = list(dict.fromkeys(str(r) for r in g["exclusion_reason"] if r))
            out.append(
                {
                    "particle_id": pid.item() if isinstance(pid, np.generic) else pid,
                    "reason": "; ".join(reasons),
                }
            )
        return pd.DataFrame(out, columns=["particle_id", "reason"])

    def to_dict(self) -> dict:
        """Shape priors, flags and excluded particles as plain Python objects."""
        return {
            "shape_priors": {k: v.to_dict() for k, v in self.shape_priors.items()},
            "trace_shape": None if self.trace_shape is None else self.trace_shape.to_dict(),
            "flags": ";".join(self.flags),
            "excluded_particles": self.excluded().to_dict(orient="records"),
        }


def shape_estimates(results: Iterable[ParticleKinetics], *, phase: str) -> pd.DataFrame:
    """Well-determined free biexponential shapes of one phase.

    Parameters
    ----------
    results : iterable of ParticleKinetics
        First-pass (free) results.
    phase : {'pol', 'rec'}

    Returns
    -------
    DataFrame
        ``particle_id, level, frac, frac_err, log_ratio, log_ratio_err``, one
        row per curve that passes the filters of the module docstring.
    """
    rows = []
    for pk in results:
        for (level, ph), free in pk.free_fits.items():
            if ph != phase or not free:
                continue
            bi: DecayFit | None = free.get("biexp")
            if bi is None or not bi.ok or "biexp_degenerate" in bi.flags:
                continue
            vals = (bi.frac, bi.frac_err, bi.log_ratio, bi.log_ratio_err)
            if not all(np.isfinite(vals)) or bi.frac_err <= 0 or bi.log_ratio_err <= 0:
                continue
            if not (_FRAC_RANGE[0] < bi.frac < _FRAC_RANGE[1]) or bi.log_ratio <= _MIN_LOG_RATIO:
                continue
            if bi.frac_err > _MAX_FRAC_ERR or bi.log_ratio_err > _MAX_LOG_RATIO_ERR:
                continue
            rows.append(
                {
                    "particle_id": pk.particle_id,
                    "level": level,
                    "frac": bi.frac,
                    "frac_err": bi.frac_err,
                    "log_ratio": bi.log_ratio,
                    "log_ratio_err": bi.log_ratio_err,
                }
            )
    return pd.DataFrame(
        rows, columns=["particle_id", "level", "frac", "frac_err", "log_ratio", "log_ratio_err"]
    )


_TAU_PROFILE = np.exp(np.linspace(-0.5, 0.5, 21))  # tau grid of each curve, relative to its free estimate
_COARSE_FRAC = np.linspace(0.1, 0.9, 9)
_COARSE_LOG_RATIO = np.linspace(0.15, 2.95, 9)
_MAX_LOG_RATIO = 4.0


@dataclass(frozen=True, eq=False)
class _PackedCurves:
    """Averaged curves of one phase padded to a common length (weight 0 in the padding)."""

    t: np.ndarray  # (K, n)
    y: np.ndarray  # (K, n)
    w: np.ndarray  # (K, n) 1/sigma^2
    tau0: np.ndarray  # (K,)
    exposure: np.ndarray  # (K,)

    @property
    def n_curves(self) -> int:
        return int(self.tau0.size)

    @functools.cached_property
    def grid(self) -> tuple[np.ndarray, np.ndarray]:
        """Per curve: the step of its time grid and each point's index on it (step 0: no grid)."""
        return _grid_steps(self.t, self.w)


def _pack_curves(results: Iterable[ParticleKinetics], phase: str) -> _PackedCurves:
    """Curves with a usable free fit, each weighted by its noise scaled to a reduced chi-square of 1."""
    from .analysis import _sigma

    rows = []
    for pk in results:
        ctx = pk._context
        if ctx is None:
            continue
        for (level, ph), free in ctx.free_fits.items():
            if ph != phase or not free or free.get("auto") is None or not free["auto"].ok:
                continue
            sup = pk.superposed[(level, ph)]
            sigma = _sigma(sup, ctx.settings)
            fit = free["auto"]
            if sigma is None:
                resid = sup.mean - fit.curve(sup.time_s)
                sigma = np.full(sup.time_s.size, float(np.sqrt(np.nanmean(resid**2))))
            elif np.isfinite(fit.redchi) and fit.redchi > 0:
                sigma = sigma * math.sqrt(max(fit.redchi, 0.5))
            ok = np.isfinite(sup.mean) & np.isfinite(sigma) & (sigma > 0)
            if np.count_nonzero(ok) < 8:
                continue
            rows.append((sup.time_s[ok], sup.mean[ok], 1.0 / sigma[ok] ** 2, fit.tau_s, ctx.exposure_s))
    n = max((r[0].size for r in rows), default=0)
    K = len(rows)
    t, y, w = np.zeros((K, n)), np.zeros((K, n)), np.zeros((K, n))
    for i, (tt, yy, ww, _, _) in enumerate(rows):
        t[i, : tt.size], y[i, : tt.size], w[i, : tt.size] = tt, yy, ww
    return _PackedCurves(
        t=t,
        y=y,
        w=w,
        tau0=np.array([r[3] for r in rows], dtype=float),
        exposure=np.array([r[4] for r in rows], dtype=float),
    )


@numba.njit(cache=True, nogil=True)
def _grid_steps(t, w):  # pragma: no cover (numba)
    """Per curve: the grid step and every point's index on it (points on a uniform grid of the
    averaged curves, some missing), or step 0 where the points are not on one grid."""
    n_curves, n_pts = t.shape
    step = np.zeros(n_curves)
    idx = np.zeros((n_curves, n_pts), np.int64)
    for k in range(n_curves):
        d = np.inf
        for i in range(1, n_pts):
            if w[k, i] > 0 and w[k, i - 1] > 0 and 0 < t[k, i] - t[k, i - 1] < d:
                d = t[k, i] - t[k, i - 1]
        if not np.isfinite(d):
            continue
        ok = True
        for i in range(n_pts):
            if w[k, i] > 0:
                m = round((t[k, i] - t[k, 0]) / d)
                idx[k, i] = m
                if m < 0 or abs(t[k, 0] + m * d - t[k, i]) > 1e-9 * max(1.0, abs(t[k, i])):
                    ok = False
                if i > 0 and w[k, i - 1] > 0 and m <= idx[k, i - 1]:
                    ok = False
        if ok:
            step[k] = d
    return step, idx


@numba.njit(cache=True, nogil=True)
def _model_moments(t, w, yc, idx, step, tau, f, shift, p, r, out):  # pragma: no cover (numba)
    """Moments of the model of one curve at every ``tau`` of the grid at once (the inner loops run
    over the grid, so they vectorize): ``out[:, j] = sum w d, sum w d^2, sum w d yc`` over the
    points with weight, ``d = f[0, j] exp(-t / tau[0, j]) + f[1, j] exp(-t / tau[1, j]) - shift[j]``.
    On a uniform time grid the exponentials are successive powers of ``exp(-step / tau)`` (one
    ``exp`` per curve and ``tau``; relative error ~ index x 1e-16); ``p, r`` are work arrays."""
    g = tau.shape[1]
    out[:] = 0.0
    for c in range(2):
        for j in range(g):
            p[c, j] = math.exp(-t[0] / tau[c, j])
            r[c, j] = math.exp(-step / tau[c, j])
    m = 0
    for i in range(t.size):
        if w[i] <= 0:
            continue
        if step > 0:
            while m < idx[i]:
                for j in range(g):
                    p[0, j] *= r[0, j]
                    p[1, j] *= r[1, j]
                m += 1
        else:
            for j in range(g):
                p[0, j] = math.exp(-t[i] / tau[0, j])
                p[1, j] = math.exp(-t[i] / tau[1, j])
        wi, yi = w[i], yc[i]
        for j in range(g):
            d = f[0, j] * p[0, j] + f[1, j] * p[1, j] - shift[j]
            wd = wi * d
            out[0, j] += wd
            out[1, j] += wd * d
            out[2, j] += wd * yi


@numba.njit(cache=True, nogil=True)
def _components(tau1_scale, grid, ratio, frac, exposure, tau, f, usable):  # pragma: no cover (numba)
    """Per point of the grid (``tau1 = tau1_scale * grid``): both components' ``tau`` and
    exposure-averaged amplitudes (rows of ``tau`` and ``f``); ``usable`` False where an amplitude is
    not finite (no usable model)."""
    for j in range(grid.size):
        tau1 = tau1_scale * grid[j]
        tau[0, j], tau[1, j] = tau1, tau1 * ratio
        x1, x2 = exposure / (2.0 * tau[0, j]), exposure / (2.0 * tau[1, j])
        f[0, j] = frac * (1.0 + x1 * x1 / 6.0 if abs(x1) < 1e-4 else math.sinh(x1) / x1)
        f[1, j] = (1.0 - frac) * (1.0 + x2 * x2 / 6.0 if abs(x2) < 1e-4 else math.sinh(x2) / x2)
        usable[j] = np.isfinite(f[0, j]) and np.isfinite(f[1, j])


@numba.njit(cache=True, nogil=True)
def _centred_y(t, y, w, yc):  # pragma: no cover (numba)
    """``(sum w, sum w yc^2, sum w yc, weighted mean of t)`` of one curve and ``yc = y -`` its
    weighted mean (filled in)."""
    s1, swy, swt = 0.0, 0.0, 0.0
    for i in range(y.size):
        s1 += w[i]
        swy += w[i] * y[i]
        swt += w[i] * t[i]
    s1 = max(s1, 1e-300)
    for i in range(y.size):
        yc[i] = y[i] - swy / s1
    syy, swyc = 0.0, 0.0
    for i in range(y.size):
        syy += w[i] * yc[i] * yc[i]
        swyc += w[i] * yc[i]
    return s1, syy, swyc, swt / s1


@numba.njit(cache=True, nogil=True)
def _profile_grid(t, y, w, tau0, exposure, frac, c1, ratio, grid, step, idx):  # pragma: no cover (numba)
    """Chi-square of every curve (rows) at every ``tau`` of the grid (columns), profiled over
    ``i0, A`` by weighted, centred linear least squares (the sums over the points with weight of
    the two-pass expressions this replaced, from the moments of :func:`_model_moments`: one pass
    over each curve for all ``tau`` at once)."""
    n_curves, g = t.shape[0], grid.size
    chi = np.empty((n_curves, g))
    tau, f = np.empty((2, g)), np.empty((2, g))
    p, r, mom, shift = np.empty((2, g)), np.empty((2, g)), np.empty((3, g)), np.empty(g)
    yc, usable = np.empty(t.shape[1]), np.empty(g, np.bool_)
    for k in range(n_curves):
        s1, syy, swyc, t_mean = _centred_y(t[k], y[k], w[k], yc)
        _components(c1 * tau0[k], grid, ratio, frac, exposure[k], tau, f, usable)
        for j in range(g):  # the model at the mean time: close to its weighted mean (precise centring)
            shift[j] = f[0, j] * math.exp(-t_mean / tau[0, j]) + f[1, j] * math.exp(-t_mean / tau[1, j])
        _model_moments(t[k], w[k], yc, idx[k], step[k], tau, f, shift, p, r, mom)
        for j in range(g):
            sbb = mom[1, j] - mom[0, j] * mom[0, j] / s1
            sby = mom[2, j] - mom[0, j] * swyc / s1
            # no usable model: the chi-square of a constant (as a non-finite sum gave before)
            chi[k, j] = syy - sby * sby / sbb if usable[j] and sbb > 0 else syy
    return chi


def _profile_chi2(curves: _PackedCurves, frac: float, log_ratio: float) -> float:
    """Sum over curves of the chi-square at shape ``(frac, log_ratio)``, profiled over i0, A, tau."""
    frac = float(np.clip(frac, 0.0, 1.0))
    ratio = math.exp(float(np.clip(log_ratio, 0.0, _MAX_LOG_RATIO)))
    c1 = 1.0 / (frac + (1.0 - frac) * ratio)
    # linear least squares in (i0, A) for every curve and tau, on weighted-centred data (stable)
    step, idx = curves.grid
    chi = _profile_grid(
        curves.t, curves.y, curves.w, curves.tau0, curves.exposure, frac, c1, ratio, _TAU_PROFILE, step, idx
    )
    best = _grid_minima(chi)
    return float(np.sum(best[np.isfinite(best)]))


@numba.njit(cache=True, nogil=True)
def _grid_minima(chi):  # pragma: no cover (numba)
    """Per row, the minimum of the chi-square over the ``tau`` grid: at the grid minimum, the vertex
    of the parabola through it and its neighbours when it is interior and the parabola convex (never
    above the grid value, never below 0); non-finite values count as +inf."""
    n_curves, g = chi.shape
    best = np.empty(n_curves)
    for k in range(n_curves):
        row = np.where(np.isfinite(chi[k]), np.maximum(chi[k], 0.0), np.inf)
        j = int(np.argmin(row))
        jj = min(max(j, 1), g - 2)
        lo, mid, hi = row[jj - 1], row[jj], row[jj + 1]
        curv = lo - 2.0 * mid + hi
        vertex = mid
        if j == jj and curv > 0 and np.isfinite(curv):
            vertex = mid - (hi - lo) ** 2 / (8.0 * curv)
        best[k] = max(min(row[j], vertex), 0.0)
    return best


def pooled_shape(curves: _PackedCurves) -> tuple[float, float, float]:
    """Complete-pooling maximum-likelihood shape ``(frac, log_ratio, chi2)`` of packed curves."""
    from scipy.optimize import minimize

    grid = np.array([[_profile_chi2(curves, f, r) for r in _COARSE_LOG_RATIO] for f in _COARSE_FRAC])
    i, j = np.unravel_index(int(np.argmin(grid)), grid.shape)
    x0 = np.array([_COARSE_FRAC[i], _COARSE_LOG_RATIO[j]])
    res = minimize(
        lambda x: _profile_chi2(curves, x[0], x[1]),
        x0,
        method="Nelder-Mead",
        options={"xatol": 2e-3, "fatol": 1e-3, "initial_simplex": [x0, x0 + [0.05, 0.0], x0 + [0.0, 0.1]]},
    )
    f, r = res.x if res.fun <= grid[i, j] else x0
    return (
        float(np.clip(f, 0.0, 1.0)),
        float(np.clip(r, 0.0, _MAX_LOG_RATIO)),
        float(min(res.fun, grid[i, j])),
    )


def estimate_shape_priors(
    results: Iterable[ParticleKinetics],
    *,
    min_curves: int = 5,
    frac_sd_floor: float = 0.05,
    log_ratio_sd_floor: float = 0.1,
    mapper: Mapper = map,
) -> dict[str, ShapePrior]:
    """Population priors on the biexponential shape, one per phase.

    Parameters
    ----------
    results : iterable of ParticleKinetics
        First-pass results (free fits, from :func:`analyze_particle`) of the
        particles that may inform the prior (leave out particles excluded for
        other reasons).
    min_curves : int
        Fewer curves with a usable free fit in a phase: no prior for it.
    frac_sd_floor, log_ratio_sd_floor : float
        Smallest prior widths (the prior never fixes the shape).
    mapper : callable, optional
        Map-like callable: the two phases' pooled shapes are fitted through
        it (in parallel if it is); the builtin ``map`` by default.

    Returns
    -------
    dict
        ``phase -> ShapePrior`` for the phases that are pooled (see the
        module docstring for the method and when a phase is not pooled).
    """
    results = list(results)
    priors: dict[str, ShapePrior] = {}
    packed = {phase: _pack_curves(results, phase) for phase in ("pol", "rec")}
    for phase, curves in packed.items():
        if curves.n_curves < max(int(min_curves), 2):
            logger.info(
                "%s: %d curve(s) with a usable fit (< %d): shape not pooled",
                phase,
                curves.n_curves,
                min_curves,
            )
    pooled = [ph for ph, c in packed.items() if c.n_curves >= max(int(min_curves), 2)]
    shapes = dict(
        zip(pooled, map_particles(mapper, pooled_shape, [packed[ph] for ph in pooled]), strict=True)
    )
    for phase, (f_mean, r_mean, _) in shapes.items():
        curves = packed[phase]
        if r_mean < 0.1 or not (0.03 < f_mean < 0.97):
            logger.info(
                "%s: the pooled shape is monoexponential (f = %.3f, tau2/tau1 = %.3f): not pooled",
                phase,
                f_mean,
                math.exp(r_mean),
            )
            continue
        est = shape_estimates(results, phase=phase)
        f_sd = r_sd = 0.0
        if len(est) >= 3:
            _, f_sd = _random_effects(est["frac"].to_numpy(float), est["frac_err"].to_numpy(float))
            _, r_sd = _random_effects(est["log_ratio"].to_numpy(float), est["log_ratio_err"].to_numpy(float))
        priors[phase] = ShapePrior(
            frac_mean=f_mean,
            frac_sd=max(f_sd, frac_sd_floor),
            log_ratio_mean=r_mean,
            log_ratio_sd=max(r_sd, log_ratio_sd_floor),
            n_curves=curves.n_curves,
            phase=phase,
        )
        logger.info(
            "%s shape prior from %d curves: f = %.3f +- %.3f, tau2/tau1 = %.2f (rho sd %.3f)",
            phase,
            curves.n_curves,
            f_mean,
            priors[phase].frac_sd,
            math.exp(r_mean),
            priors[phase].log_ratio_sd,
        )
    return priors


def _per_particle_inputs(traces, frame_time_s: np.ndarray):
    """``(particle_id, time_s, intensity)`` of every particle in id order, each in frame order."""
    need = ("particle_id", "frame", "intensity")
    have = set(traces.columns) | ({"particle_id", "frame"} if hasattr(traces, "per_particle") else set())
    missing = [c for c in need if c not in have]
    if missing:
        raise KineticsInputError(f"traces: missing column(s) {missing}; expected {list(need)}")
    t_frames = np.asarray(frame_time_s, dtype=float)
    shared: tuple = (None, None)  # particles with the same frames (a store's) share their times
    for pid, frames, y in _particle_rows(traces):
        if frames is shared[0]:
            yield pid, shared[1], y
            continue
        if frames.size and (frames.min() < 0 or frames.max() >= t_frames.size):
            raise KineticsInputError(
                f"traces: particle {pid} has frame indices outside 0..{t_frames.size - 1}"
            )
        shared = (frames, t_frames[frames])
        yield pid, shared[1], y


def _particle_rows(traces) -> Iterable[tuple]:
    """``(particle_id, frames, intensity)`` per particle: of a table, or read one particle at a time from
    a per-particle store (``traces.per_particle(column)``, e.g. the pipeline's scratch file of a run)."""
    if hasattr(traces, "per_particle"):
        for pid, frames, y in traces.per_particle("intensity"):
            yield pid, frames, np.asarray(y, dtype=float)
        return
    for pid, tr in traces.groupby("particle_id", sort=True):
        tr = tr.sort_values("frame")
        yield pid, tr["frame"].to_numpy(), tr["intensity"].to_numpy(float)


def analyze_population(
    traces: pd.DataFrame,
    frame_time_s,
    cycles: pd.DataFrame,
    *,
    exposure_s: float,
    particles: pd.DataFrame | None = None,
    settings: KineticsSettings | Mapping | None = None,
    mapper: Mapper = map,
) -> PopulationKinetics:
    """Kinetics of every particle, with the biexponential shape pooled over the population.

    Parameters
    ----------
    traces : DataFrame
        Tidy traces: ``particle_id, frame, intensity`` (+ anything), one row
        per particle and frame; or a per-particle store of them
        (``traces.per_particle("intensity")`` yields ``(particle_id, frames,
        intensity)`` in id order, each in frame order: one particle's trace
        in memory at a time).
    frame_time_s : array_like, shape (n_frames,)
        Mid-exposure time of every frame (indexed by ``frame``), s.
    cycles : DataFrame
        Per-cycle table of the run (see :func:`analyze_particle`).
    exposure_s : float
        Frame exposure, s.
    particles : DataFrame, optional
        ``particle_id, size_nm`` (+ optional ``size_err_nm``, and
        ``excluded``: a non-empty string keeps the particle out of the shape
        prior, e.g. one touching the border).
    settings : KineticsSettings or mapping, optional
        ``shape_pooling``, ``min_pooled_curves`` and the options of
        :func:`analyze_particle`.
    mapper : callable
        Map-like callable running the per-particle loops (fits of every
        particle, refits, whole-trace fits), e.g. ``Executor.map`` of a
        process pool: it receives a module-level function and chunks of
        particles, and must return the results in order. Default: the builtin
        :func:`map` (serial). The numbers do not depend on it.

    Returns
    -------
    PopulationKinetics
        Never raises for bad data (a particle whose fit cannot be determined
        is flagged with its reason in ``table['exclusion_reason']``).
    """
    s = KineticsSettings.from_any(settings, error=KineticsInputError)
    sizes, size_errs, informative = _particle_lookups(particles)
    inputs = list(_per_particle_inputs(traces, frame_time_s))
    first_pass = functools.partial(_first_pass, cycles=cycles, exposure_s=exposure_s, settings=s)
    items = [(pid, t, y, sizes.get(pid), size_errs.get(pid)) for pid, t, y in inputs]
    first = dict(zip([i[0] for i in inputs], map_particles(mapper, first_pass, items), strict=True))
    del inputs, items  # each particle's trace: its result keeps what it needs
    first = _lean_traces(first)
    priors: dict[str, ShapePrior] = {}
    flags: list[str] = []
    if s.shape_pooling and s.model != "mono" and first:
        priors = estimate_shape_priors(
            (pk for pid, pk in first.items() if informative.get(pid, True)),
            min_curves=s.min_pooled_curves,
            mapper=mapper,
        )
        flags += [f"{ph}:not_pooled" for ph in ("pol", "rec") if ph not in priors]
    results = first
    if priors:
        refits = map_particles(mapper, functools.partial(refit_particle, shape_priors=priors), first.values())
        results = dict(zip(first, refits, strict=True))
        del first  # replaced: not held beside the refits through the whole-trace fits
    trace_shape = None
    if s.fit_method == "trace" and s.model != "mono" and s.correct_bleaching and results:
        results, trace_shape = refine_population(results, informative, mapper=mapper)
    table, se_cycles = _population_tables(results)
    return PopulationKinetics(
        table=table,
        particles=results,
        shape_priors=priors,
        se_cycles=se_cycles,
        flags=tuple(flags),
        trace_shape=trace_shape,
    )


def _lean_traces(results: dict) -> dict:
    """The first-pass results keeping of each particle's trace only what the later passes read (the
    times and the raw intensity: the whole-trace fits), the particles with the same frame times
    sharing one array of them (the results of worker processes come back each with its own copy):
    at 8000 frames x 200 particles 26 MB less held through the refits. The numbers are the same."""
    out = {}
    times: np.ndarray | None = None
    for pid, pk in results.items():
        ctx = pk._context
        if ctx is None:
            out[pid] = pk
            continue
        t = ctx.time_s
        if t is not None and times is not None and t.dtype == times.dtype and t.tobytes() == times.tobytes():
            t = times  # the same values, bit for bit: one array
        elif t is not None:
            times = t
        lean = dataclasses.replace(ctx, time_s=t, norm_intensity=None)  # norm_intensity: read by no pass
        out[pid] = dataclasses.replace(pk, _context=lean)
    return out


def _first_pass(item: tuple, *, cycles: pd.DataFrame, exposure_s: float, settings: KineticsSettings):
    """:func:`analyze_particle` of one ``(particle_id, time_s, intensity, size_nm, size_err_nm)``."""
    pid, t, y, size_nm, size_err_nm = item
    return analyze_particle(
        t,
        y,
        cycles,
        exposure_s=exposure_s,
        settings=settings,
        particle_id=pid,
        size_nm=size_nm,
        size_err_nm=size_err_nm,
    )


def _particle_lookups(particles: pd.DataFrame | None) -> tuple[dict, dict, dict]:
    """``particle_id ->`` size, size error and whether it informs the shape prior (not excluded)."""
    sizes, size_errs, informative = {}, {}, {}
    if particles is not None and len(particles):
        p = particles.drop_duplicates("particle_id").set_index("particle_id")
        if "size_nm" in p.columns:
            sizes = p["size_nm"].astype(float).to_dict()
        if "size_err_nm" in p.columns:
            size_errs = p["size_err_nm"].astype(float).to_dict()
        if "excluded" in p.columns:
            informative = (p["excluded"].fillna("").astype(str) == "").to_dict()
    return sizes, size_errs, informative


def _population_tables(results: Mapping) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The kinetics table (sorted by particle and field) and the per-cycle switching efficiencies."""
    tables = [pk.table for pk in results.values() if len(pk.table)]
    if tables:
        table = pd.concat(tables, ignore_index=True)
        table = table.sort_values(["particle_id", "field_kV_per_cm"], kind="stable").reset_index(drop=True)
    else:
        table = pd.DataFrame(columns=list(KINETICS_COLUMNS))
    se = [pk.se_cycles for pk in results.values() if len(pk.se_cycles)]
    se_cycles = pd.concat(se, ignore_index=True) if se else pd.DataFrame(columns=list(SE_CYCLE_COLUMNS))
    return table, se_cycles
