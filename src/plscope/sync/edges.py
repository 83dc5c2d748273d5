"""TTL pulses from a sampled digital line: Schmitt trigger with hysteresis.

Pure functions of arrays; ``source`` (a file/channel name) is only used in
error messages.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..errors import SyncError

logger = logging.getLogger(__name__)

__all__ = [
    "PULSE_COLUMNS",
    "TtlPolarity",
    "bridge_daq_gaps",
    "camera_pulses",
    "daq_gaps",
    "detect_ttl_polarity",
    "ttl_pulses",
]

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


#: accepted values of ``[daq] ttl_polarity``: "high" (the camera exposes while the line is high),
#: "low" (exposes while low, an inverted line) or "auto" (detected)
TTL_POLARITIES = ("auto", "high", "low")
#: an idle stretch at the start or end of a record lasts at least this many frame periods
IDLE_PERIODS = 3.0
#: a high-phase duty within this distance of 50 % cannot tell which phase is the exposure
DUTY_AMBIGUITY = 0.1


@dataclass(frozen=True)
class TtlPolarity:
    """Which level of a camera TTL line is the exposure, and how that was decided.

    Attributes
    ----------
    polarity : "high" or "low"
        "low": the camera exposes while the line is low (an inverted line).
    how : str
        "declared", "idle level" (the level held for many frame periods
        before the first or after the last frame is the idle one) or
        "exposure duty" (no idle stretch: the longer phase of each frame
        period is taken for the exposure).
    high_duty : float
        Fraction of a frame period the line is high (NaN when unknown).
    """

    polarity: str
    how: str
    high_duty: float = float("nan")

    @property
    def reliable(self) -> bool:
        """False when only the duty decided (a short exposure on a long frame period looks inverted)."""
        return self.how != "exposure duty"


def detect_ttl_polarity(
    time_s: np.ndarray, signal: np.ndarray, *, declared: str = "auto", source: str = ""
) -> TtlPolarity:
    """Which level of a camera TTL line is the exposure.

    A camera's exposure output rests at its inactive level before an
    acquisition starts and after it ends; when the record holds such an idle
    stretch (at least :data:`IDLE_PERIODS` frame periods at its start or
    end) its level is the inactive one. Without one the exposure duty
    decides: the longer phase of each frame period is the exposure (frame
    transfer and rolling shutter cameras expose for nearly the whole
    period). A duty within :data:`DUTY_AMBIGUITY` of 50 % cannot decide.

    Parameters
    ----------
    time_s, signal : array_like
        The sampled line.
    declared : {"auto", "high", "low"}
        ``[daq] ttl_polarity``; anything but "auto" is returned as is.
    source : str
        File/channel named in errors.

    Raises
    ------
    SyncError
        When the polarity cannot be told (duty near 50 % and no idle
        stretch): set ``ttl_polarity`` in ``[daq]``.
    """
    if declared not in TTL_POLARITIES:
        raise SyncError(
            source or None, f"ttl_polarity must be one of {', '.join(TTL_POLARITIES)}, got {declared!r}"
        )
    if declared != "auto":
        return TtlPolarity(declared, "declared")
    t, x = as_time_series(time_s, signal, source=source, what="TTL signal")
    lo, hi, _ = two_levels(x)
    if not hi > lo:
        return TtlPolarity("high", "flat line")  # ttl_pulses names the problem
    state = hysteresis_state(x, lo + LOW_FRACTION * (hi - lo), lo + HIGH_FRACTION * (hi - lo))
    change = np.flatnonzero(state[1:] != state[:-1]) + 1
    if change.size < 4:
        return TtlPolarity("high", "too few edges")
    spans = np.diff(t[change])
    starts_high = state[change[:-1]]
    high_s, low_s = spans[starts_high], spans[~starts_high]
    if high_s.size == 0 or low_s.size == 0:
        return TtlPolarity("high", "too few edges")
    period = float(np.median(high_s) + np.median(low_s))
    duty = float(np.median(high_s)) / period
    idle = []
    if t[change[0]] - t[0] >= IDLE_PERIODS * period:
        idle.append(bool(state[0]))
    if t[-1] - t[change[-1]] >= IDLE_PERIODS * period:
        idle.append(bool(state[-1]))
    if idle and all(v == idle[0] for v in idle):
        return TtlPolarity("low" if idle[0] else "high", "idle level", duty)
    if abs(duty - 0.5) < DUTY_AMBIGUITY:
        raise SyncError(
            source or None,
            f"cannot tell the TTL polarity: the line is high {duty:.0%} of each frame period and the record "
            'has no idle stretch before or after the frames; set ttl_polarity = "high" (the camera exposes '
            'while the line is high) or "low" in [daq]',
        )
    return TtlPolarity("high" if duty > 0.5 else "low", "exposure duty", duty)


def ttl_pulses(
    time_s: np.ndarray,
    signal: np.ndarray,
    *,
    low: float | None = None,
    high: float | None = None,
    min_width_s: float | None = None,
    source: str = "",
    polarity: str = "high",
) -> pd.DataFrame:
    """Pulses of a sampled TTL line (rising edge and the following falling edge).

    With ``polarity="low"`` (an inverted line: exposure while low) the
    pulses are the low phases: ``start_s`` is a falling edge.

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
    polarity : {"high", "low"}
        The level during which the camera exposes (see :func:`detect_ttl_polarity`).

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
    if polarity == "low":  # an inverted line: its low phases are the exposures
        x = -x
        low, high = (None if high is None else -high), (None if low is None else -low)
    elif polarity != "high":
        raise ValueError(f"polarity must be 'high' or 'low', got {polarity!r}")
    low, high, mid = _thresholds(x, low, high, src)
    dt = float(np.median(np.diff(t)))
    rise, end = _pulse_edges(t, x, low, high, mid, source)
    n_raw = rise.size
    min_width = _glitch_width(rise, end, dt, source) if min_width_s is None else float(min_width_s)
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


