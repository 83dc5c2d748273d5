"""Quality flags per particle, from its trace and its detection.

:func:`quality_flags` returns one row per particle with the measured
quantities (signal-to-noise ratio, blinking fraction, bleaching over the run,
saturated fraction, how much of the background annulus neighbours took) and,
for each, whether it passes a threshold; ``ok`` combines them and
``reason`` says in words why a particle fails, for the report. The kinetics
stage can filter on ``ok`` or on any single column.

Blinking is found as changepoints against the particle's own level
(:func:`blink_mask`): a blink is an abrupt drop (within a frame or two) by
more than ``blink_drop`` of the running baseline, lasting until the
intensity comes back; the field quenches and recovers the PL over several
frames (polarization and recovery times of seconds), which the running
baseline follows. Frames far below the upper envelope are dark states.
"""

from __future__ import annotations

import logging
from typing import Any

import numba
import numpy as np
import pandas as pd
from scipy import ndimage

from ..columns import QUALITY_COLUMNS
from ..errors import PlscopeError
from .detect import robust_std

logger = logging.getLogger(__name__)


def without_attrs(table: pd.DataFrame) -> pd.DataFrame:
    """A shallow copy of ``table`` with empty ``attrs``.

    pandas deep-copies ``DataFrame.attrs`` into the result of every
    operation (column access, groupby, sort); the traces table carries
    per-particle dictionaries there, which made per-particle loops over it
    spend most of their time copying them.
    """
    if not table.attrs:
        return table
    out = table.copy(deep=False)
    out.attrs = {}
    return out


def _runs(mask: np.ndarray) -> int:
    """Number of runs of True."""
    m = np.asarray(mask, bool)
    return int(np.count_nonzero(m[1:] & ~m[:-1]) + (1 if m.size and m[0] else 0))


@numba.njit(cache=True, nogil=True)
def _blink_states(yf: np.ndarray, step: float, blink_drop: float) -> np.ndarray:  # pragma: no cover (numba)
    """The sequential on/off classifier of :func:`blink_mask` (numba: one pass, no Python per frame)."""
    n = yf.size
    out = np.zeros(n, np.bool_)
    if n == 0:
        return out
    off = False
    level_left = 0.0
    # the last two on-frames (``last_on[-2:]``); n_on counts them up to 2
    on1 = yf[0]  # most recent
    on0 = 0.0
    n_on = 1
    off_values = np.empty(n)
    n_off = 0
    for k in range(1, n):
        v = yf[k]
        if not off:
            ref = on1 if n_on == 1 else max(on0, on1)
            if ref > 0 and v < ref - max(step, blink_drop * ref):
                off, level_left = True, ref
                off_values[0] = v
                n_off = 1
                out[k] = True
            else:
                on0, on1 = on1, v
                n_on = min(n_on + 1, 2)
        else:
            prev = off_values[n_off - 1]
            off_level = np.median(off_values[:n_off])
            rise = v - prev > max(step, blink_drop * level_left)
            if rise or v > 0.5 * (off_level + level_left):
                off = False
                on1 = v  # the level may have changed meanwhile (field, bleaching)
                n_on = 1
            else:
                off_values[n_off] = v
                n_off += 1
                out[k] = True
    return out


