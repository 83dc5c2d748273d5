"""Fit of a particle's whole trace with the state carried across half cycles.

Why
---
The averaged polarization and recovery curves (:mod:`.analysis`) are fitted
one half cycle at a time from a normalized start. When a slow component has
not settled by the end of a half period, the next half cycle starts from a
state that is not the one the curve model assumes: the recovery then starts
with the fast component over-represented (its amplitude-weighted ``tau`` is
too short), the end-of-window depth is not the settled depth, and the pooled
shape of all particles is wrong for a particle with its own shape.

Model
-----
Two sub-populations of quenching sites with amplitudes ``a1, a2 = 1 - a1``
(shared by both phases) relax exponentially towards ``SE_k`` while the field
of level ``k`` is ON and towards 0 while it is OFF, each half cycle starting
from where the previous one ended::

    PL(t) = B exp(-k t) (1 - a1 q1(t) - a2 q2(t)),   dq_i/dt = (target - q_i) / tau_i,

with ``tau_i = c_i tau`` (``a1 c1 + a2 c2 = 1``: ``tau`` is the
amplitude-weighted time, ``c2 / c1 = R``): ``tau = tau_pol_k`` ON and
``tau_rec_k`` OFF, ``R = R_pol`` or ``R_rec``. Every frame is the exposure
average of this piecewise-exponential (exact); frames straddling an edge are
left out. Parameters per particle: ``B, a1, ln R_pol, ln R_rec``, per level
``SE_k, ln tau_pol_k, ln tau_rec_k``, and the bleaching rate ``k`` (fitted with
the kinetics on the raw trace: a bleaching estimate from the OFF plateaus
mistakes a recovery that has not settled for bleaching). ``SE_k`` is the
settled depth.

Shape: hierarchical. A first pass fits every particle with a weak prior on
``(a1, ln R_pol, ln R_rec)``; the population mean and between-particle
spread of the well-determined shapes (DerSimonian-Laird) then form the prior
of the second pass, whose width is the measured spread (never below
0.05 / 0.1): a particle whose data pin its own shape keeps it, one whose data
do not borrows the population's, and the posterior errors of ``tau`` include
the shape uncertainty.

Blinks: a first robust fit (soft-L1 loss); frames more than 4 noise sigmas
*below* it (a blink only lowers the PL), and their neighbours, are masked and
the fit repeated with the ordinary loss.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import cast

import numba
import numpy as np
import pandas as pd

from . import _trf
from ._meta import random_effects as _random_effects
from ._parallel import map_particles
from .fits import exposure_factor

__all__ = [
    "ShapeHyper",
    "TraceFit",
    "TraceGeometry",
    "fit_population_traces",
    "fit_trace",
    "population_shape",
    "trace_geometry",
]

_MAD_TO_SIGMA = 1.4826
_BLINK_SIGMA = 4.0
_WEAK = {"a1": (0.5, 0.35), "rho_pol": (math.log(3.0), 1.0), "rho_rec": (math.log(3.0), 1.0)}
_A1_BOUNDS = (0.02, 0.98)
_RHO_MAX = math.log(60.0)
_MAX_BLEACH_PER_S = 0.05
_SHAPE_FLOORS = {"a1": 0.05, "rho_pol": 0.1, "rho_rec": 0.1}
_SHAPE_NAMES = ("a1", "rho_pol", "rho_rec")


@dataclass(frozen=True)
class ShapeHyper:
    """Gaussian prior of the per-particle shape: name -> (mean, sd) for a1, rho_pol, rho_rec."""

    prior: dict = field(default_factory=lambda: dict(_WEAK))
    n_particles: int = 0

    def to_dict(self) -> dict:
        """JSON-ready (means and sds)."""
        d = {f"{k}_mean": float(v[0]) for k, v in self.prior.items()}
        d.update({f"{k}_sd": float(v[1]) for k, v in self.prior.items()})
        d["n_particles"] = int(self.n_particles)
        return d


@dataclass(frozen=True, eq=False)
class TraceGeometry:
    """Frames and field segments of one particle's trace (everything but the parameters)."""

    t: np.ndarray  # mid-exposure times of the frames used
    y: np.ndarray  # bleach-corrected PL of those frames
    frame_seg: np.ndarray  # segment of every frame
    seg_start: np.ndarray  # start time of every segment (0: lead-in)
    seg_on: np.ndarray  # field ON in the segment
    seg_level: np.ndarray  # level index (ON: its level; OFF: the level of the preceding ON)
    levels: list  # level ids, index -> id
    on_s: np.ndarray  # ON window length per level
    off_s: np.ndarray  # OFF window length per level
    exposure_s: float
    frame_interval_s: float
    noise: float
    fit_bleaching: bool = True


def trace_geometry(
    t, y, cycles: pd.DataFrame, exposure_s: float, *, fit_bleaching: bool = True
) -> TraceGeometry | None:
    """Segments of the field schedule and the frames that lie inside one segment (None: no data).

    ``fit_bleaching=False`` fixes the bleaching rate at 0 (no correction).
    """
    order = _sort_order(cycles["on_start_s"].to_numpy())  # as cycles.sort_values("on_start_s")
    level_ids = cycles["level"].to_numpy()[order].tolist()
    levels = list(dict.fromkeys(level_ids))
    lev_idx = np.array([levels.index(v) for v in level_ids], dtype=np.int64)
    finite = np.isfinite(y) & np.isfinite(t)
    if np.count_nonzero(finite) < 20 or len(order) == 0:
        return None
    on_start, on_end, off_end = (
        cycles[k].to_numpy(float)[order] for k in ("on_start_s", "on_end_s", "off_end_s")
    )
    # segments: the lead-in (OFF), then ON and OFF of every cycle; OFF carries the preceding ON's level
    starts_a = np.r_[float(np.min(t[finite])) - exposure_s, np.column_stack([on_start, on_end]).ravel()]
    seg_on = np.r_[False, np.tile([True, False], len(order))]
    seg_level = np.r_[lev_idx[0], np.repeat(lev_idx, 2)]
    lo, hi = t - exposure_s / 2, t + exposure_s / 2
    seg = np.searchsorted(starts_a, lo + 1e-9, side="right") - 1
    nxt = np.append(starts_a[1:], np.inf)[np.clip(seg, 0, None)]
    use = finite & (seg >= 0) & (hi <= nxt + 1e-9)
    dt = np.diff(t[finite])
    d = np.diff(y[use])
    noise = _MAD_TO_SIGMA * float(np.median(np.abs(d - np.median(d)))) / math.sqrt(2.0) if d.size > 5 else 0.0
    on_s = np.array([np.median((on_end - on_start)[lev_idx == k]) for k in range(len(levels))])
    off_s = np.array([np.median((off_end - on_end)[lev_idx == k]) for k in range(len(levels))])
    return TraceGeometry(
        t=t[use],
        y=y[use],
        frame_seg=seg[use],
        seg_start=starts_a,
        seg_on=seg_on,
        seg_level=seg_level,
        levels=levels,
        on_s=on_s,
        off_s=off_s,
        exposure_s=float(exposure_s),
        frame_interval_s=float(np.median(dt)) if dt.size else float("nan"),
        noise=noise,
        fit_bleaching=bool(fit_bleaching),
    )


def _sort_order(values: np.ndarray) -> np.ndarray:
    """The order in which ``DataFrame.sort_values`` puts ``values`` (pandas' ``nargsort``: quicksort of
    the values that are not NaN, then the NaN in their order), without copying the frame."""
    nan = pd.isna(values)
    idx = np.arange(values.size)
    return np.concatenate([idx[~nan][values[~nan].argsort(kind="quicksort")], idx[nan]])


def _unpack(x: np.ndarray, n_levels: int):
    b, a1, rp, rr = x[:4]
    se = x[4 : 4 + n_levels]
    tp = np.exp(x[4 + n_levels : 4 + 2 * n_levels])
    tr = np.exp(x[4 + 2 * n_levels : 4 + 3 * n_levels])
    return b, a1, rp, rr, se, tp, tr


def n_params(n_levels: int) -> int:
    """Parameters of a trace with ``n_levels`` levels (the last one is the bleaching rate)."""
    return 5 + 3 * n_levels


