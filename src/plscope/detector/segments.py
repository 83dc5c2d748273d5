"""Helpers on on/off segments: off-segment levels, interpolated baselines, cycle averages."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["cycle_average", "off_levels", "segment_mean"]


def segment_mean(t: np.ndarray, x: np.ndarray, start: float, end: float) -> tuple[float, float, int]:
    """Mean, standard deviation and count of ``x`` on ``start <= t < end`` (NaN when empty)."""
    sel = (t >= start) & (t < end)
    n = int(sel.sum())
    if n == 0:
        return float("nan"), float("nan"), 0
    return float(x[sel].mean()), float(x[sel].std()), n


def off_levels(t: np.ndarray, x: np.ndarray, seg: pd.DataFrame, *, fraction: float = 0.5) -> pd.DataFrame:
    """Dark level of every off-segment: mean of its last ``fraction``, at the centre time of that part.

    Off-segment ``k`` precedes on-segment ``k`` (row ``len(seg)`` is the one
    after the last on-segment). An off-segment shorter than half the median
    one (cut by the record's start or end) has ``n = 0`` (unusable).
    Returns columns ``time_s, level_A, std_A, n``.
    """
    on = seg["on_s"].to_numpy()
    off = seg["off_s"].to_numpy()
    starts = np.concatenate(([t[0]], off))
    ends = np.concatenate((on, [t[-1] + 1e-12]))
    typical = float(np.median(on[1:] - off[:-1])) if on.size > 1 else 0.0  # one pulse: both sides usable
    rows = []
    for a, b in zip(starts, ends):
        mid = b - fraction * (b - a)
        m, s, n = segment_mean(t, x, mid, b) if b - a >= 0.5 * typical else (np.nan, np.nan, 0)
        rows.append((0.5 * (mid + b), m, s, n))
    return pd.DataFrame(rows, columns=["time_s", "level_A", "std_A", "n"])


def cycle_average(
    t: np.ndarray, x: np.ndarray, seg: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray, float, int] | None:
    """The on/off cycles superposed (aligned on turn-on) and averaged.

    Returns ``(t_rel_s, mean_A, on_duration_s, n_cycles)`` on a grid from
    minus half the off time before turn-on to the next cycle's same point,
    or None when fewer than one full cycle fits in the record.
    """
    on = seg["on_s"].to_numpy()
    off = seg["off_s"].to_numpy()
    if on.size < 2:
        period = (off[0] - on[0]) * 2
    else:
        period = float(np.median(np.diff(on)))
    on_dur = float(np.median(off - on))
    pre = 0.5 * (period - on_dur)
    dt = float(np.median(np.diff(t)))
    grid = np.arange(-pre, period - pre, dt)
    curves = [np.interp(s + grid, t, x) for s in on if s - pre >= t[0] and s + grid[-1] <= t[-1]]
    if not curves:
        return None
    return grid, np.mean(curves, axis=0), on_dur, len(curves)
