"""Current-voltage sweeps and constant-bias records: resistivity, V_oc, mu-tau (Hecht), drift, stability."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from lmfit import Parameters, minimize

from .stats import fit_line, t_interval

__all__ = ["dark_drift", "hecht_current", "mu_tau_hecht", "open_circuit_voltage", "resistivity", "stability"]

#: points on each side of the zero crossing used for the local line through it
VOC_HALF_WINDOW = 3


def _need(n: int, what: str) -> None:
    if n < 3:
        raise ValueError(f"{what} has {n} point(s); need at least 3")


def resistivity(voltage_V: np.ndarray, current_A: np.ndarray, *, area_cm2: float, spacing_cm: float) -> dict:
    """rho = R A / L with R = 1 / (dI/dV) of a straight line through the dark sweep.

    Returns ``resistivity_ohm_cm``, ``resistivity_se_ohm_cm``, ``resistance_ohm`` and the fit.
    """
    _need(len(voltage_V), "the dark sweep")
    f = fit_line(voltage_V, current_A)
    r = 1.0 / f.slope
    r_se = f.slope_se / f.slope**2
    k = area_cm2 / spacing_cm
    return {
        "resistivity_ohm_cm": r * k,
        "resistivity_se_ohm_cm": abs(r_se * k),
        "resistance_ohm": r,
        "fit": f,
    }


def open_circuit_voltage(voltage_V: np.ndarray, current_A: np.ndarray) -> dict:
    """Voltage where the irradiated sweep crosses zero current: a local line through the crossing.

    Returns ``open_circuit_voltage_V`` (None when the current never changes
    sign) and ``open_circuit_voltage_se_V``.
    """
    v = np.asarray(voltage_V, float)
    i = np.asarray(current_A, float)
    _need(v.size, "the irradiated sweep")
    sign = np.sign(i)
    k = np.flatnonzero(sign[1:] * sign[:-1] <= 0)
    if k.size == 0:
        return {"open_circuit_voltage_V": None, "open_circuit_voltage_se_V": None}
    c = int(k[np.argmin(np.abs(v[k]))])  # the crossing nearest 0 V
    lo, hi = max(0, c - VOC_HALF_WINDOW + 1), min(v.size, c + VOC_HALF_WINDOW + 1)
    if hi - lo < 3:
        lo, hi = max(0, hi - 3), max(hi, min(v.size, 3))
    f = fit_line(v[lo:hi], i[lo:hi])
    x, se = f.x_at(0.0)
    return {"open_circuit_voltage_V": x, "open_circuit_voltage_se_V": se}


def hecht_current(v: np.ndarray, i0: float, mu_tau: float, s_over_mu: float, spacing_cm: float) -> np.ndarray:
    """Modified Hecht equation I(V) = I0 (mu tau V/L^2)(1 - exp(-L^2/(mu tau V))) / (1 + (L/V)(s/mu))."""
    v = np.asarray(v, float)
    x = mu_tau * v / spacing_cm**2
    return i0 * x * (1.0 - np.exp(-1.0 / x)) / (1.0 + (spacing_cm / v) * s_over_mu)


def mu_tau_hecht(voltage_V: np.ndarray, current_A: np.ndarray, *, spacing_cm: float) -> dict:
    """mu-tau from the modified Hecht equation (lmfit, bounded, in scaled units).

    The fit runs on v = V / V_max and i = I / max|I| with m = mu tau V_max / L^2
    and g = (s/mu) L / V_max, so a 1e-13 A sweep fits exactly as a 1e-6 A one.
    The start is the best of a grid in m.

    Returns
    -------
    dict
        ``mu_tau_cm2_per_V``, ``mu_tau_se_cm2_per_V``, ``s_over_mu_V_per_cm``,
        ``i0_A``, ``success``.
    """
    v = np.asarray(voltage_V, float)
    i = np.asarray(current_A, float)
    pos = v > 0
    v, i = v[pos], i[pos]
    _need(v.size, "the Hecht sweep (V > 0)")
    vmax = float(v.max())
    scale = float(np.max(np.abs(i))) or 1.0
    vv, ii = v / vmax, i / scale

    def model(p):
        m, g = p["m"].value, p["g"].value
        x = m * vv
        return p["i0"].value * x * (1.0 - np.exp(-1.0 / x)) / (1.0 + g / vv)

    def resid(p):
        return model(p) - ii

    best: Any = None  # the lmfit MinimizerResult of lowest chi-square
    for m0 in np.logspace(-2, 2, 9):
        p = Parameters()
        p.add("i0", value=1.0, min=0.0, max=1e3)
        p.add("m", value=m0, min=1e-4, max=1e4)
        p.add("g", value=0.01, min=0.0, max=1e3)
        r = minimize(resid, p, method="leastsq")
        if best is None or r.chisqr < best.chisqr:
            best = r
    m = best.params["m"]
    k = spacing_cm**2 / vmax
    return {
        "mu_tau_cm2_per_V": m.value * k,
        "mu_tau_se_cm2_per_V": m.stderr * k if m.stderr is not None else math.nan,
        "s_over_mu_V_per_cm": best.params["g"].value * vmax / spacing_cm,
        "i0_A": best.params["i0"].value * scale,
        "success": bool(best.success),
    }


def dark_drift(
    time_s: np.ndarray, current_A: np.ndarray, *, bias_V: float, area_cm2: float, spacing_cm: float
) -> dict:
    """Dark-current drift: slope of I(t) / (E A), E = bias / L, in nA cm^-1 s^-1 V^-1 (with SE and 95 % CI)."""
    _need(len(time_s), "the drift record")
    f = fit_line(time_s, current_A)
    k = 1e9 / ((bias_V / spacing_cm) * area_cm2)
    lo, hi = t_interval(f.slope * k, abs(f.slope_se * k), f.dof)
    return {"dark_current_drift_nA_per_cm_s_V": f.slope * k, "dark_current_drift_se_nA_per_cm_s_V": abs(f.slope_se * k),
            "dark_current_drift_ci95_nA_per_cm_s_V": sorted([lo, hi]), "fit": f}  # fmt: skip


def stability(time_s: np.ndarray, current_A: np.ndarray) -> dict:
    """Current under continuous exposure: % change of a straight line over the record."""
    _need(len(time_s), "the stability record")
    t = np.asarray(time_s, float)
    f = fit_line(t, current_A)
    start, end = f(t[0]), f(t[-1])
    return {"stability_change_percent": float((end - start) / start * 100.0) if start != 0 else None,
            "stability_duration_s": float(t[-1] - t[0]), "fit": f}  # fmt: skip
