"""TTL pulses from a sampled digital line: Schmitt trigger with hysteresis.

Pure functions of arrays; ``source`` (a file/channel name) is only used in
error messages.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from ..errors import SyncError

logger = logging.getLogger(__name__)

__all__ = ["PULSE_COLUMNS", "ttl_pulses"]

#: Columns of the table returned by :func:`ttl_pulses`.
PULSE_COLUMNS = ("start_s", "end_s")

#: Default hysteresis thresholds, as fractions between the low and high level.
LOW_FRACTION = 0.3
HIGH_FRACTION = 0.7
#: A swing below this many noise sigmas is "flat".
_MIN_SWING_SIGMA = 10.0
#: Smallest swing (volts or logic units) of a line that toggles at nearly every
#: sample; below it such a line is taken for a quantized flat input (LSB noise).
MIN_TOGGLE_SWING = 0.5


def as_time_series(
    time_s: np.ndarray, values: np.ndarray, *, source: str = "", what: str = "signal"
) -> tuple[np.ndarray, np.ndarray]:
    """Check and convert a sampled signal: 1-D, same length, finite, time increasing.

    Raises
    ------
    SyncError
        Naming ``source`` and what is wrong.
    """
    t = np.asarray(time_s, dtype=np.float64)
    x = np.asarray(values, dtype=np.float64)
    src = source or None
    if t.ndim != 1 or x.ndim != 1 or t.shape != x.shape:
        raise SyncError(
            src, f"{what} and time must be 1-D arrays of the same length, got shapes {x.shape} and {t.shape}"
        )
    if t.size < 3:
        raise SyncError(src, f"{what} has {t.size} samples; need at least 3")
    if not (np.isfinite(x).all() and np.isfinite(t).all()):
        raise SyncError(src, f"{what} contains NaN or infinite values")
    if not (np.diff(t) > 0).all():
        raise SyncError(src, f"time of {what} is not strictly increasing")
    return t, x


def noise_sigma(x: np.ndarray) -> float:
    """Per-sample white-noise level from successive differences (robust to edges)."""
    return float(1.4826 * np.median(np.abs(np.diff(x))) / np.sqrt(2.0))


def robust_extremes(x: np.ndarray) -> tuple[float, float]:
    """Lowest and highest level held for at least 3 samples.

    The maximum of the 3-sample running minimum (and vice versa) ignores
    glitches of one or two samples, whatever their height.
    """
    run_min = np.minimum(np.minimum(x[:-2], x[1:-1]), x[2:])
    run_max = np.maximum(np.maximum(x[:-2], x[1:-1]), x[2:])
    return float(run_max.min()), float(run_min.max())


def two_levels(x: np.ndarray) -> tuple[float, float, float]:
    """Robust low and high level of a two-level signal, and its noise sigma.

    The glitch-free extremes give a first midpoint; the levels are the
    medians of the samples on either side of it, which ringing, overshoot
    and rare glitches do not move. Works for any duty cycle. The noise is
    estimated from successive differences (:func:`noise_sigma`).
    """
    sigma = noise_sigma(x)
    lo, hi = sorted(robust_extremes(x))
    mid = 0.5 * (lo + hi)
    below, above = x[x < mid], x[x >= mid]
    if below.size == 0 or above.size == 0:
        return float(np.median(x)), float(np.median(x)), sigma
    return float(np.median(below)), float(np.median(above)), sigma


def level_sigma(x: np.ndarray, low: float, high: float) -> float:
    """Noise as the robust spread of the samples about their own level.

    Unlike :func:`noise_sigma` it is not inflated when the line toggles at
    nearly every sample (where every successive difference is an edge).
    """
    mid = 0.5 * (low + high)
    dev = np.where(x < mid, x - low, x - high)
    return float(1.4826 * np.median(np.abs(dev)))


def hysteresis_state(x: np.ndarray, low: float, high: float) -> np.ndarray:
    """Schmitt trigger: True from a sample >= ``high`` until one <= ``low``.

    Samples in between hold the previous state; before the first decided
    sample the state is that of the first decided sample (no edge at the
    start of a record). Vectorized: no loop over samples.
    """
    hi = x >= high
    decided = hi | (x <= low)
    idx = np.where(decided, np.arange(x.size), -1)
    np.maximum.accumulate(idx, out=idx)
    if idx[-1] < 0:  # never decided
        return np.zeros(x.size, bool)
    first = int(np.argmax(decided))
    idx[idx < 0] = first
    return hi[idx]


def crossing_times(t: np.ndarray, x: np.ndarray, level: float, k: np.ndarray, rising: bool) -> np.ndarray:
    """Sub-sample times at which ``x`` last crossed ``level`` before samples ``k``.

    For a rising edge decided at sample ``k`` the crossing lies between the
    last sample below ``level`` before ``k`` and the next one; the time is
    linearly interpolated between them.
    """
    if k.size == 0:
        return np.empty(0)
    side = x < level if rising else x >= level
    last = np.where(side, np.arange(x.size), -1)
    np.maximum.accumulate(last, out=last)
    j = last[k - 1]
    j = np.clip(j, 0, x.size - 2)
    x0, x1 = x[j], x[j + 1]
    denom = x1 - x0
    frac = np.divide(level - x0, denom, out=np.zeros_like(x0), where=denom != 0)
    frac = np.clip(frac, 0.0, 1.0)
    return t[j] + frac * (t[j + 1] - t[j])


def _drop_short(start: np.ndarray, end: np.ndarray, min_width_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Remove pulses narrower than min_width_s, then bridge gaps narrower than it."""
    width = end - start
    keep = ~(width < min_width_s)  # NaN width (unfinished last pulse) is kept
    start, end = start[keep], end[keep]
    if start.size > 1:
        gap = start[1:] - end[:-1]
        new = np.concatenate(([True], gap >= min_width_s))
        first = np.flatnonzero(new)
        last = np.append(first[1:] - 1, start.size - 1)
        start, end = start[first], end[last]
    return start, end