def _component_times(tau, rho, a1):
    c1 = 1.0 / (a1 + (1.0 - a1) * np.exp(rho))
    return tau * c1, tau * c1 * np.exp(rho)


def predict(x: np.ndarray, g: TraceGeometry, times: np.ndarray | None = None) -> np.ndarray:
    """Model PL at the frames of ``g`` (or, without exposure averaging, at ``times``)."""
    b, a1, rp, rr, se, tp, tr = _unpack(x, len(g.levels))
    lev = g.seg_level
    tau = np.where(g.seg_on, tp[lev], tr[lev])
    t1, t2 = _component_times(tau, np.where(g.seg_on, rp, rr), a1)
    target = np.where(g.seg_on, se[lev], 0.0)
    target[0] = 0.0
    seg_len = np.diff(g.seg_start)
    with np.errstate(over="ignore", under="ignore"):
        d1, d2 = np.exp(-seg_len / t1[:-1]).tolist(), np.exp(-seg_len / t2[:-1]).tolist()
        tg = target.tolist()
        q1s, q2s = [0.0], [0.0]
        for j in range(1, len(tg)):  # the state carried across edges (plain floats: fast)
            q1s.append(tg[j - 1] + (q1s[-1] - tg[j - 1]) * d1[j - 1])
            q2s.append(tg[j - 1] + (q2s[-1] - tg[j - 1]) * d2[j - 1])
        q = np.column_stack([q1s, q2s])
        if times is None:
            seg, tt, e = g.frame_seg, g.t, g.exposure_s
        else:
            tt = np.asarray(times, float)
            seg, e = np.clip(np.searchsorted(g.seg_start, tt, side="right") - 1, 0, None), 0.0
        dt = tt - g.seg_start[seg]
        # per segment: exposure factor and amplitude (few segments), then one exp per frame and component
        amp1 = (q[:, 0] - target) * exposure_factor(t1, e)
        amp2 = (q[:, 1] - target) * exposure_factor(t2, e)
        e1 = amp1[seg] * np.exp(-dt / t1[seg])
        e2 = amp2[seg] * np.exp(-dt / t2[seg])
    q1 = target[seg] + e1
    q2 = target[seg] + e2
    bleach = np.exp(-x[-1] * (tt - g.seg_start[1]))
    return b * bleach * (1.0 - a1 * q1 - (1.0 - a1) * q2)


@numba.njit(cache=True, nogil=True)
def _segment_times(x, seg_on, seg_level, e):  # pragma: no cover (numba)
    """Per segment: target and its parameter index (-1: none), the indices of ``ln tau`` and ``rho``,
    and per component (2, S): time ``T``, ``dT/da1``, ``dT/drho``, exposure factor ``X`` and
    ``d ln X / dT`` (see :func:`_component_times`, :func:`~plscope.kinetics.fits.exposure_factor`)."""
    n_seg, n = seg_on.size, (x.size - 5) // 3
    a1 = x[1]
    target, i_tg = np.zeros(n_seg), np.full(n_seg, -1, np.int64)
    i_tau, i_rho = np.empty(n_seg, np.int64), np.empty(n_seg, np.int64)
    tc, da, dr = np.empty((2, n_seg)), np.empty((2, n_seg)), np.empty((2, n_seg))
    xf, dlx = np.empty((2, n_seg)), np.empty((2, n_seg))
    for j in range(n_seg):
        lev = seg_level[j]
        i_tau[j] = 4 + n + lev if seg_on[j] else 4 + 2 * n + lev
        i_rho[j] = 2 if seg_on[j] else 3
        if seg_on[j] and j > 0:
            target[j], i_tg[j] = x[4 + lev], 4 + lev
        r = math.exp(x[i_rho[j]])
        c1 = 1.0 / (a1 + (1.0 - a1) * r)
        tc[0, j] = math.exp(x[i_tau[j]]) * c1
        tc[1, j] = tc[0, j] * r
        da[0, j], da[1, j] = -tc[0, j] * c1 * (1.0 - r), -tc[1, j] * c1 * (1.0 - r)
        dr[0, j], dr[1, j] = -tc[0, j] * c1 * (1.0 - a1) * r, tc[1, j] * (1.0 - c1 * (1.0 - a1) * r)
        for c in range(2):
            u = e / (2.0 * tc[c, j])
            if abs(u) < 1e-4:
                xf[c, j], dlx[c, j] = 1.0 + u * u / 6.0, -(u * u / 3.0) / tc[c, j]
            else:
                xf[c, j], dlx[c, j] = math.sinh(u) / u, -(u / math.tanh(u) - 1.0) / tc[c, j]
    return target, i_tg, i_tau, i_rho, tc, da, dr, xf, dlx


@numba.njit(cache=True, nogil=True)
def _state_gradients(seg_start, target, i_tg, i_tau, i_rho, tc, da, dr, n_par):  # pragma: no cover
    """The state ``q`` of both components at every segment start (2, S) and its gradient (2, S, P),
    carried across the edges (a linear recursion in the previous state)."""
    n_seg = seg_start.size
    q, dq = np.zeros((2, n_seg)), np.zeros((2, n_seg, n_par))
    for c in range(2):
        for j in range(1, n_seg):
            length = seg_start[j] - seg_start[j - 1]
            tt = tc[c, j - 1]
            dec = math.exp(-length / tt)
            rest = q[c, j - 1] - target[j - 1]
            q[c, j] = target[j - 1] + rest * dec
            slope = rest * dec * length / (tt * tt)
            for p in range(n_par):
                dq[c, j, p] = dec * dq[c, j - 1, p]
            dq[c, j, 1] += slope * da[c, j - 1]
            dq[c, j, i_rho[j - 1]] += slope * dr[c, j - 1]
            dq[c, j, i_tau[j - 1]] += slope * tt
            if i_tg[j - 1] >= 0:
                dq[c, j, i_tg[j - 1]] += 1.0 - dec
    return q, dq


@numba.njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def _add_gram(block, n_rows, block_t, gram):  # pragma: no cover (numba)
    """``gram += a.T a`` (upper triangle) of the first ``n_rows`` rows ``a`` of ``block``
    (``block_t``: scratch of its transpose; sums reassociated, so that they vectorize)."""
    m = block.shape[1]
    for b in range(n_rows):
        for p in range(m):
            block_t[p, b] = block[b, p]
    for p in range(m):
        for c in range(p, m):
            acc = 0.0
            for b in range(n_rows):
                acc += block_t[p, b] * block_t[c, b]
            gram[p, c] += acc