def blink_mask(
    intensity: np.ndarray,
    *,
    blink_sigma: float = 4.0,
    blink_drop: float = 0.25,
    dark_level: float = 0.3,
    window_frames: int = 15,
) -> np.ndarray:
    """Frames in which a particle is blinked off (abrupt dark excursions and dark states).

    A sequential two-state classifier. In the *on* state, a frame that falls
    below the brighter of the two previous on-frames by more than
    ``max(blink_sigma x noise, blink_drop x that level)`` switches to *off*
    (two frames, because a blink that starts during an exposure dims that
    frame only partly). The field quenches and recovers the PL over several
    frames (polarization and recovery times of seconds), bleaching slower
    still, so neither makes such a step. The particle is back *on* at an
    abrupt rise (by the same margin over the previous frame) or when it
    recovers above the middle between its off level and the level it left.
    Frames below ``dark_level`` x the upper envelope (90th percentile over
    ``4 x window_frames + 1`` frames) are off too (dark states).

    Parameters
    ----------
    intensity : ndarray, shape (n_frames,)
        A particle's trace in frame order (NaN allowed, never flagged).
    blink_sigma, blink_drop : float
        Significance of a step, in frame-to-frame noise sigmas and relative
        to the level.
    dark_level : float
        Dark-state threshold relative to the upper envelope.
    window_frames : int
        Sets the envelope window.

    Returns
    -------
    ndarray of bool, shape (n_frames,)
    """
    y = np.asarray(intensity, float)
    ok = np.isfinite(y)
    out = np.zeros(y.size, bool)
    if ok.sum() < 5:
        return out
    yf = np.where(ok, y, np.nanmedian(y))
    noise = robust_std(np.diff(y[ok])) / np.sqrt(2.0)
    if not np.isfinite(noise):
        noise = 0.0
    step = blink_sigma * noise * np.sqrt(2.0)
    out[:] = _blink_states(yf, float(step), float(blink_drop))
    env = ndimage.percentile_filter(yf, 90, size=4 * max(3, int(window_frames)) + 1, mode="nearest")
    out |= yf < dark_level * env
    return out & ok


