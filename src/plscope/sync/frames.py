"""Frame times from camera TTL pulses (DAQ clock).

Frame k is timed by the k-th rising edge of the camera TTL channel
(``shared/spec/run-folder.md``, timing rules). Surplus edges after the last
frame are reported; missing edges or a jump in the frame interval (a
dropped frame) are refused with a clear error rather than silently
shifting every later frame.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import SyncError

logger = logging.getLogger(__name__)

__all__ = ["FrameTiming", "frame_timing"]

#: An interval above this multiple of the median means a dropped frame.
MAX_INTERVAL_RATIO = 1.5
#: An interval below this multiple of the median means a spurious edge.
MIN_INTERVAL_RATIO = 0.5


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
        Median interval between frames (NaN for a single frame).
    warnings : tuple of str
        E.g. surplus TTL edges.
    """

    time_s: np.ndarray
    exposure_s: float
    mid_time_s: np.ndarray
    frame_interval_s: float
    warnings: tuple[str, ...] = ()

    @property
    def n_frames(self) -> int:
        return int(self.time_s.size)

    @property
    def frame_rate_hz(self) -> float:
        return 1.0 / self.frame_interval_s


def frame_timing(pulses: pd.DataFrame, n_frames: int, *, source: str = "") -> FrameTiming:
    """Assign TTL pulses to frames.

    Parameters
    ----------
    pulses : pandas.DataFrame
        From :func:`plscope.sync.ttl_pulses`: columns ``start_s``, ``end_s``.
    n_frames : int
        Number of frames in the image stack.
    source : str, optional
        File or channel name used in messages.

    Returns
    -------
    FrameTiming

    Raises
    ------
    SyncError
        Fewer pulses than frames; or, among the frames, an interval more
        than 1.5x the median (a dropped frame) or less than 0.5x the median
        (a spurious edge). The mapping is not guessed.
    """
    if isinstance(n_frames, bool) or int(n_frames) != n_frames or n_frames < 1:
        raise ValueError(f"n_frames must be a positive integer, got {n_frames!r}")
    n_frames = int(n_frames)
    src = source or None
    missing = [c for c in ("start_s", "end_s") if c not in pulses.columns]
    if missing:
        raise ValueError(f"pulses lacks column(s) {missing}; use plscope.sync.ttl_pulses")
    start = pulses["start_s"].to_numpy(np.float64)
    end = pulses["end_s"].to_numpy(np.float64)
    n = start.size
    if n < n_frames:
        raise SyncError(src, f"{n} TTL edges for {n_frames} frames: the camera TTL does not time "
                             "every frame (check the channel, or whether the DAQ started late "
                             "or stopped early)")
    warnings: list[str] = []
    if n > n_frames:
        warnings.append(f"{n - n_frames} surplus TTL edge(s) after the last of {n_frames} frames "
                        "ignored (frames take the first edges)")
    time_s = start[:n_frames].copy()
    widths = (end - start)[:n_frames]
    widths = widths[np.isfinite(widths)]
    exposure_s = float(np.median(widths)) if widths.size else float("nan")

    interval_s = float("nan")
    if n_frames > 1:
        dt = np.diff(time_s)
        interval_s = float(np.median(dt))
        ratio = dt / interval_s
        bad_long = np.flatnonzero(ratio > MAX_INTERVAL_RATIO)
        if bad_long.size:
            k = int(bad_long[0])
            raise SyncError(src, f"frame interval jumps to {dt[k]:.6g} s ({ratio[k]:.2f}x the "
                                 f"median {interval_s:.6g} s) between frames {k} and {k + 1} "
                                 f"(edge at {time_s[k + 1]:.6g} s): a dropped frame? "
                                 f"({bad_long.size} such jump(s); the frame mapping is not guessed)")
        bad_short = np.flatnonzero(ratio < MIN_INTERVAL_RATIO)
        if bad_short.size:
            k = int(bad_short[0])
            raise SyncError(src, f"frame interval drops to {dt[k]:.6g} s ({ratio[k]:.2f}x the "
                                 f"median {interval_s:.6g} s) between frames {k} and {k + 1} "
                                 f"(edge at {time_s[k + 1]:.6g} s): a spurious TTL edge? "
                                 "(the frame mapping is not guessed)")
    for w in warnings:
        logger.warning("%s: %s", source or "camera TTL", w)
    logger.debug("%s: %d frames, interval %.6g s, exposure %.6g s", source, n_frames,
                 interval_s, exposure_s)
    return FrameTiming(time_s=time_s, exposure_s=exposure_s, mid_time_s=time_s + exposure_s / 2,
                       frame_interval_s=interval_s, warnings=tuple(warnings))
