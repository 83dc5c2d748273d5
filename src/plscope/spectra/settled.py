"""Settled peak shifts from a fit of each particle's whole peak-position trace.

The peak shift follows the polarization of the particle, as the PL quench
does: it relaxes towards a settled value ``S(E)`` while the field is ON and
back to the field-off peak while it is OFF, and the state is carried over
from one half cycle to the next (no reset at an edge). When a slow component
has not settled within the half period, the frames at the end of the window
(the histograms of :mod:`plscope.spectra.shifts`) sit short of ``S(E)`` and
the field-off frames short of the baseline. Here every particle's trace of
well-fitted, non-switching frames is fitted with

    peak(t) = b(t) + sum_i a_i x_i(t),   dx_i/dt = (target - x_i) / tau_i,

``target = S(level)`` while ON and 0 while OFF, two components with
amplitudes ``a, 1 - a`` and times ``c_i tau`` (``a c1 + (1 - a) c2 = 1``:
``tau`` is the amplitude-weighted time, as in :mod:`plscope.kinetics`),
``tau = tau_pol(E)`` ON and ``tau_rec`` OFF, each phase with its own
ratio ``c2 / c1``, ``tau_pol = L / (mu E)`` scaling as ``1 / E`` (one time
for all levels, the physics the mobility rests on); ``b(t)`` the field-off
peak, a quadratic (Legendre) polynomial in time over the record (a slow
drift). Frames average the model over their exposure.

The PL of the same spectra is quenched by the same polarization, so the
spectral intensity (where every frame has one) is fitted jointly, sharing
the times and shape: ``I(t) = B(t) (1 - sum_j D_j x_j(t))`` plus a constant,
``B`` cubic in time (bleaching), linear in the products ``B D_j``. The
quench is measured with far less noise than the shift, and it is the shape
that decides how far an unsettled shift is extrapolated: with the peak
alone, the settled shift of a slow biexponential scattered by 4-12 % per
particle at the validation's noise. Each series is weighted by its own
noise (first the robust spread of its frame-to-frame steps, then of its
residuals).

The model is linear in ``S``, ``B D_j`` and the drift coefficients: they are
solved by linear least squares inside the nonlinear fit of the times and
shapes (variable projection); frames beyond five robust sigmas of the first
fit are left out of a second; the standard errors come from the full
weighted Jacobian at the optimum, each series weighted by its residual root
mean square times the square root of a block factor: the mean over the half
cycles of ``n m^2 / sigma^2`` (``m`` the mean residual of a half cycle of
``n`` frames), 1 for white residuals and larger when the model misses
structure that repeats within half cycles, so that the shift's error grows
with the mismatch (never shrinks).

Whether the intensity does share the peak's kinetics is checked: the peak
is refitted alone from the joint optimum, and when its own times and shape
lower its chi-square (in units of its residual variance times its block
factor) by more than the 99.9 % quantile of chi-square with 5 degrees of
freedom (the parameters it frees), the shape forced by the intensity is not
the peak's, and the peak alone's values are reported
(``intensity_consistent`` False). The chi-square drop sees a mismatch the
block factor misses under a noisy peak (0.15 nm per frame: block factor
1.0-1.9, the joint shift ~ 20 % short by ~ 20 of its errors). The peak
alone's errors cover the truth where it determines its shape (rms pull
1.00 over 30 noise draws, 4 cycles at 0.03 nm) but not where it does not
(1.55 over 40 draws at 0.15 nm: a fit on a settled fast shape reports the
plateau's small error while the truth is a slow unsettled one): such rows
are flagged by :mod:`plscope.spectra.qc` (``shifts_intensity_consistent``).

``pol_settled_fraction`` / ``rec_settled_fraction`` are the fractions of the
fitted response reached by the end of the (median) ON / OFF window from
rest; a row is ``not_settled`` when either is below 0.95, as in
``kinetics.csv``.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..columns import SETTLED_SHIFT_COLUMNS

__all__ = ["SETTLED_SHIFT_COLUMNS", "SETTLE_TARGET", "SettledTraceFit", "fit_settled_trace", "settled_shifts"]

#: a response is settled when it reached this fraction of its amplitude by the end of its window
SETTLE_TARGET = 0.95
#: bounds of the fast fraction and of the ratio tau2 / tau1 of each phase
_FRAC_BOUNDS = (0.05, 0.95)
_LOG_RATIO_BOUNDS = (0.0, math.log(30.0))
#: frames farther than this many robust sigmas from the first fit are left out of the second
_CLIP_SIGMA = 5.0
_MIN_FRAMES = 20
#: degree of the Legendre polynomial of the field-off peak over the record (a slow drift)
_DRIFT_DEGREE = 2
#: degree of the intensity's unquenched level ``B(t)`` over the record (bleaching): a quadratic left an
#: exponential bleach (600 s over a 372 s record) in the shape, the settled shift ~ 1 % (one standard
#: error at 0.03 nm) too large (rms pull 1.35 over 40 noise draws; 0.94 with a cubic)
_BLEACH_DEGREE = 3
#: the peak fitted alone lowers the peak's chi-square (in units of its noise and block factor) by more
#: than this: the intensity's kinetics are not the peak's. The 99.9 % quantile of chi-square with 5
#: degrees of freedom (the times and shape the peak alone frees), so a shared-kinetics particle is taken
#: for a mismatch once in a thousand
_MISMATCH_CHI2 = 20.515
#: the fitted series: the peak position and (where present) the spectral intensity
PEAK, INTENSITY = "peak", "intensity"


@dataclass(frozen=True)
class _Geometry:
    """Segments of one record: lead-in, then ON and OFF of every cycle."""

    start_s: np.ndarray  # (n_seg,)
    duration_s: np.ndarray  # (n_seg,) inf for the last
    is_on: np.ndarray  # (n_seg,) bool
    level_index: np.ndarray  # (n_seg,) index into levels (ON segments), -1 OFF
    levels: np.ndarray  # level labels, sorted
    span_s: tuple[float, float]  # first and last instant of the record (the drift polynomial's domain)
    on_window_s: np.ndarray  # median ON duration per level
    off_window_s: float  # median OFF duration
    fields: np.ndarray  # median field of every level, kV/cm
    field_ref: float  # the highest of them


def _geometry(cycles: pd.DataFrame, t_first: float, t_last: float) -> _Geometry:
    c = cycles.sort_values("on_start_s", kind="stable")
    on0 = c["on_start_s"].to_numpy(float)
    on1 = c["on_end_s"].to_numpy(float)
    lev = c["level"].to_numpy(np.int64)
    levels = np.unique(lev)
    starts = [min(t_first, on0[0]) - 1.0]
    is_on, lidx = [False], [-1]
    for k in range(on0.size):
        starts += [on0[k], on1[k]]
        is_on += [True, False]
        lidx += [int(np.searchsorted(levels, lev[k])), -1]
    start = np.asarray(starts)
    dur = np.append(np.diff(start), np.inf)
    off_end = c["off_end_s"].to_numpy(float)
    span = (min(t_first, float(on0[0])), max(t_last, float(on1[-1])))
    on_w = np.array([np.median((on1 - on0)[lev == v]) for v in levels])
    off_d = (off_end - on1)[np.isfinite(off_end)]
    off_w = float(np.median(off_d)) if off_d.size else float(np.median(on1 - on0))
    f = c["field_kV_per_cm"].to_numpy(float)
    fields = np.array([np.median(np.abs(f[lev == v])) for v in levels])
    fields = np.where(fields > 0, fields, 1.0)
    return _Geometry(
        start,
        dur,
        np.asarray(is_on),
        np.asarray(lidx),
        levels,
        span,
        on_w,
        off_w,
        fields,
        float(fields.max()),
    )


def _components(frac: float, log_ratio: float) -> np.ndarray:
    """``c_i = tau_i / tau`` with ``frac c1 + (1 - frac) c2 = 1`` and ``c2 / c1 = exp(log_ratio)``."""
    r = math.exp(log_ratio)
    c1 = 1.0 / (frac + (1.0 - frac) * r)
    return np.array([c1, r * c1])


def _unpack(theta: np.ndarray, g: _Geometry):
    """``(tau_pol per level, tau_rec, frac, log_ratio_pol, log_ratio_rec)`` from the fit parameters.

    ``theta = (log tau_pol at the highest field, log tau_rec, frac, log_ratio_pol, log_ratio_rec)``;
    ``tau_pol = L / (mu E)`` scales as ``1 / E`` (the drift of the ions across the particle).
    """
    tau_pol = math.exp(theta[0]) * g.field_ref / g.fields
    return tau_pol, math.exp(theta[1]), float(theta[2]), float(theta[3]), float(theta[4])


def _segment_times(theta: np.ndarray, g: _Geometry) -> tuple[np.ndarray, np.ndarray]:
    """Amplitudes ``(a, 1 - a)`` and component times of every segment, shape (n_seg, 2)."""
    tau_pol, tau_rec, frac, lr_pol, lr_rec = _unpack(theta, g)
    c_pol = _components(frac, lr_pol)
    c_rec = _components(frac, lr_rec)
    taus = np.where(
        g.is_on[:, None], tau_pol[np.clip(g.level_index, 0, None)][:, None] * c_pol, tau_rec * c_rec
    )
    return np.array([frac, 1.0 - frac]), taus


def _responses(theta: np.ndarray, g: _Geometry, t0: np.ndarray, exposure_s: float) -> np.ndarray:
    """Unit response of every level at every frame (exposure averaged), shape (n, n_levels)."""
    amps, taus = _segment_times(theta, g)
    # the segment of the exposure's middle (a frame labelled ON or OFF lies within one segment
    # up to 0.1 % of its exposure); the exposure average starts at the segment start at the earliest
    seg = _segment_of(g, t0, exposure_s)
    dt = np.clip(t0 - g.start_s[seg], 0.0, None)
    tau_f = taus[seg]  # (n, 2)
    if exposure_s > 0:
        avg = tau_f / exposure_s * -np.expm1(-exposure_s / tau_f)
    else:
        avg = np.ones_like(tau_f)
    decay = np.exp(-dt[:, None] / tau_f) * avg  # (n, 2): weight of the state at the segment start
    keep = np.exp(-g.duration_s[:, None] / taus)  # state carried to the next segment
    n_lev = g.levels.size
    resp = np.empty((t0.size, n_lev))
    for j in range(n_lev):
        target = (g.is_on & (g.level_index == j)).astype(float)
        x0 = np.zeros((g.start_s.size, 2))
        for s in range(g.start_s.size - 1):
            x0[s + 1] = target[s] + (x0[s] - target[s]) * keep[s]
        x = target[seg, None] + (x0[seg] - target[seg, None]) * decay
        resp[:, j] = x @ amps
    return resp


def _segment_of(g: _Geometry, t0: np.ndarray, exposure_s: float) -> np.ndarray:
    """Index of the segment holding each exposure's middle."""
    return np.clip(np.searchsorted(g.start_s, t0 + 0.5 * exposure_s, side="right") - 1, 0, g.start_s.size - 1)


