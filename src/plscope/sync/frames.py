"""Frame times from camera TTL pulses (DAQ clock), with dropped frames.

Frame k is timed by the rising edge of its TTL pulse (``shared/spec/
run-folder.md``, timing rules). The camera TTL is the camera's exposure
output: one pulse per exposure. Two things can go wrong, and both show as a
frame interval of about a whole multiple of the median:

- the camera skipped exposures (a missed trigger, a pause): the TTL has a
  gap and the movie has no frame for it. Frames still correspond one to one
  to pulses, in order, and the gap is real time.
- the acquisition lost frames that the camera exposed (buffer overflow):
  the TTL is regular but the movie lacks frames. Only the acquisition's own
  frame numbers or time stamps (``Stack.frame_numbers``/``frame_time_s``)
  say which; each frame then takes the pulse of its own slot.

:func:`frame_timing` maps frames to pulses by *slot* (the whole number of
frame intervals since the first frame's pulse): from the TTL alone, frame k
takes the k-th pulse; with the acquisition's frame numbers or time stamps,
frame k takes the pulse in its slot. With ``on_dropped="error"`` any missing
slot is refused; with ``"map"`` the mapping is used, flagged and reported.
Never mapped, whatever the option: fewer pulses than frames need, an
interval that is not close to a whole number of frame intervals (irregular
timing), an interval below half the median (a spurious edge), a frame whose
slot has no pulse.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from ..errors import SyncError

logger = logging.getLogger(__name__)

__all__ = ["FrameTiming", "LostFrames", "find_lost_frames", "frame_timing"]

#: An interval above this multiple of the median means a dropped frame.
MAX_INTERVAL_RATIO = 1.5
#: An interval below this multiple of the median means a spurious edge.
MIN_INTERVAL_RATIO = 0.5
#: A gap must be this close to a whole number of frame intervals to be mapped.
SLOT_TOLERANCE = 0.25
#: Largest relative difference between the camera's and the TTL's frame interval.
CLOCK_TOLERANCE = 0.02


@dataclass(frozen=True, eq=False)
class FrameTiming:
    """When each frame was exposed, on the DAQ clock.

    Attributes
    ----------
    time_s : numpy.ndarray, shape (n_frames,)
        Rising edge of frame k's TTL pulse (start of exposure), seconds.
    exposure_s : float
        Median pulse width (NaN if no pulse has a falling edge).
    mid_time_s : numpy.ndarray, shape (n_frames,)
        ``time_s + exposure_s / 2``: the centre of each exposure (NaN when
        the exposure is unknown).
    frame_interval_s : float
        Median interval between TTL pulses (NaN for a single frame).
    warnings : tuple of str
        E.g. surplus TTL edges, dropped frames that were mapped.
    pulse_index : numpy.ndarray, shape (n_frames,)
        Index (in ``pulses``) of the pulse that times each frame.
    slot : numpy.ndarray, shape (n_frames,)
        Frame intervals since the first frame: ``arange(n_frames)`` when
        nothing was dropped.
    dropped_after : tuple of int
        Frames followed by missing slots (dropped frames), in order.
    n_dropped : int
        Number of missing slots between the first and the last frame.
    """

    time_s: np.ndarray
    exposure_s: float
    mid_time_s: np.ndarray
    frame_interval_s: float
    warnings: tuple[str, ...] = ()
    pulse_index: np.ndarray | None = None
    slot: np.ndarray | None = None
    dropped_after: tuple[int, ...] = ()
    n_dropped: int = 0

    @property
    def n_frames(self) -> int:
        return int(self.time_s.size)

    @property
    def frame_rate_hz(self) -> float:
        return 1.0 / self.frame_interval_s


def _edge_slots(start: np.ndarray, interval_s: float) -> np.ndarray:
    """Slot of every edge: whole frame intervals since the first edge."""
    ratio = np.diff(start) / interval_s
    return np.concatenate(([0], np.cumsum(np.maximum(np.rint(ratio), 1)))).astype(np.int64)


def _check_intervals(start: np.ndarray, interval_s: float, src: str | None) -> None:
    """Refuse spurious edges and intervals that are not whole frame intervals."""
    dt = np.diff(start)
    ratio = dt / interval_s
    short = np.flatnonzero(ratio < MIN_INTERVAL_RATIO)
    if short.size:
        k = int(short[0])
        raise SyncError(
            src,
            f"frame interval drops to {dt[k]:.6g} s ({ratio[k]:.2f}x the "
            f"median {interval_s:.6g} s) between TTL pulses {k} and {k + 1} "
            f"(edge at {start[k + 1]:.6g} s): a spurious TTL edge? "
            "(the frame mapping is not guessed)",
        )
    off = np.flatnonzero(np.abs(ratio - np.rint(ratio)) > SLOT_TOLERANCE)
    if off.size:
        k = int(off[0])
        raise SyncError(
            src,
            f"frame interval jumps to {dt[k]:.6g} s ({ratio[k]:.2f}x the "
            f"median {interval_s:.6g} s) between TTL pulses {k} and {k + 1} "
            f"(edge at {start[k + 1]:.6g} s), which is not a whole number of "
            "frame intervals: irregular camera timing (the frame mapping is "
            "not guessed)",
        )


def _camera_slots(
    n_frames: int, frame_numbers, frame_time_s, interval_s: float, src: str | None
) -> np.ndarray | None:
    """Slots of the frames from the acquisition's frame numbers or time stamps."""
    if frame_numbers is not None:
        num = np.asarray(frame_numbers)
        if num.shape != (n_frames,) or not np.issubdtype(num.dtype, np.integer):
            raise ValueError(f"frame_numbers must be {n_frames} integers, got {num.dtype} {num.shape}")
        slots = (num - num[0]).astype(np.int64)
        what = "frame numbers"
    elif frame_time_s is not None:
        ts = np.asarray(frame_time_s, dtype=np.float64)
        if ts.shape != (n_frames,) or not np.isfinite(ts).all():
            raise ValueError(f"frame_time_s must be {n_frames} finite times, got shape {ts.shape}")
        if n_frames < 2:
            return np.zeros(n_frames, np.int64)
        cam = float(np.median(np.diff(ts)))
        if not cam > 0 or abs(cam / interval_s - 1) > CLOCK_TOLERANCE:
            raise SyncError(
                src,
                f"the movie's time stamps give a frame interval of {cam:.6g} s "
                f"but the camera TTL {interval_s:.6g} s: they do not describe "
                "the same acquisition",
            )
        # step by step (time-stamp jitter does not accumulate), then a straight-line fit
        step = np.diff(ts) / cam
        slots = np.concatenate(([0], np.cumsum(np.rint(step)))).astype(np.int64)
        if slots[-1] > 0:
            slope, icept = np.polyfit(slots, ts, 1)
            resid = (ts - icept - slope * slots) / slope
        else:
            resid = np.zeros(n_frames)
        bad = np.flatnonzero(
            (np.abs(step - np.rint(step)) > SLOT_TOLERANCE) | (np.abs(resid[1:]) > SLOT_TOLERANCE)
        )
        if bad.size:
            k = int(bad[0]) + 1
            raise SyncError(
                src,
                f"the movie's time stamp of frame {k} ({ts[k] - ts[0]:.6g} s "
                "after the first) is not a whole number of frame intervals: the "
                "frame mapping is not guessed",
            )
        what = "time stamps"
    else:
        return None
    if n_frames > 1 and not (np.diff(slots) > 0).all():
        k = int(np.flatnonzero(np.diff(slots) <= 0)[0])
        raise SyncError(src, f"the movie's {what} do not increase between frames {k} and {k + 1}")
    return slots


