"""Electric field from the recorded function-generator voltage.

The field between the electrodes is ``|V| * amplifier_gain / electrode_gap``
(``shared/spec/run-folder.md``). Field levels are measured from the log, not
declared: :func:`field_segments` finds every field-ON interval, its field,
sign and level cluster; :func:`cycles_from_segments` turns them into ON/OFF
cycles for the kinetics.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from ..columns import CYCLE_COLUMNS, LEVEL_COLUMNS, SEGMENT_COLUMNS
from ..errors import SyncError
from .edges import as_time_series, hysteresis_state, noise_sigma, robust_extremes

logger = logging.getLogger(__name__)

__all__ = [
    "CYCLE_COLUMNS",
    "LEVEL_COLUMNS",
    "SEGMENT_COLUMNS",
    "cycles_from_segments",
    "field_kV_per_cm",
    "field_levels",
    "field_segments",
]


#: Hysteresis thresholds as fractions of the smallest clear plateau above OFF.
OFF_FRACTION = 0.25
ON_FRACTION = 0.5
#: Fraction of a segment's duration left out at each end when measuring its field.
EDGE_FRACTION = 0.05
_MIN_SWING_SIGMA = 10.0


def _check_positive(name: str, value: float) -> float:
    value = float(value)
    if not (value > 0 and np.isfinite(value)):
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return value


def field_kV_per_cm(
    voltage_V: np.ndarray | float, *, amplifier_gain: float, electrode_gap_um: float
) -> np.ndarray:
    """Field magnitude between the electrodes, in kV/cm.

    Parameters
    ----------
    voltage_V : array_like
        Recorded function-generator voltage (before the amplifier), volts.
    amplifier_gain : float
        Electrode volts per recorded volt.
    electrode_gap_um : float
        Electrode gap in micrometres.

    Returns
    -------
    numpy.ndarray
        ``|V| * gain / gap``; e.g. 6.5 V x 20 over 10 um = 130 kV/cm.
    """
    gain = _check_positive("amplifier_gain", amplifier_gain)
    gap_cm = _check_positive("electrode_gap_um", electrode_gap_um) * 1e-4
    return np.abs(np.asarray(voltage_V, dtype=np.float64)) * gain / gap_cm * 1e-3


def _empty_segments() -> pd.DataFrame:
    out = pd.DataFrame(
        {
            "segment": pd.Series(dtype=np.int64),
            "start_s": pd.Series(dtype=np.float64),
            "end_s": pd.Series(dtype=np.float64),
            "field_kV_per_cm": pd.Series(dtype=np.float64),
            "sign": pd.Series(dtype=np.int64),
            "level": pd.Series(dtype=np.int64),
            "level_kV_per_cm": pd.Series(dtype=np.float64),
        }
    )
    out.attrs["warnings"] = ()
    return out


def _lowest_plateau(
    values: np.ndarray, floor: float, top: float, min_count: int, tolerance: float
) -> float | None:
    """Median of the lowest cluster of ``values`` above ``floor`` with enough samples."""
    cand = values[values > floor]
    if cand.size == 0:
        return None
    width = np.log1p(max(tolerance, 1e-3) / 2)
    n_bins = max(1, int(np.ceil(np.log(top / floor) / width)) + 1)
    edges = floor * np.exp(width * np.arange(n_bins + 1))
    counts, _ = np.histogram(cand, bins=edges)
    full = np.flatnonzero(counts >= min_count)
    if full.size == 0:
        return None
    lo = edges[full[0]]
    window = cand[(cand >= lo) & (cand <= lo * (1 + 2 * max(tolerance, 1e-3)))]
    return float(np.median(window))


def _interior_median(t: np.ndarray, e: np.ndarray, start: float, end: float) -> float:
    pad = EDGE_FRACTION * (end - start)
    a, b = np.searchsorted(t, [start + pad, end - pad])
    if b <= a:
        a, b = np.searchsorted(t, [start, end])
        b = max(b, a + 1)
    return float(np.median(e[a:b]))


def _edge_time(t: np.ndarray, e: np.ndarray, level: float, a: int, b: int, rising: bool) -> float:
    """Interpolated crossing of ``level`` at the start (rising) or end of samples a:b."""
    seg = e[a:b] >= level
    if not seg.any():
        return float(t[a] if rising else t[b - 1])
    if rising:
        i = a + int(np.argmax(seg))
        if i == 0:
            return float(t[0])
        x0, x1, t0, t1 = e[i - 1], e[i], t[i - 1], t[i]
    else:
        i = a + int(seg.size - 1 - np.argmax(seg[::-1]))
        if i >= t.size - 1:
            return float(t[-1])
        x0, x1, t0, t1 = e[i], e[i + 1], t[i], t[i + 1]
    frac = 0.0 if x1 == x0 else float(np.clip((level - x0) / (x1 - x0), 0.0, 1.0))
    return float(t0 + frac * (t1 - t0))


def _split_chain(logf: np.ndarray, tolerance_log: float) -> list[np.ndarray]:
    """Index groups of sorted log-fields whose span is at most ``tolerance_log``.

    A group spanning more is split at its largest gap, recursively (complete
    linkage in one dimension), so that a ramp of close levels does not chain
    into one level the way single linkage would.
    """
    groups, todo = [], [np.arange(logf.size)]
    while todo:
        idx = todo.pop()
        if idx.size < 2 or logf[idx[-1]] - logf[idx[0]] <= tolerance_log:
            groups.append(idx)
            continue
        cut = int(np.argmax(np.diff(logf[idx]))) + 1
        todo += [idx[cut:], idx[:cut]]
    return sorted(groups, key=lambda g: g[0])


def _cluster_levels(fields: np.ndarray, tolerance: float) -> tuple[np.ndarray, np.ndarray]:
    """Level index (ascending) of each field and the mean field of each level.

    Fields whose relative gap exceeds ``tolerance`` are different levels;
    within a run of close fields (a ramp in small steps), no level spans
    more than ``tolerance`` (the run is split at its largest gaps).
    """
    order = np.argsort(fields, kind="stable")
    logf = np.log(np.maximum(fields[order], np.finfo(float).tiny))
    tol = float(np.log1p(tolerance))
    level_sorted = np.empty(fields.size, np.int64)
    for k, g in enumerate(_split_chain(logf, tol)):
        level_sorted[g] = k
    level = np.empty(fields.size, np.int64)
    level[order] = level_sorted
    means = np.array([fields[level == k].mean() for k in range(int(level_sorted.max()) + 1)])
    return level, means


def field_levels(segments: pd.DataFrame) -> pd.DataFrame:
    """The field levels of a run with their polarity.

    Parameters
    ----------
    segments : pandas.DataFrame
        From :func:`field_segments`.

    Returns
    -------
    pandas.DataFrame
        One row per level (ascending field): ``level``, ``field_kV_per_cm``
        (mean magnitude), ``n_segments``, ``n_positive``, ``n_negative``,
        ``polarity``: ``'positive'``, ``'negative'``, ``'alternating'``
        (successive segments of the level change sign every time) or
        ``'mixed'``.
    """
    rows = []
    for level, seg in segments.sort_values("start_s").groupby("level", sort=True):
        signs = seg["sign"].to_numpy()
        n_pos, n_neg = int((signs > 0).sum()), int((signs < 0).sum())
        if n_neg == 0:
            polarity = "positive"
        elif n_pos == 0:
            polarity = "negative"
        elif (signs[1:] != signs[:-1]).all():
            polarity = "alternating"
        else:
            polarity = "mixed"
        rows.append(
            {
                "level": int(level),
                "field_kV_per_cm": float(seg["level_kV_per_cm"].iloc[0]),
                "n_segments": int(len(seg)),
                "n_positive": n_pos,
                "n_negative": n_neg,
                "polarity": polarity,
            }
        )
    return pd.DataFrame(rows, columns=list(LEVEL_COLUMNS))


def _level_steps(
    e: np.ndarray, a: int, b: int, *, dt: float, tolerance: float, min_duration_s: float
) -> list[int]:
    """Samples inside the ON run ``a:b`` where the field steps to another level.

    Block medians (blocks of 1/20 of ``min_duration_s``) are grouped into
    runs that stay within ``tolerance`` of their first block; runs lasting
    at least half of ``min_duration_s`` are plateaus. Between two plateaus
    whose fields differ by more than ``tolerance`` the step is placed at the
    least-squares change point of the raw samples (two constant levels), so
    noise does not move it. Slew at the ends of the run (trapezoidal
    pulses) and slow drift within ``tolerance`` make no step.
    """
    block = max(3, int(round(0.05 * min_duration_s / dt)))
    n_blocks = (b - a) // block
    if n_blocks < 4:
        return []
    med = np.median(e[a : a + n_blocks * block].reshape(n_blocks, block), axis=1)
    groups: list[tuple[int, int]] = []
    g0 = 0
    for i in range(1, n_blocks):
        if abs(med[i] - med[g0]) > tolerance * max(med[g0], np.finfo(float).tiny):
            groups.append((g0, i))
            g0 = i
    groups.append((g0, n_blocks))
    min_blocks = max(2, int(np.ceil(0.5 * min_duration_s / (block * dt))))
    plateaus = [(i0, i1, float(np.median(med[i0:i1]))) for i0, i1 in groups if i1 - i0 >= min_blocks]
    cuts = []
    for (_, p1_end, lev1), (p2_start, _, lev2) in zip(plateaus, plateaus[1:]):
        if abs(lev2 - lev1) <= tolerance * min(lev1, lev2):
            continue
        lo, hi = a + (p1_end - 1) * block, a + (p2_start + 1) * block
        x = e[lo:hi]
        before = np.concatenate(([0.0], np.cumsum((x - lev1) ** 2)))
        after = np.concatenate(([0.0], np.cumsum(((x - lev2) ** 2)[::-1])))[::-1]
        cuts.append(lo + int(np.argmin(before + after)))
    return cuts


def field_segments(
    time_s: np.ndarray,
    voltage_V: np.ndarray,
    *,
    amplifier_gain: float,
    electrode_gap_um: float,
    min_duration_s: float = 0.5,
    level_tolerance: float = 0.02,
    source: str = "",
) -> pd.DataFrame:
    """Field-ON segments of a recorded function-generator voltage.

    ON/OFF is decided by hysteresis on ``|E|``: the OFF level is the robust
    low (1st percentile), the smallest clear plateau above it sets the
    thresholds (OFF below 25 %, ON above 50 % of the way to it), so stepped
    or ramped levels, slow slew (trapezoidal pulses) and noise of a few
    percent do not split or merge segments. A
    change of sign splits a segment. ON pieces of the same sign and level
    separated by an OFF dropout shorter than ``min_duration_s`` are joined;
    ON pieces shorter than ``min_duration_s`` are glitches and dropped.

    Parameters
    ----------
    time_s, voltage_V : array_like, shape (n,)
        DAQ time (s, strictly increasing) and recorded voltage (V).
    amplifier_gain, electrode_gap_um : float
        See :func:`field_kV_per_cm`.
    min_duration_s : float, optional
        Shortest real ON segment (and shortest real OFF gap between two
        segments of the same level and sign).
    level_tolerance : float, optional
        Largest relative spread of the field within one level (repeat
        accuracy of one function-generator setting, amplifier asymmetry
        between polarities). Segment fields closer than this belong to one
        level, and no level spans more than this, so a ramped sequence of
        levels (e.g. 90, 95, ... 130 kV/cm up and down) gives one level per
        setting instead of chaining neighbours into one. Steps smaller than
        this cannot be told apart; lower it for finer ramps.
    source : str, optional
        File or channel name used in messages.

    Returns
    -------
    pandas.DataFrame
        One row per ON segment, in time order: ``segment`` (0, 1, ...),
        ``start_s``, ``end_s`` (edges interpolated at half the segment's
        field), ``field_kV_per_cm`` (median ``|E|`` over the segment without
        5 % at each end), ``sign`` (+1/-1), ``level`` (index of the level
        cluster, ascending by field), ``level_kV_per_cm`` (mean field of the
        cluster). Empty (same columns) when the field is never ON.
        ``attrs["warnings"]`` holds recoverable oddities (a segment cut by
        the start or end of the record, no OFF level), which are also logged.
    """
    t, v = as_time_series(time_s, voltage_V, source=source, what="voltage")
    min_duration_s = _check_positive("min_duration_s", min_duration_s)
    level_tolerance = _check_positive("level_tolerance", level_tolerance)
    e_signed = field_kV_per_cm(v, amplifier_gain=amplifier_gain, electrode_gap_um=electrode_gap_um) * np.sign(
        v
    )
    e = np.abs(e_signed)
    warnings: list[str] = []
    dt = float(np.median(np.diff(t)))
    found = _on_thresholds(e, dt, min_duration_s, level_tolerance, source, warnings)
    if found is None:
        return _empty_segments()
    e_off, th_off, th_on = found
    runs = _signed_on_runs(e, e_signed, th_off, th_on)
    split_runs = _split_at_level_steps(t, e, runs, dt, level_tolerance, min_duration_s)
    if len(split_runs) > len(runs):
        logger.debug("%s: %d level step(s) without OFF time", source, len(split_runs) - len(runs))
    pieces = _joined_pieces(t, e, e_off, split_runs, min_duration_s, level_tolerance)
    return _segments_table(pieces, e.size, min_duration_s, level_tolerance, source, warnings, found)


def _segments_table(
    pieces, n_samples: int, min_duration_s, level_tolerance, source: str, warnings: list, levels
):
    """The segments table of the ON pieces lasting ``min_duration_s`` (shorter ones are glitches),
    with their level clusters; ``attrs["warnings"]`` holds (and the log gets) the run's warnings.
    ``levels``: the OFF level and the two thresholds, for the log."""
    n_pieces = len(pieces)
    pieces = [p for p in pieces if p["end_s"] - p["start_s"] >= min_duration_s]
    if n_pieces - len(pieces):
        logger.debug(
            "%s: %d ON glitch(es) shorter than %g s dropped", source, n_pieces - len(pieces), min_duration_s
        )
    if not pieces:
        return _empty_segments()
    for where, cut in (("start", pieces[0]["a"] == 0), ("end", pieces[-1]["b"] == n_samples)):
        if cut:
            warnings.append(f"the field is ON at the {where} of the record; that segment is cut short")
    fields = np.array([p["field"] for p in pieces])
    level, means = _cluster_levels(fields, level_tolerance)
    out = pd.DataFrame(
        {
            "segment": np.arange(len(pieces), dtype=np.int64),
            "start_s": [p["start_s"] for p in pieces],
            "end_s": [p["end_s"] for p in pieces],
            "field_kV_per_cm": fields,
            "sign": np.array([p["sign"] for p in pieces], dtype=np.int64),
            "level": level,
            "level_kV_per_cm": means[level],
        },
        columns=list(SEGMENT_COLUMNS),
    )
    out.attrs["warnings"] = tuple(warnings)
    for w in warnings:
        logger.warning("%s: %s", source or "voltage", w)
    logger.debug(
        "%s: %d field-ON segments, levels %s kV/cm (OFF %.3g, thresholds %.3g/%.3g)",
        source,
        len(out),
        np.round(means, 2).tolist(),
        *levels,
    )
    return out


def _on_thresholds(e, dt: float, min_duration_s: float, level_tolerance: float, source: str, warnings: list):
    """``(OFF level, OFF threshold, ON threshold)`` of ``|E|`` (None: the field never switches on)."""
    sigma = noise_sigma(e)
    top = robust_extremes(e)[1]
    e_off = float(np.percentile(e, 1))
    if e_off > 0.2 * top:
        warnings.append(
            f"|E| never drops below {e_off:.4g} kV/cm (max {top:.4g}): no field-OFF "
            "level in the record; taking OFF as 0 kV/cm"
        )
        e_off = 0.0
    if not top - e_off > max(_MIN_SWING_SIGMA * sigma, 0.0):
        logger.info("%s: field never switches on (|E| %.4g to %.4g kV/cm)", source, e_off, top)
        return None
    floor = e_off + max(8 * sigma, 0.05 * (top - e_off))
    min_count = max(3, int(0.25 * min_duration_s / dt))
    plateau = _lowest_plateau(e, floor, top * 1.01, min_count, level_tolerance)
    if plateau is None:
        logger.info("%s: no field plateau lasting %g s", source, min_duration_s)
        return None
    return e_off, e_off + OFF_FRACTION * (plateau - e_off), e_off + ON_FRACTION * (plateau - e_off)


def _signed_on_runs(e, e_signed, th_off: float, th_on: float) -> list[tuple[int, int, int]]:
    """``(first, stop, sign)`` sample ranges where the field is ON with one sign."""
    on = hysteresis_state(e, th_off, th_on)
    key = np.where(on, np.where(e_signed >= 0, 1, -1), 0)
    bounds = np.flatnonzero(key[1:] != key[:-1]) + 1
    run_start = np.concatenate(([0], bounds))
    run_stop = np.append(bounds, key.size)
    keep = key[run_start] != 0
    return list(zip(run_start[keep].tolist(), run_stop[keep].tolist(), key[run_start[keep]].tolist()))


def _split_at_level_steps(t, e, runs, dt: float, level_tolerance: float, min_duration_s: float):
    """ON runs split where the field steps to another level without going OFF; a cut's time is
    the middle of its sample interval (None: the edge is measured later)."""
    split_runs: list[tuple[int, int, int, float | None, float | None]] = []
    for a, b, sign in runs:
        cuts = _level_steps(e, a, b, dt=dt, tolerance=level_tolerance, min_duration_s=min_duration_s)
        edges = [a, *cuts, b]
        for i, (a_i, b_i) in enumerate(zip(edges[:-1], edges[1:])):
            t_start = float(t[a_i] - 0.5 * (t[a_i] - t[a_i - 1])) if i > 0 else None
            t_end = float(t[b_i] - 0.5 * (t[b_i] - t[b_i - 1])) if i < len(cuts) else None
            split_runs.append((a_i, b_i, sign, t_start, t_end))
    return split_runs


def _joined_pieces(
    t, e, e_off: float, split_runs, min_duration_s: float, level_tolerance: float
) -> list[dict]:
    """Each ON run measured (edges at half its field, interior median field); same-level pieces
    split by an OFF dropout shorter than ``min_duration_s`` joined."""
    pieces: list[dict] = []
    for a, b, sign, t_start, t_end in split_runs:
        field = float(np.median(e[a:b]))
        half = 0.5 * (e_off + field)
        p = {
            "a": a,
            "b": b,
            "sign": sign,
            "start_s": (
                t_start if t_start is not None else _edge_time(t, e, half, max(a - 1, 0), b, rising=True)
            ),
            "end_s": (
                t_end if t_end is not None else _edge_time(t, e, half, a, min(b + 1, e.size), rising=False)
            ),
        }
        p["field"] = _interior_median(t, e, p["start_s"], p["end_s"])
        prev = pieces[-1] if pieces else None
        if (
            prev is not None
            and prev["sign"] == sign
            and p["start_s"] - prev["end_s"] < min_duration_s
            and abs(p["field"] - prev["field"]) <= level_tolerance * min(p["field"], prev["field"])
        ):
            prev["b"], prev["end_s"] = b, p["end_s"]
            prev["field"] = _interior_median(t, e, prev["start_s"], prev["end_s"])
        else:
            pieces.append(p)
    return pieces


def cycles_from_segments(segments: pd.DataFrame, *, record_end_s: float) -> pd.DataFrame:
    """ON/OFF cycles: each ON segment followed by the OFF time until the next.

    Parameters
    ----------
    segments : pandas.DataFrame
        From :func:`field_segments`.
    record_end_s : float
        End of the record (or of the movie): the OFF part of the last cycle
        ends there.

    Returns
    -------
    pandas.DataFrame
        One row per ON segment: ``cycle`` (0, 1, ...), ``level``,
        ``field_kV_per_cm`` (the level's mean field), ``sign``,
        ``on_start_s``, ``on_end_s``, ``off_end_s`` (next segment's start,
        or ``record_end_s`` for the last).
    """
    missing = [
        c for c in ("start_s", "end_s", "sign", "level", "level_kV_per_cm") if c not in segments.columns
    ]
    if missing:
        raise ValueError(f"segments lacks column(s) {missing}; use plscope.sync.field_segments")
    seg = segments.sort_values("start_s", kind="stable")
    start = seg["start_s"].to_numpy(np.float64)
    end = seg["end_s"].to_numpy(np.float64)
    if start.size and not record_end_s >= end[-1]:
        raise SyncError(
            None, f"record_end_s={record_end_s!r} is before the end of the last field segment ({end[-1]!r} s)"
        )
    off_end = np.append(start[1:], float(record_end_s)) if start.size else np.empty(0)
    return pd.DataFrame(
        {
            "cycle": np.arange(start.size, dtype=np.int64),
            "level": seg["level"].to_numpy(np.int64),
            "field_kV_per_cm": seg["level_kV_per_cm"].to_numpy(np.float64),
            "sign": seg["sign"].to_numpy(np.int64),
            "on_start_s": start,
            "on_end_s": end,
            "off_end_s": off_end,
        },
        columns=list(CYCLE_COLUMNS),
    )