def ttl_pulses(
    time_s: np.ndarray,
    signal: np.ndarray,
    *,
    low: float | None = None,
    high: float | None = None,
    min_width_s: float | None = None,
    source: str = "",
) -> pd.DataFrame:
    """Pulses of a sampled TTL line (rising edge and the following falling edge).

    A Schmitt trigger with hysteresis decides the state, so noise and
    ringing around one threshold do not make extra edges. Edge times are
    interpolated linearly at the 50 % level between the two logic levels.

    Parameters
    ----------
    time_s : array_like, shape (n,)
        Sample times in seconds, strictly increasing.
    signal : array_like, shape (n,)
        The recorded line (any units, e.g. volts).
    low, high : float, optional
        Hysteresis thresholds in signal units. By default 30 % and 70 % of
        the way from the robust low to the robust high level.
    min_width_s : float, optional
        Pulses narrower than this, and gaps between pulses narrower than
        this, are glitches and do not count. Default: 2 sample intervals,
        or half the median pulse width (or gap) when the pulses themselves
        are that short (a line sampled at barely more than its toggle
        rate: there, single samples are the signal).
    source : str, optional
        File or channel name used in error messages.

    Returns
    -------
    pandas.DataFrame
        One row per pulse, columns ``start_s`` (rising edge) and ``end_s``
        (falling edge; NaN if the record ends during the pulse). A pulse
        under way at the start of the record (no rising edge) is left out.

    Raises
    ------
    SyncError
        The line is flat (no swing above noise), or the input is malformed.
    """
    t, x = as_time_series(time_s, signal, source=source, what="TTL signal")
    src = source or None
    if low is not None and high is not None:
        if not low < high:
            raise ValueError(f"low threshold {low} must be below high threshold {high}")
        level_lo, level_hi = float(low), float(high)
        mid = 0.5 * (level_lo + level_hi)
    else:
        level_lo, level_hi, sigma = two_levels(x)
        swing = level_hi - level_lo
        if not swing > _MIN_SWING_SIGMA * sigma and swing >= MIN_TOGGLE_SWING:
            # a line that toggles every sample or two: judge its noise about its levels
            sigma = min(sigma, level_sigma(x, level_lo, level_hi))
        if not swing > _MIN_SWING_SIGMA * sigma or swing <= 0:
            raise SyncError(
                src,
                f"TTL channel is flat: no TTL edges (levels {level_lo:.4g} and "
                f"{level_hi:.4g}, noise {sigma:.2g})",
            )
        mid = level_lo + 0.5 * swing
        low = level_lo + LOW_FRACTION * swing if low is None else float(low)
        high = level_lo + HIGH_FRACTION * swing if high is None else float(high)
        if not low < high:
            raise ValueError(f"low threshold {low} must be below high threshold {high}")
    dt = float(np.median(np.diff(t)))

    state = hysteresis_state(x, low, high)
    change = np.flatnonzero(state[1:] != state[:-1]) + 1
    rise_k = change[state[change]]
    fall_k = change[~state[change]]
    rise = crossing_times(t, x, mid, rise_k, rising=True)
    fall = crossing_times(t, x, mid, fall_k, rising=False)
    if fall.size and (rise.size == 0 or fall[0] < rise[0]):
        logger.debug("%s: record starts during a pulse; its falling edge is ignored", source)
        fall = fall[1:]
    end = np.full(rise.size, np.nan)
    end[: fall.size] = fall
    if fall.size < rise.size:
        logger.debug("%s: record ends during a pulse; its end is NaN", source)
    n_raw = rise.size
    if min_width_s is None:
        min_width = 2.0 * dt
        width = end - rise
        width = width[np.isfinite(width)]
        gap = rise[1:] - end[:-1]
        gap = gap[np.isfinite(gap)]
        if width.size and gap.size:
            typical = min(float(np.median(width)), float(np.median(gap)))
            if 0.5 * typical < min_width:
                min_width = 0.5 * typical
                logger.info(
                    "%s: TTL pulses or gaps are only %.3g samples long; pulses shorter "
                    "than %.3g samples count as glitches",
                    source or "TTL",
                    typical / dt,
                    min_width / dt,
                )
    else:
        min_width = float(min_width_s)
    start, end = _drop_short(rise, end, min_width)
    logger.debug(
        "%s: %d TTL pulses (%d glitches removed), thresholds %.4g/%.4g, edges at %.4g",
        source,
        start.size,
        n_raw - start.size,
        low,
        high,
        mid,
    )
    return pd.DataFrame({"start_s": start, "end_s": end}, columns=list(PULSE_COLUMNS))