def _frame_pulses(start, n_frames: int, interval_s: float, frame_numbers, frame_time_s, src):
    """``(pulse index, slot)`` of every frame: the k-th pulse from the TTL alone, or the pulse of
    the frame's own slot (from the movie's frame numbers or time stamps); never guessed."""
    n = start.size
    cam = _camera_slots(n_frames, frame_numbers, frame_time_s, interval_s, src)
    edge_slot = _edge_slots(start, interval_s)
    if cam is None:
        # from the TTL alone: frame k takes the k-th pulse
        _check_intervals(start[:n_frames], interval_s, src)
        return np.arange(n_frames), edge_slot[:n_frames]
    # each frame takes the pulse of its slot
    upto = int(np.searchsorted(edge_slot, cam[-1], side="right"))
    _check_intervals(start[: max(upto, 1)], interval_s, src)
    pos = np.searchsorted(edge_slot[:upto], cam)
    ok = (pos < upto) & (edge_slot[np.minimum(pos, n - 1)] == cam)
    if not ok.all():
        k = int(np.flatnonzero(~ok)[0])
        raise SyncError(
            src,
            f"frame {k} (slot {cam[k]} after the first frame, from the "
            f"movie's frame numbers/time stamps) has no TTL pulse: the "
            f"TTL has {int(edge_slot[upto - 1]) + 1} slots up to there "
            "(the frame mapping is not guessed)",
        )
    return pos.astype(np.int64), cam


