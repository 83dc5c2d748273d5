"""Trajectories: linking with trackpy, and the field-induced centroid shift.

- :func:`link_features` links per-frame features (``frame, x_px, y_px``)
  into trajectories with ``trackpy.link`` (with ``memory`` frames of
  absence allowed, for blinking), and :func:`filter_tracks` drops short ones
  (trackpy's ``filter_stubs``).
- For movies of moving particles, locate spots with ``trackpy.locate`` /
  ``trackpy.batch`` and link them with :func:`link_features`.
- :func:`link_particle_centroids` links the per-frame centroids measured in
  the drift-following apertures of :func:`~plscope.tracking.extract_traces`
  (``centroids=True``): frames in which a particle is too dark to locate are
  left out and bridged by ``memory``. A particle whose centroids form more
  than one trajectory lost its identity (it moved, or a neighbour's light
  took over its aperture).
- :func:`centroid_shift` measures the displacement of each particle's
  optical centroid between field on and field off, per field level, from
  the cycles table of :mod:`plscope.sync`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from ..columns import CENTROID_SHIFT_COLUMNS
from ..errors import PlscopeError
from .detect import robust_std
from .quality import without_attrs

logger = logging.getLogger(__name__)


def _need(table: pd.DataFrame, columns: tuple[str, ...], name: str) -> None:
    if not isinstance(table, pd.DataFrame):
        raise PlscopeError(f"{name}: expected a pandas DataFrame")
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise PlscopeError(f"{name}: missing column(s) {missing}")


def link_features(
    features: pd.DataFrame, *, search_range_px: float, memory: int = 3, adaptive_stop: float | None = None
) -> pd.DataFrame:
    """Link features into trajectories with ``trackpy.link``.

    Parameters
    ----------
    features : pandas.DataFrame
        ``frame, x_px, y_px`` (+ any other columns, kept).
    search_range_px : float
        Largest displacement between two linked positions (pixels).
    memory : int
        Frames a feature may be missing (blink) and keep its trajectory.
    adaptive_stop : float, optional
        Passed to trackpy: shrink the search range down to this value in
        dense regions instead of failing with a subnetwork error.

    Returns
    -------
    pandas.DataFrame
        The features with a ``track_id`` column (int64, 0..n_tracks-1 in order
        of first appearance), sorted by frame.
    """
    from trackpy.linking import link_iter

    _need(features, ("frame", "x_px", "y_px"), "features")
    if not float(search_range_px) > 0:
        raise PlscopeError(f"search_range_px: expected a number > 0, got {search_range_px!r}")
    if int(memory) < 0:
        raise PlscopeError(f"memory: expected an integer >= 0, got {memory!r}")
    f = features.sort_values("frame", kind="stable").reset_index(drop=True)
    if len(f) == 0:
        return f.assign(track_id=pd.Series([], dtype=np.int64))
    kw: dict[str, Any] = {"memory": int(memory)}
    if adaptive_stop is not None:
        kw["adaptive_stop"] = float(adaptive_stop)
    frames = f["frame"].to_numpy(np.int64)
    pos = f[["y_px", "x_px"]].to_numpy(np.float64)
    bounds = np.flatnonzero(np.diff(frames)) + 1
    starts = np.concatenate([[0], bounds])
    stops = np.concatenate([bounds, [frames.size]])
    # trackpy's array interface (trackpy.link itself sorts DataFrames in place,
    # which pandas >= 3.1 deprecates)
    frames_iter = ((int(frames[a]), pos[a:b]) for a, b in zip(starts, stops))
    ids = np.empty(frames.size, np.int64)
    tp_logger = logging.getLogger("trackpy")
    level = tp_logger.level
    tp_logger.setLevel(max(level, logging.WARNING))  # trackpy logs every frame at INFO
    try:
        for (a, b), (_, labels) in zip(
            zip(starts, stops), link_iter(frames_iter, float(search_range_px), **kw)
        ):
            ids[a:b] = labels
    finally:
        tp_logger.setLevel(level)
    codes, _ = pd.factorize(ids)  # 0..n-1 in order of first appearance
    out = f.assign(track_id=codes.astype(np.int64))
    out = out.sort_values(["frame", "track_id"], kind="stable").reset_index(drop=True)
    logger.info(
        "link_features: %d feature(s) -> %d trajectories (search %.3g px, memory %d)",
        len(out),
        int(codes.max()) + 1,
        search_range_px,
        memory,
    )
    return out


def filter_tracks(tracks: pd.DataFrame, *, min_length: int) -> pd.DataFrame:
    """Keep trajectories with at least ``min_length`` features (trackpy's ``filter_stubs``)."""
    _need(tracks, ("track_id",), "tracks")
    n = tracks.groupby("track_id")["track_id"].transform("size")
    return tracks[n >= int(min_length)].reset_index(drop=True)


def _noise(values: np.ndarray) -> float:
    """Frame-to-frame noise of a trace: robust std of the differences / sqrt 2."""
    v = values[np.isfinite(values)]
    if v.size < 3:
        return float("nan")
    return robust_std(np.diff(v)) / np.sqrt(2.0)


def _needs_linking(
    feats: pd.DataFrame, index: np.ndarray, n_ids: int, *, search_range_px: float, memory: int
) -> np.ndarray:
    """Which particles' located centroids trackpy must link (bool per particle index).

    A particle is on its own island with at most one feature per frame; when
    every step between its consecutive located frames is shorter than the
    search range and skips at most ``memory`` frames, trackpy links each
    feature to the one trajectory there (its last position is the only
    candidate and is in range), so the particle forms exactly one trajectory
    and linking it changes nothing. The margins are conservative (1e-6 of the
    range; ``memory`` frames, not ``memory + 1``): borderline particles go
    to trackpy.
    """
    frame = feats["frame"].to_numpy(np.int64)
    order = np.lexsort((frame, index))
    k, fr = index[order], frame[order]
    x, y = feats["x_px"].to_numpy(float)[order], feats["y_px"].to_numpy(float)[order]
    same = k[1:] == k[:-1]
    step = np.hypot(np.diff(x), np.diff(y))
    bad = same & ~((step < search_range_px * (1.0 - 1e-6)) & (np.diff(fr) <= int(memory)))
    hard = np.zeros(n_ids, bool)
    hard[k[1:][bad]] = True
    return hard


def link_particle_centroids(
    traces: pd.DataFrame | Iterable[pd.DataFrame],
    *,
    search_range_px: float = 1.5,
    memory: int = 5,
    min_snr: float = 3.0,
) -> pd.DataFrame:
    """Link each particle's per-frame centroids with trackpy; count identity breaks.

    Parameters
    ----------
    traces : pandas.DataFrame or iterable of DataFrame
        From :func:`~plscope.tracking.extract_traces` with ``centroids=True``
        (``frame, particle_id, intensity, x_px, y_px`` and, if present,
        ``drift_x_px, drift_y_px``, subtracted so that stage drift is not
        mistaken for motion). Or that table in blocks of whole particles, in
        particle order, of a table whose rows are frame-major with the
        particles in order in each frame (what the extraction makes): one
        block in memory at a time, the same result.
    search_range_px : float
        Largest frame-to-frame displacement of a particle beyond the drift.
    memory : int
        Dark frames bridged (blinks).
    min_snr : float
        A particle is located in a frame when its intensity exceeds this
        many times its frame-to-frame noise.

    Returns
    -------
    pandas.DataFrame
        One row per particle: ``particle_id``, ``n_tracks`` (trajectories its
        located centroids form; 1 when the aperture followed one particle
        throughout), ``n_positions`` (distinct places among its trajectories
        of more than ``memory`` frames: trajectories whose medians lie within
        ``search_range_px`` of each other are one place, so noisy centroids of
        dim frames or a long blink do not count as a new identity),
        ``located_fraction`` (frames with a centroid),
        ``longest_gap_frames`` (longest run of frames without one) and
        ``jitter_px`` (robust std of the drift-corrected centroid, both axes).
    """
    whole = isinstance(traces, pd.DataFrame)
    blocks = [traces] if whole else traces
    every: list[np.ndarray] = []
    measures: list[list] = []  # [particle_id, n located, first, last, longest inner gap, jitter]
    hard: list[pd.DataFrame] = []  # located centroids of the particles trackpy must link
    frames_seen: set[int] | np.ndarray = set()
    for block in blocks:
        _need(block, ("frame", "particle_id", "intensity", "x_px", "y_px"), "traces")
        cols = _Columns(without_attrs(block))
        frames_seen = (
            np.unique(cols.frame) if whole else set(frames_seen) | set(np.unique(cols.frame).tolist())
        )
        every.append(_link_block(cols, measures, hard, search_range_px, memory, min_snr, whole=whole))
    n_frames = len(frames_seen)
    every_id = np.unique(np.concatenate(every)) if every else np.empty(0)
    n_tracks, n_places = _link_hard(hard, len(measures), search_range_px, memory, whole=whole)
    rows = [
        (
            pid,
            int(n_tracks.get(k, 0)),
            int(n_places.get(k, 0)),
            n / max(n_frames, 1),
            max(f0, inner, n_frames - f1 - 1),
            jit,
        )
        for k, (pid, n, f0, f1, inner, jit) in enumerate(measures)
    ]
    out = pd.DataFrame(
        rows,
        columns=[
            "particle_id",
            "n_tracks",
            "n_positions",
            "located_fraction",
            "longest_gap_frames",
            "jitter_px",
        ],
    )
    out = pd.DataFrame({"particle_id": every_id}).merge(out, on="particle_id", how="left")
    out["n_tracks"] = out["n_tracks"].fillna(0).astype(np.int64)
    out["n_positions"] = out["n_positions"].fillna(0).astype(np.int64)
    out["located_fraction"] = out["located_fraction"].fillna(0.0)
    out["longest_gap_frames"] = out["longest_gap_frames"].fillna(n_frames).astype(np.int64)
    n_broken = int((out["n_positions"] > 1).sum())
    if n_broken:
        logger.warning(
            "link_particle_centroids: %d particle(s) whose centroids settle at more than one place", n_broken
        )
    return out


def _link_block(
    cols: _Columns,
    measures: list[list],
    hard: list[pd.DataFrame],
    search_range_px: float,
    memory: int,
    min_snr: float,
    *,
    whole: bool,
) -> np.ndarray:
    """The particles of a table (or block), :data:`_BLOCK_PARTICLES` at a time: their measures (appended
    to ``measures``, ``k`` the position there) and the located centroids of those trackpy must link
    (``hard``: ``frame, x_px, y_px, k`` and ``row``, their rows of the table); returns their ids."""
    # each particle's rows in the table's order, a few particles at a time: no copy of the table
    order = np.argsort(cols.pid, kind="stable")
    ids, first = np.unique(cols.pid[order], return_index=True)
    bounds = np.append(first, order.size)
    for j0 in range(0, ids.size, _BLOCK_PARTICLES):
        j1 = min(j0 + _BLOCK_PARTICLES, ids.size)
        rows = order[bounds[j0] : bounds[j1]]
        feats, index, located = _located(cols, rows, bounds[j0 : j1 + 1] - bounds[j0], min_snr=min_snr)
        is_hard = _needs_linking(feats, index, len(located), search_range_px=search_range_px, memory=memory)
        for i, (j, part) in enumerate(located):
            f = feats.iloc[part]
            frames = np.sort(f["frame"].to_numpy())
            inner = int(np.diff(frames).max()) - 1 if frames.size > 1 else 0
            x, y = f["x_px"].to_numpy(), f["y_px"].to_numpy()
            jitter = float(np.hypot(robust_std(x), robust_std(y)))
            measures.append([ids[j0 + j], frames.size, int(frames[0]), int(frames[-1]), inner, jitter])
            if is_hard[i]:
                rows_of = rows[f.index.to_numpy()] if whole else np.zeros(len(f), np.int64)
                hard.append(f.assign(k=len(measures) - 1, row=rows_of).reset_index(drop=True))
    return ids


#: particles whose rows :func:`link_particle_centroids` gathers at a time
_BLOCK_PARTICLES = 16


class _Columns:
    """The columns of a traces table :func:`link_particle_centroids` reads (views where they can be)."""

    def __init__(self, t: pd.DataFrame) -> None:
        self.pid = t["particle_id"].to_numpy()
        self.frame = t["frame"].to_numpy(np.int64)
        self.intensity = t["intensity"].to_numpy(float)
        self.x = t["x_px"].to_numpy(float)
        self.y = t["y_px"].to_numpy(float)
        has_drift = "drift_x_px" in t.columns
        self.dx = t["drift_x_px"].to_numpy(float) if has_drift else None
        self.dy = t["drift_y_px"].to_numpy(float) if has_drift else None

    def positions(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Drift-corrected ``x_px, y_px`` of ``rows`` (stage drift, when given, subtracted)."""
        x, y = self.x[rows], self.y[rows]
        if self.dx is not None and self.dy is not None:
            x, y = x - self.dx[rows], y - self.dy[rows]
        return x, y


def _located(
    cols: _Columns, rows: np.ndarray, bounds: np.ndarray, *, min_snr: float
) -> tuple[pd.DataFrame, np.ndarray, list[tuple[int, slice]]]:
    """The located centroids of a block of particles (``rows``: theirs, each particle's
    ``bounds[j]:bounds[j + 1]``, in the table's order).

    Returns ``(feats, index, located)``: ``frame, x_px, y_px`` of the located rows (the index: their
    positions in ``rows``), each one's particle among the located ones, and per located particle its
    position ``j`` in the block and its rows of ``feats`` (a slice).
    """
    intensity = cols.intensity[rows]
    x, y = cols.positions(rows)
    keep = np.zeros(rows.size, bool)
    for j in range(bounds.size - 1):
        part = slice(bounds[j], bounds[j + 1])
        noise = _noise(intensity[part])  # frame-to-frame noise of the particle's trace
        keep[part] = (intensity[part] > min_snr * noise) & np.isfinite(x[part]) & np.isfinite(y[part])
    at = np.flatnonzero(keep)
    owner = np.searchsorted(bounds, at, side="right") - 1  # block position of each located row
    feats = pd.DataFrame({"frame": cols.frame[rows[at]], "x_px": x[at], "y_px": y[at]}, index=at)
    js, index = np.unique(owner, return_inverse=True)
    edges = np.searchsorted(owner, np.append(js, bounds.size))
    located = [(int(j), slice(edges[i], edges[i + 1])) for i, j in enumerate(js)]
    return feats, index, located


def _n_positions(pieces: pd.DataFrame, *, search_range_px: float, min_frames: int) -> int:
    """Distinct places among a particle's trajectories of at least ``min_frames`` frames.

    ``pieces``: one row per trajectory (``n``, median ``x``, ``y``), longest first. A
    trajectory whose median lies within the search range of a longer one's is the same
    place: the centroid only strayed (noisy dim frames, a long blink). Shorter pieces are
    too noisy to place.
    """
    places: list[tuple[float, float]] = []
    for r in pieces[pieces["n"] >= min_frames].itertuples():
        if not any(math.hypot(r.x - px, r.y - py) <= search_range_px for px, py in places):
            places.append((r.x, r.y))
    return max(len(places), 1)


def _link_hard(
    hard: list[pd.DataFrame], n_ids: int, search_range_px: float, memory: int, *, whole: bool
) -> tuple[pd.Series, pd.Series]:
    """Trajectories and distinct places of each located particle (``k``: its position among them);
    one for every particle but those in ``hard``, linked by trackpy."""
    n_tracks = pd.Series(1, index=np.arange(n_ids), dtype=np.int64)
    n_places = n_tracks.copy()
    if hard:
        # one linking call for the particles whose centroids jump or vanish for long: each on
        # its own far-away island (the others form one trajectory each, see _needs_linking);
        # their rows in the table's order (blocks: frame-major, particles in order)
        f = pd.concat(hard, ignore_index=True)
        k = f["k"].to_numpy(np.int64)
        at = (
            np.argsort(f["row"].to_numpy(), kind="stable")
            if whole
            else np.lexsort((k, f["frame"].to_numpy()))
        )
        f, k_hard = f.iloc[at], k[at]
        x, y = f["x_px"].to_numpy(), f["y_px"].to_numpy()
        span = float(np.nanmax(np.abs(np.stack([x, y], axis=1))))
        island = 4.0 * (span + 10.0 * search_range_px + 10.0)
        shifted = pd.DataFrame(
            {"frame": f["frame"].to_numpy(), "x_px": x + island * k_hard, "y_px": y, "k": k_hard}
        )
        linked = link_features(shifted, search_range_px=search_range_px, memory=memory)
        n_tracks.update(linked.groupby("k")["track_id"].nunique())
        linked["x_px"] -= island * linked["k"]
        pieces = linked.groupby(["k", "track_id"]).agg(
            n=("frame", "size"), x=("x_px", "median"), y=("y_px", "median")
        )
        for kk, p in pieces.groupby(level="k"):
            p = p.sort_values("n", ascending=False, kind="stable")
            n_places[kk] = _n_positions(p, search_range_px=search_range_px, min_frames=memory + 1)
    return n_tracks, n_places


def centroid_shift(
    traces: pd.DataFrame | Iterable[pd.DataFrame],
    cycles: pd.DataFrame,
    frame_time_s: np.ndarray,
    *,
    exposure_s: float = 0.0,
    settle_s: float = 0.0,
    pixel_size_nm: float | None = None,
) -> pd.DataFrame:
    """Displacement of each particle's optical centroid with the field on.

    For every cycle, the mean centroid over the ON frames minus the mean of
    the OFF frames just before and just after it (the average of the two, so
    that a drift linear in time cancels without any drift model); then the
    mean and standard error over the cycles of each field level.

    Parameters
    ----------
    traces : pandas.DataFrame or iterable of DataFrame
        ``frame, particle_id, x_px, y_px`` (from
        :func:`~plscope.tracking.extract_traces` with ``centroids=True``);
        or blocks of such rows, each holding whole particles, in particle
        order (one block in memory at a time: the same table).
        Positions are used as measured (stage drift cancels in the
        symmetric difference; a common drift estimate is *not* subtracted,
        since it would also remove a shift common to all particles).
    cycles : pandas.DataFrame
        ``cycle, field_kV_per_cm, on_start_s, on_end_s, off_end_s``
        (:func:`plscope.sync.cycles_from_segments`).
    frame_time_s : ndarray, shape (n_frames,)
        Mid-exposure time of every frame (the pipeline's frame times).
    exposure_s : float
        Frames whose exposure overlaps a switching edge are left out.
    settle_s : float
        Frames within this time after a switching edge are left out (to
        compare settled states).
    pixel_size_nm : float, optional
        Adds the nm columns (NaN otherwise).

    Returns
    -------
    pandas.DataFrame
        One row per particle and field level, columns
        :data:`CENTROID_SHIFT_COLUMNS`: ``shift_x_px, shift_y_px`` (mean over
        cycles, frame coordinates), ``shift_px`` (their length),
        ``shift_err_px`` (standard error of the shift along its direction:
        from the cycle-to-cycle scatter with >= 2 cycles, else from the
        frame-to-frame scatter), the nm versions, ``n_cycles`` used,
        ``n_on_frames``, ``n_off_frames``.
    """
    if isinstance(traces, pd.DataFrame):
        _need(traces, ("frame", "particle_id", "x_px", "y_px"), "traces")
    blocks = [traces] if isinstance(traces, pd.DataFrame) else traces
    _need(cycles, ("field_kV_per_cm", "on_start_s", "on_end_s", "off_end_s"), "cycles")
    t_frame = np.asarray(frame_time_s, float).ravel()
    scale = float(pixel_size_nm) if pixel_size_nm else float("nan")
    cyc = cycles.sort_values("on_start_s").reset_index(drop=True)
    wins = _cycle_windows(cyc, t_frame, 0.5 * float(exposure_s), settle_s)
    fields = cyc["field_kV_per_cm"].to_numpy(float)
    rows: list[tuple] = []
    for block in blocks:
        rows.extend(_particle_shifts(block, t_frame, wins, fields, scale))
    out = pd.DataFrame(rows, columns=list(CENTROID_SHIFT_COLUMNS))
    return out.astype({"n_cycles": np.int64, "n_on_frames": np.int64, "n_off_frames": np.int64})


def _particle_shifts(
    traces: pd.DataFrame,
    t_frame: np.ndarray,
    wins: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    fields: np.ndarray,
    scale: float,
) -> list[tuple]:
    """The rows of :func:`centroid_shift` of the particles of ``traces``, in particle order."""
    _need(traces, ("frame", "particle_id", "x_px", "y_px"), "traces")
    frames_all = traces["frame"].to_numpy(np.int64)
    if frames_all.size and (frames_all.max() >= t_frame.size):
        raise PlscopeError(f"frame_time_s: {t_frame.size} times for frames up to {frames_all.max()}")
    rows = []
    for pid, tr in traces.groupby("particle_id", sort=True):
        n_t = t_frame.size
        xs = np.full(n_t, np.nan)
        ys = np.full(n_t, np.nan)
        fr = tr["frame"].to_numpy(np.int64)
        xs[fr] = tr["x_px"].to_numpy(float)
        ys[fr] = tr["y_px"].to_numpy(float)
        per_cycle = _cycle_shifts(xs, ys, wins, fields)
        if not per_cycle:
            continue
        pc = pd.DataFrame(per_cycle, columns=["field", "dx", "dy", "n_on", "n_off", "ex", "ey"])
        for field, g in pc.groupby("field", sort=True):
            rows.append((pid, float(field), *_level_shift(g, scale)))
    return rows


def _cycle_windows(
    cyc: pd.DataFrame, t_frame: np.ndarray, half: float, settle_s: float
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Frames ``(OFF before, ON, OFF after)`` of each cycle, exposures clear of the switching edges."""
    on_start = cyc["on_start_s"].to_numpy(float)
    on_end = cyc["on_end_s"].to_numpy(float)
    off_end = cyc["off_end_s"].to_numpy(float)
    # OFF window before cycle k: from the end of the previous ON (or the movie start)
    prev_end = np.concatenate([[t_frame.min() - half - 1.0 if t_frame.size else 0.0], on_end[:-1]])

    def window(a: float, b: float) -> np.ndarray:
        sel = (t_frame - half >= a + settle_s) & (t_frame + half <= b)
        return np.flatnonzero(sel)

    return [
        (window(prev_end[k], on_start[k]), window(on_start[k], on_end[k]), window(on_end[k], off_end[k]))
        for k in range(len(cyc))
    ]


def _cycle_shifts(
    xs: np.ndarray, ys: np.ndarray, wins: list[tuple[np.ndarray, np.ndarray, np.ndarray]], fields: np.ndarray
) -> list[tuple]:
    """Per cycle: ``(field, dx, dy, n_on, n_off, ex, ey)``, ON mean minus the mean of the OFF means."""
    per_cycle = []
    for k, (before, on, after) in enumerate(wins):
        on_v = np.isfinite(xs[on]) & np.isfinite(ys[on])
        if on_v.sum() < 1:
            continue
        refs = []
        for w in (before, after):
            ok = np.isfinite(xs[w]) & np.isfinite(ys[w])
            if ok.sum() >= 1:
                refs.append((np.mean(xs[w][ok]), np.mean(ys[w][ok]), int(ok.sum())))
        if not refs:
            continue
        ref_x = np.mean([r[0] for r in refs])
        ref_y = np.mean([r[1] for r in refs])
        per_cycle.append(
            (
                float(fields[k]),
                np.mean(xs[on][on_v]) - ref_x,
                np.mean(ys[on][on_v]) - ref_y,
                int(on_v.sum()),
                sum(r[2] for r in refs),
                np.std(xs[on][on_v]) / np.sqrt(on_v.sum()),
                np.std(ys[on][on_v]) / np.sqrt(on_v.sum()),
            )
        )
    return per_cycle


def _level_shift(g: pd.DataFrame, scale: float) -> tuple:
    """Mean shift of the cycles ``g`` of one field level and its error along the shift; counts."""
    dx, dy = float(g["dx"].mean()), float(g["dy"].mean())
    length = float(np.hypot(dx, dy))
    ux, uy = (dx / length, dy / length) if length > 0 else (1.0, 0.0)
    along = g["dx"].to_numpy() * ux + g["dy"].to_numpy() * uy
    if len(g) >= 2:
        err = float(np.std(along, ddof=1) / np.sqrt(len(g)))
    else:
        err = float(np.hypot(g["ex"].iloc[0] * ux, g["ey"].iloc[0] * uy))
    n_on, n_off = int(g["n_on"].sum()), int(g["n_off"].sum())
    return (dx, dy, length, err, length * scale, err * scale, len(g), n_on, n_off)
