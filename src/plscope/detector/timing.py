"""Response times: 10-90 % rise/decay (first crossings) and exponential time constants (lmfit)."""

from __future__ import annotations

import math

import numpy as np
from lmfit import Parameters, minimize

__all__ = ["crossing_time", "exp_fit", "rise_decay_10_90"]


def crossing_time(t: np.ndarray, y: np.ndarray, level: float, *, rising: bool) -> float:
    """First time ``y`` crosses ``level`` (linear interpolation; NaN if never)."""
    hit = y >= level if rising else y <= level
    k = int(np.argmax(hit))
    if not hit[k]:
        return float("nan")
    if k == 0:
        return float(t[0])
    y0, y1 = y[k - 1], y[k]
    frac = (level - y0) / (y1 - y0) if y1 != y0 else 0.0
    return float(t[k - 1] + frac * (t[k] - t[k - 1]))


def rise_decay_10_90(
    t_rel: np.ndarray, y: np.ndarray, *, on_duration_s: float, dark: float, photo: float
) -> tuple[float, float]:
    """Rise (10->90 %) after turn-on at 0 and decay (90->10 %) after turn-off, first crossings.

    The step runs from ``dark`` to ``photo`` (its sign may be either).
    """
    sign = 1.0 if photo >= dark else -1.0
    z = sign * (y - dark)
    step = sign * (photo - dark)
    on = t_rel >= 0
    t_on, z_on = t_rel[on], z[on]
    rise = crossing_time(t_on, z_on, 0.9 * step, rising=True) - crossing_time(
        t_on, z_on, 0.1 * step, rising=True
    )
    off = t_rel >= on_duration_s
    t_off, z_off = t_rel[off], z[off]
    decay = crossing_time(t_off, z_off, 0.1 * step, rising=False) - crossing_time(
        t_off, z_off, 0.9 * step, rising=False
    )
    return float(rise), float(decay)


def _model(p, t, n):
    y = p["c"].value + p["a1"].value * np.exp(-t / p["tau1"].value)
    if n == 2:
        y = y + p["a2"].value * np.exp(-t / p["tau2"].value)
    return y


def exp_fit(t: np.ndarray, y: np.ndarray, *, n_exp: int = 1, tau_guess: float | None = None) -> dict:
    """Fit ``c + sum a_k exp(-t/tau_k)`` (k = 1 or 2) with lmfit, in scaled units.

    ``t`` is shifted to start at 0 and ``y`` divided by its largest
    magnitude, so the fit behaves the same for pA and mA records.

    Returns
    -------
    dict
        ``tau_s`` (and ``tau2_s``), their standard errors ``tau_se_s``
        (``tau2_se_s``), ``amplitudes``, ``offset``, ``aic``, ``success``.
    """
    t = np.asarray(t, float)
    y = np.asarray(y, float)
    t0 = t[0]
    span = float(t[-1] - t0)
    scale = float(np.max(np.abs(y))) or 1.0
    tt, yy = (t - t0) / span, y / scale
    g = (tau_guess / span) if tau_guess else 0.2
    p = Parameters()
    p.add("c", value=float(yy[-1]))
    p.add("a1", value=float(yy[0] - yy[-1]))
    p.add("tau1", value=g, min=1e-6, max=1e3)
    if n_exp == 2:
        p["a1"].set(value=0.7 * float(yy[0] - yy[-1]))
        p.add("a2", value=0.3 * float(yy[0] - yy[-1]))
        p.add("tau2", value=g * 5, min=1e-6, max=1e3)
    res = minimize(lambda q: _model(q, tt, n_exp) - yy, p, method="leastsq")
    out = {"success": bool(res.success), "aic": float(res.aic), "offset": res.params["c"].value * scale,
           "amplitudes": [res.params["a1"].value * scale]}  # fmt: skip
    taus = [("tau1", "tau_s", "tau_se_s"), ("tau2", "tau2_s", "tau2_se_s")][:n_exp]
    for name, key, sekey in taus:
        par = res.params[name]
        out[key] = par.value * span
        out[sekey] = par.stderr * span if par.stderr is not None else math.nan
    if n_exp == 2:
        out["amplitudes"].append(res.params["a2"].value * scale)
    return out