def _check_dropped(start, index, slots, interval_s: float, on_dropped: str, src, warnings: list[str]) -> None:
    """Frames dropped between two frames (a slot skipped): refused, or (``on_dropped='map'``) warned."""
    jumps = np.flatnonzero(np.diff(slots) > 1)
    if not jumps.size:
        return
    n_drop = int((np.diff(slots)[jumps] - 1).sum())
    k = int(jumps[0])
    where = ", ".join(str(int(j)) for j in jumps[:10]) + (" ..." if jumps.size > 10 else "")
    msg = (
        f"frame interval jumps to {start[index[k + 1]] - start[index[k]]:.6g} s "
        f"({slots[k + 1] - slots[k]}x the median {interval_s:.6g} s) between frames "
        f"{k} and {k + 1} (edge at {start[index[k + 1]]:.6g} s): {n_drop} dropped "
        f"frame(s) (frames followed by a gap: {where})"
    )
    if on_dropped == "error":
        raise SyncError(
            src,
            f"{msg}. The frame mapping is not guessed; to map each frame "
            "to the pulse of its own slot use on_dropped='map' "
            '([daq] dropped_frames = "map")',
        )
    warnings.append(f"{msg}; each frame keeps the TTL pulse of its own slot")


def _frame_timing_result(
    start, end, index, slots, n_frames: int, interval_s, warnings: list[str], source: str
):
    """The :class:`FrameTiming` of the frames' pulses: times, exposure (median pulse width), frame
    interval, dropped frames; surplus TTL edges and pulses of frames lost from the movie warned."""
    n = start.size
    last = int(index[-1])
    if n > last + 1:
        warnings.append(f"{n - last - 1} surplus TTL edge(s) after the last of {n_frames} frames ignored")
    skipped = last + 1 - n_frames
    if skipped > 0:
        warnings.append(
            f"{skipped} TTL pulse(s) within the movie belong to frames missing from "
            "the movie (lost by the acquisition) and are not used"
        )
    time_s = start[index].copy()
    widths = (end - start)[index]
    widths = widths[np.isfinite(widths)]
    exposure_s = float(np.median(widths)) if widths.size else float("nan")
    if n_frames > 1:
        interval_s = float(np.median(np.diff(start[: last + 1])))
    jumps = np.flatnonzero(np.diff(slots) > 1)
    for w in warnings:
        logger.warning("%s: %s", source or "camera TTL", w)
    logger.debug("%s: %d frames, interval %.6g s, exposure %.6g s", source, n_frames, interval_s, exposure_s)
    return FrameTiming(
        time_s=time_s,
        exposure_s=exposure_s,
        mid_time_s=time_s + exposure_s / 2,
        frame_interval_s=interval_s,
        warnings=tuple(warnings),
        pulse_index=index,
        slot=slots,
        dropped_after=tuple(int(j) for j in jumps),
        n_dropped=int((np.diff(slots)[jumps] - 1).sum()) if jumps.size else 0,
    )


