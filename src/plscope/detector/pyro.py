"""Pyroelectric coefficient per heating pulse (Chynoweth, dynamic method).

P_e = integral of (i - i_dark) over the on-segment / (A * delta_T). The
dark baseline is interpolated linearly across the pulse between the level
of the off-segment before it and that of the one after it (each the mean of
the segment's last quarter, :data:`BASELINE_FRACTION`, where the crystal has
cooled back), so a drifting dark current does not bias the charge. A pulse
with a usable off-segment on one side only takes that level (flat).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .segments import off_levels

__all__ = ["PULSE_COLUMNS", "pyro_pulses", "responsivity"]

#: part of each off-segment (its end) whose mean is the dark baseline
BASELINE_FRACTION = 0.25
PULSE_COLUMNS = ["pulse", "start_s", "end_s", "charge_C", "pyroelectric_coefficient_uC_per_cm2_K",
                 "peak_current_A", "baseline_A"]  # fmt: skip


def _charge(t: np.ndarray, i: np.ndarray, a: float, b: float, base) -> tuple[float, float]:
    """Charge above the baseline on [a, b] (trapezoid, segment ends interpolated) and the peak."""
    sel = (t > a) & (t < b)
    tt = np.concatenate(([a], t[sel], [b]))
    ii = np.concatenate(([np.interp(a, t, i)], i[sel], [np.interp(b, t, i)])) - base(tt)
    return float(np.sum(0.5 * (ii[1:] + ii[:-1]) * np.diff(tt))), float(ii.max())


def pyro_pulses(
    time_s: np.ndarray, current_A: np.ndarray, segments: pd.DataFrame, *, area_cm2: float, delta_T_K: float
) -> pd.DataFrame:
    """One row per heating pulse: charge and pyroelectric coefficient.

    Parameters
    ----------
    time_s, current_A : numpy.ndarray
    segments : pandas.DataFrame
        On-segments (``on_s``, ``off_s``).
    area_cm2 : float
        Electrode area A.
    delta_T_K : float
        Temperature swing per pulse.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`PULSE_COLUMNS`; a pulse without a usable baseline on
        either side is left out.
    """
    t = np.asarray(time_s, float)
    i = np.asarray(current_A, float)
    lv = off_levels(t, i, segments, fraction=BASELINE_FRACTION)
    rows = []
    for k, (a, b) in enumerate(zip(segments["on_s"], segments["off_s"])):
        pts = [(lv.time_s[j], lv.level_A[j]) for j in (k, k + 1) if lv.n[j] > 0]
        if not pts:
            continue
        tb, yb = np.array(pts).T

        def base(tt, tb=tb, yb=yb):
            return (
                np.interp(tt, tb, yb)
                if tb.size == 1
                else yb[0] + (yb[1] - yb[0]) * (tt - tb[0]) / (tb[1] - tb[0])
            )

        q, peak = _charge(t, i, a, b, base)
        rows.append((k + 1, a, b, q, q / (area_cm2 * delta_T_K) * 1e6, peak, float(np.mean(yb))))
    return pd.DataFrame(rows, columns=PULSE_COLUMNS)


def responsivity(
    peak_A: float,
    dark_noise_A: float,
    *,
    power_density_mW_per_cm2: float,
    area_cm2: float,
    sample_rate_hz: float,
) -> tuple[float, float]:
    """Responsivity (A/W) and specific detectivity D* (Jones, cm Hz^0.5 W^-1).

    R = I_peak / (P * A); D* = R * sqrt(A * df) / i_n with i_n the rms dark
    noise current at the record's bandwidth df = sample_rate / 2.
    """
    power_W = power_density_mW_per_cm2 * 1e-3 * area_cm2
    r = peak_A / power_W
    d_star = r * np.sqrt(area_cm2 * 0.5 * sample_rate_hz) / dark_noise_A if dark_noise_A > 0 else float("nan")
    return float(r), float(d_star)
