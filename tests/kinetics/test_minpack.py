"""The compiled MINPACK ``lmder`` of the decay fits against ``scipy.optimize.leastsq`` (issue 16).

:func:`plscope.kinetics._lsq.leastsq` runs MINPACK's ``lmder`` compiled (:mod:`plscope.kinetics._minpack`,
a translation of SciPy's) instead of calling it through ``scipy.optimize.leastsq`` with Python
callbacks. The reference here is SciPy's own ``lmder`` on the same residuals and Jacobian, with
the evaluations counted and capped as lmfit counts them; the curves come from this file's own
forward model (brute-force exposure averaging, seeded noise). The two must agree bit for bit:
the same iterates, solution, covariance, statistics and messages, aborted fits included.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import leastsq as scipy_leastsq

from plscope.kinetics import _lsq, fits

EXPOSURE_S = 0.08
T_S = np.arange(0.05, 12.0, 0.1)  # 120 points


def _response(t, tau1, tau2, frac, step, i0, exposure_s):
    """Box average over the exposure of ``i0 + step (f e^{-t/tau1} + (1-f) e^{-t/tau2})``."""
    sub = np.linspace(-0.5, 0.5, 201) * exposure_s
    tt = t[:, None] + sub[None, :]
    inst = i0 + step * (frac * np.exp(-tt / tau1) + (1 - frac) * np.exp(-tt / tau2))
    return np.trapezoid(inst, sub, axis=1) / exposure_s


class _Aborted(Exception):
    pass


class _Callbacks:
    """scipy's callbacks on the compiled residuals and Jacobian, counting evaluations as lmfit does
    (from -2; each forward difference one evaluation; the Jacobian's shape check not counted)."""

    def __init__(self, data, par, n, m, max_nfev):
        self.data, self.par, self.n, self.m, self.max_nfev = data, par, n, m, max_nfev
        self.nfev, self.checked, self.last = -2, False, None

    def fcn(self, q):
        self.nfev += 1
        if self.nfev > self.max_nfev:
            self.last = q.copy()
            raise _Aborted
        r = np.empty(self.m)
        if not _lsq._residuals(q, self.data, self.par, r):
            raise ValueError("non-finite residual")
        return r

    def dfun(self, q):
        n = self.n
        n_eval = n if not self.checked else min(n, self.max_nfev - self.nfev)
        jac = np.empty((n, self.m))
        if _lsq._fd_jacobian(q, self.data, self.par, n_eval, jac) >= 0:
            raise ValueError("non-finite residual")
        if self.checked:
            self.nfev += n_eval
            if n_eval < n:
                x = q.copy()
                x[n_eval] += _lsq._step(x[n_eval], math.sqrt(max(_lsq._EPSFCN, _lsq._EPSMCH)))
                self.last = x
                raise _Aborted
        self.checked = True
        return jac


def _scipy_reference(kind, t, y, w, exposure_s, p0, lo, hi, *, max_nfev, prior=None, scale_covar=True):
    """:func:`plscope.kinetics._lsq.leastsq` with SciPy's ``lmder`` (Python callbacks)."""
    data = np.vstack([t, y, np.ones(t.size) if w is None else w]).astype(float)
    pr = prior if prior is not None else (0.0, 1.0, 0.0, 1.0)
    par = np.array([kind, exposure_s, *lo, *hi, *pr], dtype=float)
    n, m = len(p0), t.size + (2 if kind == _lsq.POOLED else 0)
    cb = _Callbacks(data, par, n, m, max_nfev)
    try:
        best, cov, _, _, ier = scipy_leastsq(
            cb.fcn,
            _lsq._internal(p0, lo, hi),
            Dfun=cb.dfun,
            full_output=True,
            col_deriv=True,
            ftol=_lsq._FTOL,
            xtol=_lsq._XTOL,
            gtol=_lsq._GTOL,
            maxfev=2 * max_nfev,
            factor=_lsq._FACTOR,
        )
    except _Aborted:
        best, cov, ier = cb.last, None, -1
    return _lsq._result(kind, best, cov, ier, data, par, scale_covar)


def _problems():
    """Decays and rises, one and two components, three noise levels, weighted and unweighted, from
    the three starts of the free biexponential, the monoexponential's and the pooled model's."""
    rng = np.random.default_rng(16)
    bounds = (0.03, 60.0)
    out = []
    for k in range(24):
        tau = rng.uniform(0.5, 4.0)
        ratio = (1.0, 3.0, 6.0)[k % 3]
        frac = rng.uniform(0.3, 0.7)
        tau1 = tau / (frac + (1 - frac) * ratio)
        step = rng.choice([-1.0, 1.0]) * rng.uniform(0.1, 0.4)
        noise = (2e-3, 1e-2, 3e-2)[k % 3]
        y = _response(T_S, tau1, ratio * tau1, frac, step, 0.8, EXPOSURE_S) + rng.normal(0, noise, T_S.size)
        w = None if k % 2 else np.full(T_S.size, 1.0 / noise)
        est = fits._initial_estimates(T_S, y, bounds)
        start = fits._biexp_start(est, bounds, *fits._BIEXP_STARTS[k % 3])
        out.append((_lsq.BIEXP, y, w, start, None))
        out.append((_lsq.MONO, y, w, fits._mono_start(est, bounds), None))
        if k % 4 == 0:
            prior = (0.5, 0.1, math.log(3.0), 0.2)
            shape = fits.ShapePrior(*prior)
            start = fits._pooled_start(*est, shape, bounds, math.log(bounds[1] / bounds[0]))
            out.append((_lsq.POOLED, y, np.full(T_S.size, 1.0 / noise), start, prior))
    return out


def _assert_identical(fast: _lsq.LsqFit, ref: _lsq.LsqFit) -> None:
    assert fast.values == ref.values
    assert fast.stderr == ref.stderr
    assert (fast.covar is None) == (ref.covar is None)
    if ref.covar is not None:
        np.testing.assert_array_equal(fast.covar, ref.covar)
    assert (fast.success, fast.errorbars, fast.message) == (ref.success, ref.errorbars, ref.message)
    assert (fast.chisqr, fast.redchi, fast.aic, fast.bic) == (ref.chisqr, ref.redchi, ref.aic, ref.bic)
    np.testing.assert_array_equal(fast.residual, ref.residual)


def test_compiled_lmder_is_scipys_bit_for_bit():
    n_fits = 0
    for kind, y, w, (p0, lo, hi), prior in _problems():
        args = (kind, T_S, y, w, EXPOSURE_S, p0, lo, hi)
        nfev = fits._MAX_NFEV_PER_PARAM * (len(p0) + 1)
        _assert_identical(
            _lsq.leastsq(*args, max_nfev=nfev, prior=prior, scale_covar=prior is None),
            _scipy_reference(*args, max_nfev=nfev, prior=prior, scale_covar=prior is None),
        )
        n_fits += 1
    assert n_fits == 54


@pytest.mark.parametrize("max_nfev", [0, 1, 3, 7, 12, 20, 33])
def test_aborted_fits_end_where_scipys_do(max_nfev):
    """Aborted inside the first Jacobian, between iterations, inside a later Jacobian."""
    for kind, y, w, (p0, lo, hi), _prior in _problems()[:6]:
        args = (kind, T_S, y, w, EXPOSURE_S, p0, lo, hi)
        fast, ref = _lsq.leastsq(*args, max_nfev=max_nfev), _scipy_reference(*args, max_nfev=max_nfev)
        _assert_identical(fast, ref)


def test_non_finite_residuals_raise_like_scipys_path():
    y = _response(T_S, 1.0, 3.0, 0.5, 0.3, 0.8, EXPOSURE_S)
    start = ((0.7, 0.3, 1.0), (-np.inf, -np.inf, 0.06), (np.inf, np.inf, 100.0))
    for t in (T_S - 1e4, T_S):  # overflowing at the start / fine
        y_bad = y.copy()
        if t is T_S:
            y_bad[5] = np.inf  # a non-finite data point makes every residual sum non-finite
        for solver in (_lsq.leastsq, _scipy_reference):
            with pytest.raises(ValueError):
                solver(_lsq.MONO, t, y_bad, None, 0.0, *start, max_nfev=400)