def frame_timing(
    pulses: pd.DataFrame,
    n_frames: int,
    *,
    source: str = "",
    on_dropped: Literal["error", "map"] = "error",
    frame_numbers: np.ndarray | None = None,
    frame_time_s: np.ndarray | None = None,
) -> FrameTiming:
    """Assign TTL pulses to frames.

    Parameters
    ----------
    pulses : pandas.DataFrame
        From :func:`plscope.sync.ttl_pulses`: columns ``start_s``, ``end_s``.
    n_frames : int
        Number of frames in the image stack.
    source : str, optional
        File or channel name used in messages.
    on_dropped : {'error', 'map'}, optional
        What to do when frames were dropped (a TTL interval of about 2, 3,
        ... times the median, or a jump in ``frame_numbers``/``frame_time_s``):
        refuse with a message naming the frame, or map every frame to the
        pulse of its slot, report it in ``warnings`` and ``dropped_after``.
    frame_numbers : array_like of int, optional
        The acquisition's own number of each frame (e.g. ``Stack.frame_numbers``:
        Micro-Manager time index, SPE frame tracking number), any offset.
    frame_time_s : array_like of float, optional
        The acquisition's time stamp of each frame (camera clock, any
        offset); used when ``frame_numbers`` is not given.

    Returns
    -------
    FrameTiming

    Raises
    ------
    SyncError
        Fewer pulses than the frames need; a dropped frame with
        ``on_dropped="error"``; an interval that is not a whole number of
        frame intervals or less than half the median (spurious edge); a
        frame whose slot has no pulse. The mapping is never guessed.
    """
    if isinstance(n_frames, bool) or int(n_frames) != n_frames or n_frames < 1:
        raise ValueError(f"n_frames must be a positive integer, got {n_frames!r}")
    if on_dropped not in ("error", "map"):
        raise ValueError(f"on_dropped must be 'error' or 'map', got {on_dropped!r}")
    n_frames = int(n_frames)
    src = source or None
    missing = [c for c in ("start_s", "end_s") if c not in pulses.columns]
    if missing:
        raise ValueError(f"pulses lacks column(s) {missing}; use plscope.sync.ttl_pulses")
    start = pulses["start_s"].to_numpy(np.float64)
    end = pulses["end_s"].to_numpy(np.float64)
    n = start.size
    if n < n_frames:
        raise SyncError(
            src,
            f"{n} TTL edges for {n_frames} frames: the camera TTL does not time "
            "every frame (check the channel, or whether the DAQ started late "
            "or stopped early)",
        )
    warnings: list[str] = []
    # the first n_frames pulses all lie within the movie (surplus pulses after it, e.g. a
    # live view at another rate, must not set the frame interval)
    interval_s = float(np.median(np.diff(start[:n_frames]))) if n_frames > 1 else float("nan")

    if n_frames == 1:
        index = np.zeros(1, np.int64)
        slots = np.zeros(1, np.int64)
    else:
        index, slots = _frame_pulses(start, n_frames, interval_s, frame_numbers, frame_time_s, src)
        _check_dropped(start, index, slots, interval_s, on_dropped, src, warnings)
    return _frame_timing_result(start, end, index, slots, n_frames, interval_s, warnings, source)


# --------------------------------------------------------------------------
# frames lost by the acquisition, found from the data
# --------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class LostFrames:
    """Frames missing from the movie while their TTL pulses were logged, found from the PL response.

    Attributes
    ----------
    pulse_index : numpy.ndarray, shape (n_frames,)
        Corrected TTL pulse of each movie frame.
    lost_between : tuple of (int, int)
        For each lost frame, the TTL pulses ``(first, last)`` between which it
        was lost (the field edges around it); the mapping assumes the last one
        (just before the next edge, where the PL has settled).
    shifts : numpy.ndarray
        Frames lost before each field edge (in time order).
    checked : bool
        False when the data could not tell (too few edges, no response); the
        mapping is then unchanged.
    message : str
        What was found, naming the frames; empty when nothing was lost.
    likely_between : tuple of (int, int)
        The most likely interval of each lost frame (inside ``lost_between``).
    """

    pulse_index: np.ndarray
    lost_between: tuple[tuple[int, int], ...]
    shifts: np.ndarray
    checked: bool
    message: str
    likely_between: tuple[tuple[int, int], ...] = ()


