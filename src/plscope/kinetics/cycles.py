"""Cycle bookkeeping: bleaching correction, switching windows, cycle averaging.

Conventions
-----------
- ``time_s`` is the mid-exposure time of each frame on the DAQ clock and
  ``exposure_s`` the exposure; frame ``k`` integrates over
  ``[time_s[k] - exposure_s/2, time_s[k] + exposure_s/2]``.
- A frame belongs to a window ``[a, b]`` only if its whole exposure lies in
  it; frames whose exposure straddles a switching edge are never used.
- Times in a switching window are measured from the edge to mid-exposure.
- The *pre-ON plateau* of a cycle is the last ``plateau_s`` seconds of the
  field-OFF time before its ON edge (the lead-in for the first cycle). Both
  the polarization and the recovery curve of a cycle are divided by it, so
  polarization runs from 1 to ~1 - SE and recovery from ~1 - SE back to 1.
- Plateau levels are robust means: the mean of the frames within
  3 x 1.4826 MAD of the median, so a blink (PL x 0.3-0.7 for ~1 s) inside a
  3 s plateau does not shift the level.
- Blinks in a superposition (:func:`superpose_cycles`): the noise ``sigma``
  is estimated robustly from frame-to-frame differences; a grid point of a
  cycle is an outlier when it deviates from the median curve over cycles by
  more than ``max(outlier_k * sigma * sqrt(1 + pi / (2 n)), outlier_floor)``
  (the second term: the uncertainty of the median of ``n`` curves). Outlier
  points (dilated by one grid step) are masked; a cycle with more than
  ``spoil_fraction`` of its points masked is *spoiled* and left out
  entirely. With 2 cycles there is no median to compare with (flag
  'outlier_detection_skipped'); the lower of the two cycles is masked where
  they differ by more than the threshold of a difference (a blink only
  lowers the PL; flag 'blinks_tested_pairwise'). With 1 cycle nothing is
  tested.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass, field
from typing import Literal

import numba
import numpy as np
import pandas as pd

from ..columns import CYCLE_COLUMNS
from ._checks import KineticsInputError, as_1d_float, check_cycles, check_exposure, check_time

__all__ = [
    "BleachModel",
    "SuperposedCycles",
    "bleach_curve",
    "cycle_windows",
    "frames_in_window",
    "robust_mean",
    "superpose_cycles",
    "switching_efficiency_per_cycle",
]

logger = logging.getLogger(__name__)

_EDGE_EPS_S = 1e-9
_TIME_COLUMNS = ("on_start_s", "on_end_s", "off_end_s")
_WINDOW_COLUMNS = (
    "bright_start_s",
    "bright_end_s",
    "quenched_start_s",
    "quenched_end_s",
    "pol_start_s",
    "pol_end_s",
    "rec_start_s",
    "rec_end_s",
)
_MAD_TO_SIGMA = 1.4826


# --------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------


def robust_mean(values, *, clip: float = 3.0) -> float:
    """Mean of the finite values within ``clip`` robust sigmas of the median.

    Parameters
    ----------
    values : array_like
        Samples (NaN ignored).
    clip : float
        Rejection threshold in units of 1.4826 x MAD.

    Returns
    -------
    float
        NaN when there is no finite value.
    """
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan")
    if v.size < 3:
        return float(np.mean(v))
    med = _median(v)
    mad = _MAD_TO_SIGMA * _median(np.abs(v - med))
    if mad == 0.0:
        return med
    keep = np.abs(v - med) <= clip * mad
    return float(np.mean(v[keep]))


def _median(v: np.ndarray) -> float:
    """``np.median`` of a 1-D array, by a sort (the same two middle values and their mean; a third
    of the time for the few-ten-value arrays of a plateau or curve)."""
    srt = np.sort(v)
    n = srt.size
    if n == 0 or np.isnan(srt[-1]):  # NaN sorts last
        return float("nan")
    return float(0.5 * (srt[(n - 1) // 2] + srt[n // 2]))


def frames_in_window(time_s, start_s, end_s, *, exposure_s: float) -> np.ndarray:
    """Boolean mask of frames whose whole exposure lies in ``[start_s, end_s]``.

    Parameters
    ----------
    time_s : ndarray, shape (n,)
        Mid-exposure frame times, s.
    start_s, end_s : float
        Window, s.
    exposure_s : float
        Exposure time, s.

    Returns
    -------
    ndarray of bool, shape (n,)
    """
    t = np.asarray(time_s, dtype=float)
    half = 0.5 * float(exposure_s)
    return (t - half >= start_s - _EDGE_EPS_S) & (t + half <= end_s + _EDGE_EPS_S)


def _frame_interval_s(time_s: np.ndarray) -> float:
    return float(np.median(np.diff(time_s))) if time_s.size > 1 else float("nan")


# --------------------------------------------------------------------------
# windows
# --------------------------------------------------------------------------


def cycle_windows(
    cycles: pd.DataFrame, *, plateau_s: float = 3.0, record_start_s: float = -np.inf
) -> pd.DataFrame:
    """Time windows of every cycle.

    Parameters
    ----------
    cycles : DataFrame
        One row per field-ON segment (``cycle, level, field_kV_per_cm, sign,
        on_start_s, on_end_s, off_end_s``).
    plateau_s : float
        Length of the plateaus used as stable levels, s.
    record_start_s : float
        Start of the record (limits the lead-in plateau of the first cycle).

    Returns
    -------
    DataFrame
        The cycle columns plus ``off_start_s`` (start of the field-OFF time
        before the ON edge: previous ``on_end_s`` or ``record_start_s``),
        ``bright_start_s, bright_end_s`` (pre-ON plateau),
        ``quenched_start_s, quenched_end_s`` (last ``plateau_s`` of the ON
        window), ``pol_start_s, pol_end_s`` (= ON window) and
        ``rec_start_s, rec_end_s`` (= following OFF window). Sorted by
        ``on_start_s``.
    """
    c = check_cycles(cycles)  # a sorted copy
    # all new columns at once (column-by-column insertion was most of its time)
    on_start, on_end, off_end = (c[k].to_numpy() for k in _TIME_COLUMNS)
    windows = _window_arrays(on_start, on_end, off_end, plateau_s, record_start_s)
    return pd.concat([c, pd.DataFrame(windows, index=c.index)], axis=1)


def _window_arrays(on_start, on_end, off_end, plateau_s: float, record_start_s: float) -> dict:
    """The window columns of :func:`cycle_windows` as arrays, from the sorted cycle times."""
    prev_end = np.empty(on_end.size)
    prev_end[1:] = on_end[:-1]
    if prev_end.size:
        prev_end[0] = record_start_s
    return {
        "off_start_s": prev_end,
        "bright_end_s": on_start,
        "bright_start_s": np.maximum(on_start - plateau_s, prev_end),
        "quenched_end_s": on_end,
        "quenched_start_s": np.maximum(on_end - plateau_s, on_start),
        "pol_start_s": on_start,
        "pol_end_s": on_end,
        "rec_start_s": on_end,
        "rec_end_s": off_end,
    }


# --------------------------------------------------------------------------
# bleaching
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class BleachModel:
    """Multiplicative photobleaching ``b(t) = exp(-k (t - t0))``, ``b(t0) = 1``.

    Call it with times to get the factor to divide out:
    ``intensity / model(time_s)``.

    Attributes
    ----------
    rate_per_s : float
        ``k``, s^-1 (positive for bleaching; 0 when no correction is made).
    rate_err_per_s : float
        Standard error of ``k`` (NaN when it cannot be estimated).
    t0_s : float
        Reference time (first frame), s.
    n_plateaus : int
        Plateaus used in the fit (after rejection).
    n_rejected : int
        Plateaus rejected as outliers.
    success : bool
        False when the fit was impossible; the model is then 1 everywhere.
    flags : tuple of str
        'too_few_plateaus', 'nonpositive_plateau', 'plateaus_rejected'.
    message : str
    """

    rate_per_s: float
    rate_err_per_s: float
    t0_s: float
    n_plateaus: int
    n_rejected: int = 0
    success: bool = True
    flags: tuple[str, ...] = ()
    message: str = ""

    def __call__(self, time_s) -> np.ndarray:
        """Relative PL level ``exp(-k (t - t0))`` at ``time_s`` (1 if the fit failed)."""
        t = np.asarray(time_s, dtype=float)
        k = self.rate_per_s if (self.success and np.isfinite(self.rate_per_s)) else 0.0
        return np.exp(-k * (t - self.t0_s))

    def correct(self, time_s, intensity) -> np.ndarray:
        """``intensity / self(time_s)``."""
        return np.asarray(intensity, dtype=float) / self(time_s)

    @property
    def loss_percent_per_min(self) -> float:
        """PL lost per minute, % (``100 (1 - exp(-60 k))``)."""
        if not np.isfinite(self.rate_per_s):
            return float("nan")
        return 100.0 * (1.0 - math.exp(-60.0 * self.rate_per_s))

    def to_dict(self) -> dict:
        """Plain dict; ``flags`` ';'-joined; adds ``loss_percent_per_min``."""
        d = dataclasses.asdict(self)
        d["flags"] = ";".join(self.flags)
        d["loss_percent_per_min"] = self.loss_percent_per_min
        return d


def _plateau_points(t, y, times: tuple, plateau_fraction, exposure_s, lead_in_start):
    """(mid time, robust level, n frames) of every field-OFF plateau (``times``: the cycles'
    ``on_start_s, on_end_s, off_end_s`` sorted by ``on_start_s``)."""
    on_start, on_end, off_end = times
    pts = []
    if on_start.size:
        m = frames_in_window(t, lead_in_start, float(on_start[0]), exposure_s=exposure_s) & np.isfinite(y)
        if np.count_nonzero(m) >= 2:
            pts.append((float(np.mean(t[m])), robust_mean(y[m]), int(np.count_nonzero(m))))
    for a, b in zip(on_end.tolist(), off_end.tolist(), strict=True):
        start = b - plateau_fraction * (b - a)
        m = frames_in_window(t, start, b, exposure_s=exposure_s) & np.isfinite(y)
        if np.count_nonzero(m) >= 2:
            pts.append((float(np.mean(t[m])), robust_mean(y[m]), int(np.count_nonzero(m))))
    return np.array(pts, dtype=float).reshape(-1, 3)


def _cycle_times(c: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``on_start_s, on_end_s, off_end_s`` of a checked cycle table (:func:`check_cycles`), as floats."""
    return tuple(c[k].to_numpy(dtype=float) for k in _TIME_COLUMNS)  # type: ignore[return-value]