@numba.njit(cache=True, nogil=True)
def _row_kernel(
    x, t, y, frame_seg, seg_start, seg_on, seg_level, e, rows, w, with_jac, out, gram, f_scale
):  # pragma: no cover (numba)
    """Per frame of ``rows``: the weighted residual ``(y - model) w`` into the last column and, if
    ``with_jac``, its gradient (``-d model / dx * w``) into the others (closed form: the model is
    piecewise exponential; see :func:`predict`).

    ``gram`` empty: one row of ``out`` per frame. Otherwise ``out`` is a scratch block of rows,
    accumulated into ``gram += block.T block`` whenever full (the frames x (P + 1) matrix is never
    held); with ``f_scale > 0`` the row scaled first as ``least_squares`` scales it for its
    soft-L1 loss of that scale (:func:`_soft_l1_rows`). Returns the sum of that loss ``rho_0`` over the
    frames (0 unless streamed with ``f_scale > 0``).
    """
    n_par, m, stream = x.size, x.size + 1, gram.size > 0
    target, i_tg, i_tau, i_rho, tc, da, dr, xf, dlx = _segment_times(x, seg_on, seg_level, e)
    q, dq = _state_gradients(seg_start, target, i_tg, i_tau, i_rho, tc, da, dr, n_par)
    a1, b, k, t0 = x[1], x[0], x[n_par - 1], seg_start[1]
    rho_sum, eps = 0.0, np.finfo(np.float64).eps
    block_t = np.empty((m, out.shape[0] if stream else 0))
    for r in range(rows.size):
        i, o = rows[r], r % out.shape[0] if stream else r
        s = frame_seg[i]
        dt = t[i] - seg_start[s]
        eb = math.exp(-k * (t[i] - t0))
        xe0 = xf[0, s] * math.exp(-dt / tc[0, s])
        xe1 = xf[1, s] * math.exp(-dt / tc[1, s])
        v0 = target[s] + (q[0, s] - target[s]) * xe0
        v1 = target[s] + (q[1, s] - target[s]) * xe1
        model = b * eb * (1.0 - a1 * v0 - (1.0 - a1) * v1)
        out[o, n_par] = (y[i] - model) * w
        if not with_jac:
            continue
        # d model / dx = -b eb (a1 d v0 + (1 - a1) d v1) + the explicit b, a1 and bleaching terms
        f0, f1 = -b * eb * a1 * w, -b * eb * (1.0 - a1) * w  # -w d model / d v_c, negated below
        for p in range(n_par):
            out[o, p] = -(f0 * xe0 * dq[0, s, p] + f1 * xe1 * dq[1, s, p])
        s0 = (q[0, s] - target[s]) * xe0 * (dlx[0, s] + dt / (tc[0, s] * tc[0, s]))
        s1 = (q[1, s] - target[s]) * xe1 * (dlx[1, s] + dt / (tc[1, s] * tc[1, s]))
        out[o, 1] += -(f0 * s0 * da[0, s] + f1 * s1 * da[1, s]) + b * eb * (v0 - v1) * w
        out[o, i_rho[s]] += -(f0 * s0 * dr[0, s] + f1 * s1 * dr[1, s])
        out[o, i_tau[s]] += -(f0 * s0 * tc[0, s] + f1 * s1 * tc[1, s])
        if i_tg[s] >= 0:
            out[o, i_tg[s]] += -(f0 * (1.0 - xe0) + f1 * (1.0 - xe1))
        out[o, 0] = -eb * (1.0 - a1 * v0 - (1.0 - a1) * v1) * w
        out[o, n_par - 1] = (t[i] - t0) * model * w
        if not stream:
            continue
        if f_scale > 0.0:  # scipy's soft_l1 and scale_for_robust_loss_function, one row
            f = out[o, n_par]
            z = (f / f_scale) ** 2
            sq = math.sqrt(1.0 + z)
            rho_sum += 2.0 * (sq - 1.0)
            scale = 1.0 / sq - z / (sq * sq * sq)  # rho1 + 2 rho2 z
            scale = math.sqrt(eps if scale < eps else scale)
            for p in range(n_par):
                out[o, p] *= scale
            out[o, n_par] = f / sq / scale
        if o == out.shape[0] - 1 or r == rows.size - 1:
            _add_gram(out, o + 1, block_t, gram)
    for p in range(m if stream else 0):
        for c in range(p):
            gram[p, c] = gram[c, p]
    return rho_sum


def _kernel_args(g: TraceGeometry) -> tuple:
    """The geometry's arrays as the kernels take them (time, PL, then the segments)."""
    return (
        np.ascontiguousarray(g.t, float),
        np.ascontiguousarray(g.y, float),
        np.ascontiguousarray(g.frame_seg, np.int64),
        np.ascontiguousarray(g.seg_start, float),
        np.ascontiguousarray(g.seg_on, np.bool_),
        np.ascontiguousarray(g.seg_level, np.int64),
        float(g.exposure_s),
    )


_NO_GRAM = np.empty((0, 0))
_GRAM_BLOCK = 64  # frames per rank update of the streamed Gram matrix


def _residuals(
    x: np.ndarray, g: TraceGeometry, rows: np.ndarray, w: float, with_jac: bool, args: tuple | None = None
) -> np.ndarray:
    """Frames ``rows`` x (parameters + 1): the Jacobian of ``(y - model) w`` (if ``with_jac``), then
    ``(y - model) w`` itself in the last column (model: :func:`predict`).

    The Jacobian is closed form: the state at every edge is a linear recursion
    in the previous one, so its gradient is carried across the segments
    alongside it (the model is piecewise exponential). ``args``: :func:`_kernel_args` of ``g``.
    """
    out = np.empty((rows.size, x.size + 1))
    x = np.ascontiguousarray(x, float)
    kernel_args = (x, *(args or _kernel_args(g)), rows, float(w), with_jac, out, _NO_GRAM, 0.0)
    _row_kernel(*kernel_args)
    return out


def _gram(
    x: np.ndarray,
    g: TraceGeometry,
    rows: np.ndarray,
    w: float,
    f_scale: float = 0.0,
    args: tuple | None = None,
) -> tuple[np.ndarray, float]:
    """``a.T a`` of ``a = _residuals(x, g, rows, w, True)`` (the rows loss-scaled first if
    ``f_scale > 0``, see :func:`_soft_l1_rows`), accumulated frame by frame, and the sum of the loss
    ``rho_0`` over the frames (:func:`_row_kernel`)."""
    gram, scratch = np.zeros((x.size + 1, x.size + 1)), np.empty((_GRAM_BLOCK, x.size + 1))
    x = np.ascontiguousarray(x, float)
    kernel_args = (x, *(args or _kernel_args(g)), rows, float(w), True, scratch, gram, float(f_scale))
    rho_sum = _row_kernel(*kernel_args)
    return gram, float(rho_sum)


@dataclass(frozen=True)
class TraceFit:
    """Result of :func:`fit_trace` for one particle.

    Attributes
    ----------
    level_rows : tuple of dict
        One record per level: ``level, tau_pol_s, tau_pol_err_s, tau_rec_s,
        tau_rec_err_s, se, se_err, tau_pol_fast_s, tau_pol_slow_s,
        tau_rec_fast_s, tau_rec_slow_s, pol_settled_fraction,
        rec_settled_fraction, pol_at_bound, rec_at_bound`` (plain floats and
        bools; :attr:`per_level` is the same as a table).
    frac, frac_err, rho_pol, rho_pol_err, rho_rec, rho_rec_err : float
        The particle's shape (fast fraction ``a1``, ``ln tau2/tau1`` per phase).
    success : bool
    redchi : float
    n_frames, n_masked : int
        Frames fitted, frames masked as blinks.
    x : ndarray
        Best parameters (see :func:`predict`).
    """

    level_rows: tuple
    frac: float
    frac_err: float
    rho_pol: float
    rho_pol_err: float
    rho_rec: float
    rho_rec_err: float
    success: bool
    redchi: float
    n_frames: int
    n_masked: int
    x: np.ndarray = field(repr=False, default_factory=lambda: np.empty(0))
    keep: np.ndarray | None = field(repr=False, default=None)

    @property
    def per_level(self) -> pd.DataFrame:
        """:attr:`level_rows` as a table (one row per level; built on access: a fit is made in a
        worker and shipped back, and its per-level numbers are read as records)."""
        return pd.DataFrame(list(self.level_rows))

    def shape(self) -> dict:
        """``name -> (value, error)`` of the shape parameters."""
        return {
            "a1": (self.frac, self.frac_err),
            "rho_pol": (self.rho_pol, self.rho_pol_err),
            "rho_rec": (self.rho_rec, self.rho_rec_err),
        }


def _bounds(g: TraceGeometry):
    n = len(g.levels)
    dt = g.frame_interval_s if np.isfinite(g.frame_interval_s) else 0.2
    lo_tau = math.log(0.3 * dt)
    hi_tau = math.log(5.0 * float(max(np.max(g.on_s), np.max(g.off_s))))
    k = _MAX_BLEACH_PER_S if g.fit_bleaching else 1e-7  # per s: no correction
    lo = np.r_[0.0, _A1_BOUNDS[0], 0.0, 0.0, np.full(n, -1.0), np.full(2 * n, lo_tau), -k]
    hi = np.r_[np.inf, _A1_BOUNDS[1], _RHO_MAX, _RHO_MAX, np.full(n, 1.0), np.full(2 * n, hi_tau), k]
    return lo, hi


