"""X-ray (or light) on/off records at several dose rates: photocurrent, SNR, sensitivity, detection limit.

Per file (one dose rate), per cycle ``c``:

- photocurrent ``I_photo,c``: mean over the last half of on-segment ``c``;
- dark ``I_dark,c``: mean over the last half of the off-segment before it;
- SNR_c = (I_photo,c - I_dark,c) / rms(I_i - I_photo,c), the I_i the samples
  of that last half; the file's SNR is the mean over cycles and its
  standard error the spread over cycles / sqrt(n).

Across files: the sensitivity is the slope of the current density against
dose rate (weighted by the per-file standard errors), the detection limit
the dose rate where the SNR line, weighted by each SNR's uncertainty,
reaches 3; both with a 95 % Student-t interval. The unweighted line is
computed too, for comparison.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import nnls

from .segments import cycle_average, off_levels, segment_mean
from .stats import LineFit, fit_line, t_interval
from .timing import exp_fit, rise_decay_10_90

__all__ = ["DOSE_COLUMNS", "DoseRateResult", "analyze_dose_rate", "dose_rate_fits"]

#: columns of xray_dose_rates.csv (the spec's first)
DOSE_COLUMNS = ["dose_rate_nGy_per_s", "photocurrent_A", "dark_current_A", "peak_current_A", "snr",
                "contrast_percent", "current_density_A_per_cm2", "current_density_se_A_per_cm2", "snr_se",
                "n_cycles", "rise_time_s", "decay_time_s", "noise_A", "unsteady_cycles"]  # fmt: skip
#: the SNR at which the detection limit is read
SNR_AT_LIMIT = 3.0


@dataclass
class DoseRateResult:
    """One file (dose rate): the table row, the cycles and the cycle average."""

    row: dict
    cycles: pd.DataFrame
    t_rel_s: np.ndarray | None
    average_A: np.ndarray | None
    on_duration_s: float


def _cycles(t: np.ndarray, i: np.ndarray, seg: pd.DataFrame) -> pd.DataFrame:
    lv = off_levels(t, i, seg)
    rows = []
    for k, (a, b) in enumerate(zip(seg["on_s"], seg["off_s"])):
        photo, rms, n = segment_mean(t, i, 0.5 * (a + b), b)
        dark = lv.level_A[k]
        if n < 2 or not np.isfinite(dark):
            continue
        snr = (photo - dark) / rms if rms > 0 else math.nan  # a constant current: not recorded?
        rows.append((k + 1, a, b, photo, dark, rms, snr, lv.std_A[k], _unsteady(t, i, 0.5 * (a + b), b, rms)))
    return pd.DataFrame(
        rows,
        columns=["cycle", "on_s", "off_s", "photo_A", "dark_A", "rms_A", "snr", "dark_std_A", "unsteady"],
    )


def _unsteady(t: np.ndarray, i: np.ndarray, start: float, end: float, rms: float) -> bool:
    """Whether the straight-line trend across [start, end) exceeds the rms about the mean (still settling)."""
    sel = (t >= start) & (t < end)
    if sel.sum() < 3 or not rms > 0:
        return False
    slope = np.polyfit(t[sel], i[sel], 1)[0]
    return bool(abs(slope) * (end - start) > rms)


def _mean_se(x: np.ndarray) -> tuple[float, float]:
    return float(np.mean(x)), (float(np.std(x, ddof=1) / np.sqrt(x.size)) if x.size > 1 else math.nan)


def analyze_dose_rate(
    time_s: np.ndarray,
    current_A: np.ndarray,
    segments: pd.DataFrame,
    *,
    dose_rate_nGy_per_s: float,
    area_cm2: float,
) -> DoseRateResult:
    """Figures of merit of one file; row keys :data:`DOSE_COLUMNS`.

    Raises
    ------
    ValueError
        No on-segment with a dark level before it and samples in its last half.
    """
    t = np.asarray(time_s, float)
    i = np.asarray(current_A, float)
    cyc = _cycles(t, i, segments)
    if cyc.empty:
        raise ValueError("no complete on/off cycle (each needs an off-segment before it)")
    photo = float(cyc.photo_A.mean())
    dark = float(cyc.dark_A.mean())
    delta, delta_se = _mean_se((cyc.photo_A - cyc.dark_A).to_numpy())
    snr, snr_se = _mean_se(cyc.snr.to_numpy())
    avg = cycle_average(t, i, segments)
    peak = contrast = rise = decay = math.nan
    t_rel = y = None
    on_dur = float(np.median(segments.off_s - segments.on_s))
    if avg is not None:
        t_rel, y, on_dur, _ = avg
        on = (t_rel >= 0) & (t_rel < on_dur)
        peak = float(y[on].max())
        a_dark, _, _ = segment_mean(t_rel, y, t_rel[0], 0.0)
        a_photo, _, _ = segment_mean(t_rel, y, 0.5 * on_dur, on_dur)
        contrast = (peak - a_photo) / (a_photo - a_dark) * 100.0
        rise, decay = rise_decay_10_90(t_rel, y, on_duration_s=on_dur, dark=a_dark, photo=a_photo)
    row = dict(
        dose_rate_nGy_per_s=float(dose_rate_nGy_per_s), photocurrent_A=photo, dark_current_A=dark,
        peak_current_A=peak, snr=snr, contrast_percent=contrast, current_density_A_per_cm2=delta / area_cm2,
        current_density_se_A_per_cm2=delta_se / area_cm2, snr_se=snr_se, n_cycles=int(len(cyc)),
        rise_time_s=rise, decay_time_s=decay, noise_A=float(cyc.rms_A.mean()),
        unsteady_cycles=int(cyc.unsteady.sum()),
    )  # fmt: skip
    return DoseRateResult(row=row, cycles=cyc, t_rel_s=t_rel, average_A=y, on_duration_s=on_dur)


def _se_or_model(se: np.ndarray, value: np.ndarray, n: np.ndarray) -> np.ndarray | None:
    """Per-point standard errors from a pooled variance model, or None (unweighted).

    Each file's spread over its few cycles is a noisy estimate of its
    variance; the per-cycle variances of all files are pooled into
    var_c = a + b * value**2 (a noise floor plus a relative part, a, b >= 0,
    non-negative least squares), so the weights rest on every cycle of the
    run (fitted in relative terms, iteratively reweighted). Returns sqrt(var_c / n).
    """
    se = np.asarray(se, float)
    n = np.asarray(n, float)
    if not np.all(np.isfinite(se)) or np.any(se <= 0) or np.any(n < 2):
        return None
    var_c = se**2 * n
    design = np.column_stack([np.ones_like(value), np.asarray(value, float) ** 2])
    model = var_c
    for _ in range(4):  # relative residuals: reweight by the current model
        w = 1.0 / model
        coef, _ = nnls(design * w[:, None], var_c * w)
        new = design @ coef
        if not np.all(new > 0):
            return se
        model = new
    return np.sqrt(model / n)


def dose_rate_fits(table: pd.DataFrame) -> dict:
    """Sensitivity and detection limit across dose rates (needs >= 3 dose rates).

    Returns
    -------
    dict
        ``sensitivity_uC_per_Gy_cm2``, ``sensitivity_se_uC_per_Gy_cm2``,
        ``sensitivity_ci95_uC_per_Gy_cm2``, ``detection_limit_nGy_per_s``,
        ``detection_limit_se_nGy_per_s``, ``detection_limit_ci95_nGy_per_s``,
        ``detection_limit_unweighted_nGy_per_s``, ``linear_dynamic_range_dB``,
        the fits themselves (``fit_current_density``, ``fit_snr``,
        ``fit_snr_unweighted``: :class:`LineFit`), and ``warnings``.
    """
    d = table["dose_rate_nGy_per_s"].to_numpy(float)
    out: dict = {"warnings": []}
    if d.size < 3:
        out["warnings"].append(f"sensitivity and detection limit need >= 3 dose rates, got {d.size}")
        return out
    j = table["current_density_A_per_cm2"].to_numpy(float)
    n = table["n_cycles"].to_numpy(float)
    j_se = _se_or_model(table["current_density_se_A_per_cm2"].to_numpy(), j, n)
    fj = fit_line(d * 1e-9, j * 1e6, None if j_se is None else j_se * 1e6)  # uC/(Gy cm2) per Gy/s
    lo, hi = t_interval(fj.slope, fj.slope_se, fj.dof)
    out.update(sensitivity_uC_per_Gy_cm2=fj.slope, sensitivity_se_uC_per_Gy_cm2=fj.slope_se,
               sensitivity_ci95_uC_per_Gy_cm2=[lo, hi], fit_current_density=fj)  # fmt: skip
    s = table["snr"].to_numpy(float)
    s_se = _se_or_model(table["snr_se"].to_numpy(), s, n)
    if s_se is None:
        out["warnings"].append(
            "SNR uncertainties unavailable (one cycle per file): SNR line fitted unweighted"
        )
    fs = fit_line(d, s, s_se)
    fu = fit_line(d, s)
    out.update(fit_snr=fs, fit_snr_unweighted=fu)
    out.update(_limit(fs, "detection_limit", out["warnings"]))
    out["detection_limit_unweighted_nGy_per_s"] = _limit(fu, "x", [])["x_nGy_per_s"]
    dj = np.abs(j)  # response above dark, by dose rate (the measured linear range)
    out["linear_dynamic_range_dB"] = float(20 * np.log10(dj.max() / dj.min())) if dj.min() > 0 else None
    return out


def _limit(fit: LineFit, name: str, warnings: list[str]) -> dict:
    if not fit.slope > 0:
        warnings.append(f"{name}: SNR does not grow with dose rate (slope {fit.slope:.3g}); no limit")
        return {f"{name}_nGy_per_s": None, f"{name}_se_nGy_per_s": None, f"{name}_ci95_nGy_per_s": None}
    x, se = fit.x_at(SNR_AT_LIMIT)
    lo, hi = t_interval(x, se, fit.dof)
    return {f"{name}_nGy_per_s": x, f"{name}_se_nGy_per_s": se, f"{name}_ci95_nGy_per_s": [lo, hi]}


def time_constants(t_rel: np.ndarray, y: np.ndarray, *, on_duration_s: float, rise_guess_s: float) -> dict:
    """Single- and bi-exponential fits of the decay after turn-off (lmfit); the lower AIC wins.

    Returns ``decay_tau_s``, ``decay_tau_se_s``, ``decay_tau2_s`` (None for
    single), ``decay_model`` and the same ``rise_*`` for the rise after turn-on.
    """
    out: dict = {}
    for phase, sel in (("rise", (t_rel >= 0) & (t_rel < on_duration_s)), ("decay", t_rel >= on_duration_s)):
        tt, yy = t_rel[sel], y[sel]
        if tt.size < 8:
            out[f"{phase}_tau_s"] = None
            continue
        guess = max(rise_guess_s, 2 * float(np.median(np.diff(tt)))) / math.log(9)
        fits = [exp_fit(tt, yy, n_exp=n, tau_guess=guess) for n in (1, 2)]
        best = fits[0]
        if fits[1]["success"] and fits[1]["aic"] < fits[0]["aic"] - 10:
            best = fits[1]
        out[f"{phase}_tau_s"] = best["tau_s"]
        out[f"{phase}_tau_se_s"] = best["tau_se_s"]
        out[f"{phase}_tau2_s"] = best.get("tau2_s")
        out[f"{phase}_model"] = "biexponential" if "tau2_s" in best else "single exponential"
    return out
