"""lmfit's ``leastsq`` for the decay models without lmfit's per-evaluation Python overhead.

:func:`leastsq` solves the bounded least-squares problems of
:mod:`plscope.kinetics.fits` the way ``lmfit.minimize(..., method='leastsq')``
does -- the same MINPACK Levenberg-Marquardt (``scipy.optimize.leastsq``), the
same MINUIT-style bound transformation of every parameter, the same options
(``ftol = xtol = 1.5e-8``, ``gtol = 0``, ``epsfcn = 1e-10``, ``factor = 100``),
the same cap on the number of evaluations, the same covariance (MINPACK's,
taken to the external parameters by the transformation's gradient and scaled
by the reduced chi-square) and the same statistics and messages. What changes
is where the time goes: the residuals are one compiled (numba) function of the
internal parameters instead of lmfit's ``Parameters`` machinery, and the
forward-difference Jacobian that MINPACK's ``lmdif`` would build from ``n``
Python calls is built by the compiled :func:`_fd_jacobian` in one (handed to
``lmder``, which then takes exactly ``lmdif``'s steps). The path is lmfit's up
to rounding (numba's ``exp`` against numpy's vectorized one): well-determined
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
from scipy.optimize import leastsq as _scipy_leastsq

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


class _Aborted(Exception):
    """More evaluations than allowed (lmfit's AbortFitException)."""


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
    m = jac.shape[1]
    f0, wa = np.empty(m), np.empty(m)
    e1, e2, s1, s2 = np.empty(t.size), np.empty(t.size), np.empty(t.size), np.empty(t.size)
    base = _components(q, par)
    _decays(t, base[2], e1)
    _decays(t, base[4], e2)
    _combine(q, par, data, base, e1, e2, f0)
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


# --------------------------------------------------------------------------
# the solver and lmfit's bookkeeping
# --------------------------------------------------------------------------


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


def _scale_gradient(q, lo, hi) -> list[float]:
    """d external / d internal of every parameter (lmfit's ``Parameter.scale_gradient``)."""
    g = []
    for x, a, b in zip(q.tolist(), lo.tolist(), hi.tolist(), strict=True):
        if a == -math.inf and b == math.inf:
            g.append(1.0)
        elif b == math.inf:
            g.append(x / math.sqrt(x * x + 1))
        elif a == -math.inf:
            g.append(-x / math.sqrt(x * x + 1))
        else:
            g.append(math.cos(x) * (b - a) / 2.0)
    return g


_MESSAGES = {
    0: "Invalid Input Parameters. I.e. more variables than data points given, tolerance < 0.0, "
    "or no data provided.",
    1: "Fit succeeded.",
    2: "Fit succeeded.",
    3: "Fit succeeded.",
    4: "One or more variable did not affect the fit.",
}


class _Evaluations:
    """MINPACK's callbacks, counting the evaluations as lmfit does (from -2, the check call included)."""

    def __init__(self, data: np.ndarray, par: np.ndarray, n: int, m: int, max_nfev: int):
        self.data, self.par, self.n, self.m, self.max_nfev = data, par, n, m, max_nfev
        self.nfev, self.checked = -2, False
        self.last: list[np.ndarray] = []

    def fcn(self, q: np.ndarray) -> np.ndarray:
        """Residuals; aborts (:class:`_Aborted`) past ``max_nfev``, keeping the parameters in ``last``."""
        self.nfev += 1
        if self.nfev > self.max_nfev:
            self.last.append(q.copy())  # q is MINPACK's work array
            raise _Aborted
        r = np.empty(self.m)  # a new array each call: scipy's MINPACK keeps references
        if not _residuals(q, self.data, self.par, r):
            raise _NonFinite("non-finite residual")
        return r

    def dfun(self, q: np.ndarray) -> np.ndarray:
        """lmdif's forward differences in one call (the same Jacobian, so lmder follows lmdif's path);
        each difference counts as an evaluation (not scipy's check call)."""
        n = self.n
        n_eval = n if not self.checked else min(n, self.max_nfev - self.nfev)
        jac = np.empty((n, self.m))
        if _fd_jacobian(q, self.data, self.par, n_eval, jac) >= 0:
            raise _NonFinite("non-finite residual")
        if self.checked:
            self.nfev += n_eval
            if n_eval < n:  # lmfit aborts at the next shifted evaluation
                x = q.copy()
                x[n_eval] += _step(x[n_eval], math.sqrt(max(_EPSFCN, _EPSMCH)))
                self.last.append(x)
                raise _Aborted
        self.checked = True
        return jac


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
    ev = _Evaluations(data, par, n, m, max_nfev)
    q0 = _internal(p0, lo, hi)
    try:
        best, cov, _, _, ier = _scipy_leastsq(
            ev.fcn,
            q0,
            Dfun=ev.dfun,
            full_output=True,
            col_deriv=True,
            ftol=_FTOL,
            xtol=_XTOL,
            gtol=_GTOL,
            maxfev=2 * max_nfev,
            factor=_FACTOR,
        )
    except _Aborted:
        best, cov, ier = ev.last[-1], None, -1
    return _result(kind, best, cov, ier, data, par, scale_covar)


def _result(kind, best, cov, ier, data, par, scale_covar) -> LsqFit:
    """lmfit's statistics, covariance, error bars and message at the solution ``best`` (internal)."""
    n = best.size
    names = PARAM_NAMES[kind]
    y = data[1]
    r = np.empty(y.size + (2 if kind == POOLED else 0))
    if not _residuals(best, data, par, r):
        raise _NonFinite("non-finite residual")
    unweighted = data.copy()
    unweighted[2] = 1.0
    r1 = np.empty_like(r)
    _residuals(best, unweighted, par, r1)
    v = np.empty(n)
    lo, hi = par[2 : 2 + n], par[2 + n : 2 + 2 * n]
    _external(best, lo, hi, v)
    g = _scale_gradient(best, lo, hi)
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
        ga = np.asarray(g)
        covar = cov * (ga[:, None] * ga[None, :])
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