def _weighted_loglinear(tp, logy, w, t0):
    """Weighted LS of ``log y = a - k (t - t0)``; returns k, its stderr, residuals."""
    x = tp - t0
    W = np.sum(w)
    xm = np.sum(w * x) / W
    ym = np.sum(w * logy) / W
    sxx = np.sum(w * (x - xm) ** 2)
    if sxx <= 0:
        return float("nan"), float("nan"), np.zeros_like(x)
    slope = np.sum(w * (x - xm) * (logy - ym)) / sxx
    resid = logy - (ym + slope * (x - xm))
    dof = x.size - 2
    if dof > 0:
        s2 = np.sum(w * resid**2) / dof
        err = math.sqrt(s2 / sxx)
    else:
        err = float("nan")
    return float(-slope), err, resid


def _fit_rejecting_plateaus(pts: np.ndarray, t0: float, reject_k: float, flags: list[str]):
    """Log-linear bleaching fit of the plateau points, refitted once without the plateaus more than
    ``reject_k`` robust sigmas off (from five plateaus); ``(rate_per_s, rate_err_per_s, n_rejected)``."""
    tp, logy, w = pts[:, 0], np.log(pts[:, 1]), pts[:, 2]
    k, k_err, resid = _weighted_loglinear(tp, logy, w, t0)
    n_rejected = 0
    if pts.shape[0] >= 5 and np.isfinite(k):
        mad = _MAD_TO_SIGMA * float(np.median(np.abs(resid - np.median(resid))))
        if mad > 0:
            keep = np.abs(resid - np.median(resid)) <= reject_k * mad
            n_rejected = int(np.count_nonzero(~keep))
            if n_rejected and np.count_nonzero(keep) >= 2:
                k, k_err, _ = _weighted_loglinear(tp[keep], logy[keep], w[keep], t0)
                flags.append("plateaus_rejected")
    return k, k_err, n_rejected