def _default_tau(window_s: float, g: TraceGeometry) -> float:
    """Start value of a time constant without a curve fit: 0.15 of its window.

    A window of length 0 (the record ends at the field edge, or inside the ON
    window, so that the last cycle has no OFF part) falls back to the frame
    interval; the start is clipped into the bounds afterwards.
    """
    tau = 0.15 * float(window_s)
    if np.isfinite(tau) and tau > 0:
        return tau
    return g.frame_interval_s if np.isfinite(g.frame_interval_s) and g.frame_interval_s > 0 else 0.2


def _start(g: TraceGeometry, start: dict | None, hyper: ShapeHyper) -> np.ndarray:
    n = len(g.levels)
    start = start or {}
    off = g.y[~g.seg_on[g.frame_seg]]
    b = float(np.median(off)) if off.size else float(np.median(g.y))
    x = np.r_[
        b, hyper.prior["a1"][0], hyper.prior["rho_pol"][0], hyper.prior["rho_rec"][0], np.zeros(3 * n + 1)
    ]
    for k, lev in enumerate(g.levels):
        s = start.get(lev, {})
        se, tp, tr = s.get("se", np.nan), s.get("tau_pol_s", np.nan), s.get("tau_rec_s", np.nan)
        x[4 + k] = se if np.isfinite(se) else 0.3
        x[4 + n + k] = math.log(tp if np.isfinite(tp) and tp > 0 else _default_tau(g.on_s[k], g))
        x[4 + 2 * n + k] = math.log(tr if np.isfinite(tr) and tr > 0 else _default_tau(g.off_s[k], g))
    lo, hi = _bounds(g)
    span = hi - lo
    pad = np.where(np.isfinite(span), 1e-3 * span, 1e-6)
    return np.clip(x, lo + pad, np.where(np.isfinite(hi), hi - pad, np.inf))


_F_SCALE = 3.0  # the robust loss's scale (noise sigmas)
_FTOL = 1e-7  # least_squares' ftol and xtol of every fit (and the population mean's ftol)
_GTOL = 1e-8  # least_squares' default gtol
_MAX_NFEV = 200
_EPS = float(np.finfo(float).eps)


class _TraceProblem:
    """One particle's least-squares problem: the weighted residuals of the kept frames, then the three
    shape-prior rows, and their analytic Jacobian (:meth:`fun`, :meth:`jac` and :attr:`loss` for
    ``least_squares``).

    ``reduced=True`` hands the solver an equivalent small problem: the rows ``f, J`` replaced by
    ``Q.T f`` and ``R`` of ``[J f] = Q R`` (once per evaluation: :func:`_cholesky_factor` of the Gram
    matrix :func:`_gram` accumulates frame by frame, the QR decomposition of the whole ``[J f]`` only
    when that is ill-conditioned) and the rest of the cost. With the ordinary loss the cost, the gradient ``J.T f`` and ``J.T J``, with the
    robust soft-L1 loss (``loss='soft_l1'``) its cost and the loss-scaled ``J, f`` that
    ``least_squares`` forms (``scale_for_robust_loss_function``), are those of the whole problem to
    rounding: every trust-region step, the column scaling and the covariance are the same, but each
    iteration's SVD and products run over ``P + 4`` rows instead of the frames (``P`` parameters). The
    rest of the cost goes into the last two entries, counted positive and negative by :attr:`loss`
    (robust) or the one rest norm (ordinary). :meth:`data_residuals` gives the frames' own residuals.
    """

    def __init__(
        self,
        g: TraceGeometry,
        keep: np.ndarray,
        sigma: float,
        hyper: ShapeHyper,
        *,
        loss="linear",
        reduced=True,
    ):
        self.g, self.rows, self.w = g, np.flatnonzero(keep).astype(np.int64), 1.0 / sigma
        n_par = n_params(len(g.levels))
        self.mu = np.array([hyper.prior[k][0] for k in _SHAPE_NAMES])
        self.sd = np.array([hyper.prior[k][1] for k in _SHAPE_NAMES])
        self.prior_rows = np.zeros((3, n_par))
        self.prior_rows[[0, 1, 2], [1, 2, 3]] = 1.0 / self.sd
        self.reduced = reduced and self.rows.size > n_par + 1
        self.robust = loss == "soft_l1"
        self.loss = _split_cost_loss if self.reduced and self.robust else loss
        self._args = _kernel_args(g)
        self._last: tuple[np.ndarray, np.ndarray] | None = None

    def fun(self, x: np.ndarray) -> np.ndarray:
        prior = (x[1:4] - self.mu) / self.sd
        if not self.reduced:
            return np.append(self.data_residuals(x), prior)
        if self.robust:
            return self._robust_fun(x, prior)
        n = x.size
        r = _cholesky_factor(_gram(x, self.g, self.rows, self.w, args=self._args)[0])
        if r is None:  # ill-conditioned (rare): the QR decomposition of the whole [J f]
            r = _qr_factor(_residuals(x, self.g, self.rows, self.w, True, self._args))
        self._last = (x.copy(), np.vstack([r[:n, :n], np.zeros((1, n)), self.prior_rows]))
        return np.concatenate([r[:n, n], [abs(r[n, n])], prior])

    def _robust_fun(self, x: np.ndarray, prior: np.ndarray) -> np.ndarray:
        """The reduced rows of the loss-scaled problem, then ``sqrt`` of the rest of twice the robust
        cost, if positive, and if negative (:func:`_split_cost_loss` counts the last one negative)."""
        n = x.size
        gram, rho_sum = _gram(x, self.g, self.rows, self.w, _F_SCALE, self._args)
        a_prior, rho_prior = _soft_l1_rows(np.column_stack([self.prior_rows, prior]))
        r = _cholesky_factor(gram + a_prior.T @ a_prior)
        if r is None:  # ill-conditioned (rare): the QR decomposition of the whole scaled [J f]
            a, rho0 = _soft_l1_rows(_residuals(x, self.g, self.rows, self.w, True, self._args))
            r = _qr_factor(np.vstack([a, a_prior]))
            rho_sum = float(np.sum(rho0))
        c = r[:n, n]
        rest = _F_SCALE**2 * (rho_sum + float(np.sum(rho_prior))) - float(c @ c)
        self._last = (x.copy(), np.vstack([r[:n, :n], np.zeros((2, n))]))
        return np.concatenate([c, [math.sqrt(max(rest, 0.0)), math.sqrt(max(-rest, 0.0))]])

    def jac(self, x: np.ndarray) -> np.ndarray:
        if not self.reduced:
            return np.vstack(
                [_residuals(x, self.g, self.rows, self.w, True, self._args)[:, :-1], self.prior_rows]
            )
        if self._last is None or not np.array_equal(self._last[0], x):
            self.fun(x)
        assert self._last is not None
        return self._last[1]

    def data_residuals(self, x: np.ndarray) -> np.ndarray:
        """``(y - model) / sigma`` of the kept frames."""
        return _residuals(x, self.g, self.rows, self.w, False, self._args)[:, -1]


def _split_cost_loss(z: np.ndarray) -> np.ndarray:
    """``least_squares`` loss of the reduced robust problem: every entry counted as it is (no scaling:
    the rows are scaled already), the last one negative."""
    rho = np.zeros((3, z.size))
    rho[0] = z
    rho[0, -1] = -z[-1]
    rho[1] = 1.0
    return rho


#: Smallest diagonal of the Cholesky factor of the column-normalized Gram matrix for which it is used: its
#: rounding error grows as the square of the condition number (kept below ~1e4 here, so ~1e-8 relative
#: at most; these Jacobians have ~10 measured), below that the QR decomposition is taken.
_CHOLESKY_MIN_DIAG = 1e-4