def _ramp(t: np.ndarray, edge_s: float, exposure_s: float) -> np.ndarray:
    """``max(0, t' - edge)`` averaged over each exposure ``t - exposure/2 .. t + exposure/2``.

    A frame whose exposure straddles the edge sees part of the change; with
    ``exposure_s`` 0 (unknown) the ramp is sampled at ``t``.
    """
    if not exposure_s > 0:
        return np.clip(t - edge_s, 0.0, None)
    a = t - 0.5 * exposure_s - edge_s  # exposure start relative to the edge
    b = a + exposure_s
    return np.where(a >= 0, t - edge_s, np.clip(b, 0.0, None) ** 2 / (2.0 * exposure_s))


def _hinge_rss(y: np.ndarray, t: np.ndarray, edge_s: float, exposure_s: float = 0.0) -> float:
    """Residual sum of squares of ``y = a + b * ramp(t - edge)`` (least squares in a, b)."""
    x = _ramp(t, edge_s, exposure_s)
    A = np.column_stack([np.ones_like(x), x])
    ok = np.isfinite(y)
    if ok.sum() < 4 or np.ptp(x[ok]) == 0:
        return float("nan")
    coef, *_ = np.linalg.lstsq(A[ok], y[ok], rcond=None)
    r = y[ok] - A[ok] @ coef
    return float(r @ r)