def bleach_curve(
    time_s,
    intensity,
    cycles: pd.DataFrame,
    *,
    exposure_s: float = 0.0,
    plateau_fraction: float = 0.3,
    reject_k: float = 4.0,
) -> BleachModel:
    """Estimate photobleaching from the field-OFF plateaus.

    The plateaus are the last ``plateau_fraction`` of every field-OFF window
    (``on_end_s .. off_end_s``) plus the lead-in before the first ON edge, where
    the particle is bright; each gives one point (mean frame time, robust mean
    level). ``level = A exp(-k (t - t0))`` is fitted by weighted least squares
    of ``log(level)`` against time (weights: frames per plateau), exact in log
    space; plateaus more than ``reject_k`` robust sigmas off (blinks, incomplete
    recovery) are rejected once and the fit repeated. The model is 1 at ``t0``,
    the first frame: the trace is divided by it.

    Parameters
    ----------
    time_s : array_like, shape (n,)
        Mid-exposure frame times, s.
    intensity : array_like, shape (n,)
        Background-subtracted PL per frame (NaN allowed).
    cycles : DataFrame
        Per-cycle table (see :func:`cycle_windows`).
    exposure_s : float
        Frame exposure, s.
    plateau_fraction : float
        Fraction (0, 1] of each OFF window, at its end, used as plateau.
    reject_k : float
        Outlier threshold for plateaus.

    Returns
    -------
    BleachModel
        Never raises for bad data: with fewer than two usable plateaus the
        model is 1 everywhere and ``success`` is False.
    """
    t = check_time(time_s)
    y = as_1d_float("intensity", intensity, length=t.size)
    exposure_s = check_exposure(exposure_s)
    if not 0 < plateau_fraction <= 1:
        raise KineticsInputError(f"plateau_fraction: expected 0 < f <= 1, got {plateau_fraction!r}")
    times = _cycle_times(check_cycles(cycles))
    return _bleach_model(t, y, times, exposure_s, plateau_fraction, reject_k)


def _bleach_model(t, y, times: tuple, exposure_s: float, plateau_fraction: float, reject_k: float):
    """:func:`bleach_curve` of checked inputs (``times``: :func:`_cycle_times` of the checked cycle
    table)."""
    t0 = float(t[0]) if t.size else 0.0
    lead_in_start = t0 - exposure_s / 2 if t.size else -np.inf
    pts = _plateau_points(t, y, times, plateau_fraction, exposure_s, lead_in_start)
    flags = []
    pos = pts[:, 1] > 0
    if not np.all(pos):
        flags.append("nonpositive_plateau")
        pts = pts[pos]
    if pts.shape[0] < 2:
        return BleachModel(
            rate_per_s=0.0,
            rate_err_per_s=float("nan"),
            t0_s=t0,
            n_plateaus=int(pts.shape[0]),
            success=False,
            flags=tuple(flags + ["too_few_plateaus"]),
            message=f"{pts.shape[0]} usable field-OFF plateau(s); need 2",
        )
    k, k_err, n_rejected = _fit_rejecting_plateaus(pts, t0, reject_k, flags)
    ok = bool(np.isfinite(k))
    if not ok:
        flags.append("fit_failed")
    return BleachModel(
        rate_per_s=k if ok else 0.0,
        rate_err_per_s=k_err,
        t0_s=t0,
        n_plateaus=int(pts.shape[0] - n_rejected),
        n_rejected=n_rejected,
        success=ok,
        flags=tuple(flags),
        message="" if ok else "degenerate plateau times",
    )


# --------------------------------------------------------------------------
# switching efficiency
# --------------------------------------------------------------------------