def quality_flags(
    traces: pd.DataFrame,
    particles: pd.DataFrame | None = None,
    *,
    frame_time_s: np.ndarray | None = None,
    reference_frames: np.ndarray | None = None,
    tracks: pd.DataFrame | None = None,
    saturation_adu: float | None = None,
    min_snr: float = 5.0,
    max_blink_fraction: float = 0.2,
    max_bleach_fraction: float = 0.5,
    max_saturated_fraction: float = 0.0,
    max_annulus_masked: float = 0.5,
    window_frames: int = 15,
    blink_sigma: float = 4.0,
    blink_drop: float = 0.25,
    n_blocks: int = 8,
) -> pd.DataFrame:
    """Per-particle quality measures and pass/fail flags.

    Parameters
    ----------
    traces : pandas.DataFrame
        :func:`~plscope.tracking.extract_traces` output: ``frame,
        particle_id, intensity`` and, for the saturation flag,
        ``peak_adu`` (``peaks=True``). Its ``attrs`` give
        ``annulus_masked_fraction`` and ``saturation_adu`` when present.
    particles : pandas.DataFrame, optional
        The particle table: ``touches_border`` and ``size_fit_ok`` (a
        failed size fit fails the particle, its size being needed for the
        mobility).
    frame_time_s : ndarray, optional
        Frame times, for ``bleach_rate_per_s`` (else per frame: rate NaN).
    reference_frames : array of int or bool, optional
        Frames in an unperturbed state (e.g. field off) used for the
        bleaching estimate and the SNR; default all frames.
    tracks : pandas.DataFrame, optional
        :func:`~plscope.tracking.link_particle_centroids` output (``n_tracks``).
    saturation_adu : float, optional
        Raw level counted as saturated; default ``traces.attrs["saturation_adu"]``
        (the largest value of the movie's integer dtype).
    min_snr, max_blink_fraction, max_bleach_fraction, max_saturated_fraction, max_annulus_masked
        Thresholds of the flags.
    window_frames, blink_sigma, blink_drop
        Blink detection, see :func:`blink_mask`.
    n_blocks : int
        Bleaching: the 90th percentile of the reference frames in each of
        ``n_blocks`` consecutive blocks, fitted by an exponential in time.

    Returns
    -------
    pandas.DataFrame
        One row per particle, columns :data:`QUALITY_COLUMNS`: ``snr``
        (median intensity / frame-to-frame noise), ``noise_adu``,
        ``blink_fraction`` (fraction of frames blinked off), ``n_blinks``,
        ``bleach_fraction`` (loss of the unperturbed level over the run,
        from the fit), ``bleach_rate_per_s``, ``saturated_fraction``
        (frames with an aperture pixel at saturation; NaN without
        ``peak_adu``), ``annulus_masked_fraction``, ``touches_border``,
        ``n_tracks`` and ``n_positions`` (-1 when not given; identity is
        lost when the centroid settles at more than one place); the flags ``low_snr, blinking,
        bleached, saturated, crowded``; ``ok`` (no flag, not at the border,
        one trajectory); ``reason`` (``""`` when ok, else e.g.
        ``"blinking 31% > 20%; touches the border"``).
    """
    for col in ("frame", "particle_id", "intensity"):
        if col not in traces.columns:
            raise PlscopeError(f"traces: missing column {col!r}")
    frames, ref_sel, t = _frame_axis(traces, reference_frames, frame_time_s)
    sat = saturation_adu if saturation_adu is not None else traces.attrs.get("saturation_adu")
    masked_attr = traces.attrs.get("annulus_masked_fraction", {}) or {}
    traces = without_attrs(traces)  # pandas deep-copies attrs on every operation
    border, extra_reasons = _particle_notes(particles)
    n_tracks = dict(zip(tracks["particle_id"], tracks["n_tracks"])) if tracks is not None else {}
    n_places = (
        dict(zip(tracks["particle_id"], tracks["n_positions"]))
        if tracks is not None and "n_positions" in tracks.columns
        else n_tracks
    )
    blink = {"window_frames": window_frames, "blink_sigma": blink_sigma, "blink_drop": blink_drop}
    rows = []
    for pid, tr in traces.groupby("particle_id", sort=True):
        row = _trace_measures(tr, frames, ref_sel, t, sat, blink, n_blocks)
        if frame_time_s is None:
            row["bleach_rate_per_s"] = float("nan")
        masked = float(masked_attr.get(pid, masked_attr.get(str(pid), np.nan)))
        row.update(
            particle_id=pid,
            annulus_masked_fraction=masked,
            touches_border=bool(border.get(pid, False)),
            n_tracks=int(n_tracks.get(pid, -1)),
            n_positions=int(n_places.get(pid, -1)),
        )
        rows.append(row)
    out = pd.DataFrame(rows, columns=list(QUALITY_COLUMNS[:12]))
    out["low_snr"] = ~(out["snr"] >= min_snr)
    out["blinking"] = out["blink_fraction"] > max_blink_fraction
    out["bleached"] = out["bleach_fraction"] > max_bleach_fraction
    out["saturated"] = out["saturated_fraction"] > max_saturated_fraction
    out["crowded"] = out["annulus_masked_fraction"] > max_annulus_masked
    out["reason"] = [
        "; ".join(
            _fail_reasons(r, min_snr, max_blink_fraction, max_bleach_fraction)
            + extra_reasons.get(r["particle_id"], [])
        )
        for _, r in out.iterrows()
    ]
    out["ok"] = out["reason"] == ""
    out = out[list(QUALITY_COLUMNS)]
    logger.debug("quality_flags: %d of %d particle(s) pass", int(out["ok"].sum()), len(out))
    return out


