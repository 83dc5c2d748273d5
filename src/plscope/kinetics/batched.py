"""Many biexponential decays in one batched Levenberg-Marquardt fit.

:func:`fit_biexponentials` fits the model of
:func:`~plscope.kinetics.fits.biexponential`,

.. math::

    y(t) = i_0 + A\\,[f\\,X_1 e^{-t/\\tau_1} + (1-f)\\,X_2 e^{-t/\\tau_2}],

(``X_i`` the exposure factor of :func:`~plscope.kinetics.fits.exposure_factor`)
to every row of an array of curves sharing their time axis. One compiled
kernel (numba) runs the Levenberg-Marquardt iterations of every curve in
turn, each with its own damping and stop: the closed-form Jacobian goes
straight into the 5 x 5 normal equations (no per-point arrays, no Python
per iteration), which a Cholesky factorization solves. Parameters inside
the fit are ``i0, A, f, ln tau1, ln tau2`` (the logarithms keep the times
positive and the steps well scaled); ``f`` is kept in [0, 1] and the times in
``tau_bounds_s`` by projecting each trial step. The components are ordered
(``tau1 <= tau2``) afterwards. Errors come from the inverse of ``J^T J``
scaled by the reduced chi-square (as lmfit's default ``scale_covar``); the
amplitude-weighted ``tau = f tau1 + (1 - f) tau2`` takes its error through
its exact gradient.

This is the throughput path for many curves (benchmarks, exploratory
analyses); the per-curve :func:`~plscope.kinetics.fits.fit_biexponential`
(three starts, BIC selection against the monoexponential, the flags of
:class:`~plscope.kinetics.fits.DecayFit`) remains the reference of the
kinetics tables.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import pandas as pd

from ._checks import KineticsInputError
from .fits import default_tau_bounds_s

__all__ = ["BIEXP_FIT_COLUMNS", "fit_biexponentials"]

BIEXP_FIT_COLUMNS = (
    "tau_s",
    "tau_err_s",
    "tau1_s",
    "tau2_s",
    "frac",
    "i0",
    "amplitude",
    "redchi",
    "n_iter",
    "fit_ok",
)
"""Columns of :func:`fit_biexponentials` (one row per curve)."""

_LAMBDA0 = 1e-3
_LAMBDA_MAX = 1e12
_K = 5


@numba.njit(cache=True, nogil=True)
def _factor(tau: float, e: float):  # pragma: no cover (numba)
    """Exposure factor ``X = sinh(x) / x`` (``x = e / (2 tau)``) and ``d ln X / d ln tau``."""
    x = e / (2.0 * tau)
    if abs(x) < 1e-4:
        return 1.0 + x * x / 6.0, -x * x / 3.0
    return math.sinh(x) / x, 1.0 - x / math.tanh(x)


@numba.njit(cache=True, nogil=True)
def _residuals(p, t, y, w, e, r, e1, e2) -> float:  # pragma: no cover (numba)
    """Weighted residuals ``(y - model) w`` into ``r`` (``exp(-t / tau_i)`` into ``e1, e2``); their
    sum of squares."""
    tau1, tau2 = math.exp(p[3]), math.exp(p[4])
    x1, _ = _factor(tau1, e)
    x2, _ = _factor(tau2, e)
    a1, a2 = p[1] * p[2] * x1, p[1] * (1.0 - p[2]) * x2
    cost = 0.0
    for i in range(t.size):
        e1[i] = math.exp(-t[i] / tau1)
        e2[i] = math.exp(-t[i] / tau2)
        r[i] = (y[i] - p[0] - a1 * e1[i] - a2 * e2[i]) * w[i]
        cost += r[i] * r[i]
    return cost


@numba.njit(cache=True, nogil=True)
def _normal(p, t, w, e, r, e1, e2, jtj, grad) -> None:  # pragma: no cover (numba)
    """``J^T J`` and ``J^T r`` of the weighted model in ``(i0, A, f, ln tau1, ln tau2)`` (closed form;
    ``e1, e2``: ``exp(-t / tau_i)`` at ``p``)."""
    tau1, tau2 = math.exp(p[3]), math.exp(p[4])
    x1, d1 = _factor(tau1, e)
    x2, d2 = _factor(tau2, e)
    a, f = p[1], p[2]
    jtj[:, :] = 0.0
    grad[:] = 0.0
    j = np.empty(_K)
    for i in range(t.size):
        g1, g2 = x1 * e1[i], x2 * e2[i]
        j[0] = w[i]
        j[1] = (f * g1 + (1.0 - f) * g2) * w[i]
        j[2] = a * (g1 - g2) * w[i]
        j[3] = a * f * g1 * (t[i] / tau1 + d1) * w[i]
        j[4] = a * (1.0 - f) * g2 * (t[i] / tau2 + d2) * w[i]
        for k in range(_K):
            grad[k] += j[k] * r[i]
            for m in range(k + 1):
                jtj[k, m] += j[k] * j[m]
    for k in range(_K):
        for m in range(k):
            jtj[m, k] = jtj[k, m]


@numba.njit(cache=True, nogil=True)
def _solve_spd(a, b, x) -> bool:  # pragma: no cover (numba)
    """``x = a^-1 b`` by Cholesky (a symmetric positive definite, overwritten); False if not SPD."""
    n = b.size
    for k in range(n):
        s = a[k, k]
        for m in range(k):
            s -= a[k, m] * a[k, m]
        if not (s > 0.0):
            return False
        a[k, k] = math.sqrt(s)
        for i in range(k + 1, n):
            s = a[i, k]
            for m in range(k):
                s -= a[i, m] * a[k, m]
            a[i, k] = s / a[k, k]
    for i in range(n):
        s = b[i]
        for m in range(i):
            s -= a[i, m] * x[m]
        x[i] = s / a[i, i]
    for i in range(n - 1, -1, -1):
        s = x[i]
        for m in range(i + 1, n):
            s -= a[m, i] * x[m]
        x[i] = s / a[i, i]
    return True


@numba.njit(cache=True, nogil=True)
def _lm_curves(t, y, w, p0, e, log_lo, log_hi, max_iter, ftol, xtol):  # pragma: no cover (numba)
    """Levenberg-Marquardt of every curve (rows), the damping and stop per curve.

    Returns ``(params, cost, n_iter, converged, jtj)``; ``jtj`` at the solution.
    """
    n, m = y.shape
    params = p0.copy()
    cost = np.full(n, np.nan)
    n_iter = np.zeros(n, np.int64)
    conv = np.zeros(n, np.bool_)
    jtj_out = np.full((n, _K, _K), np.nan)
    r, r_new = np.empty(m), np.empty(m)
    e1, e2, e1_new, e2_new = np.empty(m), np.empty(m), np.empty(m), np.empty(m)
    jtj, grad, a = np.empty((_K, _K)), np.empty(_K), np.empty((_K, _K))
    step, trial = np.empty(_K), np.empty(_K)
    for c in range(n):
        p = params[c]
        cst = _residuals(p, t, y[c], w[c], e, r, e1, e2)
        if not np.isfinite(cst):
            continue
        lam, stale = _LAMBDA0, True
        for _ in range(max_iter):
            if stale:
                _normal(p, t, w[c], e, r, e1, e2, jtj, grad)
                stale = False
            top = 0.0
            for k in range(_K):
                top = max(top, jtj[k, k])
            a[:, :] = jtj
            for k in range(_K):
                a[k, k] += lam * max(jtj[k, k], 1e-12 * (top + 1e-300))
            solved = _solve_spd(a, grad, step)
            for k in range(_K):
                trial[k] = p[k] + step[k] if solved else p[k]
            trial[2] = min(max(trial[2], 0.0), 1.0)
            trial[3] = min(max(trial[3], log_lo), log_hi)
            trial[4] = min(max(trial[4], log_lo), log_hi)
            c_new = _residuals(trial, t, y[c], w[c], e, r_new, e1_new, e2_new)
            n_iter[c] += 1
            if solved and np.isfinite(c_new) and c_new <= cst:
                small_f = cst - c_new <= ftol * max(cst, 1e-300)
                small_x = True
                for k in range(_K):
                    if abs(trial[k] - p[k]) > xtol * (abs(p[k]) + xtol):
                        small_x = False
                p[:] = trial
                r[:] = r_new
                e1[:] = e1_new
                e2[:] = e2_new
                cst = c_new
                lam = max(lam * 0.2, 1e-15)
                stale = True
                if small_f or small_x:
                    conv[c] = True
                    break
            else:
                lam *= 10.0
                if lam > _LAMBDA_MAX:
                    conv[c] = True  # no damped step lowers the cost: at the minimum (to rounding)
                    break
        cost[c] = cst
        _normal(p, t, w[c], e, r, e1, e2, jtj, grad)
        jtj_out[c] = jtj
    return params, cost, n_iter, conv, jtj_out


def _start(t: np.ndarray, y: np.ndarray, bounds: tuple[float, float]) -> np.ndarray:
    """Start of every curve (rows of ``y``): the offset, step and area time of
    :func:`~plscope.kinetics.fits._initial_estimates`, vectorized; ``tau1 = 0.3 tau``,
    ``f = 0.5`` and ``tau2`` keeping the mean time."""
    n = t.size
    lo, hi = bounds
    i0 = np.median(y[:, -max(3, n // 6) :], axis=1)
    nhead = max(2, min(4, n // 10))
    t_head, y_head = float(np.mean(t[:nhead])), np.mean(y[:, :nhead], axis=1)
    step = y_head - i0
    with np.errstate(all="ignore"):
        area = np.sum(0.5 * (y[:, 1:] + y[:, :-1] - 2.0 * i0[:, None]) * np.diff(t)[None, :], axis=1)
        ratio = area / step
    tau = np.where((step != 0.0) & np.isfinite(ratio) & (ratio > 0), ratio, math.sqrt(lo * hi))
    tau = np.clip(tau, 2.0 * lo, 0.5 * hi)
    amp = step * np.exp(np.minimum(t_head / tau, 20.0))
    tau1 = np.clip(0.3 * tau, lo * 1.01, hi * 0.5)
    tau2 = np.clip(2.0 * tau - tau1, tau1 * 1.05, hi * 0.99)
    return np.column_stack([i0, amp, np.full(i0.size, 0.5), np.log(tau1), np.log(tau2)])


def _errors(params, jtj, redchi):
    """Standard errors of ``(i0, A, f, ln tau1, ln tau2)`` and the gradient-propagated error of tau."""
    cov = np.full_like(jtj, np.nan)
    with np.errstate(all="ignore"):
        d = np.sqrt(np.abs(np.diagonal(jtj, axis1=1, axis2=2)))
        d = np.where(d > 0, d, 1.0)
        scaled = jtj / (d[:, :, None] * d[:, None, :])
        finite = np.all(np.isfinite(scaled), axis=(1, 2))
        good = finite & (np.linalg.cond(np.where(finite[:, None, None], scaled, np.eye(_K))) < 1e14)
        if good.any():
            cov[good] = np.linalg.inv(scaled[good]) / (d[good][:, :, None] * d[good][:, None, :])
        cov *= redchi[:, None, None]
    f, tau1, tau2 = params[:, 2], np.exp(params[:, 3]), np.exp(params[:, 4])
    g = np.zeros((params.shape[0], _K))
    g[:, 2], g[:, 3], g[:, 4] = tau1 - tau2, f * tau1, (1.0 - f) * tau2
    var = np.einsum("nk,nkl,nl->n", g, cov, g)
    tau_err = np.where(var >= 0, np.sqrt(np.abs(var)), np.nan)
    return np.sqrt(np.abs(np.diagonal(cov, axis1=1, axis2=2))), tau_err


def fit_biexponentials(
    t_s,
    y,
    *,
    sigma=None,
    exposure_s: float = 0.0,
    tau_bounds_s: tuple[float, float] | None = None,
    max_iter: int = 200,
    ftol: float = 1e-10,
    xtol: float = 1e-10,
) -> pd.DataFrame:
    """Fit a biexponential decay to every row of ``y`` (one batched Levenberg-Marquardt).

    Parameters
    ----------
    t_s : array_like, shape (m,)
        Time from the switching edge to mid-exposure, shared by all curves, s.
    y : array_like, shape (n, m)
        One curve per row. A row with a non-finite value is not fitted
        (``fit_ok`` false, NaN elsewhere).
    sigma : array_like, shape (n, m), (m,) or float, optional
        Standard errors (weights ``1/sigma``); default unweighted.
    exposure_s : float
        Frame exposure, s (the model averages over it).
    tau_bounds_s : (float, float), optional
        Range of both time constants; default 0.3 x sample interval to 5 x window.
    max_iter, ftol, xtol
        Iterations per curve; stop when an accepted step lowers the sum of
        squares by less than ``ftol`` relative or moves every parameter by
        less than ``xtol`` relative.

    Returns
    -------
    pandas.DataFrame
        One row per curve, columns :data:`BIEXP_FIT_COLUMNS`: the
        amplitude-weighted ``tau_s`` and its error, the components
        (``tau1_s <= tau2_s``, ``frac`` the fast one's share of the step),
        ``i0``, ``amplitude`` (step at ``t = 0``), ``redchi``, ``n_iter`` and
        ``fit_ok``: converged with finite errors, ``0 < frac < 1``, both
        times inside the bounds, a step above 3 standard errors and
        ``tau_err_s <= 0.5 tau_s``.

    Raises
    ------
    KineticsInputError
        If the shapes do not match (never for bad data).
    """
    t = np.asarray(t_s, dtype=float).ravel()
    yy = np.atleast_2d(np.asarray(y, dtype=float))
    if yy.shape[1] != t.size:
        raise KineticsInputError(f"y has {yy.shape[1]} points per curve but t_s has {t.size}")
    w_all = np.broadcast_to(1.0 / np.asarray(1.0 if sigma is None else sigma, dtype=float), yy.shape)
    lo, hi = tuple(float(b) for b in (tau_bounds_s or default_tau_bounds_s(t)))
    if not (0 < lo < hi < np.inf):
        raise KineticsInputError(f"tau_bounds_s: expected 0 < lo < hi < inf, got {tau_bounds_s!r}")
    out = pd.DataFrame(np.nan, index=range(yy.shape[0]), columns=list(BIEXP_FIT_COLUMNS))
    out["n_iter"], out["fit_ok"] = 0, False
    usable = np.all(np.isfinite(yy), axis=1) & np.all(np.isfinite(w_all) & (w_all > 0), axis=1)
    if t.size <= _K:
        return out
    log_bounds = (float(np.log(lo)), float(np.log(hi)))
    rows = np.flatnonzero(usable)
    yb, wb = np.ascontiguousarray(yy[rows]), np.ascontiguousarray(w_all[rows])
    p, cost, n_iter, conv, jtj = _lm_curves(
        t, yb, wb, _start(t, yb, (lo, hi)), float(exposure_s), *log_bounds, int(max_iter), ftol, xtol
    )
    redchi = cost / (t.size - _K)
    err, tau_err = _errors(p, jtj, redchi)
    _store(out, rows, p, err, tau_err, redchi, n_iter, conv, log_bounds)
    return out


def _store(out, rows, p, err, tau_err, redchi, n_iter, conv, log_bounds) -> None:
    """Components ordered (``tau1 <= tau2``), the verdict, into ``out``."""
    swap = p[:, 3] > p[:, 4]
    f = np.where(swap, 1.0 - p[:, 2], p[:, 2])
    lt1, lt2 = np.where(swap, p[:, 4], p[:, 3]), np.where(swap, p[:, 3], p[:, 4])
    tau1, tau2 = np.exp(lt1), np.exp(lt2)
    tau = f * tau1 + (1.0 - f) * tau2
    edge = 1e-3 * (log_bounds[1] - log_bounds[0])
    ok = (
        conv
        & np.all(np.isfinite(err), axis=1)
        & np.isfinite(tau_err)
        & (f > 1e-3)
        & (f < 1 - 1e-3)
        & (lt1 > log_bounds[0] + edge)
        & (lt2 < log_bounds[1] - edge)
        & (np.abs(p[:, 1]) > 3.0 * err[:, 1])
        & (tau_err <= 0.5 * tau)
    )
    cols = {
        "tau_s": tau,
        "tau_err_s": tau_err,
        "tau1_s": tau1,
        "tau2_s": tau2,
        "frac": f,
        "i0": p[:, 0],
        "amplitude": p[:, 1],
        "redchi": redchi,
        "n_iter": n_iter,
        "fit_ok": ok,
    }
    for name, v in cols.items():
        out.loc[rows, name] = v