def _channel_design(kind: str, hats: np.ndarray, resp: np.ndarray) -> np.ndarray:
    """Design of one channel from the drift basis and the unit responses.

    The peak is ``b(t) + sum_j S_j x_j(t)``; the intensity ``B(t) (1 - sum_j D_j x_j(t))`` plus a
    constant background, with ``B`` cubic in time (bleaching): linear in the products, its
    columns are the basis and the basis times every response.
    """
    if kind == PEAK:
        return np.hstack([hats, resp])
    prod = hats[:, :, None] * resp[:, None, :]
    return np.hstack([hats, prod.reshape(hats.shape[0], -1)])


def _baseline_basis(g: _Geometry, t_s: np.ndarray, degree: int) -> np.ndarray:
    """Columns of a slow baseline (field-off peak, unquenched intensity): Legendre polynomials of
    time over the record."""
    lo, hi = g.span_s
    x = np.clip(2.0 * (t_s - lo) / max(hi - lo, 1e-9) - 1.0, -1.0, 1.0)
    return np.polynomial.legendre.legvander(x, degree)


@dataclass
class _Channel:
    """One fitted series (peak position or spectral intensity) of the frames."""

    kind: str
    y: np.ndarray
    keep: np.ndarray  # frames used (outlier clip)
    sigma: float  # noise scale: weight 1 / sigma