def switching_efficiency_per_cycle(
    time_s, intensity, cycles: pd.DataFrame, *, exposure_s: float, plateau_s: float = 3.0
) -> pd.DataFrame:
    """Bright and quenched plateau levels and SE of every cycle.

    ``SE = (bright - quenched) / bright`` with ``bright`` the pre-ON plateau
    and ``quenched`` the last ``plateau_s`` of the ON window (robust means).

    Parameters
    ----------
    time_s, intensity : array_like, shape (n,)
        Frame times (mid-exposure, s) and (bleach-corrected) PL.
    cycles : DataFrame
        Per-cycle table.
    exposure_s : float
        Frame exposure, s.
    plateau_s : float
        Plateau length, s.

    Returns
    -------
    DataFrame
        ``cycle, level, field_kV_per_cm, bright, quenched,
        switching_efficiency`` (NaN where a plateau has no frame or
        ``bright <= 0``).
    """
    t = check_time(time_s)
    y = as_1d_float("intensity", intensity, length=t.size)
    exposure_s = check_exposure(exposure_s)
    start = float(t[0]) - exposure_s / 2 if t.size else -np.inf
    cols, win = _windows_of(cycles, plateau_s, start, _SE_COLUMNS)
    return _se_table(t, y, cols, win, exposure_s)


_SE_COLUMNS = ("cycle", "level", "field_kV_per_cm")


def _se_table(t, y, cols: dict, win: dict, exposure_s: float) -> pd.DataFrame:
    """:func:`switching_efficiency_per_cycle` of checked arrays, the cycles' :data:`_SE_COLUMNS`
    and windows (sorted by ``on_start_s``)."""
    b = _plateau_levels(t, y, win["bright_start_s"], win["bright_end_s"], exposure_s)
    q = _plateau_levels(t, y, win["quenched_start_s"], win["quenched_end_s"], exposure_s)
    with np.errstate(divide="ignore", invalid="ignore"):
        se = np.where(b > 0, (b - q) / b, np.nan)
    return pd.DataFrame(
        {
            "cycle": cols["cycle"],
            "level": cols["level"],
            "field_kV_per_cm": np.asarray(cols["field_kV_per_cm"], dtype=float),
            "bright": b,
            "quenched": q,
            "switching_efficiency": se,
        }
    )


def _plateau_levels(t, y, start_s, end_s, exposure_s: float) -> np.ndarray:
    """Robust mean of the finite frames of every window (NaN where none): :func:`robust_mean` of each,
    compiled (:func:`_robust_means`)."""
    lo, hi = _frame_ranges(t, start_s, end_s, exposure_s)
    return _robust_means(np.asarray(y, dtype=float), lo, hi, 3.0)


