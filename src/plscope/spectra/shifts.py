"""Field-induced peak shifts: frame labels, per-cycle baselines, histograms, slope.

The paper (Chem. Sci. 2025, 16, 22417, Fig. 4) compares the Lorentzian peak
of every frame with the field-off peak, histograms the shifts of field-off
and field-on frames, fits each histogram with a normal distribution, takes
its centre as the most probable shift at that field, and finds the shift
linear in the field. Here:

- :func:`frame_fields` labels each frame from the field segments measured
  on the DAQ log: ``off``, ``on`` (at a field level) or ``switching`` (the
  exposure straddles an edge);
- :func:`frame_phases` places each frame in its ON/OFF cycle and says
  whether it is *settled*: in the last ``1 - settle_fraction`` of its ON or
  OFF interval, after the polarization / recovery transient;
- :func:`cycle_baselines` takes, per particle and cycle, the median peak of
  the settled field-off frames just before and just after the cycle's ON
  interval, and :func:`add_shifts` subtracts from every frame of the cycle
  the straight line in time through those two points (so a slow drift of
  the peak cancels);
- :func:`shift_statistics` fits the histograms of settled frames (field-off,
  and each field level) with a normal distribution (:func:`normal_fit`);
- :func:`shift_slope` fits ``shift = a + b E`` through those centres,
  weighted by their standard errors.
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from ..columns import BASELINE_COLUMNS, FRAME_FIELD_COLUMNS, SHIFT_STAT_COLUMNS
from ..errors import PlscopeError

logger = logging.getLogger(__name__)

__all__ = [
    "BASELINE_COLUMNS",
    "FRAME_FIELD_COLUMNS",
    "SHIFT_STAT_COLUMNS",
    "NormalFit",
    "ShiftInputError",
    "ShiftSlope",
    "add_shifts",
    "cycle_baselines",
    "frame_fields",
    "frame_phases",
    "histogram_bins",
    "normal_fit",
    "shift_slope",
    "shift_statistics",
]

#: fraction of exposure in an ON segment above which a frame is ON (below 1 - this: OFF)
_ON_COMPLETE = 0.999
_MIN_HIST = 12


class ShiftInputError(PlscopeError):
    """Tables handed to the shift analysis lack columns or do not match."""


# --------------------------------------------------------------------------
# labelling frames
# --------------------------------------------------------------------------


def frame_fields(frame_start_s, exposure_s: float, segments: pd.DataFrame) -> pd.DataFrame:
    """The field seen by each frame.

    Parameters
    ----------
    frame_start_s : array_like, shape (n_frames,)
        Exposure start of each frame (DAQ clock).
    exposure_s : float
        Exposure time (0 or NaN: each frame is an instant at its start).
    segments : pandas.DataFrame
        Field-ON segments from :func:`plscope.sync.field_segments`
        (``start_s``, ``end_s``, ``level``, ``level_kV_per_cm``).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`FRAME_FIELD_COLUMNS`: ``state`` ``"off"``, ``"on"`` or
        ``"switching"``; ``field_kV_per_cm`` the level's field for ON frames,
        0 for OFF frames, the exposure-weighted mean for switching frames;
        ``level`` the level index (-1 when off); ``on_fraction`` of the
        exposure spent ON.
    """
    t = np.asarray(frame_start_s, dtype=float)
    exp = float(exposure_s) if exposure_s is not None and math.isfinite(float(exposure_s)) else 0.0
    n = t.size
    on_frac = np.zeros(n)
    level = np.full(n, -1, dtype=np.int64)
    field = np.zeros(n)
    if len(segments):
        for c in ("start_s", "end_s", "level", "level_kV_per_cm"):
            if c not in segments.columns:
                raise ShiftInputError(f"segments lacks column '{c}'; use plscope.sync.field_segments")
        seg = segments.sort_values("start_s", kind="stable")
        s0 = seg["start_s"].to_numpy(float)
        s1 = seg["end_s"].to_numpy(float)
        s1 = np.where(np.isfinite(s1), s1, np.inf)
        lev = seg["level"].to_numpy(np.int64)
        lev_e = seg["level_kV_per_cm"].to_numpy(float)
        end = t + exp
        j = np.searchsorted(s0, end, side="right") - 1  # last segment starting before the frame ends
        for shift in (0, 1):  # that segment and the one before it
            jj = j - shift
            ok = jj >= 0
            jc = np.clip(jj, 0, None)
            if exp > 0:
                ov = np.clip(np.minimum(end, s1[jc]) - np.maximum(t, s0[jc]), 0.0, None) / exp
            else:
                ov = ((t >= s0[jc]) & (t < s1[jc])).astype(float)
            ov = np.where(ok, ov, 0.0)
            take = ov > 0
            level = np.where(take & (level < 0), lev[jc], level)
            field += ov * lev_e[jc]
            on_frac += ov
        on_frac = np.clip(on_frac, 0.0, 1.0)
        level_field = dict(zip(lev.tolist(), lev_e.tolist()))
        full = on_frac >= _ON_COMPLETE
        field = np.where(full, [level_field.get(int(v), math.nan) for v in level], field)
    state = np.where(on_frac >= _ON_COMPLETE, "on", np.where(on_frac <= 1 - _ON_COMPLETE, "off", "switching"))
    level = np.where(state == "off", -1, level)
    field = np.where(state == "off", 0.0, field)
    return pd.DataFrame(
        {
            "frame": np.arange(n, dtype=np.int64),
            "state": state,
            "field_kV_per_cm": field,
            "level": level,
            "on_fraction": on_frac,
        },
        columns=list(FRAME_FIELD_COLUMNS),
    )


def frame_phases(
    frame_mid_s, cycles: pd.DataFrame, *, first_frame_s: float | None = None, settle_fraction: float = 0.5
) -> pd.DataFrame:
    """Each frame's cycle, phase and whether it is settled.

    Parameters
    ----------
    frame_mid_s : array_like, shape (n_frames,)
        Mid-exposure time of each frame.
    cycles : pandas.DataFrame
        From :func:`plscope.sync.cycles_from_segments`.
    first_frame_s : float, optional
        Start of the record (default: the first frame time); frames before
        the first ON edge form the lead-in.
    settle_fraction : float
        A frame is settled once this fraction of its ON or OFF interval
        (or of the lead-in) has passed.

    Returns
    -------
    pandas.DataFrame
        ``cycle`` (lead-in frames: 0), ``phase`` (``"lead_in"``, ``"on"``,
        ``"off"``), ``t_in_phase_s``, ``settled`` (bool).
    """
    if not 0 <= settle_fraction < 1:
        raise ValueError(f"settle_fraction must be in [0, 1), got {settle_fraction!r}")
    tm = np.asarray(frame_mid_s, dtype=float)
    n = tm.size
    if len(cycles) == 0:
        return pd.DataFrame(
            {
                "cycle": np.zeros(n, np.int64),
                "phase": np.full(n, "lead_in"),
                "t_in_phase_s": tm - (tm[0] if n else 0.0),
                "settled": np.ones(n, bool),
            }
        )
    on0 = cycles["on_start_s"].to_numpy(float)
    on1 = cycles["on_end_s"].to_numpy(float)
    off1 = cycles["off_end_s"].to_numpy(float)
    start = float(tm[0]) if first_frame_s is None else float(first_frame_s)
    c = np.searchsorted(on0, tm, side="right") - 1
    lead = c < 0
    cc = np.clip(c, 0, None)
    is_on = ~lead & (tm < on1[cc])
    phase = np.where(lead, "lead_in", np.where(is_on, "on", "off"))
    p_start = np.where(lead, start, np.where(is_on, on0[cc], on1[cc]))
    p_end = np.where(lead, on0[0], np.where(is_on, on1[cc], off1[cc]))
    t_in = tm - p_start
    dur = np.maximum(p_end - p_start, 1e-12)
    settled = t_in >= settle_fraction * dur
    return pd.DataFrame(
        {"cycle": cc.astype(np.int64), "phase": phase, "t_in_phase_s": t_in, "settled": settled}
    )


# --------------------------------------------------------------------------
# baselines and shifts
# --------------------------------------------------------------------------

_NEEDED = ("particle_id", "cycle", "phase", "state", "settled", "peak_nm", "fit_ok", "time_s")


def _check(table: pd.DataFrame, cols) -> None:
    missing = [c for c in cols if c not in table.columns]
    if missing:
        raise ShiftInputError(f"frame table lacks column(s) {missing}")


def cycle_baselines(table: pd.DataFrame) -> pd.DataFrame:
    """Field-off peak of each particle before and after each cycle's ON interval.

    ``before`` is the median peak (and median time) of the settled, OFF,
    well-fitted frames of the OFF interval that precedes the cycle's ON
    interval (the previous cycle's OFF part, or the lead-in for cycle 0);
    ``after`` that of the cycle's own OFF part.

    Parameters
    ----------
    table : pandas.DataFrame
        One row per frame and particle with ``particle_id``, ``cycle``,
        ``phase``, ``state``, ``settled``, ``peak_nm``, ``fit_ok``, ``time_s``.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`BASELINE_COLUMNS` (NaN where a side has no frame).
    """
    _check(table, _NEEDED)
    good = (
        (table["state"] == "off")
        & table["settled"].astype(bool)
        & table["fit_ok"].astype(bool)
        & np.isfinite(table["peak_nm"])
        & table["phase"].isin(["off", "lead_in"])
    )
    off = table.loc[good, ["particle_id", "cycle", "phase", "peak_nm", "time_s"]]
    # the OFF part of cycle k precedes the ON of cycle k + 1; the lead-in precedes cycle 0
    before = off.assign(cycle=np.where(off["phase"] == "lead_in", off["cycle"], off["cycle"] + 1))
    after = off[off["phase"] == "off"]
    med_b = before.groupby(["particle_id", "cycle"])[["time_s", "peak_nm"]].median()
    cnt_b = before.groupby(["particle_id", "cycle"]).size()
    med_a = after.groupby(["particle_id", "cycle"])[["time_s", "peak_nm"]].median()
    cnt_a = after.groupby(["particle_id", "cycle"]).size()
    keys = table[["particle_id", "cycle"]].drop_duplicates().sort_values(["particle_id", "cycle"])
    idx = pd.MultiIndex.from_frame(keys)
    out = pd.DataFrame(
        {
            "particle_id": keys["particle_id"].to_numpy(),
            "cycle": keys["cycle"].to_numpy(),
            "before_s": med_b["time_s"].reindex(idx).to_numpy(),
            "before_nm": med_b["peak_nm"].reindex(idx).to_numpy(),
            "n_before": cnt_b.reindex(idx).fillna(0).to_numpy(np.int64),
            "after_s": med_a["time_s"].reindex(idx).to_numpy(),
            "after_nm": med_a["peak_nm"].reindex(idx).to_numpy(),
            "n_after": cnt_a.reindex(idx).fillna(0).to_numpy(np.int64),
        },
        columns=list(BASELINE_COLUMNS),
    )
    return out


def add_shifts(table: pd.DataFrame, baselines: pd.DataFrame | None = None) -> pd.DataFrame:
    """Copy of ``table`` with ``baseline_nm`` and ``shift_nm = peak_nm - baseline_nm``.

    Each frame's baseline is the straight line in time through its cycle's
    ``before`` and ``after`` field-off points (:func:`cycle_baselines`),
    evaluated at the frame time, or the one point that exists: a slow drift
    of the peak cancels, for field-on frames (between the points) and
    field-off frames (near one of them) alike. Frames whose fit failed, or
    whose cycle has no field-off point, get NaN.
    """
    base = cycle_baselines(table) if baselines is None else baselines
    out = table.drop(columns=[c for c in ("baseline_nm", "shift_nm") if c in table.columns])
    m = out[["particle_id", "cycle", "time_s"]].merge(base, on=["particle_id", "cycle"], how="left")
    tb, yb = m["before_s"].to_numpy(float), m["before_nm"].to_numpy(float)
    ta, ya = m["after_s"].to_numpy(float), m["after_nm"].to_numpy(float)
    t = m["time_s"].to_numpy(float)
    both = np.isfinite(yb) & np.isfinite(ya) & (ta > tb)
    frac = np.where(both, (t - tb) / np.where(both, ta - tb, 1.0), 0.0)
    line = yb + frac * (ya - yb)
    baseline = np.where(both, line, np.where(np.isfinite(yb), yb, ya))
    out["baseline_nm"] = baseline
    shift = out["peak_nm"] - out["baseline_nm"]
    out["shift_nm"] = shift.where(out["fit_ok"].astype(bool))
    return out


# --------------------------------------------------------------------------
# histograms and fits
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class NormalFit:
    """Normal distribution fitted to a histogram of values.

    ``center`` is the most probable value; ``method`` is ``"histogram"``
    (least-squares Gaussian on the histogram counts, Poisson weights) or
    ``"median"`` (too few values or a failed fit: median, normal-equivalent
    robust sigma, ``1.2533 sigma / sqrt(n)`` error).
    """

    center: float
    center_err: float
    sigma: float
    n: int
    mean: float
    median: float
    method: str

    def to_dict(self) -> dict:
        return asdict(self)


def histogram_bins(values, *, min_bins: int = 8, max_bins: int = 60) -> np.ndarray:
    """Bin edges for a histogram of shifts (Freedman-Diaconis, clipped to a sensible count)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size < 2 or np.ptp(v) == 0:
        c = float(v[0]) if v.size else 0.0
        return np.linspace(c - 0.5, c + 0.5, min_bins + 1)
    q1, q3 = np.percentile(v, [25, 75])
    lo, hi = np.percentile(v, [0.5, 99.5])
    if hi <= lo:
        lo, hi = float(v.min()), float(v.max())
    width = 2 * (q3 - q1) / v.size ** (1 / 3) if q3 > q1 else (hi - lo) / min_bins
    n = int(np.clip(math.ceil((hi - lo) / width), min_bins, max_bins)) if width > 0 else min_bins
    return np.linspace(lo, hi, n + 1)


def normal_fit(values) -> NormalFit:
    """Fit a normal distribution to the histogram of ``values`` (NaNs ignored).

    Returns
    -------
    NormalFit
        NaN centre for no values.
    """
    from scipy.optimize import curve_fit

    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    n = int(v.size)
    if n == 0:
        return NormalFit(math.nan, math.nan, math.nan, 0, math.nan, math.nan, "none")
    med = float(np.median(v))
    mean = float(np.mean(v))
    rsig = float(1.4826 * np.median(np.abs(v - med))) if n > 1 else math.nan
    if not rsig > 0:
        rsig = float(np.std(v)) if n > 1 else math.nan
    fallback = NormalFit(
        med, 1.2533 * rsig / math.sqrt(n) if n > 1 else math.nan, rsig, n, mean, med, "median"
    )
    if n < _MIN_HIST or not rsig > 0:
        return fallback
    edges = histogram_bins(v)
    counts, edges = np.histogram(v, bins=edges)
    centres = 0.5 * (edges[1:] + edges[:-1])

    def gauss(x, a, mu, s):
        return a * np.exp(-0.5 * ((x - mu) / s) ** 2)

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            popt, pcov = curve_fit(
                gauss,
                centres,
                counts,
                p0=[counts.max(), med, rsig],
                sigma=np.sqrt(np.maximum(counts, 1.0)),
                maxfev=5000,
            )
    except (RuntimeError, ValueError):
        return fallback
    mu, s = float(popt[1]), abs(float(popt[2]))
    err = float(np.sqrt(pcov[1, 1])) if np.all(np.isfinite(pcov)) else math.nan
    if not (edges[0] <= mu <= edges[-1] and 0 < s < 10 * (edges[-1] - edges[0]) and math.isfinite(err)):
        return fallback
    # the histogram fit's error is at least that of the mean of n normal values
    err = max(err, s / math.sqrt(n))
    return NormalFit(mu, err, s, n, mean, med, "histogram")


def shift_statistics(table: pd.DataFrame, *, per_particle: bool = False) -> pd.DataFrame:
    """Most probable shift of field-off frames and of each field level.

    Parameters
    ----------
    table : pandas.DataFrame
        Frames with ``state``, ``level``, ``field_kV_per_cm``, ``settled``,
        ``shift_nm`` (and ``particle_id``), e.g. from :func:`add_shifts`.
        Only settled ``off`` / ``on`` frames with a finite shift count.
    per_particle : bool
        One set of rows per particle instead of all particles pooled.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`SHIFT_STAT_COLUMNS`, one row per field level (field
        0, level -1, for the field-off frames) and particle (``particle_id``
        -1 when pooled), sorted by field: ``shift_nm`` the centre of the
        normal fit, ``shift_err_nm`` its standard error, ``sigma_nm`` the
        frame-to-frame spread, ``mean_nm``/``median_nm``, ``n_frames``,
        ``method`` (see :class:`NormalFit`).
    """
    _check(table, ("state", "level", "field_kV_per_cm", "settled", "shift_nm"))
    use = table[
        table["settled"].astype(bool) & table["state"].isin(["on", "off"]) & np.isfinite(table["shift_nm"])
    ]
    rows = []
    groups = use.groupby("particle_id", sort=True) if per_particle else [(-1, use)]
    for pid, grp in groups:
        for lev, g in grp.groupby("level", sort=True):
            fit = normal_fit(g["shift_nm"].to_numpy())
            field = 0.0 if lev < 0 else float(np.median(g["field_kV_per_cm"]))
            rows.append(
                (
                    int(pid),
                    field,
                    int(lev),
                    fit.center,
                    fit.center_err,
                    fit.sigma,
                    fit.mean,
                    fit.median,
                    fit.n,
                    fit.method,
                )
            )
    out = pd.DataFrame(rows, columns=list(SHIFT_STAT_COLUMNS))
    return out.sort_values(["particle_id", "field_kV_per_cm"], ignore_index=True)


@dataclass(frozen=True)
class ShiftSlope:
    """Weighted straight line ``shift = intercept + slope * E``.

    ``slope_err`` is the standard error from the weights, scaled by
    ``sqrt(redchi)`` when the scatter exceeds the weights (never scaled
    down); NaN with fewer than two field values.
    """

    slope_nm_per_kV_per_cm: float
    slope_err_nm_per_kV_per_cm: float
    intercept_nm: float
    intercept_err_nm: float
    redchi: float
    n_points: int

    def to_dict(self) -> dict:
        return asdict(self)


def shift_slope(field_kV_per_cm, shift_nm, shift_err_nm=None) -> ShiftSlope:
    """Fit ``shift = a + b E`` weighted by ``1 / shift_err**2``.

    Parameters
    ----------
    field_kV_per_cm, shift_nm : array_like, shape (n,)
    shift_err_nm : array_like, shape (n,), optional
        Standard errors (default: equal weights, errors from the scatter).

    Returns
    -------
    ShiftSlope
    """
    e = np.asarray(field_kV_per_cm, dtype=float)
    s = np.asarray(shift_nm, dtype=float)
    err = np.ones_like(s) if shift_err_nm is None else np.asarray(shift_err_nm, dtype=float)
    ok = np.isfinite(e) & np.isfinite(s) & np.isfinite(err) & (err > 0)
    e, s, err = e[ok], s[ok], err[ok]
    nan = ShiftSlope(math.nan, math.nan, math.nan, math.nan, math.nan, int(e.size))
    if e.size < 2 or np.ptp(e) == 0:
        return nan
    w = 1.0 / err**2
    x = np.column_stack([np.ones_like(e), e])
    a = x.T @ (w[:, None] * x)
    cov = np.linalg.inv(a)
    beta = cov @ (x.T @ (w * s))
    resid = s - x @ beta
    dof = e.size - 2
    redchi = float(np.sum(w * resid**2) / dof) if dof > 0 else math.nan
    if shift_err_nm is None:
        scale = redchi if dof > 0 else math.nan
    else:
        scale = max(1.0, redchi) if dof > 0 else 1.0
    cov = cov * scale
    return ShiftSlope(
        float(beta[1]),
        float(math.sqrt(cov[1, 1])) if cov[1, 1] >= 0 else math.nan,
        float(beta[0]),
        float(math.sqrt(cov[0, 0])) if cov[0, 0] >= 0 else math.nan,
        redchi,
        int(e.size),
    )