def _designs(theta, g, t0, exposure_s, channels) -> list[np.ndarray]:
    mid = t0 + 0.5 * exposure_s
    hats = {PEAK: _baseline_basis(g, mid, _DRIFT_DEGREE), INTENSITY: _baseline_basis(g, mid, _BLEACH_DEGREE)}
    resp = _responses(theta, g, t0, exposure_s)
    return [_channel_design(c.kind, hats[c.kind], resp) for c in channels]


def _project(theta, g, t0, exposure_s, channels):
    """Designs and linear coefficients of every channel (least squares on its kept frames)."""
    designs = _designs(theta, g, t0, exposure_s, channels)
    return designs, [_linear_solve(a[c.keep], c.y[c.keep]) for a, c in zip(designs, channels)]


def _linear_solve(a: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least squares by the (column-scaled) normal equations: a few well-conditioned columns, and
    LAPACK's threaded ``gelsd`` is ~100 times slower on a shared machine."""
    scale = np.sqrt(np.sum(a * a, axis=0))
    scale[scale == 0] = 1.0
    an = a / scale
    try:
        return np.linalg.solve(an.T @ an, an.T @ y) / scale
    except np.linalg.LinAlgError:
        return np.linalg.lstsq(a, y, rcond=None)[0]


def settled_fraction(tau_s: float, frac: float, log_ratio: float, window_s: float) -> float:
    """Fraction of a biexponential response reached after ``window_s`` from rest."""
    c = _components(frac, log_ratio)
    return float(
        1.0
        - (frac * math.exp(-window_s / (c[0] * tau_s)) + (1 - frac) * math.exp(-window_s / (c[1] * tau_s)))
    )


@dataclass(frozen=True)
class SettledTraceFit:
    """Fit of one particle's peak-position trace (see the module text).

    Attributes
    ----------
    levels : numpy.ndarray
        Field levels, in the order of the per-level arrays.
    shift_nm, shift_err_nm : numpy.ndarray
        Settled shift ``S`` of every level and its standard error.
    tau_pol_s : numpy.ndarray
        Amplitude-weighted polarization time of every level.
    tau_rec_s : float
    pol_settled_fraction : numpy.ndarray
        Fraction of the response reached by the end of the level's ON window.
    rec_settled_fraction : float
    fit_ok : bool
        Converged, finite errors, no time constant at its upper bound (an
        unconstrained extrapolation).
    n_frames : int
        Frames fitted (after the outlier clip).
    rms_nm : float
        Robust noise scale of the peak residuals.
    joint_intensity : bool
        The times and shape were fitted jointly with the spectral intensity.
    error_inflation : float
        Variance factor of the peak channel for residuals correlated within
        half cycles (1 when they look white; see ``_block_factor``).
    intensity_consistent : bool
        False when the joint fit left structure in the peak's residuals that
        the peak alone did not: the values are then the peak alone's.
    """

    levels: np.ndarray
    shift_nm: np.ndarray
    shift_err_nm: np.ndarray
    tau_pol_s: np.ndarray
    tau_rec_s: float
    pol_settled_fraction: np.ndarray
    rec_settled_fraction: float
    fit_ok: bool
    n_frames: int
    rms_nm: float
    joint_intensity: bool = False
    error_inflation: float = 1.0
    intensity_consistent: bool = True


def _bounds(g: _Geometry, frame_s: float) -> tuple[np.ndarray, np.ndarray]:
    tau_lo = math.log(max(0.5 * frame_s, 1e-6))
    tau_hi = math.log(10.0 * max(float(np.max(g.on_window_s)), g.off_window_s))
    lo = np.r_[tau_lo, tau_lo, _FRAC_BOUNDS[0], _LOG_RATIO_BOUNDS[0], _LOG_RATIO_BOUNDS[0]]
    hi = np.r_[tau_hi, tau_hi, _FRAC_BOUNDS[1], _LOG_RATIO_BOUNDS[1], _LOG_RATIO_BOUNDS[1]]
    return lo, hi


def _start(g: _Geometry, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """A fifth of the windows, fast fraction 0.6, ``tau2 / tau1`` 2.7 (the demo's shape)."""
    tau0 = np.r_[0.2 * g.on_window_s[-1], 0.2 * g.off_window_s]
    x0 = np.r_[np.log(tau0), 0.6, math.log(2.7), math.log(2.7)]
    return np.clip(x0, lo + 1e-6, hi - 1e-6)


def _slow_start(g: _Geometry, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """The windows themselves, fast fraction 0.6, ``tau2 / tau1`` at its bound (a slow, unsettled shape)."""
    tau0 = np.r_[g.on_window_s[-1], g.off_window_s]
    x0 = np.r_[np.log(tau0), 0.6, _LOG_RATIO_BOUNDS[1], _LOG_RATIO_BOUNDS[1]]
    return np.clip(x0, lo + 1e-6, hi - 1e-6)


def _robust_sigma(r: np.ndarray) -> float:
    return 1.4826 * float(np.median(np.abs(r - np.median(r))))


def _residuals(theta, g, t0, exposure_s, channels) -> np.ndarray:
    """Weighted residuals of every channel's kept frames (linear coefficients projected out)."""
    designs, betas = _project(theta, g, t0, exposure_s, channels)
    return np.concatenate(
        [(a[c.keep] @ b - c.y[c.keep]) / c.sigma for a, b, c in zip(designs, betas, channels)]
    )


def _solve(g, t0, exposure_s, channels, x0, bounds, ftol=1e-8):
    from scipy.optimize import least_squares

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return least_squares(
            _residuals,
            x0,
            bounds=bounds,
            x_scale=1.0,
            diff_step=1e-4,
            max_nfev=200,
            ftol=ftol,
            args=(g, t0, exposure_s, channels),
        )


def _fit_clipped(g, t0, exp_s, channels, x0, bounds) -> tuple[np.ndarray, int]:
    """Fit, set each channel's noise scale from its residuals, leave out frames beyond
    :data:`_CLIP_SIGMA` of it, refit: ``(theta, status)``; the channels are updated in place."""
    res = _solve(g, t0, exp_s, channels, x0, bounds)
    designs, betas = _project(res.x, g, t0, exp_s, channels)
    for a, b, c in zip(designs, betas, channels):
        r = c.y - a @ b
        sig = _robust_sigma(r[c.keep])
        if sig > 0:
            c.sigma = sig
            c.keep = c.keep & (np.abs(r) <= _CLIP_SIGMA * sig)
    res = _solve(g, t0, exp_s, channels, res.x, bounds)
    return res.x, int(res.status)


def _block_factor(r: np.ndarray, seg: np.ndarray, sigma: float) -> float:
    """Variance inflation of a channel whose residuals are correlated within half cycles.

    Under white noise the mean residual of a half cycle of ``n`` frames has variance
    ``sigma^2 / n``; the mean of ``n m^2 / sigma^2`` over the half cycles is then 1. A model that
    misses the shape of the response leaves residual runs that raise it: the channel's weight is
    divided by it (never by less than 1).
    """
    stats = []
    for s in np.unique(seg):
        rs = r[seg == s]
        if rs.size >= 3:
            stats.append(rs.size * float(np.mean(rs)) ** 2 / sigma**2)
    return max(1.0, float(np.mean(stats))) if len(stats) >= 3 else 1.0


def _covariance(theta, g, t0, exposure_s, channels) -> tuple[np.ndarray, list[np.ndarray], list[float]]:
    """Covariance of ``(theta, beta of every channel)`` from the full weighted Jacobian.

    Each channel is weighted by its residual root mean square times the square root of its
    :func:`_block_factor`. Returns the covariance, the channels' linear coefficients and factors.
    """
    designs, betas = _project(theta, g, t0, exposure_s, channels)
    seg = _segment_of(g, t0, exposure_s)
    n_lin = [b.size for b in betas]
    rows, factors = [], []
    for k, (a, b, c) in enumerate(zip(designs, betas, channels)):
        r = (c.y - a @ b)[c.keep]
        rms = float(np.sqrt(np.mean(r**2))) if r.size else np.nan
        f = _block_factor(r, seg[c.keep], rms) if rms > 0 else 1.0
        factors.append(f)
        jac = np.zeros((int(c.keep.sum()), theta.size + sum(n_lin)))
        for i in range(theta.size):
            h = 1e-5 * max(1.0, abs(theta[i]))
            th = theta.copy()
            th[i] += h
            jac[:, i] = (_designs(th, g, t0, exposure_s, [c])[0][c.keep] @ b - (a @ b)[c.keep]) / h
        off = theta.size + sum(n_lin[:k])
        jac[:, off : off + b.size] = a[c.keep]
        rows.append(jac / (rms * math.sqrt(f)))
    jac = np.vstack(rows)
    try:
        return np.linalg.pinv(jac.T @ jac), betas, factors
    except np.linalg.LinAlgError:
        n = jac.shape[1]
        return np.full((n, n), np.nan), betas, factors


def _channels(t0, y, intensity) -> list[_Channel]:
    """The peak channel, and the intensity channel when every frame has one."""
    out = [_Channel(PEAK, y, np.ones(y.size, bool), _diff_sigma(y))]
    if intensity is not None and np.all(np.isfinite(intensity)):
        s = _diff_sigma(intensity)
        if s > 0:
            out.append(_Channel(INTENSITY, intensity, np.ones(y.size, bool), s))
    return out


def _diff_sigma(y: np.ndarray) -> float:
    """Model-free noise scale of a time-ordered series: robust spread of its frame-to-frame steps."""
    s = _robust_sigma(np.diff(y)) / math.sqrt(2.0) if y.size > 2 else 0.0
    return s if s > 0 else max(float(np.std(y)), 1e-12)


def fit_settled_trace(
    time_start_s,
    peak_nm,
    cycles: pd.DataFrame,
    *,
    exposure_s: float,
    frame_s: float,
    intensity=None,
) -> SettledTraceFit | None:
    """Fit one particle's peak-position trace (frames not straddling an edge, good fits only).

    Parameters
    ----------
    time_start_s, peak_nm : array_like, shape (n,)
        Exposure start and fitted peak of every usable frame.
    cycles : pandas.DataFrame
        ON/OFF cycles (``on_start_s``, ``on_end_s``, ``off_end_s``, ``level``).
    exposure_s : float
    frame_s : float
        Frame interval (lower bound of the time constants: half of it).
    intensity : array_like, shape (n,), optional
        Spectral intensity of the same frames. The PL is quenched by the same
        polarization the peak follows, so its kinetics (times and shape) are
        shared with the peak's and fitted jointly: the quench of the PL is
        measured with far less noise than the shift, and fixes the shape
        from which the unsettled shift is extrapolated.

    Returns
    -------
    SettledTraceFit or None
        None with too few frames or no cycle.
    """
    t0 = np.asarray(time_start_s, float)
    y = np.asarray(peak_nm, float)
    inten = None if intensity is None else np.asarray(intensity, float)
    ok = np.isfinite(t0) & np.isfinite(y)
    order = np.argsort(t0[ok], kind="stable")
    t0, y = t0[ok][order], y[ok][order]
    inten = None if inten is None else inten[ok][order]
    if t0.size < _MIN_FRAMES or len(cycles) == 0:
        return None
    exp_s = float(exposure_s) if exposure_s and math.isfinite(exposure_s) else 0.0
    g = _geometry(cycles, float(t0.min()), float(t0.max()) + exp_s)
    lo, hi = _bounds(g, frame_s)
    channels = _channels(t0, y, inten)
    theta, status = _fit_clipped(g, t0, exp_s, channels, _start(g, lo, hi), (lo, hi))
    cov, betas, factors = _covariance(theta, g, t0, exp_s, channels)
    fit = _result(theta, status, g, hi, cov, betas, factors, channels)
    if len(channels) == 1:
        return fit
    ch = [_Channel(PEAK, channels[0].y, channels[0].keep.copy(), channels[0].sigma)]
    # a loose refit first (a third of the cost; it stops once a step lowers the cost by < 1e-3 of it, ~ 1
    # in chi-square for a thousand frames), converged only when its drop reaches half the threshold
    near = _solve(g, t0, exp_s, ch, theta, (lo, hi), ftol=1e-3)
    if _peak_chi2_drop(theta, near.x, g, t0, exp_s, ch[0]) <= 0.5 * _MISMATCH_CHI2:
        return fit
    near = _solve(g, t0, exp_s, ch, near.x, (lo, hi))
    if _peak_chi2_drop(theta, near.x, g, t0, exp_s, ch[0]) <= _MISMATCH_CHI2:
        return fit
    alone = _peak_alone(g, t0, exp_s, ch, near, (_start(g, lo, hi), _slow_start(g, lo, hi)), (lo, hi))
    # the joint fit is known to be wrong here: even when the peak alone fails (fit_ok False, so the
    # shift falls back to its window value), the joint values are not reported as if they were fine
    return dataclasses.replace(alone, intensity_consistent=False)


def _peak_chi2_drop(theta_joint, theta_alone, g, t0, exp_s, peak: _Channel) -> float:
    """How much the peak's own times and shape lower its chi-square below the joint fit's.

    In units of the peak alone's residual variance times its block factor; under shared kinetics
    about chi-square with ``theta.size`` degrees of freedom.
    """
    rss = []
    for th in (theta_joint, theta_alone):
        designs, betas = _project(th, g, t0, exp_s, [peak])
        rss.append((peak.y - designs[0] @ betas[0])[peak.keep])
    sigma = _robust_sigma(rss[1])
    if not sigma > 0:
        return 0.0
    seg = _segment_of(g, t0, exp_s)[peak.keep]
    f = _block_factor(rss[1], seg, float(np.sqrt(np.mean(rss[1] ** 2))))
    return float(np.sum(rss[0] ** 2) - np.sum(rss[1] ** 2)) / (sigma**2 * f)


def _peak_alone(g, t0, exp_s, ch: list[_Channel], near, starts, bounds) -> SettledTraceFit:
    """The fit of the peak alone (its frames and noise scale from the joint fit), the best of the
    fit from the joint optimum (``near``, done) and from ``starts``.

    The peak alone's chi-square can have a fast and a slow minimum a few units apart (a noisy peak
    barely tells an unsettled slow component from a settled fast one): starting from the joint
    optimum and the usual start only, 2 of 40 noise draws (4 cycles, 0.15 nm) ended in the worse one.
    """
    res = min([near, *(_solve(g, t0, exp_s, ch, x0, bounds) for x0 in starts)], key=lambda r: r.cost)
    peak = ch[0]
    designs, betas = _project(res.x, g, t0, exp_s, ch)
    ch[0].sigma = _robust_sigma((peak.y - designs[0] @ betas[0])[ch[0].keep]) or peak.sigma
    cov, betas, factors = _covariance(res.x, g, t0, exp_s, ch)
    return _result(res.x, int(res.status), g, bounds[1], cov, betas, factors, ch)


def _result(theta, status, g, hi, cov, betas, factors, channels) -> SettledTraceFit:
    n_drift, n_lev = _DRIFT_DEGREE + 1, g.levels.size
    sl = slice(theta.size + n_drift, theta.size + n_drift + n_lev)
    var = np.diag(cov)[sl]
    err = np.where(np.isfinite(var), np.sqrt(np.clip(var, 0, None)), np.nan)
    tau_pol, tau_rec, frac, lr_pol, lr_rec = _unpack(theta, g)
    pol_f = np.array([settled_fraction(tau_pol[j], frac, lr_pol, g.on_window_s[j]) for j in range(n_lev)])
    rec_f = settled_fraction(tau_rec, frac, lr_rec, g.off_window_s)
    at_top = np.any(theta[:2] >= hi[:2] - 1e-3)
    peak = channels[0]
    return SettledTraceFit(
        levels=g.levels,
        shift_nm=betas[0][n_drift:],
        shift_err_nm=err,
        tau_pol_s=tau_pol,
        tau_rec_s=tau_rec,
        pol_settled_fraction=pol_f,
        rec_settled_fraction=rec_f,
        fit_ok=bool(status > 0 and np.all(np.isfinite(err)) and not at_top),
        n_frames=int(peak.keep.sum()),
        rms_nm=float(peak.sigma),
        joint_intensity=len(channels) > 1,
        error_inflation=float(factors[0]),
    )


def settled_shifts(table: pd.DataFrame, cycles: pd.DataFrame, *, exposure_s: float) -> pd.DataFrame:
    """Settled shift of every particle and field level from its whole-trace fit.

    Parameters
    ----------
    table : pandas.DataFrame
        Frames (``spectra.csv`` rows) with ``particle_id``, ``frame_start_s``,
        ``time_s``, ``state``, ``peak_nm``, ``fit_ok``.
    cycles : pandas.DataFrame
        ON/OFF cycles of the record.
    exposure_s : float

    Returns
    -------
    pandas.DataFrame
        Columns :data:`plscope.columns.SETTLED_SHIFT_COLUMNS`, one row per
        particle and level (none for a particle with too few frames).
    """
    use = table[
        table["fit_ok"].astype(bool) & table["state"].isin(["on", "off"]) & np.isfinite(table["peak_nm"])
    ]
    times = np.sort(table["time_s"].unique())
    frame_s = float(np.median(np.diff(times))) if times.size > 1 else 1.0
    rows = []
    for pid, grp in use.groupby("particle_id", sort=True):
        fit = fit_settled_trace(
            grp["frame_start_s"],
            grp["peak_nm"],
            cycles,
            exposure_s=exposure_s,
            frame_s=frame_s,
            intensity=grp["intensity"] if "intensity" in grp.columns else None,
        )
        if fit is None:
            continue
        for j, lev in enumerate(fit.levels):
            settled = min(fit.pol_settled_fraction[j], fit.rec_settled_fraction)
            rows.append(
                (
                    int(pid),
                    int(lev),
                    float(fit.shift_nm[j]),
                    float(fit.shift_err_nm[j]),
                    float(fit.tau_pol_s[j]),
                    fit.tau_rec_s,
                    float(fit.pol_settled_fraction[j]),
                    fit.rec_settled_fraction,
                    bool(settled < SETTLE_TARGET),
                    bool(fit.joint_intensity),
                    bool(fit.intensity_consistent),
                    float(fit.error_inflation),
                    fit.fit_ok,
                    fit.n_frames,
                )
            )
    return pd.DataFrame(rows, columns=list(SETTLED_SHIFT_COLUMNS))
