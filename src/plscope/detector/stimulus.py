"""When was the source on? On/off segments from a shutter line, given times, or the current.

Three ways, in order of preference:

1. a shutter/TTL channel (high = on): :func:`plscope.sync.edges.ttl_pulses`,
   the Schmitt trigger with hysteresis used for the camera TTL;
2. on/off times written in detector.toml;
3. the current itself (:func:`segments_from_current`), a documented step
   detector: the signal (the current for step-like X-ray responses, its
   running integral -- the charge, which follows the temperature -- for
   pyroelectric spikes) is smoothed, put through the same Schmitt trigger
   at 30 %/70 % between its two plateaus (25th and 75th percentiles: spikes
   and dips are short), and each edge is placed where the
   signal last crossed 10 % (rising) or 90 % (falling) of the step before
   the trigger fired. Edges are therefore late by the response's own
   10 % time (a few per cent of a rise time); give a shutter channel when
   timing matters.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.ndimage import median_filter

from ..errors import RunFolderError, SyncError
from ..sync.edges import crossing_times, hysteresis_state, ttl_pulses

__all__ = ["segments_from_current", "segments_from_shutter", "segments_from_times"]


def _table(start, end) -> pd.DataFrame:
    return pd.DataFrame({"on_s": np.asarray(start, float), "off_s": np.asarray(end, float)})


def segments_from_shutter(time_s: np.ndarray, shutter: np.ndarray, *, source: str = "") -> pd.DataFrame:
    """On-segments (``on_s``, ``off_s``) of a shutter line; pulses cut by the record end are dropped.

    Raises
    ------
    RunFolderError
        The line never switches (naming ``source``).
    """
    try:
        pulses = ttl_pulses(time_s, shutter, source=source)
    except SyncError as exc:
        raise RunFolderError(source or None, f"shutter never switches: {exc.problem}") from None
    pulses = pulses.dropna()
    if pulses.empty:
        raise RunFolderError(source or None, "shutter never switches on and off within the record")
    return _table(pulses["start_s"], pulses["end_s"])


def segments_from_times(on_off_s, *, time_s: np.ndarray, source: str = "") -> pd.DataFrame:
    """On-segments from ``[[on, off], ...]`` (seconds), checked against the record."""
    arr = np.asarray(on_off_s, float).reshape(-1, 2)
    if arr.size == 0 or np.any(arr[:, 1] <= arr[:, 0]) or np.any(np.diff(arr[:, 0]) <= 0):
        raise RunFolderError(source or None, "on_off_s must be increasing [on, off] pairs with off > on")
    inside = (arr[:, 0] >= time_s[0]) & (arr[:, 1] <= time_s[-1])
    if not inside.any():
        raise RunFolderError(source or None, "no on/off segment of on_off_s lies within the record")
    return _table(arr[inside, 0], arr[inside, 1])


def segments_from_current(
    time_s: np.ndarray, current_A: np.ndarray, *, integrate: bool = False, source: str = ""
) -> pd.DataFrame:
    """On-segments found in the current (step detector; see the module notes).

    Parameters
    ----------
    integrate : bool
        Detect on the running charge (pyroelectric spikes) instead of the current.

    Raises
    ------
    RunFolderError
        No step stands out of the noise.
    """
    t = np.asarray(time_s, float)
    x = np.asarray(current_A, float)
    if integrate:
        x = x - _slow_baseline(t, x)  # dark current and its drift
        x = np.concatenate(([0.0], np.cumsum(0.5 * (x[1:] + x[:-1]) * np.diff(t))))
    k = max(3, int(x.size // 400) | 1)
    s = median_filter(x, size=k, mode="nearest")
    lo, hi = np.percentile(s, [25, 75])  # the two plateaus (spikes and dips are short)
    swing = hi - lo
    noise = 1.4826 * np.median(np.abs(np.diff(s))) / np.sqrt(2)
    if not swing > 10 * noise or swing <= 0:
        raise RunFolderError(
            source or None, "the current shows no on/off steps above its noise (give a shutter)"
        )
    state = hysteresis_state(s, lo + 0.3 * swing, lo + 0.7 * swing)
    change = np.flatnonzero(state[1:] != state[:-1]) + 1
    rise = crossing_times(t, s, lo + 0.1 * swing, change[state[change]], rising=True)
    fall = crossing_times(t, s, lo + 0.9 * swing, change[~state[change]], rising=False)
    if fall.size and rise.size and fall[0] < rise[0]:
        fall = fall[1:]
    n = min(rise.size, fall.size)
    if n == 0:
        raise RunFolderError(source or None, "the current shows no complete on/off step")
    rise, fall = rise[:n], fall[:n]
    if integrate:
        i0 = np.asarray(current_A, float)
        i0 = i0 - _slow_baseline(t, i0)
        rise = np.array([_onset(t, i0, r, +1.0) for r in rise])
        fall = np.array([_onset(t, i0, f, -1.0) for f in fall])
    return _table(rise, fall)


def _slow_baseline(t: np.ndarray, x: np.ndarray, blocks: int = 10) -> np.ndarray:
    """Dark level under short spikes: medians of ``blocks`` equal blocks, interpolated linearly."""
    edges = np.linspace(0, x.size, blocks + 1).astype(int)
    centre = np.array([t[a:b].mean() for a, b in zip(edges[:-1], edges[1:])])
    level = np.array([np.median(x[a:b]) for a, b in zip(edges[:-1], edges[1:])])
    return np.interp(t, centre, level)


def _onset(t: np.ndarray, i: np.ndarray, edge: float, sign: float, window_s: float | None = None) -> float:
    """Time the spike of sign ``sign`` around ``edge`` started: last sample before its peak under 5 % of it."""
    k = int(np.searchsorted(t, edge))
    w = max(5, int(0.02 * t.size))
    lo, hi = max(0, k - w), min(t.size, k + w)
    seg = sign * i[lo:hi]
    peak = int(np.argmax(seg))
    below = np.flatnonzero(seg[: peak + 1] < 0.05 * seg[peak])
    return float(t[lo + below[-1]]) if below.size else float(t[lo])