def _edge_costs(
    y: np.ndarray,
    mid: np.ndarray,
    edges: np.ndarray,
    max_lost: int,
    window_frames: int,
    noise: float,
    exposure_s: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Evidence against each number of lost frames at each edge, in units of the response noise.

    ``cost[e, d]`` is the hinge fit's residual sum of squares with ``d`` frames
    lost before edge ``e``, minus the best one of that edge, divided by the
    residual variance: the noise of the response or, where the hinge fits
    worse than that (a curved response, model mismatch), the best fit's own
    residual variance. A 1-dof chi-square: ~1 by chance, > 25 is 5 sigma.
    Windows that leave the movie cost nothing (no information).
    """
    cost = np.zeros((edges.size, max_lost + 1))
    pulse = np.searchsorted(mid, edges).astype(int)  # first pulse after each edge
    n_frames = y.size
    dof = max(2 * window_frames - 2, 1)
    for i, j in enumerate(pulse):
        rss = np.full(max_lost + 1, np.nan)
        for d in range(max_lost + 1):
            k = int(j) - d  # movie frame of that pulse if d frames were lost before
            lo, hi = k - window_frames, k + window_frames
            if lo >= 0 and hi <= n_frames and hi + d <= mid.size:
                rss[d] = _hinge_rss(y[lo:hi], mid[lo + d : hi + d], float(edges[i]), exposure_s)
        if np.isfinite(rss).sum() >= 2:
            best = float(np.nanmin(rss))
            var = max(noise**2, best / dof)
            cost[i] = np.nan_to_num((rss - best) / var, nan=0.0)
    return cost, pulse


def _monotone_path(cost: np.ndarray, min_evidence: float) -> np.ndarray:
    """Non-decreasing frames-lost count per edge of least total cost (dynamic programming).

    Frames are only ever lost, so the count never decreases in time. The total
    at the end is the smallest whose cost beats every smaller total by
    ``min_evidence`` (a lost frame is claimed only when the data demand it).
    """
    n_e, n_d = cost.shape
    best = np.zeros((n_e, n_d))
    came = np.zeros((n_e, n_d), int)
    best[0] = cost[0]
    for e in range(1, n_e):
        run_min = np.minimum.accumulate(best[e - 1])
        run_arg = np.array([int(np.argmin(best[e - 1][: d + 1])) for d in range(n_d)])
        best[e] = cost[e] + run_min
        came[e] = run_arg
    m = int(np.argmin(best[-1]))
    while m > 0 and float(np.min(best[-1][:m])) - best[-1][m] < min_evidence:
        m = int(np.argmin(best[-1][:m]))
    path = np.zeros(n_e, int)
    path[-1] = m
    for e in range(n_e - 1, 0, -1):
        path[e - 1] = came[e, path[e]]
    return path


def _step_range(cost: np.ndarray, path: np.ndarray, e: int, tolerance: float) -> tuple[int, int]:
    """Edges between which one frame lost at edge ``e`` of ``path`` could also lie.

    One lost frame is moved to every other edge (the count in between one
    higher or lower); the places whose total cost is within ``tolerance`` of
    the best one are kept.
    """
    rows = np.arange(path.size)
    total = float(cost[rows, path].sum())
    lo = hi = e
    for e2 in range(path.size):
        alt = path.copy()
        if e2 < e:
            alt[e2:e] += 1
        elif e2 > e:
            alt[e:e2] -= 1
        else:
            continue
        if np.any(np.diff(alt) < 0) or alt.min() < 0 or alt.max() >= cost.shape[1]:
            continue
        if float(cost[rows, alt].sum()) - total < tolerance:
            lo, hi = min(lo, e2), max(hi, e2)
    return lo, hi


def find_lost_frames(
    response: np.ndarray,
    pulse_mid_s: np.ndarray,
    edges_s: np.ndarray,
    *,
    max_lost: int,
    window_frames: int = 6,
    min_evidence: float = 25.0,
    place_tolerance: float = 9.0,
    exposure_s: float = 0.0,
) -> LostFrames:
    """Frames lost by the acquisition, from the population PL response at the field edges.

    Frame ``k`` is first assumed to take TTL pulse ``k``. Each field edge
    (switch ON or OFF, DAQ clock) starts a kink in the population-averaged
    PL: flat before, changing after. For each edge and each candidate number
    ``d`` of frames lost before it (0 .. ``max_lost``), the frames around the
    edge are timed by pulses ``k + d`` and a hinge ``a + b max(0, t - edge)``
    is fitted (averaged over each exposure); the residuals, in units of the response's noise, are the
    evidence (:func:`_edge_costs`). The count of lost frames never decreases
    in time: the non-decreasing count per edge that fits all edges best is
    found by dynamic programming, and a lost frame is claimed only when it
    lowers the total by ``min_evidence`` (a 5-sigma test against the noise of
    the response: clean data stay silent). A lost frame lies between the last
    edge with the old count and the first with the new one; where moving it
    to another interval costs less than ``place_tolerance`` the reported
    interval spans both. An edge that no mapping explains (misfit >
    ``min_evidence``: a response anomaly) is left out, up to a quarter of the
    edges; beyond that the mapping cannot be checked (message, no change).

    Parameters
    ----------
    response : ndarray, shape (n_frames,)
        Population-averaged normalized PL of each movie frame.
    pulse_mid_s : ndarray, shape (n_pulses,)
        Mid-exposure time of every TTL pulse.
    edges_s : ndarray
        Field switch times (ON starts and ON ends).
    max_lost : int
        Surplus pulses: at most this many frames can be lost.
    window_frames : int
        Frames fitted on each side of an edge.
    min_evidence, place_tolerance : float
        Chi-square thresholds: to claim a lost frame, to widen its interval.
    exposure_s : float
        Exposure time: the hinge is averaged over each exposure (a frame
        straddling an edge sees part of the change); 0 samples it at the
        mid-exposure times.

    Returns
    -------
    LostFrames
    """
    y = np.asarray(response, float)
    n_frames = y.size
    mid = np.asarray(pulse_mid_s, float)
    base = np.arange(n_frames)
    unchanged = LostFrames(base, (), np.zeros(0, int), False, "")
    edges = np.sort(np.asarray(edges_s, float))
    max_lost = int(max(0, min(max_lost, mid.size - n_frames)))
    if max_lost == 0 or n_frames < 4 * window_frames or edges.size < 2:
        return unchanged
    noise = max(float(np.nanmedian(np.abs(np.diff(y)))) / 0.954, 1e-12)  # robust sd of differences / sqrt 2
    cost, pulse_at_edge = _edge_costs(y, mid, edges, max_lost, window_frames, noise, float(exposure_s or 0.0))
    informative = cost.max(axis=1) > 0
    if informative.sum() < 2:
        return unchanged
    cost, pulse_at_edge, path, anomaly = _drop_anomalous_edges(
        cost[informative], pulse_at_edge[informative], min_evidence
    )
    if anomaly:
        return LostFrames(base, (), path, True, anomaly)
    res = _lost_frames_result(cost, path, pulse_at_edge, mid, edges, n_frames, place_tolerance)
    if not res.lost_between:
        return res
    return _refine_placement(res, y, mid, noise)


def _drop_anomalous_edges(
    cost: np.ndarray, pulse_at_edge: np.ndarray, min_evidence: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """The best monotone path after leaving out the edges no mapping explains.

    An edge that no mapping explains (a response anomaly, not a timing one)
    is left out, up to a quarter of the edges; more than that and the
    response cannot check the mapping (non-empty message). Returns
    ``(cost, pulse_at_edge, path, message)`` of the edges kept.
    """
    n_edges = cost.shape[0]
    while True:
        path = _monotone_path(cost, min_evidence)
        misfit = cost[np.arange(path.size), path]
        if misfit.max() <= min_evidence or cost.shape[0] <= 2:
            return cost, pulse_at_edge, path, ""
        e = int(np.argmax(misfit))
        if n_edges - cost.shape[0] + 1 > n_edges // 4:
            return (
                cost,
                pulse_at_edge,
                path,
                f"the PL response at the field edges does not follow any frame mapping (e.g. at TTL pulse "
                f"{int(pulse_at_edge[e])}: chi-square {misfit[e]:.0f} for the best one; frames lost before "
                f"the edges: {path.tolist()}): the frame mapping cannot be checked",
            )
        cost, pulse_at_edge = np.delete(cost, e, axis=0), np.delete(pulse_at_edge, e)


def _lost_frames_result(
    cost: np.ndarray,
    path: np.ndarray,
    pulse_at_edge: np.ndarray,
    mid: np.ndarray,
    edges: np.ndarray,
    n_frames: int,
    place_tolerance: float,
) -> LostFrames:
    """The mapping and the message for a found count of lost frames per edge."""
    base = np.arange(n_frames)
    steps = [e for e in range(path.size) if path[e] > (path[e - 1] if e > 0 else 0)]
    if not steps:
        return LostFrames(base, (), path, True, "")
    lost: list[tuple[int, int]] = []  # most likely interval of each lost frame
    wide: list[tuple[int, int]] = []  # interval including the other places the data allow
    for e in steps:
        lo, hi = _step_range(cost, path, e, place_tolerance)
        n_step = int(path[e] - (path[e - 1] if e > 0 else 0))
        first = int(pulse_at_edge[e - 1]) if e > 0 else 0
        lost += [(first, int(pulse_at_edge[e]) - 1)] * n_step
        wide += [(int(pulse_at_edge[lo - 1]) if lo > 0 else 0, int(pulse_at_edge[hi]) - 1)] * n_step
    # mapping: each lost frame assumed at the end of its most likely interval, just before the next
    # field edge: if it was lost earlier, only frames late in the interval (where the PL has
    # settled) are mis-timed, never the transient after the edge that opens the interval
    lost_pulses = []
    for a, b in dict.fromkeys(lost):
        m = lost.count((a, b))
        lost_pulses += [int(max(a, b - i)) for i in range(m)]
    lost_pulses.sort()
    keep = np.setdiff1d(np.arange(mid.size), lost_pulses)[:n_frames]
    ranges = "; ".join(
        f"between TTL pulses {a} and {b} (frames {a - i}..{b - i - 1})" for i, (a, b) in enumerate(wide)
    )
    msg = (
        f"{len(lost)} frame(s) missing from the movie while their TTL pulses were logged (the PL "
        f"response lags the field edges): lost {ranges}; frames mapped assuming TTL pulse(s) "
        f"{lost_pulses} lost"
    )
    edge_pulses = np.searchsorted(mid, edges)
    inner = sorted({int(e) for a, b in wide for e in edge_pulses if a < e <= b})
    if inner:
        msg += (
            f"; {len(inner)} field edge(s) lie inside those intervals (at TTL pulses {inner[:10]}), so "
            "the cycles there may be mis-timed by a frame: time constants and mobility unreliable"
        )
    return LostFrames(keep, tuple(wide), path, True, msg, tuple(lost))


#: Chi-square gain needed to move a lost frame away from the end of its interval.
_MOVE_EVIDENCE = 25.0


def _local_gap_gain(y: np.ndarray, t: np.ndarray, half: int = 6) -> np.ndarray:
    """Residual gain of a frame gap before each sample, from local quadratics.

    ``y[i]`` is sampled at ``t[i]`` (no gap). For each ``p``, a quadratic is
    fitted to the ``2 half`` samples around ``p`` with the samples from ``p``
    on moved one frame later (a frame lost just before sample ``p``) and
    without; the gain is the drop of the residual sum of squares. A smooth
    curve sampled with a gap shows the gap only where it bends or slopes.
    """
    n = y.size
    dt = float(np.median(np.diff(t))) if n > 1 else 1.0
    gain = np.zeros(n)
    for p in range(1, n):
        lo, hi = max(0, p - half), min(n, p + half)
        if hi - lo < 6:
            continue
        tt = (t[lo:hi] - t[p]) / dt
        yy = y[lo:hi]
        rss = []
        for shift in (0.0, 1.0):
            x = tt + np.where(np.arange(lo, hi) >= p, shift, 0.0)
            A = np.column_stack([np.ones_like(x), x, x * x])
            coef, *_ = np.linalg.lstsq(A, yy, rcond=None)
            r = yy - A @ coef
            rss.append(float(r @ r))
        gain[p] = rss[0] - rss[1]
    return gain


def _refine_placement(res: LostFrames, y: np.ndarray, mid: np.ndarray, noise: float) -> LostFrames:
    """Place each lost frame inside its interval where the PL response shows the gap.

    Between two field edges the PL relaxes smoothly; a frame lost where it
    still changes breaks the curve (:func:`_local_gap_gain`), one lost on the
    plateau cannot be seen and does not matter. A lost frame is moved from the
    end of its interval to the sample of largest gain only when the gain
    exceeds :data:`_MOVE_EVIDENCE` x the noise variance (5 sigma: a wrong move
    mis-times the transient it lands in); the largest gains are taken first.
    """
    keep = np.asarray(res.pulse_index)
    lost = sorted(set(np.setdiff1d(np.arange(int(keep[-1]) + 1), keep).tolist()))
    moved = False
    for a, b in dict.fromkeys(res.likely_between):
        frames = np.flatnonzero((keep >= a) & (keep <= b))
        inside = [p for p in lost if a <= p <= b]
        if frames.size < 8 or not inside:
            continue
        # the frames of the interval timed as if nothing were lost inside it
        t = mid[a : a + frames.size]
        gain = _local_gap_gain(y[frames], t)
        order = [int(i) for i in np.argsort(gain)[::-1] if gain[i] > _MOVE_EVIDENCE * noise**2]
        picks = sorted(order[: len(inside)])
        if not picks:
            continue
        # sample i of the interval is preceded by the gap: frames from i on move one pulse later
        new_inside = [a + i + k for k, i in enumerate(picks)]
        new_inside += [b - k for k in range(len(inside) - len(picks))]
        lost = sorted([p for p in lost if not a <= p <= b] + new_inside)
        moved = True
    if not moved:
        return res
    new_keep = np.setdiff1d(np.arange(mid.size), lost)[: keep.size]
    msg = re.sub(
        r"frames mapped assuming TTL pulse\(s\) \[[0-9, ]*\] lost",
        f"frames mapped assuming TTL pulse(s) {lost} lost (placed where the PL response shows the gap)",
        res.message,
    )
    return LostFrames(new_keep, res.lost_between, res.shifts, True, msg, res.likely_between)
