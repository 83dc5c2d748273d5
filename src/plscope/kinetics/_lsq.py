"""lmfit's ``leastsq`` for the decay models without lmfit's per-evaluation Python overhead.

:func:`leastsq` solves the bounded least-squares problems of
:mod:`plscope.kinetics.fits` the way ``lmfit.minimize(..., method='leastsq')``
does -- the same MINPACK Levenberg-Marquardt (``lmder`` as ``scipy.optimize.leastsq``
runs it), the same MINUIT-style bound transformation of every parameter, the same
options (``ftol = xtol = 1.5e-8``, ``gtol = 0``, ``epsfcn = 1e-10``, ``factor = 100``),
the same cap on the number of evaluations, the same covariance (MINPACK's,
taken to the external parameters by the transformation's gradient and scaled
by the reduced chi-square) and the same statistics and messages. What changes
is where the time goes: the residuals are one compiled (numba) function of the
internal parameters instead of lmfit's ``Parameters`` machinery, the
forward-difference Jacobian that MINPACK's ``lmdif`` would build from ``n``
calls is built by the compiled :func:`_fd_jacobian` in one (``lmder`` then takes
exactly ``lmdif``'s steps), and ``lmder`` itself is compiled (:mod:`._minpack`, a
translation of SciPy's): one call per fit instead of ~40 Python callbacks from C.
The iterates are SciPy's bit for bit, with one exception: SciPy 1.17's ``qrfac``
recomputes a column norm that lost its accuracy over one element past the column,
which for the last column is past the end of the matrix (memory it does not own, so
its result there varies from run to run); here that element is 0. The path is lmfit's
up to rounding (numba's ``exp`` against numpy's vectorized one): well-determined
fits end within 1e-3 standard errors of lmfit's; a degenerate fit wanders
along its flat valley as lmfit's does (see ``tests/kinetics/test_fits_engine.py``).

lmfit stays the documented reference: :func:`plscope.kinetics.fits.lmfit_leastsq`
runs the same problem through ``lmfit.minimize`` and returns the same :class:`LsqFit`.

Models (``kind``; parameters in this order):

- ``MONO``: ``i0, amplitude, tau`` -- :func:`~plscope.kinetics.fits.monoexponential`;
- ``BIEXP``: ``i0, amplitude, frac, tau1, dtau`` -- :func:`~plscope.kinetics.fits.biexponential`;
- ``POOLED``: ``i0, amplitude, tau, frac, log_ratio`` --
  :func:`~plscope.kinetics.fits.biexponential_mean_tau` plus the two prior residuals
  ``(frac - f0) / sf`` and ``(log_ratio - rho0) / srho``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np
import scipy.linalg

from . import _minpack

MONO, BIEXP, POOLED = 0, 1, 2
PARAM_NAMES = {
    MONO: ("i0", "amplitude", "tau"),
    BIEXP: ("i0", "amplitude", "frac", "tau1", "dtau"),
    POOLED: ("i0", "amplitude", "tau", "frac", "log_ratio"),
}
_TINY = 1.0e-15  # lmfit.lineshapes.tiny: internal start values below it are set to 0

# lmfit's leastsq options (lmfit.Minimizer.leastsq)
_FTOL = 1.5e-8
_XTOL = 1.5e-8
_GTOL = 0.0
_FACTOR = 100.0
_EPSFCN = 1.0e-10
_EPSMCH = 2.220446049250313e-16  # MINPACK dpmpar(1)


@dataclass(frozen=True)
class LsqFit:
    """What the decay fits use of an lmfit ``MinimizerResult`` (same names and meaning).

    ``values`` and ``stderr`` map parameter names to values and standard errors
    (``stderr`` None when MINPACK gave no covariance); ``covar`` is the scaled
    covariance in the order of ``var_names`` (None without error bars).
    """

    values: dict
    stderr: dict
    covar: np.ndarray | None
    var_names: tuple
    lo: dict
    hi: dict
    success: bool
    errorbars: bool
    message: str
    chisqr: float
    redchi: float
    aic: float
    bic: float
    ndata: int
    residual: np.ndarray
    data: np.ndarray
    best_fit: np.ndarray


class _NonFinite(ValueError):
    """A non-finite residual (lmfit's nan_policy='raise')."""


# --------------------------------------------------------------------------
# compiled model, residuals and Jacobian
# --------------------------------------------------------------------------


@numba.njit(cache=True, nogil=True)
def _xfactor(tau, e):  # pragma: no cover (numba)
    """:func:`~plscope.kinetics.fits.exposure_factor` of a scalar time constant."""
    x = e / (2.0 * tau) if tau != 0.0 else math.inf
    if abs(x) < 1e-4:
        return 1.0 + x * x / 6.0
    return math.sinh(x) / x if abs(x) < 700.0 else math.inf


@numba.njit(cache=True, nogil=True)
def _external(q, lo, hi, v):  # pragma: no cover (numba)
    """lmfit's internal -> external transform (``Parameter.from_internal``, then clipped to the
    bounds like ``Parameter.value``) of every parameter into ``v``."""
    for k in range(q.size):
        a, b, x = lo[k], hi[k], q[k]
        if a == -math.inf and b == math.inf:
            val = x
        elif b == math.inf:
            val = a - 1.0 + math.sqrt(x * x + 1.0)
        elif a == -math.inf:
            val = b + 1.0 - math.sqrt(x * x + 1.0)
        else:
            val = a + (math.sin(x) + 1.0) * (b - a) / 2.0
        v[k] = min(max(val, a), b)


@numba.njit(cache=True, nogil=True)
def _components(q, par):  # pragma: no cover (numba)
    """``(i0, a1, tau1, a2, tau2)`` of the model at internal parameters ``q``: offset,
    exposure-scaled amplitudes (the same products as the numpy model functions) and times."""
    nq = q.size
    kind, e = int(par[0]), par[1]
    v = np.empty(nq)
    _external(q, par[2 : 2 + nq], par[2 + nq : 2 + 2 * nq], v)
    if kind == MONO:
        return v[0], v[1] * _xfactor(v[2], e), v[2], 0.0, 1.0
    if kind == BIEXP:
        tau1, tau2 = v[3], v[3] + v[4]
        f = v[2]
    else:
        ratio = math.exp(v[4])
        f = v[3]
        tau1 = v[2] / (f + (1.0 - f) * ratio)
        tau2 = ratio * tau1
    return v[0], v[1] * (f * _xfactor(tau1, e)), tau1, v[1] * ((1.0 - f) * _xfactor(tau2, e)), tau2


@numba.njit(cache=True, nogil=True)
def _decays(t, tau, out):  # pragma: no cover (numba)
    """``exp(-t / tau)`` into ``out``."""
    for i in range(t.size):
        out[i] = math.exp(-t[i] / tau)


@numba.njit(cache=True, nogil=True)
def _combine(q, par, data, comp, e1, e2, out):  # pragma: no cover (numba)
    """Residuals ``(i0 + a1 e1 + a2 e2 - y) w`` (and the pooled model's two prior residuals) into
    ``out``; False if their sum is not finite (lmfit's ``nan_policy='raise'`` test)."""
    i0, a1, _, a2, _ = comp
    kind = int(par[0])
    y, w = data[1], data[2]
    total = 0.0
    for i in range(y.size):
        m = i0 + a1 * e1[i]
        if kind != MONO:
            m += a2 * e2[i]
        out[i] = (m - y[i]) * w[i]
        total += out[i]
    if kind == POOLED:
        nq = q.size
        v = np.empty(nq)
        _external(q, par[2 : 2 + nq], par[2 + nq : 2 + 2 * nq], v)
        prior = par[2 + 2 * nq :]
        out[y.size] = (v[3] - prior[0]) / prior[1]
        out[y.size + 1] = (v[4] - prior[2]) / prior[3]
        total += out[y.size] + out[y.size + 1]
    return math.isfinite(total)


@numba.njit(cache=True, nogil=True)
def _residuals(q, data, par, out):  # pragma: no cover (numba)
    """Weighted residuals ``(model - y) w`` at internal parameters ``q`` into ``out``; False if
    their sum is not finite.

    ``data`` rows: ``t, y, w``; ``par``: ``kind, exposure, lo (q.size), hi (q.size), prior (4)``."""
    comp = _components(q, par)
    t = data[0]
    e1, e2 = np.empty(t.size), np.empty(t.size)
    _decays(t, comp[2], e1)
    if int(par[0]) != MONO:
        _decays(t, comp[4], e2)
    return _combine(q, par, data, comp, e1, e2, out)


@numba.njit(cache=True, nogil=True)
def _step(x, eps):  # pragma: no cover (numba)
    """MINPACK ``fdjac2``'s forward-difference step of a parameter at ``x``."""
    h = eps * abs(x)
    return eps if h == 0.0 else h


@numba.njit(cache=True, nogil=True)
def _fd_jacobian(q, data, par, n_eval, jac):  # pragma: no cover (numba)
    """MINPACK ``fdjac2``: forward differences of :func:`_residuals` over the first ``n_eval``
    parameters into the rows of ``jac`` (``col_deriv`` layout), exactly as ``lmdif`` forms them
    (``h = sqrt(epsfcn) |q_j|``, ``(f(q + h e_j) - f(q)) / h``). A shift that leaves a time
    constant unchanged reuses its ``exp(-t / tau)`` (the same numbers, computed once).

    Returns the index of the first parameter whose shifted residuals are not finite, else -1.
    """
    t = data[0]
    f0, e1, e2 = np.empty(jac.shape[1]), np.empty(t.size), np.empty(t.size)
    base = _components(q, par)
    _decays(t, base[2], e1)
    _decays(t, base[4], e2)
    _combine(q, par, data, base, e1, e2, f0)
    return _fd_columns(q, data, par, n_eval, jac, f0, e1, e2)


@numba.njit(cache=True, nogil=True)
def _evaluate(q, data, par, out, e1, e2):  # pragma: no cover (numba)
    """:func:`_residuals` into ``out``, keeping the decays ``exp(-t / tau)`` in ``e1``, ``e2`` (``e2``
    untouched for the monoexponential) for :func:`_fd_columns` at the same point."""
    comp = _components(q, par)
    t = data[0]
    _decays(t, comp[2], e1)
    if int(par[0]) != MONO:
        _decays(t, comp[4], e2)
    return _combine(q, par, data, comp, e1, e2, out)


@numba.njit(cache=True, nogil=True)
def _fd_columns(q, data, par, n_eval, jac, f0, e1, e2):  # pragma: no cover (numba)
    """:func:`_fd_jacobian` from the residuals ``f0`` and decays ``e1``, ``e2`` at ``q`` (the same
    numbers whether computed here or kept from the evaluation that accepted ``q``)."""
    t = data[0]
    m = jac.shape[1]
    wa, s1, s2 = np.empty(m), np.empty(t.size), np.empty(t.size)
    base = _components(q, par)
    eps = math.sqrt(max(_EPSFCN, _EPSMCH))
    x = q.copy()
    for j in range(n_eval):
        temp = x[j]
        h = _step(temp, eps)
        x[j] = temp + h
        comp = _components(x, par)
        d1, d2 = e1, e2
        if comp[2] != base[2]:
            _decays(t, comp[2], s1)
            d1 = s1
        if comp[4] != base[4]:
            _decays(t, comp[4], s2)
            d2 = s2
        finite = _combine(x, par, data, comp, d1, d2, wa)
        x[j] = temp
        if not finite:
            return j
        for i in range(m):
            jac[j, i] = (wa[i] - f0[i]) / h
    return -1


_DONE, _ABORTED, _NOT_FINITE = 0, 1, 2
_TOLS = np.array([_FTOL, _XTOL, _GTOL, _FACTOR])


@numba.njit(cache=True, nogil=True)
def _lmder(q0, data, par, m, max_nfev, tols):  # pragma: no cover (numba)
    """``scipy.optimize.leastsq(fcn, q0, Dfun=..., col_deriv=True, full_output=True, ...)`` with the
    residuals :func:`_residuals` and the Jacobian :func:`_fd_jacobian`, evaluations counted and capped
    as lmfit does; MINPACK's ``lmder`` (:mod:`._minpack`) compiled.

    lmfit counts every residual evaluation and every forward difference as one evaluation, from -2
    (scipy's shape check and its wrapper's first call included, the shape check of the Jacobian not);
    the evaluation past ``max_nfev`` aborts the fit at the parameters it would have evaluated.

    Returns ``(x, fjac, ipvt, info, status)``: the solution (status ``_DONE``), the parameters where
    lmfit would have aborted (``_ABORTED``) or where a residual was not finite (``_NOT_FINITE``);
    ``fjac`` (``n * m`` column-major, then one padding element) and ``ipvt`` as ``lmder`` leaves them.
    """
    n, size = q0.size, data.shape[1]
    x = q0.copy()
    fvec, e1, e2 = np.empty(m), np.empty(size), np.zeros(size)
    fjac = np.zeros(n * m + 1)
    jac = fjac[: n * m].reshape((n, m))
    ipvt = np.zeros(n, dtype=np.int64)
    # scipy's shape checks call the residuals and the Jacobian at q0 (the Jacobian's call uncounted),
    # then the wrapper and lmder call the residuals again (the same numbers): lmfit's count is then 1
    if not _evaluate(x, data, par, fvec, e1, e2) or _fd_columns(x, data, par, n, jac, fvec, e1, e2) >= 0:
        return x, fjac, ipvt, 0, _NOT_FINITE
    if 1 > max_nfev:
        return x, fjac, ipvt, 0, _ABORTED
    return _lm_loop(x, (fvec, e1, e2), fjac, jac, ipvt, data, par, max_nfev, tols)


@numba.njit(cache=True, nogil=True)
def _jacobian_step(x, base, jac, data, par, n_eval, fresh):  # pragma: no cover (numba)
    """lmder's Jacobian call: ``(status, aborted_at)`` after the forward differences of the first
    ``n_eval`` parameters at ``x`` (``base``: residuals and decays there); ``fresh``: ``jac`` already
    holds them (the shape check's Jacobian at the start point)."""
    n = x.size
    if not fresh and _fd_columns(x, data, par, n_eval, jac, base[0], base[1], base[2]) >= 0:
        return _NOT_FINITE, x
    if n_eval < n:  # lmfit aborts at the next shifted evaluation
        last = x.copy()
        last[n_eval] += _step(last[n_eval], math.sqrt(max(_EPSFCN, _EPSMCH)))
        return _ABORTED, last
    return _DONE, x


@numba.njit(cache=True, nogil=True)
def _lm_loop(x, base, fjac, jac, ipvt, data, par, max_nfev, tols):  # pragma: no cover (numba)
    """:func:`_lmder`'s iterations (MINPACK ``lmder`` from its first evaluation on, ``mode = 1``);
    ``base``: residuals and decays at ``x``."""
    fvec, e1, e2 = base
    n, m, size = x.size, fvec.size, e1.size
    diag, qtf, wa1, wa2, wa3 = np.empty(n), np.empty(n), np.empty(n), np.empty(n), np.empty(n)
    wa4, t1, t2 = np.empty(m), np.empty(size), np.zeros(size)
    lm_nfev, mp_nfev, maxfev = 1, 1, 2 * max_nfev
    fnorm = _minpack.enorm(m, fvec, 0)
    lm_par, it, delta, xnorm = 0.0, 1, 0.0, 0.0
    while True:
        n_eval = min(n, max_nfev - lm_nfev)
        status, last = _jacobian_step(x, (fvec, e1, e2), jac, data, par, n_eval, it == 1 and lm_nfev == 1)
        if status != _DONE:
            return last, fjac, ipvt, 0, status
        lm_nfev += n_eval
        _minpack.qrfac(m, n, fjac, ipvt, wa1, wa2, wa3)
        if it == 1:
            for j in range(n):
                diag[j] = 1.0 if wa2[j] == 0.0 else wa2[j]
                wa3[j] = diag[j] * x[j]
            xnorm = _minpack.enorm(n, wa3, 0)
            delta = tols[3] * xnorm
            if delta == 0.0:
                delta = tols[3]
        gnorm = _minpack.qtf_and_gnorm(m, n, fjac, fvec, fnorm, ipvt, wa1, wa2, wa4, qtf)
        if gnorm <= tols[2]:
            return x, fjac, ipvt, 4, _DONE
        for j in range(n):
            diag[j] = _minpack.fmax(diag[j], wa2[j])
        while True:
            lm_par = _minpack.lmpar(n, fjac, m, ipvt, diag, qtf, delta, lm_par, wa1, wa2, wa3, wa4)
            for j in range(n):
                wa1[j] = -wa1[j]
                wa2[j] = x[j] + wa1[j]
                wa3[j] = diag[j] * wa1[j]
            pnorm = _minpack.enorm(n, wa3, 0)
            if it == 1:
                delta = _minpack.fmin(delta, pnorm)
            lm_nfev += 1
            if lm_nfev > max_nfev:
                return wa2.copy(), fjac, ipvt, 0, _ABORTED
            if not _evaluate(wa2, data, par, wa4, t1, t2):
                return x, fjac, ipvt, 0, _NOT_FINITE
            mp_nfev += 1
            fnorm1 = _minpack.enorm(m, wa4, 0)
            r = fnorm1 / fnorm
            actred = 1.0 - r * r if 0.1 * fnorm1 < fnorm else -1.0
            prered, dirder = _minpack.predicted(m, n, fjac, ipvt, wa1, wa3, lm_par, pnorm, fnorm)
            ratio = actred / prered if prered != 0.0 else 0.0
            delta, lm_par = _minpack.update_bound(ratio, actred, dirder, fnorm1, fnorm, delta, pnorm, lm_par)
            if ratio >= 0.0001:
                for j in range(n):
                    x[j] = wa2[j]
                    wa2[j] = diag[j] * x[j]
                fvec[:] = wa4
                e1, t1 = t1, e1  # the decays at the new x
                e2, t2 = t2, e2
                xnorm = _minpack.enorm(n, wa2, 0)
                fnorm = fnorm1
                it += 1
            info = _minpack.convergence(actred, prered, ratio, delta, xnorm, gnorm, mp_nfev, maxfev, tols)
            if info != 0:
                return x, fjac, ipvt, info, _DONE
            if ratio >= 0.0001:
                break


_TRTRI = scipy.linalg.get_lapack_funcs("trtri", (np.zeros((1, 1)),))  # what leastsq looks up for float64


@numba.njit(cache=True, nogil=True)
def _upper_r(fjac, n, m):  # pragma: no cover (numba)
    """``np.triu(np.transpose(fjac.reshape(n, m))[:n, :])``: the ``r`` of lmder's QR factorization."""
    r = np.zeros((n, n))
    for j in range(n):
        for i in range(j + 1):
            r[i, j] = fjac[i + m * j]
    return r


def _covariance(fjac: np.ndarray, ipvt: np.ndarray, n: int, m: int) -> np.ndarray | None:
    """``scipy.optimize.leastsq``'s ``cov_x`` from ``lmder``'s ``fjac`` and ``ipvt`` (None when ``r``
    is singular)."""
    try:
        inv_r, trtri_info = _TRTRI(_upper_r(fjac, n, m))
        if trtri_info != 0:
            raise np.linalg.LinAlgError(f"trtri returned info {trtri_info}")
        inv_r[ipvt] = inv_r.copy()
        return inv_r @ inv_r.T
    except (np.linalg.LinAlgError, ValueError):
        return None


def _internal(p0, lo, hi) -> np.ndarray:
    """lmfit's external -> internal start values (``Parameter.setup_bounds``)."""
    q = np.empty(len(p0))
    for k, (val, a, b) in enumerate(zip(p0, lo, hi, strict=True)):
        val = min(max(float(val), a), b)  # lmfit clips a value set outside its bounds
        if a == -math.inf and b == math.inf:
            x = val
        elif b == math.inf:
            x = math.sqrt((val - a + 1.0) ** 2 - 1)
        elif a == -math.inf:
            x = math.sqrt((b - val + 1.0) ** 2 - 1)
        else:
            x = math.asin(2 * (val - a) / (b - a) - 1)
        q[k] = 0.0 if abs(x) < _TINY else x
    return q


@numba.njit(cache=True, nogil=True)
def _scale_gradient(q, lo, hi, g):  # pragma: no cover (numba)
    """d external / d internal of every parameter into ``g`` (lmfit's ``Parameter.scale_gradient``)."""
    for k in range(q.size):
        x, a, b = q[k], lo[k], hi[k]
        if a == -math.inf and b == math.inf:
            g[k] = 1.0
        elif b == math.inf:
            g[k] = x / math.sqrt(x * x + 1)
        elif a == -math.inf:
            g[k] = -x / math.sqrt(x * x + 1)
        else:
            g[k] = math.cos(x) * (b - a) / 2.0


@numba.njit(cache=True, nogil=True)
def _at_solution(best, data, par, r, r1, v, g):  # pragma: no cover (numba)
    """At the internal parameters ``best``: the weighted residuals ``r`` (False if not finite), the
    unweighted ``r1``, the parameters ``v`` and the gradient ``g`` of the bound transformation."""
    finite = _residuals(best, data, par, r)
    unweighted = data.copy()
    unweighted[2, :] = 1.0
    _residuals(best, unweighted, par, r1)
    n = best.size
    lo, hi = par[2 : 2 + n], par[2 + n : 2 + 2 * n]
    _external(best, lo, hi, v)
    _scale_gradient(best, lo, hi, g)
    return finite


_MESSAGES = {
    0: "Invalid Input Parameters. I.e. more variables than data points given, tolerance < 0.0, "
    "or no data provided.",
    1: "Fit succeeded.",
    2: "Fit succeeded.",
    3: "Fit succeeded.",
    4: "One or more variable did not affect the fit.",
}


def leastsq(
    kind: int,
    t: np.ndarray,
    y: np.ndarray,
    w: np.ndarray | None,
    exposure_s: float,
    p0,
    lo,
    hi,
    *,
    max_nfev: int,
    prior=None,
    scale_covar: bool = True,
) -> LsqFit:
    """Bounded least-squares fit of model ``kind`` as ``lmfit.minimize(method='leastsq')`` does it.

    Parameters
    ----------
    kind : {MONO, BIEXP, POOLED}
        Model (parameters in the order of :data:`PARAM_NAMES`).
    t, y : ndarray, shape (n,)
        Times (s) and data, finite.
    w : ndarray, shape (n,), or None
        Weights ``1 / sigma`` (None: unweighted).
    exposure_s : float
        Frame exposure, s.
    p0, lo, hi : sequence of float
        Start values and bounds (``-inf`` / ``inf`` for none) of every parameter.
    max_nfev : int
        lmfit's ``max_nfev``: the fit is aborted (``success`` false, no error bars) after more
        evaluations, each forward difference counted as one (as lmfit counts them).
    prior : sequence of 4 float, optional
        ``(frac_mean, frac_sd, log_ratio_mean, log_ratio_sd)`` of the pooled model.
    scale_covar : bool
        Scale the covariance by the reduced chi-square (lmfit's default).

    Returns
    -------
    LsqFit

    Raises
    ------
    ValueError
        When a residual is not finite (lmfit's ``nan_policy='raise'``).
    """
    t = np.asarray(t, dtype=float)
    data = np.vstack([t, y, np.ones(t.size) if w is None else w]).astype(float)
    pr = prior if prior is not None else (0.0, 1.0, 0.0, 1.0)
    par = np.array([kind, exposure_s, *lo, *hi, *pr], dtype=float)
    n, m = len(p0), t.size + (2 if kind == POOLED else 0)
    if n > m:
        raise TypeError(
            f"Improper input: func input vector length N={n} must not exceed func output vector length M={m}"
        )
    q0 = _internal(p0, lo, hi)
    best, fjac, ipvt, info, status = _lmder(q0, data, par, m, int(max_nfev), _TOLS)
    if status == _NOT_FINITE:
        raise _NonFinite("non-finite residual")
    if status == _ABORTED:
        cov, ier = None, -1
    else:
        ier = int(info)
        cov = _covariance(fjac, ipvt, n, m) if ier in (1, 2, 3, 4) else None
    return _result(kind, best, cov, ier, data, par, scale_covar)


def _result(kind, best, cov, ier, data, par, scale_covar) -> LsqFit:
    """lmfit's statistics, covariance, error bars and message at the solution ``best`` (internal)."""
    n = best.size
    names = PARAM_NAMES[kind]
    y = data[1]
    r = np.empty(y.size + (2 if kind == POOLED else 0))
    r1, v, g = np.empty_like(r), np.empty(n), np.empty(n)
    if not _at_solution(best, data, par, r, r1, v, g):
        raise _NonFinite("non-finite residual")
    lo, hi = par[2 : 2 + n], par[2 + n : 2 + 2 * n]
    ndata = r.size
    chisqr = float(np.sum(r**2))
    redchi = chisqr / max(1, ndata - n)
    chisqr = max(chisqr, 1.0e-250 * ndata)
    neg2_log_likel = ndata * math.log(chisqr / ndata)
    message = _MESSAGES.get(ier, "Tolerance seems to be too small.")
    stderr: dict = dict.fromkeys(names)
    covar = None
    errorbars = cov is not None
    if errorbars:
        covar = cov * (g[:, None] * g[None, :])
        if scale_covar:
            covar = covar * redchi
        for k, name in enumerate(names):
            var = float(covar[k, k])
            stderr[name] = math.sqrt(var) if var >= 0 else math.nan
            errorbars = errorbars and stderr[name] > 0.0
    else:
        message = f"{message} Could not estimate error-bars."
    return LsqFit(
        values={name: float(v[k]) for k, name in enumerate(names)},
        stderr=stderr,
        covar=covar,
        var_names=names,
        lo={name: float(lo[k]) for k, name in enumerate(names)},
        hi={name: float(hi[k]) for k, name in enumerate(names)},
        success=ier in (1, 2, 3, 4),
        errorbars=bool(errorbars),
        message=message,
        chisqr=chisqr,
        redchi=redchi,
        aic=neg2_log_likel + 2 * n,
        bic=neg2_log_likel + math.log(ndata) * n,
        ndata=ndata,
        residual=r,
        data=y,
        best_fit=y + r1[: y.size],
    )