@numba.njit(cache=True, nogil=True)
def _block_sum(a, lo, n):  # pragma: no cover (numba)
    """numpy's float64 sum of up to 128 values ``a[lo : lo + n]``: eight partial sums (fewer than 8
    values: one)."""
    if n < 8:
        res = 0.0
        for i in range(lo, lo + n):
            res += a[i]
        return res
    r0, r1, r2, r3 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3]
    r4, r5, r6, r7 = a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]
    i = 8
    while i < n - (n % 8):
        j = lo + i
        r0 += a[j]
        r1 += a[j + 1]
        r2 += a[j + 2]
        r3 += a[j + 3]
        r4 += a[j + 4]
        r5 += a[j + 5]
        r6 += a[j + 6]
        r7 += a[j + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[lo + i]
        i += 1
    return res


@numba.njit(cache=True, nogil=True)
def _pairwise_sum(a, lo, n):  # pragma: no cover (numba)
    """``np.add.reduce(a[lo : lo + n])`` as numpy sums float64: blocks of up to 128 values
    (:func:`_block_sum`) added pairwise, each half a multiple of 8 values (the same additions in the
    same order; numpy's recursion written with a stack, as numba cannot cache recursive functions)."""
    if n <= 128:
        return _block_sum(a, lo, n)
    seg = np.empty((256, 3), dtype=np.int64)  # (lo, n, 0: sum it / 1: add the last two sums)
    vals = np.empty(256)
    top, nv = 0, 0
    seg[0, 0], seg[0, 1], seg[0, 2] = lo, n, 0
    while top >= 0:
        s_lo, s_n, kind = seg[top, 0], seg[top, 1], seg[top, 2]
        top -= 1
        if kind == 1:
            vals[nv - 2] = vals[nv - 2] + vals[nv - 1]
            nv -= 1
        elif s_n <= 128:
            vals[nv] = _block_sum(a, s_lo, s_n)
            nv += 1
        else:
            n2 = s_n // 2
            n2 -= n2 % 8
            seg[top + 1, 0], seg[top + 1, 1], seg[top + 1, 2] = 0, 0, 1
            seg[top + 2, 0], seg[top + 2, 1], seg[top + 2, 2] = s_lo + n2, s_n - n2, 0
            seg[top + 3, 0], seg[top + 3, 1], seg[top + 3, 2] = s_lo, n2, 0
            top += 3
    return vals[0]


@numba.njit(cache=True, nogil=True)
def _sorted_median(v):  # pragma: no cover (numba)
    """:func:`_median` of finite values."""
    srt = np.sort(v)
    n = srt.size
    return 0.5 * (srt[(n - 1) // 2] + srt[n // 2])


@numba.njit(cache=True, nogil=True)
def _robust_means(y, lo, hi, clip):  # pragma: no cover (numba)
    """:func:`robust_mean` of the finite values of every ``y[lo[k] : hi[k]]`` (the same operations:
    medians by sort, numpy's pairwise sums)."""
    out = np.empty(lo.size)
    for k in range(lo.size):
        v = np.empty(max(hi[k] - lo[k], 0))
        n = 0
        for i in range(lo[k], hi[k]):
            if math.isfinite(y[i]):
                v[n] = y[i]
                n += 1
        v = v[:n]
        if n == 0:
            out[k] = math.nan
            continue
        if n < 3:
            out[k] = _pairwise_sum(v, 0, n) / n
            continue
        med = _sorted_median(v)
        dev = np.abs(v - med)
        mad = _MAD_TO_SIGMA * _sorted_median(dev)
        if mad == 0.0:
            out[k] = med
            continue
        kept = v[dev <= clip * mad]
        out[k] = _pairwise_sum(kept, 0, kept.size) / kept.size
    return out


# --------------------------------------------------------------------------
# superposition
# --------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class SuperposedCycles:
    """Cycles of one phase on a common time grid relative to the switching edge.

    Attributes
    ----------
    phase : {'pol', 'rec'}
    time_s : ndarray, shape (m,)
        Grid: time from the edge to mid-exposure, s.
    curves : ndarray, shape (n_cycles, m)
        Each cycle divided by its pre-ON plateau and interpolated on the
        grid; NaN where the cycle has no data or where a point was masked as
        an outlier (blink).
    cycle : ndarray of int, shape (n_cycles,)
        Cycle ids (rows of ``curves``).
    plateau : ndarray, shape (n_cycles,)
        Pre-ON bright level each cycle was divided by.
    used : ndarray of bool, shape (n_cycles,)
        Cycles entering the mean.
    spoiled : ndarray of bool, shape (n_cycles,)
        Cycles left out: outliers over more than ``spoil_fraction`` of the
        window, or no usable plateau / data.
    outlier_fraction : ndarray, shape (n_cycles,)
        Fraction of each cycle's grid points flagged as outliers.
    mean, sem : ndarray, shape (m,)
        Mean over used cycles and its standard error (NaN where < 2 cycles).
    n : ndarray of int, shape (m,)
        Cycles contributing to each grid point.
    noise : float
        Robust per-frame noise of the normalized curves (from frame-to-frame
        differences).
    flags : tuple of str
    """

    phase: Literal["pol", "rec"]
    time_s: np.ndarray
    curves: np.ndarray
    cycle: np.ndarray
    plateau: np.ndarray
    used: np.ndarray
    spoiled: np.ndarray
    outlier_fraction: np.ndarray
    mean: np.ndarray
    sem: np.ndarray
    n: np.ndarray
    noise: float = float("nan")
    flags: tuple[str, ...] = field(default=())

    @property
    def n_cycles(self) -> int:
        """Cycles of this level (rows of ``curves``)."""
        return int(self.cycle.size)

    @property
    def n_used(self) -> int:
        """Cycles in the mean."""
        return int(np.count_nonzero(self.used))

    @property
    def n_spoiled(self) -> int:
        """Cycles left out."""
        return int(np.count_nonzero(self.spoiled))

    def to_frame(self) -> pd.DataFrame:
        """Averaged curve as a DataFrame ``time_s, mean, sem, n_cycles``."""
        return pd.DataFrame({"time_s": self.time_s, "mean": self.mean, "sem": self.sem, "n_cycles": self.n})


def _interp_cycle(tc, yc, grid, max_gap_s):
    """Linear interpolation with NaN outside the data and across gaps."""
    out = np.full(grid.shape, np.nan)
    if tc.size == 0:
        return out
    if tc.size == 1:
        out[np.isclose(grid, tc[0], rtol=0, atol=1e-9)] = yc[0]
        return out
    _interp_into(tc, yc, grid, float(max_gap_s), out)
    return out


@numba.njit(cache=True, nogil=True)
def _interp_into(tc, yc, grid, max_gap_s, out):  # pragma: no cover (numba)
    """:func:`_interp_cycle` of two or more samples into ``out``: at the grid points inside
    ``tc[0] .. tc[-1]`` (1e-12 s of slack) whose samples are at most ``max_gap_s`` apart, ``np.interp``
    as numpy computes it (the slope of the interval, then ``slope (x - x_j) + y_j``, the other end
    if that is NaN); NaN elsewhere."""
    n = tc.size
    lo_t, hi_t = tc[0] - 1e-12, tc[n - 1] + 1e-12
    for i in range(grid.size):
        x = grid[i]
        out[i] = math.nan
        k = np.searchsorted(tc, x, side="right")
        c = min(max(k, 1), n - 1)
        if not (x >= lo_t and x <= hi_t and tc[c] - tc[c - 1] <= max_gap_s):
            continue
        j = k - 1
        if j == -1:
            out[i] = yc[0]
        elif j >= n - 1 or tc[j] == x:
            out[i] = yc[j]
        else:
            slope = (yc[j + 1] - yc[j]) / (tc[j + 1] - tc[j])
            v = slope * (x - tc[j]) + yc[j]
            if math.isnan(v):
                v = slope * (x - tc[j + 1]) + yc[j + 1]
                if math.isnan(v) and yc[j] == yc[j + 1]:
                    v = yc[j]
            out[i] = v


def _stats(curves):
    """Mean, SEM and count over rows, without empty-slice warnings."""
    finite = np.isfinite(curves)
    n = finite.sum(axis=0)
    s = np.where(finite, curves, 0.0).sum(axis=0)
    mean = np.full(curves.shape[1], np.nan)
    np.divide(s, n, out=mean, where=n > 0)
    dev = np.where(finite, curves - mean, 0.0)
    var = np.full(curves.shape[1], np.nan)
    np.divide((dev**2).sum(axis=0), n - 1, out=var, where=n > 1)
    sem = np.full(curves.shape[1], np.nan)
    np.divide(np.sqrt(var), np.sqrt(n), out=sem, where=n > 1)
    return mean, sem, n


def _nanmedian_rows(curves):
    """Column-wise median over finite values (NaN where a column is empty)."""
    out = np.full(curves.shape[1], np.nan)
    have = np.isfinite(curves).any(axis=0)
    if np.any(have):
        sub = curves[:, have]
        srt = np.sort(sub, axis=0)  # NaN last
        cnt = np.isfinite(sub).sum(axis=0)
        lo = srt[(cnt - 1) // 2, np.arange(sub.shape[1])]
        hi = srt[cnt // 2, np.arange(sub.shape[1])]
        out[have] = 0.5 * (lo + hi)
    return out


def _outliers(curves, have, noise, outlier_k, outlier_floor, n_with):
    """Points masked as blinks (dilated by one grid step), or None when no test is possible.

    Three or more cycles: a point deviating from the median over cycles by
    more than the threshold. Two cycles: there is no median, but a blink only
    ever lowers the PL, so where the two cycles differ by more than the
    threshold of a difference (``sqrt 2`` x that of one curve) the *lower*
    one is masked.
    """
    sig = noise if np.isfinite(noise) else 0.0
    with np.errstate(invalid="ignore"):
        if n_with >= 3:
            med = _nanmedian_rows(curves)
            thr = max(outlier_k * sig * math.sqrt(1.0 + math.pi / (2.0 * n_with)), outlier_floor)
            out = np.abs(curves - med) > thr
        elif n_with == 2:
            rows = np.flatnonzero(have.any(axis=1))
            thr = max(outlier_k * sig * math.sqrt(2.0), outlier_floor)
            d = curves[rows[0]] - curves[rows[1]]
            out = np.zeros(curves.shape, bool)
            out[rows[0]] = d < -thr
            out[rows[1]] = d > thr
        else:
            return None
    dilated = out.copy()
    dilated[:, :-1] |= out[:, 1:]
    dilated[:, 1:] |= out[:, :-1]
    return dilated & have


def _sorted_cycles(cycles: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """``(order, on_start_s, on_end_s, off_end_s)``: the rows in the order :func:`check_cycles` sorts
    them (by ``on_start_s``) and their times, without building a table (called per particle, level
    and phase); None when the table needs :func:`check_cycles` (not a DataFrame, missing or
    non-numeric columns, bad rows)."""
    if not isinstance(cycles, pd.DataFrame) or not set(CYCLE_COLUMNS).issubset(list(cycles.columns)):
        return None
    cols = [cycles[c] for c in _TIME_COLUMNS]
    if any(c.dtype.kind not in "iuf" for c in cols):
        return None
    try:
        on_start, on_end, off_end = (c.to_numpy(dtype=float) for c in cols)
    except (TypeError, ValueError):  # missing values of a nullable dtype
        return None
    order = np.argsort(on_start, kind="stable")
    on_start, on_end, off_end = on_start[order], on_end[order], off_end[order]
    if not np.all((on_start <= on_end) & (on_end <= off_end)):
        return None
    return order, on_start, on_end, off_end


def _frame_ranges(t, start_s, end_s, exposure_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Per window, ``lo, hi`` with frames ``lo:hi`` those of :func:`frames_in_window` (the frame
    times increase, so they are one contiguous range; the same comparisons, by bisection)."""
    half = 0.5 * float(exposure_s)
    lo = np.searchsorted(t - half, np.asarray(start_s, dtype=float) - _EDGE_EPS_S, side="left")
    hi = np.searchsorted(t + half, np.asarray(end_s, dtype=float) + _EDGE_EPS_S, side="right")
    return lo, np.maximum(hi, lo)


def _cycle_samples(t, y, win: dict, phase: str, exposure_s: float, transient_s: float, plateau=None):
    """Per cycle, the window's ``(time from the edge, intensity / pre-ON plateau)`` and the plateaus
    (``win``: window arrays of :func:`_window_arrays`; ``plateau``: the pre-ON plateaus when already
    known, :func:`_pre_on_plateaus`)."""
    finite = np.isfinite(y)
    a, b = win[f"{phase}_start_s"], win[f"{phase}_end_s"]
    if plateau is None:
        plateau = _pre_on_plateaus(t, y, win, exposure_s)
    lo, hi = _frame_ranges(t, a + max(float(transient_s), 0.0), b, exposure_s)
    per_cycle = []
    for i in range(a.size):
        if not (np.isfinite(plateau[i]) and plateau[i] > 0):
            per_cycle.append((np.empty(0), np.empty(0)))
            continue
        m = finite[lo[i] : hi[i]]
        per_cycle.append((t[lo[i] : hi[i]][m] - a[i], y[lo[i] : hi[i]][m] / plateau[i]))
    return per_cycle, plateau


def _pre_on_plateaus(t, y, win: dict, exposure_s: float) -> np.ndarray:
    """The pre-ON plateau of every cycle, the level both of its phases are divided by.

    Parameters
    ----------
    t, y : ndarray, shape (n,)
        Checked frame times (mid-exposure, s) and bleach-corrected PL.
    win : dict
        Window arrays of the cycles (:func:`cycle_windows` columns).
    exposure_s : float
        Frame exposure, s.

    Returns
    -------
    ndarray
        Robust mean of the frames of each ``bright_start_s .. bright_end_s`` window (NaN without one).
    """
    return _plateau_levels(t, y, win["bright_start_s"], win["bright_end_s"], exposure_s)


def _common_grid(per_cycle: list, dt_s: float, max_gap: float) -> tuple[np.ndarray, np.ndarray, int] | None:
    """``(grid, curves, n_with)``: every cycle interpolated onto one grid from the earliest to the
    latest sample, trimmed at the ends where fewer than half of the ``n_with`` cycles with data have
    data (None: nothing left)."""
    firsts = [tc[0] for tc, _ in per_cycle if tc.size]
    lasts = [tc[-1] for tc, _ in per_cycle if tc.size]
    if not firsts:
        return None
    t_lo, t_hi = min(firsts), max(lasts)
    grid = t_lo + dt_s * np.arange(int(math.floor((t_hi - t_lo) / dt_s + 1e-9)) + 1)
    curves = np.vstack([_interp_cycle(tc, yc, grid, max_gap) for tc, yc in per_cycle])
    have = np.isfinite(curves)
    n_with = int(np.count_nonzero(have.any(axis=1)))
    cover = have.sum(axis=0) >= max(1, math.ceil(0.5 * n_with))
    if not np.any(cover):
        return None
    i0, i1 = int(np.argmax(cover)), int(cover.size - np.argmax(cover[::-1]))
    return grid[i0:i1], curves[:, i0:i1], n_with


def _frame_noise(per_cycle: list) -> float:
    """Noise from frame-to-frame differences of the normalized frames (robust, per frame)."""
    diffs = [np.diff(yc) for _, yc in per_cycle if yc.size > 3]
    if not diffs:
        return float("nan")
    d = np.concatenate(diffs)
    return _MAD_TO_SIGMA * _median(np.abs(d - _median(d))) / math.sqrt(2.0)


def _mask_blinks(curves, noise, outlier_k, outlier_floor, spoil_fraction, n_with, flags: list[str]):
    """``(curves with outlier points masked, spoiled cycles, outlier fraction per cycle)``."""
    have = np.isfinite(curves)
    n_c = curves.shape[0]
    spoiled = ~have.any(axis=1)
    outlier_fraction = np.full(n_c, np.nan)
    out = _outliers(curves, have, noise, outlier_k, outlier_floor, n_with)
    if n_with == 2:
        flags.append("outlier_detection_skipped")  # no median of 3: the pairwise test below instead
        flags.append("blinks_tested_pairwise")
    if out is not None:
        npts = have.sum(axis=1)
        np.divide(out.sum(axis=1), npts, out=outlier_fraction, where=npts > 0)
        spoiled |= outlier_fraction > spoil_fraction
        curves = np.where(out, np.nan, curves)
        if np.any(out & ~spoiled[:, None]):
            flags.append("outlier_points_masked")
    elif n_with > 0:
        flags.append("outlier_detection_skipped")
    return curves, spoiled, outlier_fraction


def _no_superposition(phase, cycle: np.ndarray, plateau: np.ndarray, flags: list[str]) -> SuperposedCycles:
    """The empty result (flag 'no_data') when no cycle gives a usable sample."""
    n_c = cycle.size
    return SuperposedCycles(
        phase=phase,
        time_s=np.empty(0),
        curves=np.empty((n_c, 0)),
        cycle=cycle,
        plateau=plateau,
        used=np.zeros(n_c, bool),
        spoiled=np.ones(n_c, bool),
        outlier_fraction=np.full(n_c, np.nan),
        mean=np.empty(0),
        sem=np.empty(0),
        n=np.empty(0, int),
        flags=tuple(flags + ["no_data"]),
    )


def superpose_cycles(
    time_s,
    norm_intensity,
    cycles: pd.DataFrame,
    *,
    phase: Literal["pol", "rec"],
    exposure_s: float,
    dt_s: float | None = None,
    plateau_s: float = 3.0,
    outlier_k: float = 4.0,
    outlier_floor: float = 0.02,
    spoil_fraction: float = 0.2,
    transient_s: float = 0.0,
) -> SuperposedCycles:
    """Superpose the cycles of one phase relative to their switching edge.

    For ``phase='pol'`` the edge is ``on_start_s`` and the window ends at
    ``on_end_s``; for ``'rec'`` the edge is ``on_end_s`` and the window ends
    at ``off_end_s``. Only frames whose exposure lies completely inside the
    window are used; ``t`` runs from the edge to mid-exposure. Each cycle is
    divided by its pre-ON plateau (robust mean of the last ``plateau_s``
    before the ON edge, for both phases) and interpolated linearly
    (``np.interp``) onto ``t0 + k dt_s``; grid points covered by fewer than
    half of the cycles are dropped at the ends. Blinks are masked and
    spoiled cycles left out as the module notes describe.

    Parameters
    ----------
    time_s : array_like, shape (n,)
        Mid-exposure frame times, s.
    norm_intensity : array_like, shape (n,)
        PL per frame, bleach-corrected (NaN allowed: the frame is missing).
    cycles : DataFrame
        The cycles to superpose (typically those of one field level).
    phase : {'pol', 'rec'}
    exposure_s : float
        Frame exposure, s.
    dt_s : float, optional
        Grid step; default the median frame interval.
    plateau_s : float
        Length of the pre-ON plateau, s.
    outlier_k, outlier_floor, spoil_fraction : float
        Blink detection (see above); ``outlier_floor`` is in units of the
        bright level.
    transient_s : float
        Frames whose exposure starts less than this after the edge are left
        out (switching transients); times are still measured from the edge.

    Returns
    -------
    SuperposedCycles
        Never raises for bad data (an empty grid when nothing is usable).
    """
    if phase not in ("pol", "rec"):
        raise KineticsInputError(f"phase: expected 'pol' or 'rec', got {phase!r}")
    t = check_time(time_s)
    y = as_1d_float("norm_intensity", norm_intensity, length=t.size)
    exposure_s = check_exposure(exposure_s)
    start = float(t[0]) - exposure_s / 2 if t.size else -np.inf
    cols, win = _windows_of(cycles, plateau_s, start)
    blinks = (outlier_k, outlier_floor, spoil_fraction)
    return _superpose_windows(
        t,
        y,
        cols["cycle"],
        win,
        phase=phase,
        exposure_s=exposure_s,
        dt_s=dt_s,
        blinks=blinks,
        transient_s=transient_s,
    )


def _superpose_windows(
    t: np.ndarray,
    y: np.ndarray,
    cycle: np.ndarray,
    win: dict,
    *,
    phase: Literal["pol", "rec"],
    exposure_s: float,
    dt_s: float | None,
    blinks: tuple[float, float, float],
    transient_s: float,
    frame_dt_s: float | None = None,
    plateau: np.ndarray | None = None,
) -> SuperposedCycles:
    """:func:`superpose_cycles` of checked arrays and the cycles' windows (computed once per level).

    Parameters
    ----------
    t, y : ndarray, shape (n,)
        Checked frame times (mid-exposure, s, strictly increasing) and bleach-corrected PL (float).
    cycle : ndarray
        Cycle ids, sorted by ``on_start_s``.
    win : dict
        Their window arrays (the :func:`cycle_windows` columns, same order).
    phase, exposure_s, dt_s, transient_s
        As in :func:`superpose_cycles` (``exposure_s`` checked).
    blinks : (float, float, float)
        ``outlier_k, outlier_floor, spoil_fraction`` of :func:`superpose_cycles`.
    frame_dt_s : float, optional
        The median frame interval of ``t`` when already known.
    plateau : ndarray, optional
        The cycles' pre-ON plateaus when already known (:func:`_pre_on_plateaus`).

    Returns
    -------
    SuperposedCycles
    """
    frame_dt = _frame_interval_s(t) if frame_dt_s is None else frame_dt_s
    dt_s = float(dt_s if dt_s is not None else (frame_dt if np.isfinite(frame_dt) and frame_dt > 0 else 0.2))
    max_gap = 1.5 * frame_dt if np.isfinite(frame_dt) else np.inf
    outlier_k, outlier_floor, spoil_fraction = blinks
    per_cycle, plateau = _cycle_samples(t, y, win, phase, exposure_s, transient_s, plateau)
    flags: list[str] = []
    if not np.all(np.isfinite(plateau) & (plateau > 0)):
        flags.append("cycles_without_plateau")
    gridded = _common_grid(per_cycle, dt_s, max_gap)
    if gridded is None:
        return _no_superposition(phase, cycle, plateau, flags)
    grid, curves, n_with = gridded
    noise = _frame_noise(per_cycle)
    masked = _mask_blinks(curves, noise, outlier_k, outlier_floor, spoil_fraction, n_with, flags)
    return _superposition(phase, cycle, plateau, grid, curves, masked, noise, flags)


def _windows_of(
    cycles: pd.DataFrame, plateau_s: float, record_start_s: float, columns: tuple[str, ...] = ("cycle",)
) -> tuple[dict, dict]:
    """``columns`` of the cycle table and the window arrays (:func:`cycle_windows`), sorted by
    ``on_start_s``; the table itself only when the cycles need :func:`check_cycles` (which raises
    for bad tables)."""
    fast = _sorted_cycles(cycles)
    if fast is None:
        w = cycle_windows(cycles, plateau_s=plateau_s, record_start_s=record_start_s)
        return {c: w[c].to_numpy() for c in columns}, {k: w[k].to_numpy(dtype=float) for k in _WINDOW_COLUMNS}
    order, on_start, on_end, off_end = fast
    cols = {c: cycles[c].to_numpy()[order] for c in columns}
    return cols, _window_arrays(on_start, on_end, off_end, plateau_s, record_start_s)


def _superposition(phase, cycle, plateau, grid, curves, masked, noise, flags: list[str]) -> SuperposedCycles:
    """The result from the gridded ``curves`` and ``masked = (masked curves, spoiled, outlier
    fraction)``: cycles without a plateau are spoiled too; mean and sem over the used cycles."""
    have = np.isfinite(curves)
    curves, spoiled, outlier_fraction = masked
    bad_plateau = ~(np.isfinite(plateau) & (plateau > 0))
    spoiled |= bad_plateau
    used = ~spoiled
    if np.any(spoiled & ~bad_plateau & have.any(axis=1)):
        flags.append("spoiled_cycles_excluded")
    mean, sem, n = (
        _stats(curves[used])
        if np.any(used)
        else (np.full(grid.size, np.nan), np.full(grid.size, np.nan), np.zeros(grid.size, int))
    )
    return SuperposedCycles(
        phase=phase,
        time_s=grid,
        curves=curves,
        cycle=cycle,
        plateau=plateau,
        used=used,
        spoiled=spoiled,
        outlier_fraction=outlier_fraction,
        mean=mean,
        sem=sem,
        n=n.astype(int),
        noise=noise,
        flags=tuple(flags),
    )