def _soft_l1_rows(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``[J f]`` scaled as ``least_squares`` scales them for its soft-L1 loss of scale
    ``_F_SCALE`` (``scale_for_robust_loss_function``), and the loss ``rho_0`` of every row (a copy)."""
    a = a.copy()
    f = a[:, -1].copy()
    z = (f / _F_SCALE) ** 2
    t = 1.0 + z
    rho0, rho1, rho2 = 2.0 * (t**0.5 - 1.0), t**-0.5, -0.5 * t**-1.5  # scipy's soft_l1
    scale = rho1 + 2.0 * rho2 * z
    scale = np.sqrt(np.where(scale < np.finfo(float).eps, np.finfo(float).eps, scale))
    a[:, :-1] *= scale[:, None]
    a[:, -1] = f * rho1 / scale
    return a, rho0


def _cholesky_factor(gram: np.ndarray) -> np.ndarray | None:
    """Upper-triangular ``R`` with ``R.T R = gram`` (a Gram matrix ``a.T a``), or None when that is not
    well conditioned (then :func:`_qr_factor` of ``a`` is taken).

    The Cholesky factor of the column-normalized matrix (the rounding of the Gram matrix is relative
    to each column's norm), a third of the QR decomposition's cost at these sizes.
    """
    d = np.sqrt(np.diag(gram))
    d = np.where((d > 0) & np.isfinite(d), d, 1.0)
    try:
        low = np.linalg.cholesky(gram / np.outer(d, d))
    except np.linalg.LinAlgError:
        return None
    if np.all(np.diag(low)[:-1] > _CHOLESKY_MIN_DIAG):
        return low.T * d
    return None


def _qr_factor(a: np.ndarray) -> np.ndarray:
    """``R`` of the QR decomposition of ``a``."""
    return cast(np.ndarray, np.linalg.qr(a, mode="r"))


@numba.njit(cache=True, nogil=True)
def _soft_l1_rows_c(a):  # pragma: no cover (numba)
    """:func:`_soft_l1_rows` compiled (``a`` scaled in place; returns ``rho_0`` per row)."""
    rho0 = np.empty(a.shape[0])
    last = a.shape[1] - 1
    for i in range(a.shape[0]):
        f = a[i, last]
        z = (f / _F_SCALE) ** 2
        t = 1.0 + z
        rho0[i] = 2.0 * (t**0.5 - 1.0)
        rho1, rho2 = t**-0.5, -0.5 * t**-1.5
        scale = max(rho1 + 2.0 * rho2 * z, _EPS)
        scale = math.sqrt(scale)
        for p in range(last):
            a[i, p] *= scale
        a[i, last] = f * rho1 / scale
    return rho0


@numba.njit(cache=True, nogil=True)
def _cholesky_factor_c(gram):  # pragma: no cover (numba)
    """:func:`_cholesky_factor` compiled: ``(R, True)``, or ``(_, False)`` when not well conditioned."""
    m = gram.shape[0]
    d = np.empty(m)
    for i in range(m):
        v = math.sqrt(gram[i, i])
        d[i] = v if v > 0 and np.isfinite(v) else 1.0
    low = np.zeros((m, m))
    for j in range(m):
        s = gram[j, j] / (d[j] * d[j]) - _trf.dot(low[j, :j], low[j, :j])
        if not s > 0:
            return low, False
        low[j, j] = math.sqrt(s)
        for i in range(j + 1, m):
            low[i, j] = (gram[i, j] / (d[i] * d[j]) - _trf.dot(low[i, :j], low[j, :j])) / low[j, j]
    for j in range(m - 1):
        if not low[j, j] > _CHOLESKY_MIN_DIAG:
            return low, False
    return low.T * d, True


@numba.njit(cache=True, nogil=True)
def _qr_r(a):  # pragma: no cover (numba)
    """``R`` of the QR decomposition of ``a`` (rows >= columns; Householder reflections, ``a``
    overwritten)."""
    m, n = a.shape
    for k in range(n):
        norm = math.sqrt(_trf.dot(a[k:, k], a[k:, k]))
        if norm == 0:
            continue
        alpha = -norm if a[k, k] >= 0 else norm
        v = a[k:, k].copy()
        v[0] -= alpha
        vv = _trf.dot(v, v)
        for j in range(k, n):
            f = 2.0 * _trf.dot(v, a[k:, j]) / vv if vv > 0 else 0.0
            for i in range(m - k):
                a[k + i, j] -= f * v[i]
    return np.triu(a[:n])


@numba.njit(cache=True, nogil=True)
def _reduced_problem(x, kargs, rows, w, robust, mu, sd):  # pragma: no cover (numba)
    """:meth:`_TraceProblem.fun` and :meth:`_TraceProblem.jac` of the reduced problem, compiled:
    the residuals ``f`` and the Jacobian (``robust``: of the loss-scaled soft-L1 problem, the rest of
    twice its cost in the last two entries, counted positive and negative)."""
    t, y, fseg, sstart, son, slev, e = kargs
    n = x.size
    prior = (x[1:4] - mu) / sd
    gram, scratch = np.zeros((n + 1, n + 1)), np.empty((_GRAM_BLOCK, n + 1))
    rho_sum = _row_kernel(
        x, t, y, fseg, sstart, son, slev, e, rows, w, True, scratch, gram, _F_SCALE * robust
    )
    a_prior = np.zeros((3, n + 1))
    for k in range(3):
        a_prior[k, 1 + k], a_prior[k, n] = 1.0 / sd[k], prior[k]
    rho_prior = _soft_l1_rows_c(a_prior) if robust else np.zeros(3)
    if robust:
        for i in range(n + 1):
            for j in range(n + 1):
                gram[i, j] += _trf.dot(a_prior[:, i], a_prior[:, j])
    r, ok = _cholesky_factor_c(gram)
    if not ok:  # ill-conditioned (rare): the QR decomposition of the whole [J f]
        a = np.empty((rows.size + 3 * robust, n + 1))
        _row_kernel(x, t, y, fseg, sstart, son, slev, e, rows, w, True, a, np.empty((0, 0)), 0.0)
        if robust:
            rho_sum = np.sum(_soft_l1_rows_c(a[: rows.size]))
            a[rows.size :] = a_prior
        r = _qr_r(a)
    m = n + 2 if robust else n + 4
    f, jac = np.zeros(m), np.zeros((m, n))
    f[:n], jac[:n] = r[:n, n], r[:n, :n]
    if robust:
        rest = _F_SCALE**2 * (rho_sum + np.sum(rho_prior)) - _trf.dot(f[:n], f[:n])
        f[n], f[n + 1] = math.sqrt(max(rest, 0.0)), math.sqrt(max(-rest, 0.0))
    else:
        f[n], f[n + 1 :] = abs(r[n, n]), prior
        for k in range(3):
            jac[n + 1 + k, 1 + k] = 1.0 / sd[k]
    return f, jac


@numba.njit(cache=True, nogil=True)
def _cost(f, robust, initial):  # pragma: no cover (numba)
    """``least_squares``' cost of the residuals ``f`` (``robust``: :func:`_split_cost_loss`, the last
    entry counted negative; ``initial``: as its first evaluation orders the products)."""
    if not robust:
        return 0.5 * _trf.dot(f, f)
    acc = 0.0
    for i in range(f.size):
        z = (f[i] / _F_SCALE) ** 2
        z = -z if i == f.size - 1 else z
        acc += z * _F_SCALE**2 if initial else z
    return 0.5 * acc if initial else 0.5 * _F_SCALE**2 * acc


@numba.njit(cache=True, nogil=True)
def _trf_solve(x0, lb, ub, kargs, rows, w, robust, mu, sd):  # pragma: no cover (numba)
    """``least_squares(fun, x0, jac, bounds, x_scale='jac', ftol=xtol=_FTOL, max_nfev=200)`` of the
    reduced problem (:func:`_reduced_problem`), compiled (the steps of :mod:`._trf`).
    Returns ``x``, the Jacobian at ``x``, the status (-99: residuals not finite at the start) and
    the numbers of evaluations of the residuals and the Jacobian."""
    x = _trf.strictly_feasible(x0, lb, ub, 1e-10)
    f, jac = _reduced_problem(x, kargs, rows, w, robust, mu, sd)
    if not np.all(np.isfinite(f)):
        return x, jac, -99, 1, 1
    m, n = jac.shape
    cost, g = _cost(f, robust, True), _trf.matvec(jac, f, True)
    scale, scale_inv = _trf.jac_scale(jac, np.empty(0), True)
    v, dv = _trf.cl_scaling_vector(x, g, lb, ub)
    v = _trf.scale_active(v, dv, scale_inv)
    z = x * scale_inv / v**0.5
    delta = math.sqrt(_trf.dot(z, z))
    delta = 1.0 if delta == 0 else delta
    alpha, status, nfev, njev = 0.0, 0, 1, 1
    ja, fa = np.empty((m + n, n)), np.zeros(m + n)
    while True:
        v, dv = _trf.cl_scaling_vector(x, g, lb, ub)
        g_norm = np.max(np.abs(g * v))
        status = 1 if g_norm < _GTOL else status
        if status != 0 or nfev == _MAX_NFEV:
            break
        v = _trf.scale_active(v, dv, scale_inv)
        d, diag_h = v**0.5 * scale, g * dv * scale
        g_h = d * g
        fa[:m] = f
        _trf.augment(ja, jac, d, diag_h)
        u, s, vt = np.linalg.svd(ja, full_matrices=False)
        uf, theta = _trf.matvec(u, fa, True), max(0.995, 1 - g_norm)
        actual = -1.0
        while actual <= 0 and nfev < _MAX_NFEV:
            p_h, alpha = _trf.solve_trust_region(n, m, uf, s, vt.T.copy(), delta, alpha)
            step, step_h, predicted = _trf.select_step(
                x, ja[:m], diag_h, g_h, d * p_h, p_h, d, delta, lb, ub, theta
            )
            x_new = _trf.strictly_feasible(x + step, lb, ub, 0.0)
            f_new, jac_new = _reduced_problem(x_new, kargs, rows, w, robust, mu, sd)
            nfev += 1
            step_h_norm = math.sqrt(_trf.dot(step_h, step_h))
            if not np.all(np.isfinite(f_new)):
                delta = 0.25 * step_h_norm
                continue
            cost_new = _cost(f_new, robust, False)
            actual = cost - cost_new
            delta_new, ratio = _trf.update_radius(
                delta, actual, predicted, step_h_norm, step_h_norm > 0.95 * delta
            )
            status = _trf.termination(
                actual, cost, math.sqrt(_trf.dot(step, step)), math.sqrt(_trf.dot(x, x)), ratio, _FTOL, _FTOL
            )
            if status != 0:
                break
            alpha *= delta / delta_new
            delta = delta_new
        if actual > 0:
            x, f, cost, jac, njev = x_new, f_new, cost_new, jac_new, njev + 1
            g = _trf.matvec(jac, f, True)
            scale, scale_inv = _trf.jac_scale(jac, scale_inv, False)
    return x, jac, status, nfev, njev


@dataclass(frozen=True)
class _Solution:
    """What the fits read of a solve (as ``least_squares``' result names it)."""

    x: np.ndarray
    jac: np.ndarray
    status: int
    nfev: int
    njev: int

    @property
    def success(self) -> bool:
        return self.status > 0


def _solve(problem: _TraceProblem, x0, bounds):
    """``least_squares`` of ``problem`` from ``x0`` within ``bounds``: compiled (:func:`_trf_solve`)
    for a reduced problem, else (or when its residuals are not finite at the start) scipy's."""
    lo, hi = (np.asarray(b, float) for b in bounds)
    x0 = np.asarray(x0, float)
    if problem.reduced and np.all((x0 >= lo) & (x0 <= hi)):
        kargs, rows, w = problem._args, problem.rows, float(problem.w)
        with np.errstate(all="ignore"):
            x, jac, status, nfev, njev = _trf_solve(
                x0, lo, hi, kargs, rows, w, problem.robust, problem.mu, problem.sd
            )
        if status != -99:
            return _Solution(x=x, jac=jac, status=int(status), nfev=int(nfev), njev=int(njev))
    return _scipy_solve(problem, x0, bounds)


def _scipy_solve(problem: _TraceProblem, x0, bounds):
    from scipy.optimize import least_squares

    with np.errstate(all="ignore"):
        return least_squares(
            problem.fun,
            x0,
            jac=problem.jac,
            bounds=bounds,
            loss=problem.loss,
            f_scale=_F_SCALE,
            x_scale="jac",
            max_nfev=_MAX_NFEV,
            ftol=_FTOL,
            xtol=_FTOL,
        )


def _blink_mask(g: TraceGeometry, x: np.ndarray, sigma: float) -> np.ndarray:
    """Frames far below the model (blinks) and their neighbours in time."""
    low = (g.y - predict(x, g)) / sigma < -_BLINK_SIGMA
    idx = np.flatnonzero(low)
    bad = np.zeros(g.t.size, bool)
    for k in idx:  # neighbours by time (frames may be missing)
        bad |= np.abs(g.t - g.t[k]) <= 2.1 * g.frame_interval_s
    return bad


def fit_trace(
    g: TraceGeometry, *, start: dict | None = None, hyper: ShapeHyper | None = None
) -> TraceFit | None:
    """Fit one particle's whole trace (see the module docstring).

    Parameters
    ----------
    g : TraceGeometry
    start : dict, optional
        ``level -> {'se', 'tau_pol_s', 'tau_rec_s'}`` start values (e.g. from
        the curve fits).
    hyper : ShapeHyper, optional
        Prior of the shape (default: weak).

    Returns
    -------
    TraceFit or None
        None when the trace has too few frames or no noise estimate.
    """
    hyper = hyper or ShapeHyper()
    n_par = n_params(len(g.levels))
    if g.t.size < 3 * n_par or not (g.noise > 0):
        return None
    bounds = _bounds(g)
    x0 = _start(g, start, hyper)
    keep = np.ones(g.t.size, bool)
    robust = _solve(_TraceProblem(g, keep, g.noise, hyper, loss="soft_l1"), x0, bounds)
    keep = ~_blink_mask(g, robust.x, g.noise)
    problem = _TraceProblem(g, keep, g.noise, hyper)
    res = _solve(problem, robust.x, bounds)
    n_data = int(np.count_nonzero(keep))
    r = problem.data_residuals(res.x)
    chi2 = float(r @ r)
    redchi = chi2 / max(n_data - n_par, 1)
    cov = _covariance(res.jac, max(redchi, 1.0))
    fit = _result(g, res, cov, redchi, n_data, int(g.t.size - n_data), bounds)
    return dataclasses.replace(fit, keep=keep)


def _covariance(jac: np.ndarray, scale: float) -> np.ndarray:
    j = np.asarray(jac, float)
    try:
        u, s, vt = np.linalg.svd(j, full_matrices=False)
    except np.linalg.LinAlgError:
        return np.full((j.shape[1], j.shape[1]), np.nan)
    if s.size == 0 or not np.isfinite(s[0]) or s[0] <= 0:
        return np.full((j.shape[1], j.shape[1]), np.nan)
    null = s <= 1e-9 * s[0]
    keep = ~null
    cov = (vt[keep].T / s[keep] ** 2) @ vt[keep] * scale
    if np.any(null):  # parameters in an undetermined direction have no error (e.g. a flat trace)
        bad = np.any(np.abs(vt[null]) > 1e-3, axis=0)
        cov[bad, :] = np.nan
        cov[:, bad] = np.nan
    return cov


def _result(g, res, cov, redchi, n_data, n_masked, bounds) -> TraceFit:
    n = len(g.levels)
    x = res.x
    err = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    err = np.where(np.isfinite(np.diag(cov)), err, np.nan)
    b, a1, rp, rr, se, tp, tr = _unpack(x, n)
    lo, hi = bounds
    rows = []
    for k, lev in enumerate(g.levels):
        ip, ir = 4 + n + k, 4 + 2 * n + k
        p1, p2 = _component_times(tp[k], rp, a1)
        r1, r2 = _component_times(tr[k], rr, a1)
        u1, u2 = 1 - math.exp(-g.on_s[k] / p1), 1 - math.exp(-g.on_s[k] / p2)
        rest_rec = (a1 * u1 * math.exp(-g.off_s[k] / r1) + (1 - a1) * u2 * math.exp(-g.off_s[k] / r2)) / max(
            a1 * u1 + (1 - a1) * u2, 1e-300
        )
        rows.append(
            {
                "level": lev,
                "tau_pol_s": float(tp[k]),
                "tau_pol_err_s": float(tp[k] * err[ip]),
                "tau_rec_s": float(tr[k]),
                "tau_rec_err_s": float(tr[k] * err[ir]),
                "se": float(se[k]),
                "se_err": float(err[4 + k]),
                "tau_pol_fast_s": float(p1),
                "tau_pol_slow_s": float(p2),
                "tau_rec_fast_s": float(r1),
                "tau_rec_slow_s": float(r2),
                "pol_settled_fraction": float(a1 * u1 + (1 - a1) * u2),
                "rec_settled_fraction": float(1.0 - rest_rec),
                "pol_at_bound": bool(min(x[ip] - lo[ip], hi[ip] - x[ip]) < 1e-3),
                "rec_at_bound": bool(min(x[ir] - lo[ir], hi[ir] - x[ir]) < 1e-3),
            }
        )
    return TraceFit(
        level_rows=tuple(rows),
        frac=float(a1),
        frac_err=float(err[1]),
        rho_pol=float(rp),
        rho_pol_err=float(err[2]),
        rho_rec=float(rr),
        rho_rec_err=float(err[3]),
        success=bool(res.success),
        redchi=float(redchi),
        n_frames=int(n_data),
        n_masked=int(n_masked),
        x=x,
    )


def population_shape(fits, *, floors: dict | None = None) -> ShapeHyper:
    """Hierarchical prior of the shape from first-pass fits (DerSimonian-Laird mean and spread).

    Parameters
    ----------
    fits : iterable of TraceFit
        First-pass fits (weak prior) of the particles that may inform the shape.
    floors : dict, optional
        Smallest prior widths (default a1 0.05, rho 0.1).

    Returns
    -------
    ShapeHyper
        The weak default when fewer than 3 particles have a determined shape.
    """
    floors = {**_SHAPE_FLOORS, **(floors or {})}
    fits = [f for f in fits if f is not None and f.success]
    prior, n_used = {}, 0
    for name in ("a1", "rho_pol", "rho_rec"):
        vals = np.array([f.shape()[name] for f in fits], float).reshape(-1, 2)
        weak_sd = _WEAK[name][1]
        ok = np.isfinite(vals).all(axis=1) & (vals[:, 1] > 0) & (vals[:, 1] < 0.8 * weak_sd)
        if np.count_nonzero(ok) < 3:
            prior[name] = _WEAK[name]
            continue
        mean, spread = _random_effects(vals[ok, 0], vals[ok, 1])
        prior[name] = (float(mean), float(max(spread, floors[name])))
        n_used = max(n_used, int(np.count_nonzero(ok)))
    return ShapeHyper(prior=prior, n_particles=n_used)


def _covariance_from_blocks(blocks: Iterable[np.ndarray], prior: np.ndarray, sizes: list[int]) -> list:
    """Every particle's diagonal block of the joint fit's covariance, from its dense data block.

    The joint Jacobian ``J`` is block-arrow: one block of data rows per
    particle (touching only its parameters; reduced here to the triangular
    factor of its QR decomposition, ``R.T R`` the block's ``J.T J``: a block
    may be such a factor already), then
    the prior rows ``prior`` (3 per particle: its shape parameter and the
    population mean ``mu``, the last three columns). The diagonal blocks of
    ``(J.T J)^-1`` follow from each particle's own pseudo-inverse and the
    3 x 3 Schur complement of ``mu``: linear in the number of particles (an
    SVD of the whole ``J`` is cubic), and the blocks are consumed one at a
    time (the whole Jacobian is never held). Directions no data determine
    (singular values below 1e-9 of the largest) leave their parameters
    without an error (NaN), as :func:`_covariance` does; they never involve
    the shape parameters, which the prior rows determine.
    """
    n_part = len(sizes)
    mu = slice(prior.shape[1] - 3, prior.shape[1])
    parts, c = [], 0
    for i, (size, block) in enumerate(zip(sizes, blocks, strict=True)):
        nr = block.shape[0]
        tri = cast(np.ndarray, np.linalg.qr(block, mode="r")) if nr else np.zeros((0, size))
        rows = prior[3 * i : 3 * i + 3]
        m = np.vstack([tri, rows[:, c : c + size]])
        u, sv, vt = np.linalg.svd(m, full_matrices=False)
        parts.append((sv, vt, m.T @ np.vstack([np.zeros((tri.shape[0], 3)), rows[:, mu]]), c, size))
        c += size
    top = max((float(p[0][0]) for p in parts if p[0].size and np.isfinite(p[0][0])), default=0.0)
    h_mu = sum(
        (prior[3 * i : 3 * i + 3, mu].T @ prior[3 * i : 3 * i + 3, mu] for i in range(n_part)),
        np.zeros((3, 3)),
    )
    inv, null_params = [], []
    for sv, vt, _, _, size in parts:
        keep = sv > 1e-9 * top
        inv.append((vt[keep].T / sv[keep] ** 2) @ vt[keep])
        null_params.append(
            np.any(np.abs(vt[~keep]) > 1e-3, axis=0) if np.any(~keep) else np.zeros(size, bool)
        )
    schur = h_mu - sum((p[2].T @ a @ p[2] for p, a in zip(parts, inv, strict=True)), np.zeros((3, 3)))
    s_inv = np.linalg.pinv(schur)
    out = []
    for p, a, bad in zip(parts, inv, null_params, strict=True):
        g = a @ p[2]
        cov = a + g @ s_inv @ g.T
        cov[bad, :] = np.nan
        cov[:, bad] = np.nan
        out.append(cov)
    return out


# The population mean has converged when no component moves by 1e-3 of the population spread (its
# standard error is the spread / sqrt(particles): 1e-3 of the spread is 1.4 % of it at 200 particles).
# The per-particle fits' own tolerance (1e-7) leaves mu jittering at ~3e-4 of the spread (measured on
# the 16-particle demo), so a tighter tolerance would only chase that.
_MU_TOL = 1e-3
_MAX_ROUNDS = 30


def fit_population_traces(
    geoms: list[TraceGeometry],
    starts: list[TraceFit],
    keeps: list[np.ndarray],
    sd: dict,
    *,
    mapper: Callable = map,
) -> tuple[list[TraceFit], ShapeHyper]:
    """Joint fit of all particles: own shapes drawn from a population ``N(mu, sd^2)``, ``mu`` fitted.

    Maximizes the joint posterior of every particle's parameters and the
    population mean shape ``mu`` (empirical Bayes with the between-particle
    spread ``sd`` fixed, :func:`population_shape`). Averaging single-particle
    shape estimates instead is biased (they are skewed along the
    ``a1``-``R`` degeneracy); the joint fit is not. Each particle's noise is
    scaled to its first-pass reduced chi-square; the errors come from the
    joint covariance (they include the uncertainty of ``mu``).

    The joint optimum is found block-wise, exploiting its structure: for a
    given ``mu`` the particles are independent fits with the prior
    ``N(mu, sd^2)`` (run through ``mapper``, in parallel if it is), and the
    best ``mu`` for given particles is their mean shape (clipped to its
    bounds). Newton steps on that 3-dimensional fixed point, with the
    particles' sensitivities ``d shape / d mu`` from their Gauss-Newton
    Hessians, converge in a few rounds to the stationary point of the joint
    posterior; one global trust-region solve over all particles' parameters
    at once reaches the same point but needs thousands of iterative
    (``lsmr``) solves of the ill-conditioned joint system (96 % of a
    200-particle run, ``benchmarks/README.md``).

    Parameters
    ----------
    geoms, starts, keeps : lists
        Per particle: geometry, first-pass fit (start values, reduced
        chi-square) and the frames kept (blinks masked).
    sd : dict
        ``name -> sd`` of the population spread (a1, rho_pol, rho_rec).
    mapper : callable, optional
        Map-like callable over the per-particle fits (chunked, single-threaded
        BLAS per task, see :func:`plscope.kinetics._parallel.map_particles`);
        the builtin ``map`` by default. The result does not depend on it.

    Returns
    -------
    (list of TraceFit, ShapeHyper)
        A particle's fit has ``success=False`` when its own fit or the
        population mean did not converge.
    """
    sizes = [n_params(len(g.levels)) for g in geoms]
    sig = [g.noise * math.sqrt(max(s.redchi, 1.0)) for g, s in zip(geoms, starts, strict=True)]
    sdv = np.array([sd[n] for n in _SHAPE_NAMES])
    offs = np.cumsum([0, *sizes])
    bnds = [_bounds(g) for g in geoms]
    theta0, lo, hi = _joint_start(starts, bnds)
    xs = [theta0[offs[i] : offs[i + 1]] for i in range(len(geoms))]
    mu, inner, converged = _population_mean(
        geoms, keeps, sig, bnds, xs, theta0[-3:], (lo[-3:], hi[-3:]), sdv, mapper
    )
    theta = np.concatenate([r[0] for r in inner] + [mu])
    fun = np.concatenate(
        [r[1] for r in inner] + [(theta[offs[i] + 1 : offs[i] + 4] - mu) / sdv for i in range(len(geoms))]
    )
    success = [bool(r[2]) and converged for r in inner]
    # the covariance from one particle's block of the Jacobian at a time (the whole sparse matrix was 40 %
    # of the peak memory of an 8000-frame run, benchmarks/README.md, issue 16): each block is the data
    # rows of its last fit's Jacobian, at its parameters in theta (the reduced problem's R: R.T R = J.T J)
    covs = _covariance_from_blocks((r[4] for r in inner), _prior_rows(offs, sdv), sizes)
    fits = _joint_particle_fits(theta, fun, covs, success, geoms, keeps, offs, sizes, bnds)
    hyper = ShapeHyper(
        prior={n: (float(mu[k]), float(sdv[k])) for k, n in enumerate(_SHAPE_NAMES)}, n_particles=len(geoms)
    )
    return fits, hyper


def _fit_given_mu(task, mu: np.ndarray, sdv: np.ndarray):
    """One particle's fit with the prior ``N(mu, sd^2)`` on its shape: parameters, data residuals,
    success, ``d shape / d mu`` (3 x 3, Gauss-Newton, parameters at a bound held) and the data rows of
    the Jacobian at the parameters (the reduced problem's triangular factor and a zero row, or the
    frames' rows; the prior rows left out)."""
    g, keep, sigma, x0, bounds = task
    hyper = ShapeHyper(prior={n: (float(mu[k]), float(sdv[k])) for k, n in enumerate(_SHAPE_NAMES)})
    problem = _TraceProblem(g, keep, sigma, hyper)
    res = _solve(problem, x0, bounds)
    sens = _shape_sensitivity(res.jac, res.x, bounds, sdv)
    return res.x, problem.data_residuals(res.x), bool(res.success), sens, np.asarray(res.jac)[:-3]


def _shape_sensitivity(jac, x: np.ndarray, bounds, sdv: np.ndarray) -> np.ndarray:
    """``d shape_a / d mu_b`` of a fit at its optimum: ``(H^-1)_ab / sd_b^2`` with ``H = J.T J``
    over the parameters not at a bound (those stay where they are)."""
    lo, hi = bounds
    free = np.flatnonzero((x - lo > 1e-10 * (1 + np.abs(lo))) & (hi - x > 1e-10 * (1 + np.abs(hi))))
    j = np.asarray(jac)[:, free]
    h_inv = np.linalg.pinv(j.T @ j)
    sens = np.zeros((3, 3))
    for a in range(3):
        for b in range(3):
            if 1 + a in free and 1 + b in free:
                pa, pb = np.searchsorted(free, [1 + a, 1 + b])
                sens[a, b] = h_inv[pa, pb] / sdv[b] ** 2
    return sens


def _population_mean(geoms, keeps, sig, bnds, xs, mu, mu_bounds, sdv, mapper):
    """The joint optimum block-wise: ``mu`` with ``mean(shape_i(mu)) = mu``, and the particles' fits.

    Quasi-Newton on that 3-dimensional equation: the first Jacobian from the
    particles' Gauss-Newton sensitivities, then Broyden updates (particles
    held at a bound of their shape make the fixed point converge only
    linearly otherwise). A step that raises the joint cost is not taken.
    Converged when the step is below ``_MU_TOL`` of the spread or the cost
    falls by less than ``_FTOL`` of itself (``least_squares``' ``ftol``).
    Returns ``(mu, [per-particle result of _fit_given_mu], converged)``.
    """
    mu_lo, mu_hi = mu_bounds
    fit = functools.partial(_fit_round, geoms, keeps, sig, bnds, sdv=sdv, mapper=mapper)
    inner, cost, resid = fit(xs, mu, mu_bounds)
    jac = np.mean([r[3] for r in inner], axis=0) - np.eye(3)
    for _ in range(_MAX_ROUNDS):
        try:
            step = -np.linalg.solve(jac, resid)
        except np.linalg.LinAlgError:
            step = resid
        new = np.clip(mu + np.where(np.isfinite(step), step, resid), mu_lo, mu_hi)
        if np.all(np.abs(new - mu) < _MU_TOL * sdv):
            return mu, inner, True
        trial, new_cost, new_resid = fit([r[0] for r in inner], new, mu_bounds)
        dmu = new - mu
        jac = jac + np.outer(new_resid - resid - jac @ dmu, dmu) / float(dmu @ dmu)
        if not new_cost <= cost:  # uphill (or NaN): keep mu, retry with the updated Jacobian
            continue
        small = cost - new_cost <= _FTOL * new_cost
        mu, inner, cost, resid = new, trial, new_cost, new_resid
        if small:
            return mu, inner, True
    return mu, inner, False


def _fit_round(geoms, keeps, sig, bnds, xs, mu, mu_bounds, *, sdv, mapper):
    """Every particle fitted given ``mu``: results, the joint cost and ``clip(mean shape) - mu``."""
    tasks = list(zip(geoms, keeps, sig, xs, bnds, strict=True))
    inner = map_particles(mapper, functools.partial(_fit_given_mu, mu=mu, sdv=sdv), tasks)
    shapes = np.array([r[0][1:4] for r in inner])
    cost = 0.5 * sum(float(r[1] @ r[1]) for r in inner) + 0.5 * float(np.sum(((shapes - mu) / sdv) ** 2))
    return inner, cost, np.clip(shapes.mean(axis=0), *mu_bounds) - mu


def _prior_rows(offs, sdv: np.ndarray) -> np.ndarray:
    """The prior rows of the joint Jacobian, dense: particle ``i``'s shape parameter ``k`` (row
    ``3 i + k``) at ``1 / sd_k``, the population mean's at ``-1 / sd_k``."""
    n_part, n_par = len(offs) - 1, int(offs[-1]) + 3
    prior = np.zeros((3 * n_part, n_par))
    for i in range(n_part):
        for k in range(3):
            prior[3 * i + k, [offs[i] + 1 + k, n_par - 3 + k]] += [1.0 / sdv[k], -1.0 / sdv[k]]
    return prior


def _joint_start(starts: list[TraceFit], bnds: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Start vector (every particle's first pass, then their mean shape) and bounds of the joint fit."""
    theta0 = np.concatenate([s.x for s in starts] + [np.mean([s.x[1:4] for s in starts], axis=0)])
    lo = np.concatenate([b[0] for b in bnds] + [np.array([_A1_BOUNDS[0], 0.0, 0.0])])
    hi = np.concatenate([b[1] for b in bnds] + [np.array([_A1_BOUNDS[1], _RHO_MAX, _RHO_MAX])])
    margin = np.minimum(1e-9, 0.25 * (hi - lo))
    return np.clip(theta0, lo + margin, hi - margin), lo, hi


def _joint_particle_fits(theta, fun, covs, success, geoms, keeps, offs, sizes, bnds) -> list[TraceFit]:
    """Every particle's :class:`TraceFit` out of the joint solution and its covariance blocks."""
    fits = []
    r0 = 0
    for i, g in enumerate(geoms):
        sl = slice(offs[i], offs[i + 1])
        n_data = int(np.count_nonzero(keeps[i]))
        chi2 = float(np.sum(fun[r0 : r0 + n_data] ** 2))
        r0 += n_data
        sub = type("R", (), {"x": theta[sl], "success": success[i]})()
        fits.append(
            _result(
                g, sub, covs[i], chi2 / max(n_data - sizes[i], 1), n_data, int(g.t.size - n_data), bnds[i]
            )
        )
    return fits