def _thresholds(x: np.ndarray, low: float | None, high: float | None, src) -> tuple[float, float, float]:
    """Hysteresis thresholds and the 50 % level of a line (given, or from its robust levels)."""
    if low is not None and high is not None:
        if not low < high:
            raise ValueError(f"low threshold {low} must be below high threshold {high}")
        level_lo, level_hi = float(low), float(high)
        return low, high, 0.5 * (level_lo + level_hi)
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
    return low, high, mid


def _pulse_edges(t, x, low: float, high: float, mid: float, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Rising edges and the falling edge after each (NaN when the record ends during the pulse)."""
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
    return rise, end


def _glitch_width(rise: np.ndarray, end: np.ndarray, dt: float, source: str) -> float:
    """Shortest pulse or gap that counts: 2 sample intervals, or half the typical pulse or gap when
    those are shorter (a line sampled at barely more than its toggle rate)."""
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
    return min_width


#: a step of the DAQ time column above this multiple of the median sample interval is a gap in the log
GAP_FACTOR = 1.5
#: the pulses around a gap must be this close to a whole number of frame intervals apart
GAP_SLOT_TOLERANCE = 0.25


def daq_gaps(time_s: np.ndarray) -> np.ndarray:
    """Gaps in a DAQ log (missing samples): array of shape (n, 2) with the last time before and first after."""
    t = np.asarray(time_s, dtype=np.float64)
    if t.size < 3:
        return np.empty((0, 2))
    dt = np.diff(t)
    k = np.flatnonzero(dt > GAP_FACTOR * float(np.median(dt)))
    return np.column_stack([t[k], t[k + 1]])


def bridge_daq_gaps(
    pulses: pd.DataFrame, time_s: np.ndarray, *, source: str = ""
) -> tuple[pd.DataFrame, list[str]]:
    """Camera pulses lost in gaps of the DAQ log restored on the camera's own clock.

    A gap in the log's time column (missing samples) hides the camera's
    pulses but the camera went on exposing: the movie holds those frames. So
    a gap must not be read as dropped frames (which would remap every later
    frame). Pulses with an edge inside a gap (interpolated across it) are
    discarded; the pulses between the last one before and the first one
    after the gap are placed at equal spacing, which must come to a whole
    number of frame intervals.

    Returns
    -------
    pulses : pandas.DataFrame
        With the restored pulses (``start_s`` sorted).
    notes : list of str
        One warning per gap that hid pulses.

    Raises
    ------
    SyncError
        When the pulses around a gap are not a whole number of frame
        intervals apart (the camera timing across the gap cannot be known).
    """
    gaps = daq_gaps(time_s)
    if gaps.size == 0 or len(pulses) < 3:
        return pulses, []
    start = pulses["start_s"].to_numpy(float)
    end = pulses["end_s"].to_numpy(float)
    interval = float(np.median(np.diff(start)))
    width = float(np.nanmedian(end - start))
    notes = []
    for g0, g1 in gaps:
        inside = ((start > g0) & (start < g1)) | ((end > g0) & (end < g1))
        start, end = start[~inside], end[~inside]
        before, after = start[start <= g0], start[start >= g1]
        if before.size == 0 or after.size == 0:
            continue  # a gap before the first or after the last frame hides no frame edge
        a, b = float(before[-1]), float(after[0])
        slots = (b - a) / interval
        n = int(round(slots))
        if abs(slots - n) > GAP_SLOT_TOLERANCE or n < 1:
            raise SyncError(
                source or None,
                f"gap in the DAQ log from {g0:.6g} s to {g1:.6g} s (missing samples): the camera pulses around "
                f"it are {slots:.2f} frame intervals apart, not a whole number; frame times cannot be recovered",
            )
        if n > 1:
            new = a + (b - a) * np.arange(1, n) / n
            start = np.concatenate([start, new])
            end = np.concatenate([end, new + width])
            order = np.argsort(start, kind="stable")
            start, end = start[order], end[order]
            notes.append(
                f"{source or 'DAQ log'}: gap in the log from {g0:.6g} s to {g1:.6g} s (missing samples, not dropped "
                f"frames): {n - 1} camera pulse(s) not recorded, timed on the camera's interval"
            )
    return pd.DataFrame({"start_s": start, "end_s": end}, columns=list(PULSE_COLUMNS)), notes


def camera_pulses(
    time_s: np.ndarray, ttl: np.ndarray, daq_cfg: Any, source: str, warnings: list[str], info: dict[str, Any]
) -> pd.DataFrame:
    """Exposure pulses of a camera TTL line, polarity and DAQ-log gaps taken care of.

    ``daq_cfg`` is the run's ``[daq]`` table (its ``ttl_polarity``: 'high',
    'low' or 'auto'); ``source`` names the file and channel in messages.
    Warnings are appended to ``warnings`` (nothing is printed): an inverted
    line, a polarity decided from the duty alone and every bridged gap.
    ``info`` receives ``ttl_polarity``, ``ttl_polarity_source`` and
    ``n_daq_gaps_bridged`` (for summary.json).
    """
    pol = detect_ttl_polarity(time_s, ttl, declared=getattr(daq_cfg, "ttl_polarity", "auto"), source=source)
    info["ttl_polarity"] = pol.polarity
    info["ttl_polarity_source"] = pol.how
    if pol.polarity == "low":
        warnings.append(
            f"{source}: inverted TTL (the camera exposes while the line is low; {pol.how}); "
            "frames timed by its falling edges"
        )
    if pol.how == "exposure duty":
        warnings.append(
            f"{source}: TTL polarity '{pol.polarity}' decided from the exposure duty "
            f"({pol.high_duty:.0%} high) alone; set [daq] ttl_polarity if the exposure is the shorter phase"
        )
    pulses = ttl_pulses(time_s, ttl, source=source, polarity=pol.polarity)
    pulses, notes = bridge_daq_gaps(pulses, time_s, source=source)
    warnings.extend(notes)
    info["n_daq_gaps_bridged"] = len(notes)
    return pulses
