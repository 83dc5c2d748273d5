"""Exponential decay models and robust fits of polarization / recovery curves.

The paper's model for a field-switching response is

.. math::

    \\Delta I(t) = I_0 + I_1 e^{-t/\\tau_1} + I_2 e^{-t/\\tau_2},
    \\qquad \\tau = \\frac{I_1\\tau_1 + I_2\\tau_2}{I_1 + I_2},

with ``t`` measured from the switching edge. The amplitude-weighted
``tau`` equals the area under the normalized response
``(y - I0) / (y(0) - I0)`` and is well determined by the data even when
``tau1`` and ``tau2`` are not. The biexponential is therefore parameterized
as

.. math::

    y(t) = i_0 + A\\,[f\\,e^{-t/\\tau_1} + (1-f)\\,e^{-t/\\tau_2}],
    \\quad 0 \\le f \\le 1,\\quad \\tau_2 = \\tau_1 + \\delta,\\ \\delta \\ge 0,

so that ``I1 = A f`` and ``I2 = A (1 - f)`` always share a sign (decays and
rises alike), the components cannot swap, and the mean time is the simple
expression ``tau = tau1 + (1 - f) delta`` whose error is propagated from the
fit covariance with its exact gradient ``(1, -delta, 1 - f)``.

Camera frames integrate over the exposure: a frame centred on ``t`` sees
``exp(-t/tau) * sinh(x)/x`` with ``x = exposure / (2 tau)``. The models take
``exposure_s`` as an independent variable and include that factor, so the
fitted amplitudes are the instantaneous ones at the edge (it changes the
amplitude-weighted ``tau`` by up to ~1 % when ``tau1`` is a few frames).

Partial pooling of the shape
----------------------------
With 3-10 noisy cycles the biexponential *shape* (the fast fraction ``f``
and the ratio ``tau2/tau1``) of a single curve is poorly determined, and the
usual fallback to a monoexponential biases ``tau`` low by ~5-10 % when the
truth is biexponential. :func:`fit_biexponential_pooled` fits the same model
parameterized directly by the mean time,

.. math::

    y = i_0 + A[f e^{-t/\\tau_1} + (1-f) e^{-t/\\tau_2}],\\quad
    \\tau_1 = \\frac{\\tau}{f + (1-f)R},\\ \\tau_2 = R\\tau_1,\\ R = e^{\\rho},

with a Gaussian prior on ``f`` and ``rho = ln(tau2/tau1)`` (a
:class:`ShapePrior`, estimated from the population of curves by
:func:`plscope.kinetics.population.estimate_shape_priors`). The prior enters
as two extra residuals, so the reported ``tau_err_s`` is the posterior
standard error and includes what the prior contributes; a curve whose data
pin the shape overrides the prior.

Fits never raise: a failed or degenerate fit comes back as a
:class:`DecayFit` with ``success=False`` and/or ``flags``; ``DecayFit.ok``
says whether the time constant may be used.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, cast

import numpy as np

from . import _lsq
from ._checks import KineticsInputError
from .cycles import _median

__all__ = [
    "BAD_FIT_FLAGS",
    "DecayFit",
    "ShapePrior",
    "biexponential",
    "biexponential_mean_tau",
    "component_taus",
    "exposure_factor",
    "fit_biexponential",
    "fit_biexponential_pooled",
    "fit_decay",
    "fit_models",
    "fit_monoexponential",
    "monoexponential",
    "robust_noise",
]

logger = logging.getLogger(__name__)

BAD_FIT_FLAGS = frozenset(
    {
        "fit_failed",  # the optimizer did not converge / no usable data
        "no_covariance",  # no error bars (singular Jacobian, parameter at a bound)
        "tau_at_bound",  # the reported time constant sits on a bound of the search range
        "amplitude_too_small",  # the step is not significant (|A| < 3 stderr(A))
        "too_few_points",  # fewer points than the model needs
        "tau_poorly_determined",  # tau_err_s / tau_s > 0.5
    }
)
"""Flags that make :attr:`DecayFit.ok` false. Other flags are informative."""

_MIN_POINTS = {"mono": 5, "biexp": 8}
_AT_BOUND_RTOL = 1e-3
_FRAC_EDGE = 1e-3
_MIN_DTAU_REL = 1e-2
_AMPLITUDE_SNR = 3.0
_MAX_TAU_REL_ERR = 0.5
_MAX_NFEV_PER_PARAM = 200  # well-posed fits converge in < 100 evaluations; degenerate ones wander


# --------------------------------------------------------------------------
# model functions
# --------------------------------------------------------------------------


def exposure_factor(tau_s, exposure_s):
    """Box average of ``exp(-t/tau)`` over an exposure, relative to its centre value.

    Parameters
    ----------
    tau_s : float or ndarray
        Time constant(s), s (> 0).
    exposure_s : float
        Exposure (integration) time of a frame, s (>= 0).

    Returns
    -------
    float or ndarray
        ``sinh(x) / x`` with ``x = exposure_s / (2 tau_s)`` (1 for no exposure).
    """
    if isinstance(tau_s, (float, int)) and isinstance(exposure_s, (float, int)):
        x = float(exposure_s) / (2.0 * float(tau_s)) if tau_s else math.inf
        if abs(x) < 1e-4:
            return 1.0 + x * x / 6.0
        return math.sinh(x) / x if abs(x) < 700 else math.inf
    x = np.asarray(exposure_s, dtype=float) / (2.0 * np.asarray(tau_s, dtype=float))
    small = np.abs(x) < 1e-4
    xs = np.where(small, 1.0, x)
    out = np.where(small, 1.0 + x * x / 6.0, np.sinh(xs) / xs)
    return out if out.ndim else float(out)


def monoexponential(t, i0=0.0, amplitude=1.0, tau=1.0, exposure_s=0.0):
    """``i0 + amplitude * exp(-t/tau)``, averaged over a frame exposure.

    Parameters
    ----------
    t : ndarray
        Time from the switching edge to mid-exposure, s.
    i0 : float
        Asymptotic level (t -> inf).
    amplitude : float
        Instantaneous step at ``t = 0`` above ``i0`` (negative for a rise).
    tau : float
        Time constant, s.
    exposure_s : float
        Exposure time of a frame, s (independent variable of the lmfit model).
    """
    return i0 + amplitude * exposure_factor(tau, exposure_s) * np.exp(-t / tau)


def component_taus(tau_s, frac, log_ratio):
    """Component times ``(tau1, tau2)`` with mean ``tau_s`` (weights ``frac``, ``1-frac``).

    Parameters
    ----------
    tau_s : float
        Amplitude-weighted mean time ``f tau1 + (1-f) tau2``, s.
    frac : float
        Fast fraction ``f`` in [0, 1].
    log_ratio : float
        ``ln(tau2 / tau1)`` (>= 0).

    Returns
    -------
    (float, float)
    """
    ratio = math.exp(float(log_ratio))
    tau1 = float(tau_s) / (float(frac) + (1.0 - float(frac)) * ratio)
    return tau1, ratio * tau1


def biexponential_mean_tau(t, i0=0.0, amplitude=1.0, tau=1.0, frac=0.5, log_ratio=1.0, exposure_s=0.0):
    """The biexponential parameterized by its amplitude-weighted mean time, exposure-averaged.

    ``i0 + amplitude * [frac exp(-t/tau1) + (1-frac) exp(-t/tau2)]`` with
    ``(tau1, tau2) = component_taus(tau, frac, log_ratio)``.

    Parameters
    ----------
    t : ndarray
        Time from the switching edge to mid-exposure, s.
    i0, amplitude : float
        Asymptote and total instantaneous step at ``t = 0``.
    tau : float
        Amplitude-weighted mean time, s.
    frac : float
        Fast fraction in [0, 1].
    log_ratio : float
        ``ln(tau2/tau1)`` >= 0.
    exposure_s : float
        Frame exposure, s.
    """
    tau1, tau2 = component_taus(tau, frac, log_ratio)
    return i0 + amplitude * (
        frac * exposure_factor(tau1, exposure_s) * np.exp(-t / tau1)
        + (1.0 - frac) * exposure_factor(tau2, exposure_s) * np.exp(-t / tau2)
    )


def biexponential(t, i0=0.0, amplitude=1.0, frac=0.5, tau1=1.0, dtau=1.0, exposure_s=0.0):
    """``i0 + amplitude * [frac exp(-t/tau1) + (1-frac) exp(-t/(tau1+dtau))]``, exposure-averaged.

    Parameters
    ----------
    t : ndarray
        Time from the switching edge to mid-exposure, s.
    i0 : float
        Asymptotic level.
    amplitude : float
        Total instantaneous step ``I1 + I2`` at ``t = 0``.
    frac : float
        Fraction of the step in the fast component, ``I1 / (I1 + I2)`` in [0, 1].
    tau1 : float
        Fast time constant, s.
    dtau : float
        ``tau2 - tau1`` (>= 0), s.
    exposure_s : float
        Exposure time of a frame, s (independent variable of the lmfit model).
    """
    tau2 = tau1 + dtau
    return i0 + amplitude * (
        frac * exposure_factor(tau1, exposure_s) * np.exp(-t / tau1)
        + (1.0 - frac) * exposure_factor(tau2, exposure_s) * np.exp(-t / tau2)
    )


# --------------------------------------------------------------------------
# data-driven start values and bounds (also those of the lmfit models, plscope.kinetics.lmfit_models)
# --------------------------------------------------------------------------


def default_tau_bounds_s(t_s: np.ndarray) -> tuple[float, float]:
    """Search range for time constants: 0.3 sample interval to 5 x the window."""
    t = np.sort(np.asarray(t_s, dtype=float))
    dt = _median(np.diff(t)) if t.size > 1 else 0.2
    span = float(t[-1] - min(t[0], 0.0)) if t.size else 1.0
    lo = max(0.3 * dt, 1e-6)
    hi = max(5.0 * span, 10.0 * lo)
    return lo, hi


def _initial_estimates(t: np.ndarray, y: np.ndarray, tau_bounds_s: tuple[float, float]):
    """Offset, step and area-based mean time constant from the data alone."""
    n = t.size
    ntail = max(3, n // 6)
    i0 = _median(y[-ntail:])
    nhead = max(2, min(4, n // 10))
    t_head = float(np.mean(t[:nhead]))
    y_head = float(np.mean(y[:nhead]))
    lo, hi = tau_bounds_s
    step = y_head - i0
    tau = math.sqrt(lo * hi)
    if step != 0.0 and n > 2:
        dt = np.diff(t)
        area = float(np.sum(0.5 * (y[1:] + y[:-1] - 2.0 * i0) * dt))
        ratio = area / step
        if np.isfinite(ratio) and ratio > 0:
            tau = ratio
    tau = float(np.clip(tau, 2.0 * lo, 0.5 * hi))
    amplitude = step * math.exp(min(t_head / tau, 20.0))
    return i0, amplitude, tau


def _mono_start(estimates, tau_bounds_s):
    """Start values and bounds ``(p0, lo, hi)`` of ``i0, amplitude, tau`` from
    :func:`_initial_estimates` (what :meth:`MonoExponentialModel.guess` sets)."""
    lo, hi = (float(b) for b in tau_bounds_s)
    return tuple(estimates), (-math.inf, -math.inf, lo), (math.inf, math.inf, hi)


def _biexp_start(estimates, tau_bounds_s, tau1_rel: float, frac: float):
    """Start values and bounds ``(p0, lo, hi)`` of ``i0, amplitude, frac, tau1, dtau`` from the
    area-based mean time of :func:`_initial_estimates` (what :meth:`BiExponentialModel.guess` sets)."""
    lo, hi = (float(b) for b in tau_bounds_s)
    i0, amp, tau = estimates
    tau1 = float(np.clip(tau1_rel * tau, lo * 1.01, hi * 0.5))
    dtau = max((tau - tau1) / max(1.0 - frac, 1e-3), 0.05 * tau1)
    dtau = float(min(dtau, (hi - lo) * 0.99))
    inf = math.inf
    return (i0, amp, float(frac), tau1, dtau), (-inf, -inf, 0.0, lo, 0.0), (inf, inf, 1.0, hi, hi - lo)


# --------------------------------------------------------------------------
# result type
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class DecayFit:
    """Result of an exponential fit of one averaged switching curve.

    Attributes
    ----------
    model : {'biexp', 'mono', 'none'}
        Model reported ('none' when nothing could be fitted).
    tau_s : float
        Amplitude-weighted time constant ``(I1 tau1 + I2 tau2) / (I1 + I2)``, s.
    tau_err_s : float
        Its standard error from the fit covariance (scaled by reduced
        chi-square), s; NaN when there is no covariance.
    tau1_s, tau2_s : float
        Component time constants, s (``tau2_s`` NaN for 'mono').
    i0, i1, i2 : float
        Offset and instantaneous component amplitudes at ``t = 0``
        (``i2 = 0`` for 'mono'), in the units of ``y``.
    redchi, aic, bic : float
        Reduced chi-square, Akaike and Bayesian information criteria
        (lmfit definitions).
    success : bool
        The optimizer converged.
    flags : tuple of str
        Problems and notes; see :data:`BAD_FIT_FLAGS` for those that make
        :attr:`ok` false. Informative: 'biexp_degenerate' (biexponential
        fit collapsed, mono reported), 'too_few_points_for_biexp',
        'points_dropped_nonfinite', 'shape_prior' (pooled fit, see
        :func:`fit_biexponential_pooled`).
    message : str
        Optimizer message or reason of failure.
    n_points : int
        Number of finite points fitted.
    delta_bic : float
        ``bic(biexp) - bic(mono)`` when both were fitted (negative favours
        the biexponential), else NaN.
    exposure_s : float
        Exposure used in the model (for :meth:`curve`).
    tau_bounds_s : tuple of float
        Search range of the time constants, s.
    frac, frac_err : float
        Fast fraction ``I1 / (I1 + I2)`` of a biexponential and its standard
        error (NaN for 'mono').
    log_ratio, log_ratio_err : float
        ``ln(tau2 / tau1)`` and its standard error (NaN for 'mono').
    tau_err_method : {'covariance', 'bootstrap_cycles', 'none'}
        Where ``tau_err_s`` comes from: the fit covariance (scaled by the
        reduced chi-square, or the posterior covariance of a pooled fit), a
        bootstrap over the averaged cycles, or nowhere.
    """

    model: Literal["biexp", "mono", "none"]
    tau_s: float
    tau_err_s: float
    tau1_s: float
    tau2_s: float
    i0: float
    i1: float
    i2: float
    redchi: float
    aic: float
    bic: float
    success: bool
    flags: tuple[str, ...] = ()
    message: str = ""
    n_points: int = 0
    delta_bic: float = float("nan")
    exposure_s: float = 0.0
    tau_bounds_s: tuple[float, float] = (float("nan"), float("nan"))
    frac: float = float("nan")
    frac_err: float = float("nan")
    log_ratio: float = float("nan")
    log_ratio_err: float = float("nan")
    tau_err_method: Literal["covariance", "bootstrap_cycles", "none"] = "none"

    BAD_FLAGS: ClassVar[frozenset[str]] = BAD_FIT_FLAGS

    @property
    def ok(self) -> bool:
        """True when ``tau_s`` may be used: converged, finite and no bad flag."""
        return bool(self.success) and np.isfinite(self.tau_s) and not (set(self.flags) & self.BAD_FLAGS)

    def curve(self, t_s, *, exposure_s: float | None = None) -> np.ndarray:
        """Evaluate the fitted model (exposure-averaged like the data) at ``t_s``.

        Parameters
        ----------
        t_s : array_like
            Times from the switching edge, s.
        exposure_s : float, optional
            Exposure to average over; default the one used in the fit
            (0 gives the instantaneous response).

        Returns
        -------
        ndarray
            Model values; all NaN when no model was fitted.
        """
        t = np.asarray(t_s, dtype=float)
        e = self.exposure_s if exposure_s is None else float(exposure_s)
        if self.model == "none" or not np.isfinite(self.tau1_s):
            return np.full(t.shape, np.nan)
        y = self.i0 + self.i1 * exposure_factor(self.tau1_s, e) * np.exp(-t / self.tau1_s)
        if self.model == "biexp":
            y = y + self.i2 * exposure_factor(self.tau2_s, e) * np.exp(-t / self.tau2_s)
        return y

    def to_dict(self) -> dict:
        """Plain-Python dict (floats, str, bool); ``flags`` ';'-joined; adds ``ok``."""
        d = dataclasses.asdict(self)
        d["flags"] = ";".join(self.flags)
        d["tau_bounds_s"] = [float(v) for v in self.tau_bounds_s]
        d["ok"] = self.ok
        for k, v in d.items():
            if isinstance(v, (np.floating, np.integer, np.bool_)):
                d[k] = v.item()
        return d

    def _with(self, **changes) -> DecayFit:
        """A copy with ``changes`` (what ``dataclasses.replace`` makes; this class has no
        ``__post_init__``, so the copy of its fields is the same object, made faster)."""
        unknown = set(changes) - self.__dataclass_fields__.keys()
        if unknown:
            raise TypeError(f"DecayFit has no field(s) {sorted(unknown)}")
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        new.__dict__.update(changes)
        return new


def _too_few_points(n_points: int, model: str, minimum: int, exposure_s: float, extra) -> DecayFit:
    """The failure of a fit given fewer finite points than ``model`` needs."""
    return _failed(
        f"{n_points} finite points; {model} needs {minimum}",
        "too_few_points",
        n_points=n_points,
        exposure_s=exposure_s,
        extra_flags=extra,
    )


def _fit_raised(n_points: int, exposure_s: float, bounds, extra) -> DecayFit:
    """The failure of a fit whose least-squares solver raised from every start."""
    return _failed(
        "least-squares fit raised",
        "fit_failed",
        n_points=n_points,
        exposure_s=exposure_s,
        tau_bounds_s=bounds,
        extra_flags=extra,
    )


def _failed(
    reason: str,
    flag: str,
    *,
    n_points: int,
    exposure_s: float,
    tau_bounds_s=(float("nan"), float("nan")),
    extra_flags=(),
) -> DecayFit:
    nan = float("nan")
    return DecayFit(
        model="none",
        tau_s=nan,
        tau_err_s=nan,
        tau1_s=nan,
        tau2_s=nan,
        i0=nan,
        i1=nan,
        i2=nan,
        redchi=nan,
        aic=nan,
        bic=nan,
        success=False,
        flags=tuple(dict.fromkeys((flag, *extra_flags))),
        message=reason,
        n_points=n_points,
        exposure_s=exposure_s,
        tau_bounds_s=cast(tuple[float, float], tuple(float(b) for b in tau_bounds_s)),
    )


# --------------------------------------------------------------------------
# fitting
# --------------------------------------------------------------------------


def _prepare(t_s, y, sigma):
    """Finite points only (explicit NaN policy: 'omit'), sorted by time."""
    t = np.asarray(t_s, dtype=float).ravel()
    yy = np.asarray(y, dtype=float).ravel()
    if t.shape != yy.shape:
        raise KineticsInputError(f"t_s and y differ in length: {t.size} vs {yy.size}")
    finite = np.isfinite(t) & np.isfinite(yy)
    s = None
    if sigma is not None:
        s = np.broadcast_to(np.asarray(sigma, dtype=float), t.shape).ravel()
        finite &= np.isfinite(s) & (s > 0)
    dropped = int(t.size - np.count_nonzero(finite))
    order = np.argsort(t[finite], kind="stable")
    t, yy = t[finite][order], yy[finite][order]
    w = None if s is None else 1.0 / s[finite][order]
    return t, yy, w, dropped


_MODEL_FUNCS: dict[int, Callable[..., Any]] = {
    _lsq.MONO: monoexponential,
    _lsq.BIEXP: biexponential,
    _lsq.POOLED: biexponential_mean_tau,
}


def lmfit_leastsq(
    kind: int, t, y, w, exposure_s: float, p0, lo, hi, *, max_nfev: int, prior=None, scale_covar=True
) -> _lsq.LsqFit:
    """The reference solver: the problem of :func:`plscope.kinetics._lsq.leastsq` through
    ``lmfit.minimize(method='leastsq')`` on the model functions of this module.

    The fits use the compiled :func:`~plscope.kinetics._lsq.leastsq` (the same MINPACK
    algorithm, options, bounds and bookkeeping without lmfit's per-evaluation overhead);
    this is what they used before and what the tests hold it to. Same parameters and
    result; raises ValueError on a non-finite residual.
    """
    import lmfit

    names = _lsq.PARAM_NAMES[kind]
    func = _MODEL_FUNCS[kind]
    pars = lmfit.Parameters()
    for name, v0, a, b in zip(names, p0, lo, hi, strict=True):
        pars.add(name, value=float(v0), min=float(a), max=float(b))

    def residual(p):
        v = p.valuesdict()
        r = func(t, *(v[n] for n in names), exposure_s=exposure_s) - y
        r = r if w is None else r * w
        if kind == _lsq.POOLED:
            r = np.append(r, [(v["frac"] - prior[0]) / prior[1], (v["log_ratio"] - prior[2]) / prior[3]])
        return r

    res = lmfit.minimize(
        residual, pars, method="leastsq", nan_policy="raise", max_nfev=max_nfev, scale_covar=scale_covar
    )
    v = res.params.valuesdict()
    return _lsq.LsqFit(
        values=v,
        stderr={n: res.params[n].stderr for n in names},
        covar=res.covar,
        var_names=tuple(res.var_names),
        lo={n: float(a) for n, a in zip(names, lo, strict=True)},
        hi={n: float(b) for n, b in zip(names, hi, strict=True)},
        success=bool(res.success),
        errorbars=bool(res.errorbars),
        message=str(res.message),
        chisqr=float(res.chisqr),
        redchi=float(res.redchi),
        aic=float(res.aic),
        bic=float(res.bic),
        ndata=int(res.ndata),
        residual=np.asarray(res.residual, dtype=float),
        data=y,
        best_fit=func(t, *(v[n] for n in names), exposure_s=exposure_s),
    )


_SOLVER = _lsq.leastsq
"""The least-squares solver of every fit (:func:`lmfit_leastsq` is the reference; tests swap it in)."""


def _run(kind: int, start, t, y, w, exposure_s, **kws) -> _lsq.LsqFit | None:
    """One least-squares fit from ``start = (p0, lo, hi)`` (capped evaluations); None if it raised.

    numpy floating-point warnings are silenced because overflow/underflow of exp() while the
    optimizer probes the bounds is expected and harmless (non-finite residuals make the fit
    fail, which is then flagged)."""
    p0, lo, hi = start
    kws.setdefault("max_nfev", _MAX_NFEV_PER_PARAM * (len(p0) + 1))
    with np.errstate(all="ignore"):
        try:
            return _SOLVER(kind, t, y, w, exposure_s, p0, lo, hi, **kws)
        except (ValueError, FloatingPointError, np.linalg.LinAlgError) as exc:
            logger.debug("least squares raised %s: %s", type(exc).__name__, exc)
            return None


def _covariance_gradient(res, grads: dict[str, float]):
    """Variance of a linear combination of fit parameters (gradient ``grads``)."""
    if not getattr(res, "errorbars", False) or res.covar is None:
        return float("nan")
    names = list(res.var_names)
    g = np.array([grads.get(n, 0.0) for n in names])
    cov = np.asarray(res.covar, dtype=float)
    if cov.shape != (len(names), len(names)) or not np.all(np.isfinite(cov)):
        return float("nan")
    var = float(g @ cov @ g)
    return math.sqrt(var) if var >= 0 else float("nan")


def _at_bound(value, lo, hi) -> bool:
    return bool(value <= lo * (1 + _AT_BOUND_RTOL) or value >= hi * (1 - _AT_BOUND_RTOL))


def _amplitude_flags(res, amplitude: float, amp_err: float) -> list[str]:
    if np.isfinite(amp_err) and amp_err > 0:
        small = abs(amplitude) < _AMPLITUDE_SNR * amp_err
    else:
        resid = np.asarray(res.data, dtype=float) - np.asarray(res.best_fit, dtype=float)
        rms = math.sqrt(float(np.mean(np.square(resid)))) if resid.size else 0.0
        small = abs(amplitude) < _AMPLITUDE_SNR * rms or amplitude == 0.0
    return ["amplitude_too_small"] if small else []


def _common_flags(res, tau, tau_err, n_dropped) -> list[str]:
    flags = []
    if not res.success:
        flags.append("fit_failed")
    if not res.errorbars:
        flags.append("no_covariance")
    if np.isfinite(tau_err) and tau > 0 and tau_err / tau > _MAX_TAU_REL_ERR:
        flags.append("tau_poorly_determined")
    if n_dropped:
        flags.append("points_dropped_nonfinite")
    return flags


def _decay_fit(res, model, *, tau, tau_err, tau1, tau2, i1, i2, bounds, exposure_s, n_dropped, **extra):
    """A :class:`DecayFit` from a least-squares result, with the flags every free fit carries."""
    amp = float(res.values["amplitude"])
    stderr = res.stderr["amplitude"]
    amp_err = float(stderr) if res.errorbars and stderr else float("nan")
    flags = _common_flags(res, tau, tau_err, n_dropped)
    if _at_bound(tau, *bounds):
        flags.append("tau_at_bound")
    flags += _amplitude_flags(res, amp, amp_err)
    return DecayFit(
        model=model,
        tau_s=tau,
        tau_err_s=tau_err,
        tau1_s=tau1,
        tau2_s=tau2,
        i0=float(res.values["i0"]),
        i1=i1,
        i2=i2,
        redchi=float(res.redchi),
        aic=float(res.aic),
        bic=float(res.bic),
        success=bool(res.success),
        flags=tuple(dict.fromkeys(flags)),
        message=str(res.message),
        n_points=int(res.ndata),
        exposure_s=exposure_s,
        tau_bounds_s=(float(bounds[0]), float(bounds[1])),
        tau_err_method="covariance" if np.isfinite(tau_err) else "none",
        **extra,
    )


def _mono_result(res, bounds, exposure_s, n_dropped) -> DecayFit:
    tau = float(res.values["tau"])
    tau_err = float(res.stderr["tau"]) if res.errorbars and res.stderr["tau"] else float("nan")
    amp = float(res.values["amplitude"])
    return _decay_fit(
        res,
        "mono",
        tau=tau,
        tau_err=tau_err,
        tau1=tau,
        tau2=float("nan"),
        i1=amp,
        i2=0.0,
        bounds=bounds,
        exposure_s=exposure_s,
        n_dropped=n_dropped,
    )


def _stderr(res, name: str) -> float:
    err = res.stderr[name]
    return float(err) if res.errorbars and err is not None and np.isfinite(err) else float("nan")


def _biexp_result(res, bounds, exposure_s, n_dropped) -> tuple[DecayFit, list[str]]:
    """Biexponential result and the reasons it is degenerate (empty if not)."""
    p = res.values
    f = float(p["frac"])
    tau1 = float(p["tau1"])
    dtau = float(p["dtau"])
    tau2 = tau1 + dtau
    amp = float(p["amplitude"])
    tau = tau1 + (1.0 - f) * dtau
    tau_err = _covariance_gradient(res, {"tau1": 1.0, "frac": -dtau, "dtau": 1.0 - f})
    degenerate = []
    if not res.success:
        degenerate.append("not converged")
    if not res.errorbars:
        degenerate.append("no covariance")
    if f < _FRAC_EDGE or f > 1 - _FRAC_EDGE:
        degenerate.append(f"frac={f:.3g} at a bound")
    if dtau < _MIN_DTAU_REL * tau1:
        degenerate.append("tau1 == tau2")
    if tau1 <= bounds[0] * (1 + _AT_BOUND_RTOL):
        degenerate.append("tau1 at the lower bound (unresolved fast component)")
    if tau2 >= bounds[1] * (1 - _AT_BOUND_RTOL) or dtau >= (bounds[1] - bounds[0]) * (1 - _AT_BOUND_RTOL):
        degenerate.append("tau2 at the upper bound")
    log_ratio = math.log(tau2 / tau1) if tau1 > 0 else float("nan")
    log_ratio_err = (
        _covariance_gradient(res, {"tau1": 1.0 / tau2 - 1.0 / tau1, "dtau": 1.0 / tau2})
        if tau1 > 0
        else float("nan")
    )
    fit = _decay_fit(
        res,
        "biexp",
        tau=tau,
        tau_err=tau_err,
        tau1=tau1,
        tau2=tau2,
        i1=amp * f,
        i2=amp * (1.0 - f),
        bounds=bounds,
        exposure_s=exposure_s,
        n_dropped=n_dropped,
        frac=f,
        frac_err=_stderr(res, "frac"),
        log_ratio=log_ratio,
        log_ratio_err=log_ratio_err,
    )
    if "tau_poorly_determined" in fit.flags:
        degenerate.append(f"tau_err/tau = {tau_err / tau:.2g} > {_MAX_TAU_REL_ERR}")
    return fit, degenerate


def _check_bounds(t, tau_bounds_s):
    bounds = tuple(float(b) for b in (tau_bounds_s or default_tau_bounds_s(t)))
    if not (0 < bounds[0] < bounds[1] and np.isfinite(bounds[1])):
        raise KineticsInputError(f"tau_bounds_s: expected 0 < lo < hi < inf, got {tau_bounds_s!r}")
    return bounds


def fit_monoexponential(
    t_s, y, *, sigma=None, exposure_s: float = 0.0, tau_bounds_s: tuple[float, float] | None = None
) -> DecayFit:
    """Fit ``y = I0 + I1 exp(-t/tau)`` (exposure-averaged) by least squares.

    Parameters
    ----------
    t_s : array_like, shape (n,)
        Time from the switching edge to mid-exposure, s.
    y : array_like, shape (n,)
        Averaged, normalized response (decay or rise).
    sigma : array_like, shape (n,) or float, optional
        Standard errors of ``y``; the fit is weighted by ``1/sigma``. Without
        it the fit is unweighted and errors are scaled by the residual scatter.
    exposure_s : float, optional
        Frame exposure, s; the model averages over it.
    tau_bounds_s : (float, float), optional
        Search range of ``tau``; default 0.3 x sample interval to 5 x window.

    Returns
    -------
    DecayFit
        ``model='mono'`` (or ``'none'`` when nothing could be fitted). Never raises
        for bad data; non-finite points are dropped (flag
        'points_dropped_nonfinite').
    """
    exposure_s = float(exposure_s)
    t, yy, w, dropped = _prepare(t_s, y, sigma)
    extra = ("points_dropped_nonfinite",) if dropped else ()
    if t.size < _MIN_POINTS["mono"]:
        return _too_few_points(int(t.size), "the mono model", _MIN_POINTS["mono"], exposure_s, extra)
    bounds = _check_bounds(t, tau_bounds_s)
    return _fit_mono_prepared(t, yy, w, bounds, exposure_s, dropped, _initial_estimates(t, yy, bounds))


def _fit_mono_prepared(t, yy, w, bounds, exposure_s: float, dropped: int, estimates) -> DecayFit:
    """:func:`fit_monoexponential` of prepared data (enough finite points, checked bounds)."""
    res = _run(_lsq.MONO, _mono_start(estimates, bounds), t, yy, w, exposure_s)
    if res is None:
        extra = ("points_dropped_nonfinite",) if dropped else ()
        return _fit_raised(int(t.size), exposure_s, bounds, extra)
    return _mono_result(res, bounds, exposure_s, dropped)


_BIEXP_STARTS = ((0.3, 0.5), (0.12, 0.3), (0.55, 0.7))
"""(tau1 / tau_mean, frac) start points; the lowest chi-square wins. The others are
tried only when the first fit is not clean (converged, error bars, not degenerate)."""


def _clean_biexp(res) -> bool:
    """Converged, with error bars, inside the bounds and with two distinct components."""
    if res is None or not (res.success and res.errorbars):
        return False
    f, tau1, dtau = res.values["frac"], res.values["tau1"], res.values["dtau"]
    return bool(
        _FRAC_EDGE < f < 1 - _FRAC_EDGE
        and dtau > _MIN_DTAU_REL * tau1
        and res.lo["tau1"] * (1 + _AT_BOUND_RTOL) < tau1 < res.hi["tau1"] * (1 - _AT_BOUND_RTOL)
    )


def _fit_biexp_only(t, yy, w, bounds, exposure_s, dropped, estimates=None):
    if estimates is None:
        estimates = _initial_estimates(t, yy, bounds)
    best = None
    for i, (tau1_rel, frac) in enumerate(_BIEXP_STARTS):
        res = _run(_lsq.BIEXP, _biexp_start(estimates, bounds, tau1_rel, frac), t, yy, w, exposure_s)
        if res is None or not np.isfinite(res.chisqr):
            continue
        # prefer a converged fit with error bars at (numerically) equal chi-square
        key = res.chisqr * (1 - 1e-9 * (res.success + res.errorbars))
        if best is None or key < best[0]:
            best = (key, res)
        if i == 0 and _clean_biexp(res):
            # the other starts never improved a clean first fit (chi-square within 1e-5
            # over 192 simulated curves); they exist for the degenerate ones
            break
    if best is None:
        return None
    return _biexp_result(best[1], bounds, exposure_s, dropped)


def fit_models(
    t_s, y, *, sigma=None, exposure_s: float = 0.0, tau_bounds_s: tuple[float, float] | None = None
) -> dict[str, DecayFit | None]:
    """Fit the biexponential and the monoexponential and select one (BIC / degeneracy).

    Parameters
    ----------
    t_s, y, sigma, exposure_s, tau_bounds_s
        As in :func:`fit_biexponential`.

    Returns
    -------
    dict
        ``'auto'``: the selected fit (what :func:`fit_biexponential` returns);
        ``'biexp'``: the biexponential as fitted (flag 'biexp_degenerate' when
        degenerate; None when it could not be fitted); ``'mono'``: the
        monoexponential (None when not fitted). ``delta_bic`` is set on all.
    """
    exposure_s = float(exposure_s)
    t, yy, w, dropped = _prepare(t_s, y, sigma)
    if t.size < _MIN_POINTS["biexp"]:
        mono = fit_monoexponential(t_s, y, sigma=sigma, exposure_s=exposure_s, tau_bounds_s=tau_bounds_s)
        auto = mono._with(flags=(*mono.flags, "too_few_points_for_biexp")) if mono.model == "mono" else mono
        return {"auto": auto, "biexp": None, "mono": mono if mono.model == "mono" else None}
    bounds = _check_bounds(t, tau_bounds_s)
    estimates = _initial_estimates(t, yy, bounds)
    out = _fit_biexp_only(t, yy, w, bounds, exposure_s, dropped, estimates)
    mono = _fit_mono_prepared(t, yy, w, bounds, exposure_s, dropped, estimates)
    mono_ok = mono.model == "mono"
    if out is None:
        auto = mono._with(flags=(*mono.flags, "biexp_degenerate"))
        return {"auto": auto, "biexp": None, "mono": mono if mono_ok else None}
    bi, degenerate = out
    delta_bic = bi.bic - mono.bic if mono_ok else float("nan")
    bi = bi._with(delta_bic=delta_bic)
    mono = mono._with(delta_bic=delta_bic)
    if degenerate:
        bi_flagged = bi._with(
            flags=(*bi.flags, "biexp_degenerate"),
            message=f"{bi.message} Degenerate: {'; '.join(degenerate)}.",
        )
    else:
        bi_flagged = bi
    if not degenerate and (not mono.ok or not (delta_bic >= 0)):
        logger.debug("biexponential selected (delta BIC %.2f)", delta_bic)
        auto = bi
    elif degenerate:
        logger.debug("biexponential degenerate (%s); monoexponential reported", "; ".join(degenerate))
        auto = mono._with(
            flags=(*mono.flags, "biexp_degenerate"),
            message=f"{mono.message} Biexponential degenerate: {'; '.join(degenerate)}.",
        )
    else:
        logger.debug("monoexponential selected by BIC (delta BIC %.2f)", delta_bic)
        auto = mono
    return {"auto": auto, "biexp": bi_flagged, "mono": mono if mono_ok else None}


def fit_biexponential(
    t_s,
    y,
    *,
    sigma=None,
    exposure_s: float = 0.0,
    tau_bounds_s: tuple[float, float] | None = None,
    fallback_to_mono: bool = True,
) -> DecayFit:
    """Fit the paper's biexponential and report the amplitude-weighted ``tau``.

    ``y = I0 + A [f exp(-t/tau1) + (1-f) exp(-t/tau2)]`` with ``0 <= f <= 1``
    and ``tau2 = tau1 + delta``, ``delta >= 0`` (see the module docstring),
    started from three data-driven guesses; the lowest chi-square wins. With
    ``fallback_to_mono`` a monoexponential is fitted too and reported instead
    when the biexponential is degenerate (no covariance, ``f`` at 0 or 1,
    ``tau1 == tau2``, a component on a bound) or has the higher BIC; the
    winner is in ``DecayFit.model`` and the BIC difference in ``delta_bic``.

    Parameters
    ----------
    t_s : array_like, shape (n,)
        Time from the switching edge to mid-exposure, s.
    y : array_like, shape (n,)
        Averaged, normalized response (decay or rise).
    sigma : array_like or float, optional
        Standard errors of ``y`` (weights ``1/sigma``); default unweighted.
    exposure_s : float, optional
        Frame exposure, s; the model averages over it.
    tau_bounds_s : (float, float), optional
        Search range of the time constants; default 0.3 x sample interval to
        5 x window.
    fallback_to_mono : bool, optional
        Select between biexponential and monoexponential (default). When
        False the biexponential is returned, flagged 'biexp_degenerate' if so.

    Returns
    -------
    DecayFit
        Never raises for bad data.
    """
    if fallback_to_mono:
        auto = fit_models(t_s, y, sigma=sigma, exposure_s=exposure_s, tau_bounds_s=tau_bounds_s)["auto"]
        return cast(DecayFit, auto)  # the selected model is always present
    exposure_s = float(exposure_s)
    t, yy, w, dropped = _prepare(t_s, y, sigma)
    extra = ("points_dropped_nonfinite",) if dropped else ()
    if t.size < _MIN_POINTS["biexp"]:
        return _too_few_points(int(t.size), "the biexponential", _MIN_POINTS["biexp"], exposure_s, extra)
    bounds = _check_bounds(t, tau_bounds_s)
    out = _fit_biexp_only(t, yy, w, bounds, exposure_s, dropped)
    if out is None:
        return _fit_raised(int(t.size), exposure_s, bounds, extra)
    bi, degenerate = out
    if degenerate:
        return bi._with(
            flags=(*bi.flags, "biexp_degenerate"),
            message=f"{bi.message} Degenerate: {'; '.join(degenerate)}.",
        )
    return bi


def fit_decay(
    t_s,
    y,
    *,
    model: Literal["auto", "biexp", "mono"] = "auto",
    sigma=None,
    exposure_s: float = 0.0,
    tau_bounds_s: tuple[float, float] | None = None,
    shape_prior: ShapePrior | None = None,
    start: DecayFit | None = None,
) -> DecayFit:
    """Fit a switching curve with the chosen model.

    Parameters
    ----------
    t_s, y, sigma, exposure_s, tau_bounds_s
        As in :func:`fit_biexponential`.
    model : {'auto', 'biexp', 'mono'}
        'auto': biexponential with BIC selection / fallback to the
        monoexponential; 'biexp': biexponential only; 'mono': mono only.
    shape_prior : ShapePrior, optional
        With 'auto' or 'biexp': the pooled biexponential
        (:func:`fit_biexponential_pooled`) is fitted instead; ``sigma``
        should then be the absolute noise.
    start : DecayFit, optional
        Start for the pooled fit.

    Returns
    -------
    DecayFit
    """
    if shape_prior is not None and model in ("auto", "biexp"):
        return fit_biexponential_pooled(
            t_s,
            y,
            prior=shape_prior,
            sigma=sigma,
            exposure_s=exposure_s,
            tau_bounds_s=tau_bounds_s,
            start=start,
        )
    if model == "mono":
        return fit_monoexponential(t_s, y, sigma=sigma, exposure_s=exposure_s, tau_bounds_s=tau_bounds_s)
    if model in ("auto", "biexp"):
        return fit_biexponential(
            t_s,
            y,
            sigma=sigma,
            exposure_s=exposure_s,
            tau_bounds_s=tau_bounds_s,
            fallback_to_mono=(model == "auto"),
        )
    raise KineticsInputError(f"model: expected 'auto', 'biexp' or 'mono', got {model!r}")


# --------------------------------------------------------------------------
# partial pooling of the biexponential shape
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class ShapePrior:
    """Gaussian prior on the shape of the biexponential, from a population of curves.

    Attributes
    ----------
    frac_mean, frac_sd : float
        Fast fraction ``f = I1 / (I1 + I2)``: centre (in [0, 1]) and width (> 0).
    log_ratio_mean, log_ratio_sd : float
        ``rho = ln(tau2 / tau1)``: centre (>= 0) and width (> 0).
    n_curves : int
        Curves the prior was estimated from.
    phase : str
        'pol' or 'rec' (informative).
    """

    frac_mean: float
    frac_sd: float
    log_ratio_mean: float
    log_ratio_sd: float
    n_curves: int = 0
    phase: str = ""

    def __post_init__(self) -> None:
        ok = (
            0.0 <= self.frac_mean <= 1.0
            and self.frac_sd > 0
            and self.log_ratio_mean >= 0
            and self.log_ratio_sd > 0
            and all(
                map(math.isfinite, (self.frac_mean, self.frac_sd, self.log_ratio_mean, self.log_ratio_sd))
            )
        )
        if not ok:
            raise KineticsInputError(
                "ShapePrior: expected 0 <= frac_mean <= 1, log_ratio_mean >= 0 and positive finite widths, "
                f"got {self!r}"
            )

    @property
    def ratio(self) -> float:
        """``tau2 / tau1`` at the centre of the prior."""
        return math.exp(self.log_ratio_mean)

    def to_dict(self) -> dict:
        """Plain dict (adds ``ratio``)."""
        d = dataclasses.asdict(self)
        d["ratio"] = self.ratio
        return d


def robust_noise(y) -> float:
    """Noise of a smooth curve from its second differences (robust, 1.4826 MAD / sqrt 6).

    Parameters
    ----------
    y : array_like
        Samples on an even grid (NaN ignored).

    Returns
    -------
    float
        NaN with fewer than 5 finite points.
    """
    v = np.asarray(y, dtype=float)
    v = v[np.isfinite(v)]
    if v.size < 5:
        return float("nan")
    d2 = v[2:] - 2.0 * v[1:-1] + v[:-2]
    return 1.4826 * float(np.median(np.abs(d2 - np.median(d2)))) / math.sqrt(6.0)


_POOLED_NAMES = ("i0", "amplitude", "tau", "frac", "log_ratio")


def _pooled_start(i0, amp, tau, prior: ShapePrior, bounds, max_log_ratio):
    """Start values and bounds ``(p0, lo, hi)`` of ``i0, amplitude, tau, frac, log_ratio``."""
    p0 = (
        float(i0),
        float(amp),
        float(np.clip(tau, bounds[0] * 1.01, bounds[1] * 0.99)),
        float(np.clip(prior.frac_mean, 0.01, 0.99)),
        float(np.clip(prior.log_ratio_mean, 0.01, 0.99 * max_log_ratio)),
    )
    inf = math.inf
    return p0, (-inf, -inf, bounds[0], 0.0, 0.0), (inf, inf, bounds[1], 1.0, max_log_ratio)


def fit_biexponential_pooled(
    t_s,
    y,
    *,
    prior: ShapePrior,
    sigma=None,
    exposure_s: float = 0.0,
    tau_bounds_s: tuple[float, float] | None = None,
    start: DecayFit | None = None,
) -> DecayFit:
    """Biexponential fit with a population prior on its shape (partial pooling).

    Minimizes ``sum(((y - model) / sigma)**2) + ((f - f0)/sf)**2 +
    ((rho - rho0)/srho)**2`` over ``i0, A, tau, f, rho`` (see the module
    docstring) with ``tau`` in ``tau_bounds_s``, ``0 <= f <= 1`` and
    ``0 <= rho <= ln(hi/lo)``. ``sigma`` must be the absolute noise of ``y``
    for the prior to carry its intended weight: the covariance is *not*
    rescaled by the reduced chi-square, and ``tau_err_s`` is the posterior
    standard error. Without ``sigma`` the noise is estimated from the second
    differences of ``y`` (:func:`robust_noise`).

    Parameters
    ----------
    t_s, y : array_like, shape (n,)
        Time from the switching edge to mid-exposure (s) and the averaged,
        normalized response.
    prior : ShapePrior
        Centre and width of the shape prior.
    sigma : array_like or float, optional
        Absolute standard errors of ``y``.
    exposure_s : float
        Frame exposure, s.
    tau_bounds_s : (float, float), optional
        Search range of the mean time; default 0.3 x sample interval to 5 x window.
    start : DecayFit, optional
        A previous fit of the same curve (its ``i0``, step and ``tau`` are
        tried as a start next to the data-driven one).

    Returns
    -------
    DecayFit
        ``model='biexp'`` with the flag 'shape_prior' (or a flagged failure).
        ``redchi``, ``aic`` and ``bic`` count the data residuals only.
    """
    exposure_s = float(exposure_s)
    t, yy, w, dropped = _prepare(t_s, y, sigma)
    extra = ("points_dropped_nonfinite",) if dropped else ()
    if t.size < _MIN_POINTS["biexp"]:
        return _too_few_points(int(t.size), "the biexponential", _MIN_POINTS["biexp"], exposure_s, extra)
    bounds = _check_bounds(t, tau_bounds_s)
    if w is None:
        noise = robust_noise(yy)
        if not (np.isfinite(noise) and noise > 0):
            noise = float(np.std(yy)) or 1.0
        w = np.full(t.size, 1.0 / noise)
    res = _pooled_minimize(t, yy, w, exposure_s, prior, bounds, start)
    if res is None:
        return _fit_raised(int(t.size), exposure_s, bounds, extra)
    return _pooled_fit(res, t.size, w, bounds, dropped, exposure_s)


def _pooled_minimize(t, yy, w, exposure_s: float, prior: ShapePrior, bounds, start: DecayFit | None):
    """The best least-squares result of the pooled objective over the starts (None: every start
    raised)."""
    max_log_ratio = math.log(bounds[1] / bounds[0])
    pf = (prior.frac_mean, prior.frac_sd, prior.log_ratio_mean, prior.log_ratio_sd)

    starts = [_initial_estimates(t, yy, bounds)]
    if start is not None and np.isfinite(start.tau_s) and np.isfinite(start.i0) and np.isfinite(start.i1):
        starts.insert(0, (start.i0, start.i1 + (start.i2 if np.isfinite(start.i2) else 0.0), start.tau_s))
    best = None
    for i0, amp, tau in starts:
        start = _pooled_start(i0, amp, tau, prior, bounds, max_log_ratio)
        res = _run(_lsq.POOLED, start, t, yy, w, exposure_s, prior=pf, scale_covar=False)
        if res is None or not np.isfinite(res.chisqr):
            continue
        key = res.chisqr * (1 - 1e-9 * (res.success + res.errorbars))
        if best is None or key < best[0]:
            best = (key, res)
        if res.success and res.errorbars:
            break  # the prior makes the problem well posed: one clean start suffices
    return None if best is None else best[1]


def _pooled_fit(res, n_points: int, w, bounds, dropped: int, exposure_s: float) -> DecayFit:
    """The :class:`DecayFit` of a pooled least-squares result (information criteria from the data
    residuals)."""
    v = res.values
    tau1, tau2 = component_taus(v["tau"], v["frac"], v["log_ratio"])
    resid = res.residual[:n_points]
    n = int(n_points)
    chi2 = float(np.sum(resid**2))
    k = len(_POOLED_NAMES)
    redchi = chi2 / max(n - 3, 1)  # the prior pins ~2 of the 5 parameters
    aic = n * math.log(max(chi2, 1e-300) / n) + 2 * k
    bic = n * math.log(max(chi2, 1e-300) / n) + math.log(n) * k
    tau = float(v["tau"])
    tau_err = _stderr(res, "tau")
    amp = float(v["amplitude"])
    amp_err = _stderr(res, "amplitude")
    flags = _common_flags(res, tau, tau_err, dropped)
    if _at_bound(tau, *bounds):
        flags.append("tau_at_bound")
    if np.isfinite(amp_err) and amp_err > 0:
        if abs(amp) < _AMPLITUDE_SNR * amp_err:
            flags.append("amplitude_too_small")
    elif amp == 0.0 or abs(amp) < _AMPLITUDE_SNR * math.sqrt(chi2 / n) / float(np.mean(w)):
        flags.append("amplitude_too_small")
    flags.append("shape_prior")
    f = float(v["frac"])
    return DecayFit(
        model="biexp",
        tau_s=tau,
        tau_err_s=tau_err,
        tau1_s=tau1,
        tau2_s=tau2,
        i0=float(v["i0"]),
        i1=amp * f,
        i2=amp * (1.0 - f),
        redchi=redchi,
        aic=aic,
        bic=bic,
        success=bool(res.success),
        flags=tuple(dict.fromkeys(flags)),
        message=str(res.message),
        n_points=n,
        exposure_s=exposure_s,
        tau_bounds_s=(float(bounds[0]), float(bounds[1])),
        frac=f,
        frac_err=_stderr(res, "frac"),
        log_ratio=float(v["log_ratio"]),
        log_ratio_err=_stderr(res, "log_ratio"),
        tau_err_method="covariance" if np.isfinite(tau_err) else "none",
    )