def _frame_axis(
    traces: pd.DataFrame, reference_frames: np.ndarray | None, frame_time_s: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(frames, reference-frame selection, time of each frame)`` (time = frame index without times)."""
    frames = np.sort(traces["frame"].unique())
    n_frames = frames.size
    if reference_frames is None:
        ref_sel = np.ones(n_frames, bool)
    else:
        rf = np.asarray(reference_frames)
        ref_sel = rf.astype(bool) if rf.dtype == bool and rf.size == n_frames else np.isin(frames, rf)
    t = np.asarray(frame_time_s, float)[frames] if frame_time_s is not None else frames.astype(float)
    return frames, ref_sel, t


def _particle_notes(particles: pd.DataFrame | None) -> tuple[dict[Any, bool], dict[Any, list[str]]]:
    """``touches_border`` per particle, and reasons to fail it taken from the particle table."""
    border: dict[Any, bool] = {}
    extra_reasons: dict[Any, list[str]] = {}
    if particles is not None:
        if "touches_border" in particles.columns:
            border = dict(zip(particles["particle_id"], particles["touches_border"].astype(bool)))
        for _, row in particles.iterrows():
            r = []
            if "size_fit_ok" in particles.columns and not bool(row["size_fit_ok"]):
                r.append("size fit failed")
            if r:
                extra_reasons[row["particle_id"]] = r
    return border, extra_reasons


def _bleach_rate(y: np.ndarray, use: np.ndarray, t: np.ndarray, n_blocks: int) -> float:
    """Bleaching rate: exponential fit to the upper level (90th percentile) of consecutive blocks."""
    rate = float("nan")
    idx = np.flatnonzero(use)
    if idx.size >= 2 * n_blocks:
        parts = np.array_split(idx, n_blocks)
        tb = np.array([t[p].mean() for p in parts])
        lv = np.array([np.percentile(y[p], 90) for p in parts])
        good = lv > 0
        if good.sum() >= 3:
            rate = -float(np.polyfit(tb[good], np.log(lv[good]), 1)[0])
    return rate


def _trace_measures(
    tr: pd.DataFrame,
    frames: np.ndarray,
    ref_sel: np.ndarray,
    t: np.ndarray,
    sat: float | None,
    blink: dict[str, Any],
    n_blocks: int,
) -> dict[str, Any]:
    """SNR, noise, blinking, bleaching and saturation of one particle's trace."""
    n_frames = frames.size
    tr = tr.sort_values("frame")
    y = tr["intensity"].to_numpy(float)
    if y.size != n_frames:
        y = pd.Series(y, index=tr["frame"].to_numpy()).reindex(frames).to_numpy(float)
    finite = np.isfinite(y)
    noise = robust_std(np.diff(y[finite])) / np.sqrt(2.0) if finite.sum() > 2 else float("nan")
    blinked = blink_mask(y, **blink)
    use = ref_sel & finite & ~blinked
    level = float(np.median(y[use])) if use.any() else float("nan")
    rate = _bleach_rate(y, use, t, n_blocks)
    span = float(t[-1] - t[0]) if n_frames > 1 else 0.0
    if "peak_adu" in tr.columns and sat is not None:
        pk = tr["peak_adu"].to_numpy(float)
        sat_frac = float(np.mean(pk[np.isfinite(pk)] >= float(sat))) if np.isfinite(pk).any() else 0.0
    else:
        sat_frac = float("nan")
    return {
        "snr": level / noise if np.isfinite(noise) and noise > 0 else float("nan"),
        "noise_adu": noise,
        "blink_fraction": float(blinked[finite].mean()) if finite.any() else float("nan"),
        "n_blinks": _runs(blinked),
        "bleach_fraction": float(1.0 - np.exp(-rate * span)) if np.isfinite(rate) else float("nan"),
        "bleach_rate_per_s": rate,
        "saturated_fraction": sat_frac,
    }


def _fail_reasons(r: pd.Series, min_snr: float, max_blink: float, max_bleach: float) -> list[str]:
    """Why one row of the quality table fails, in words."""
    why = []
    if r["low_snr"]:
        why.append(f"SNR {r['snr']:.1f} < {min_snr:g}")
    if r["blinking"]:
        why.append(f"blinking {100 * r['blink_fraction']:.0f}% > {100 * max_blink:.0f}%")
    if r["bleached"]:
        why.append(f"bleached {100 * r['bleach_fraction']:.0f}% > {100 * max_bleach:.0f}%")
    if r["saturated"]:
        why.append(f"saturated in {100 * r['saturated_fraction']:.0f}% of frames")
    if r["crowded"]:
        why.append(f"neighbours cover {100 * r['annulus_masked_fraction']:.0f}% of the background annulus")
    if r["touches_border"]:
        why.append("touches the border")
    if r["n_positions"] > 1:
        why.append(f"identity lost ({r['n_positions']} places, {r['n_tracks']} trajectories)")
    return why
