"""Lorentzian line fits: one spectrum, or thousands at once.

The model is a Lorentzian of peak height ``amplitude`` and full width at half
maximum ``fwhm`` on a constant or linear baseline,

.. math::

    f(x) = \\frac{A}{1 + \\left(2 (x - x_0) / w\\right)^2} + b_0 + b_1 (x - \\bar x),

with ``\\bar x`` the mean of the sample positions (so that ``b_0`` and
``b_1`` are uncorrelated). The objective is the plain sum of squared
residuals, as in lmfit's default, and the uncertainties are those of lmfit
(``scale_covar``): the square roots of the diagonal of
``inv(J^T J) * chi2 / (m - k)``.

:func:`fit_lorentzians` fits a 2-D array of spectra (one per row) with a
*batched* Levenberg-Marquardt: every array operation acts on a block of
spectra at once (Jacobians ``(n, m, k)``, normal equations solved with one
batched ``numpy.linalg.solve``), each spectrum keeping its own damping and
stopping when it has converged. Starting values are computed for the whole
block (smoothed maximum, half-maximum width, edge baseline). It reaches the
same optimum as lmfit (``lmfit_lorentzian``) at ~100x the speed; see
``benchmarks/bench_spectra.py``. :func:`fit_lorentzians_dask` maps it over
the chunks of a dask array.

Fits never raise for bad data: a spectrum with NaNs, no peak, or a fit that
does not converge comes back with ``fit_ok`` false.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

from ..errors import PlscopeError

if TYPE_CHECKING:  # pragma: no cover
    import dask.array as da

logger = logging.getLogger(__name__)

__all__ = [
    "FIT_COLUMNS",
    "LorentzFit",
    "SpectrumFitError",
    "fit_lorentzian",
    "fit_lorentzians",
    "fit_lorentzians_dask",
    "fits_to_frame",
    "guess_lorentzians",
    "lmfit_lorentzian",
    "lorentzian",
    "lorentzian_baseline",
]

Baseline = Literal["constant", "linear"]

#: columns of the table returned by :func:`fit_lorentzians` (x units: those of ``x``)
FIT_COLUMNS = (
    "center",
    "fwhm",
    "amplitude",
    "offset",
    "slope",
    "center_err",
    "fwhm_err",
    "amplitude_err",
    "offset_err",
    "slope_err",
    "redchi",
    "n_iter",
    "fit_ok",
)
_N_OUT = len(FIT_COLUMNS)
#: default number of spectra per block of the batched fit (perf-notes: ~250 is best)
CHUNK_SPECTRA = 256
#: least peak height, in standard errors, of a usable fit
MIN_SIGNIFICANCE = 3.0
_LAMBDA0 = 1e-3
_LAMBDA_MAX = 1e12


class SpectrumFitError(PlscopeError):
    """The arrays given to a spectral fit have the wrong structure."""


# --------------------------------------------------------------------------
# model
# --------------------------------------------------------------------------


def lorentzian(x, center: float, fwhm: float, amplitude: float) -> np.ndarray:
    """Lorentzian of peak height ``amplitude`` and full width ``fwhm`` at ``center``.

    Parameters
    ----------
    x : array_like
        Sample positions (any unit: nm, pixels, cm^-1).
    center, fwhm, amplitude : float or array_like (broadcast)

    Returns
    -------
    numpy.ndarray
        ``amplitude / (1 + (2 (x - center) / fwhm)**2)``.
    """
    u = 2.0 * (np.asarray(x, dtype=float) - center) / fwhm
    return amplitude / (1.0 + u * u)


def lorentzian_baseline(
    x,
    center: float,
    fwhm: float,
    amplitude: float,
    offset: float = 0.0,
    slope: float = 0.0,
    *,
    x_ref: float | None = None,
) -> np.ndarray:
    """Lorentzian plus ``offset + slope * (x - x_ref)``.

    ``x_ref`` defaults to the mean of ``x``, as in the fits.
    """
    x = np.asarray(x, dtype=float)
    ref = float(np.mean(x)) if x_ref is None else float(x_ref)
    return lorentzian(x, center, fwhm, amplitude) + offset + slope * (x - ref)


def _model(params: np.ndarray, x: np.ndarray, xr: np.ndarray, linear: bool) -> np.ndarray:
    """Model values, shape (n, m), for parameters (n, k) = (A, x0, w, b0[, b1])."""
    a, c, w, b0 = params[:, 0:1], params[:, 1:2], params[:, 2:3], params[:, 3:4]
    u = (2.0 * (x[None, :] - c)) / w
    f = a / (1.0 + u * u) + b0
    if linear:
        f += params[:, 4:5] * xr[None, :]
    return f


def _basis(x: np.ndarray, linear: bool) -> np.ndarray:
    """Baseline basis functions, shape (m, 1) or (m, 2): ``1`` and ``x - mean(x)``."""
    xr = x - x.mean()
    return np.column_stack([np.ones_like(x), xr]) if linear else np.ones((x.size, 1))


def _normal_equations(
    params: np.ndarray, x: np.ndarray, basis: np.ndarray, resid: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """``J^T J`` (n, k, k) and ``J^T r`` (n, k) of the model at ``params``.

    Only the three Lorentzian columns of the Jacobian are formed (as a
    contiguous ``(n, 3, m)`` array); the baseline columns are the fixed
    ``basis``, so their blocks are matrix products with it.
    """
    n, k = params.shape
    a, c, w = params[:, 0:1], params[:, 1:2], params[:, 2:3]
    u = (2.0 * (x[None, :] - c)) / w
    lor = 1.0 / (1.0 + u * u)
    t = (a / w) * lor * lor
    j3 = np.empty((n, 3, x.size))
    j3[:, 0] = lor
    np.multiply(t, u, out=j3[:, 1])
    np.multiply(j3[:, 1], u, out=j3[:, 2])
    j3[:, 1] *= 4.0
    j3[:, 2] *= 2.0
    jtj = np.empty((n, k, k))
    jtj[:, :3, :3] = j3 @ j3.transpose(0, 2, 1)
    cross = j3 @ basis  # (n, 3, kb)
    jtj[:, :3, 3:] = cross
    jtj[:, 3:, :3] = cross.transpose(0, 2, 1)
    jtj[:, 3:, 3:] = basis.T @ basis
    if resid is None:
        return jtj, None
    grad = np.empty((n, k))
    grad[:, :3] = (j3 @ resid[:, :, None])[:, :, 0]
    grad[:, 3:] = resid @ basis
    return jtj, grad


# --------------------------------------------------------------------------
# starting values
# --------------------------------------------------------------------------


def _smooth(y: np.ndarray, width: int) -> np.ndarray:
    """Moving average along the last axis (edges: shorter windows)."""
    if width <= 1:
        return y
    c = np.cumsum(np.pad(y, ((0, 0), (1, 0))), axis=1)
    m = y.shape[1]
    half = width // 2
    lo = np.clip(np.arange(m) - half, 0, m)
    hi = np.clip(np.arange(m) + half + 1, 0, m)
    return (c[:, hi] - c[:, lo]) / (hi - lo)


def guess_lorentzians(x, spectra, *, baseline: Baseline = "linear") -> np.ndarray:
    """Starting values for a block of spectra, computed without a loop.

    Baseline from the mean of the outer 5 % of points at each end (a
    straight line between them, or their average); peak at the maximum of
    the smoothed, baseline-subtracted spectrum (refined by a parabola through
    its neighbours); height there; FWHM from the span of samples above half
    the height.

    Parameters
    ----------
    x : array_like, shape (m,)
    spectra : array_like, shape (n, m)

    Returns
    -------
    numpy.ndarray, shape (n, 4) or (n, 5)
        ``amplitude, center, fwhm, offset[, slope]`` (slope about ``mean(x)``).
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(spectra, dtype=float)
    n, m = y.shape
    xr = x - x.mean()
    edge = max(2, m // 20)
    left, right = y[:, :edge].mean(axis=1), y[:, -edge:].mean(axis=1)
    xl, xh = x[:edge].mean(), x[-edge:].mean()
    if baseline == "linear" and xh != xl:
        slope = (right - left) / (xh - xl)
        offset = left + slope * (x.mean() - xl)
        base = offset[:, None] + slope[:, None] * xr[None, :]
    else:
        slope = np.zeros(n)
        offset = 0.5 * (left + right)
        base = offset[:, None] + np.zeros((1, m))
    ys = _smooth(y - base, max(3, (m // 64) | 1))
    i = np.argmax(ys, axis=1)
    rows = np.arange(n)
    peak = ys[rows, i]
    # parabolic refinement of the maximum (in index space, mapped to x)
    il, ih = np.clip(i - 1, 0, m - 1), np.clip(i + 1, 0, m - 1)
    yl, yh = ys[rows, il], ys[rows, ih]
    den = yl - 2 * peak + yh
    frac = np.where((den < 0) & (il != i) & (ih != i), 0.5 * (yl - yh) / np.where(den < 0, den, -1.0), 0.0)
    frac = np.clip(frac, -0.5, 0.5)
    center = np.interp(i + frac, np.arange(m), x)
    dx = np.abs(np.gradient(x))
    above = ys > 0.5 * peak[:, None]
    fwhm = np.sum(above * dx[None, :], axis=1)
    span = float(np.ptp(x)) or 1.0
    fwhm = np.clip(fwhm, 2.0 * dx.min(), span)
    amplitude = np.where(peak > 0, peak, np.abs(peak) + 1e-12)
    cols = [amplitude, center, fwhm, offset] + ([slope] if baseline == "linear" else [])
    return np.column_stack(cols)


# --------------------------------------------------------------------------
# batched Levenberg-Marquardt
# --------------------------------------------------------------------------


def _lm_block(
    x: np.ndarray, y: np.ndarray, p0: np.ndarray, *, linear: bool, max_iter: int, ftol: float, xtol: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Levenberg-Marquardt on a block of spectra sharing ``x``.

    Returns
    -------
    params : (n, k), cost : (n,) sum of squared residuals, n_iter : (n,),
    converged : (n,) bool
    """
    n, k = p0.shape
    xr = x - x.mean()
    basis = _basis(x, linear)
    params = p0.copy()
    resid = y - _model(params, x, xr, linear)
    cost = np.einsum("nm,nm->n", resid, resid)
    lam = np.full(n, _LAMBDA0)
    n_iter = np.zeros(n, dtype=np.int64)
    converged = np.zeros(n, dtype=bool)
    active = np.isfinite(cost)
    jtj = np.zeros((n, k, k))
    grad = np.zeros((n, k))
    stale = np.ones(n, dtype=bool)  # normal equations need recomputing
    eye = np.eye(k, dtype=bool)
    for _ in range(max_iter):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        need = idx[stale[idx]]
        if need.size:
            jtj[need], grad[need] = _normal_equations(params[need], x, basis, resid[need])
            stale[need] = False
        a = jtj[idx].copy()
        diag = np.diagonal(a, axis1=1, axis2=2)
        damp = lam[idx, None] * np.maximum(diag, 1e-12 * (diag.max(axis=1, keepdims=True) + 1e-300))
        a[:, eye] += damp
        try:
            step = np.linalg.solve(a, grad[idx][:, :, None])[:, :, 0]
        except np.linalg.LinAlgError:
            step = np.full((idx.size, k), np.nan)
            for j in range(idx.size):  # rare: solve one by one, singular ones stay NaN
                try:
                    step[j] = np.linalg.solve(a[j], grad[idx[j]])
                except np.linalg.LinAlgError:
                    pass
        trial = params[idx] + step
        r_new = y[idx] - _model(trial, x, xr, linear)
        c_new = np.einsum("nm,nm->n", r_new, r_new)
        ok = np.isfinite(c_new) & (trial[:, 2] > 0) & np.all(np.isfinite(step), axis=1)
        better = ok & (c_new <= cost[idx])
        n_iter[idx] += 1
        acc = idx[better]
        if acc.size:
            rel_f = (cost[acc] - c_new[better]) <= ftol * np.maximum(cost[acc], 1e-300)
            rel_x = np.all(np.abs(step[better]) <= xtol * (np.abs(params[acc]) + xtol), axis=1)
            params[acc] = trial[better]
            resid[acc] = r_new[better]
            cost[acc] = c_new[better]
            lam[acc] = np.maximum(lam[acc] * 0.2, 1e-15)
            stale[acc] = True
            done = acc[rel_f | rel_x]
            converged[done] = True
            active[done] = False
        rej = idx[~better]
        if rej.size:
            lam[rej] *= 10.0
            stuck = rej[lam[rej] > _LAMBDA_MAX]
            # the damped step cannot lower the cost any more: at the minimum (to rounding)
            converged[stuck] = True
            active[stuck] = False
    return params, cost, n_iter, converged


def _covariance(params: np.ndarray, x: np.ndarray, linear: bool) -> np.ndarray:
    """``inv(J^T J)`` at ``params``, shape (n, k, k) (NaN where singular)."""
    jtj, _ = _normal_equations(params, x, _basis(x, linear), None)
    k = params.shape[1]
    cov = np.full_like(jtj, np.nan)
    good = np.all(np.isfinite(jtj), axis=(1, 2))
    if good.any():
        # scale to unit diagonal for conditioning, invert, scale back
        d = np.sqrt(np.abs(np.diagonal(jtj[good], axis1=1, axis2=2)))
        d = np.where(d > 0, d, 1.0)
        scaled = jtj[good] / (d[:, :, None] * d[:, None, :])
        try:
            inv = np.linalg.inv(scaled)
            cov[good] = inv / (d[:, :, None] * d[:, None, :])
        except np.linalg.LinAlgError:
            sub = np.flatnonzero(good)
            for j, s in enumerate(sub):
                try:
                    cov[s] = np.linalg.inv(scaled[j]) / np.outer(d[j], d[j])
                except np.linalg.LinAlgError:
                    pass
    return cov.reshape(-1, k, k)


def _fit_array(
    x: np.ndarray,
    spectra: np.ndarray,
    *,
    baseline: Baseline,
    max_iter: int,
    ftol: float,
    xtol: float,
    chunk: int,
) -> np.ndarray:
    """Batched fit; an ``(n, len(FIT_COLUMNS))`` float array (fit_ok as 0/1)."""
    x = np.asarray(x, dtype=np.float64)
    y_all = np.asarray(spectra, dtype=np.float64)
    n, m = y_all.shape
    linear = baseline == "linear"
    k = 5 if linear else 4
    out = np.full((n, _N_OUT), np.nan)
    out[:, FIT_COLUMNS.index("n_iter")] = 0
    out[:, FIT_COLUMNS.index("fit_ok")] = 0
    if m <= k:
        return out
    dx_min = float(np.min(np.abs(np.diff(x)))) if m > 1 else 0.0
    lo, hi = float(np.min(x)), float(np.max(x))
    for s in range(0, n, chunk):
        y = y_all[s : s + chunk]
        finite = np.all(np.isfinite(y), axis=1)
        if not finite.any():
            continue
        rows = np.flatnonzero(finite) + s
        yf = y[finite]
        p0 = guess_lorentzians(x, yf, baseline=baseline)
        params, cost, n_iter, conv = _lm_block(
            x, yf, p0, linear=linear, max_iter=max_iter, ftol=ftol, xtol=xtol
        )
        cov = _covariance(params, x, linear)
        dof = m - k
        redchi = cost / dof
        err = np.sqrt(np.abs(np.diagonal(cov, axis1=1, axis2=2)) * redchi[:, None])
        a, c, w = params[:, 0], params[:, 1], params[:, 2]
        ok = (
            conv
            & np.all(np.isfinite(params), axis=1)
            & np.all(np.isfinite(err), axis=1)
            & (a > MIN_SIGNIFICANCE * err[:, 0])
            & (w > 0.5 * dx_min)
            & (c - 0.5 * w >= lo)
            & (c + 0.5 * w <= hi)
        )
        o = out[rows]
        o[:, 0] = c
        o[:, 1] = w
        o[:, 2] = a
        o[:, 3] = params[:, 3]
        o[:, 4] = params[:, 4] if linear else 0.0
        o[:, 5] = err[:, 1]
        o[:, 6] = err[:, 2]
        o[:, 7] = err[:, 0]
        o[:, 8] = err[:, 3]
        o[:, 9] = err[:, 4] if linear else 0.0
        o[:, 10] = redchi
        o[:, 11] = n_iter
        o[:, 12] = ok
        out[rows] = o
    return out


def _check_xy(x, spectra) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=float)
    y = np.asarray(spectra)
    if x.ndim != 1:
        raise SpectrumFitError(f"x must be 1-D (one position per spectral sample), got shape {x.shape}")
    if y.ndim == 1:
        y = y[None, :]
    if y.ndim != 2 or y.shape[1] != x.size:
        raise SpectrumFitError(f"spectra must have shape (n_spectra, {x.size}) to match x, got {y.shape}")
    if not np.all(np.isfinite(x)):
        raise SpectrumFitError("x contains NaN or infinite values")
    if x.size > 1 and np.any(np.diff(x) == 0):
        raise SpectrumFitError("x has repeated positions")
    return x, y


def fit_lorentzians(
    x,
    spectra,
    *,
    baseline: Baseline = "linear",
    max_iter: int = 200,
    ftol: float = 1e-10,
    xtol: float = 1e-10,
    chunk: int = CHUNK_SPECTRA,
) -> pd.DataFrame:
    """Fit a Lorentzian on a baseline to every row of ``spectra``.

    Parameters
    ----------
    x : array_like, shape (m,)
        Sample positions shared by all spectra (e.g. wavelength in nm; need
        not be evenly spaced or increasing).
    spectra : array_like, shape (n, m) or (m,)
        One spectrum per row. Rows with a NaN are not fitted (``fit_ok``
        false): NaN handling is "flag".
    baseline : {"linear", "constant"}
        ``offset + slope * (x - mean(x))`` or ``offset``.
    max_iter : int
        Levenberg-Marquardt iterations per spectrum.
    ftol, xtol : float
        Stop when an accepted step lowers the sum of squares by less than
        ``ftol`` relative, or changes every parameter by less than ``xtol``
        relative.
    chunk : int
        Spectra per block of the batched computation (memory ~ chunk * m * 5
        doubles).

    Returns
    -------
    pandas.DataFrame
        One row per spectrum, columns :data:`FIT_COLUMNS`: ``center``,
        ``fwhm``, ``amplitude`` (peak height above the baseline),
        ``offset``, ``slope`` (0 for a constant baseline), their standard
        errors ``*_err``, the reduced chi-square ``redchi`` (residual
        variance), ``n_iter`` and ``fit_ok``: converged with finite
        errors, a height above 3 standard errors, a width above half a
        sample, and both half-maximum points ``center -+ fwhm/2`` inside the
        range of ``x`` (a peak, not a shoulder or a dip on a steep baseline).

    Raises
    ------
    SpectrumFitError
        If the shapes do not match (never for bad data).
    """
    if baseline not in ("linear", "constant"):
        raise ValueError(f"baseline must be 'linear' or 'constant', got {baseline!r}")
    if isinstance(chunk, bool) or int(chunk) < 1:
        raise ValueError(f"chunk must be a positive integer, got {chunk!r}")
    x, y = _check_xy(x, spectra)
    arr = _fit_array(x, y, baseline=baseline, max_iter=int(max_iter), ftol=ftol, xtol=xtol, chunk=int(chunk))
    return _to_frame(arr)


def _to_frame(arr: np.ndarray) -> pd.DataFrame:
    df = pd.DataFrame(arr, columns=list(FIT_COLUMNS))
    df["n_iter"] = df["n_iter"].astype(np.int64)
    df["fit_ok"] = df["fit_ok"].astype(bool)
    return df


def _fit_block(
    block: np.ndarray,
    *,
    x: np.ndarray,
    baseline: Baseline,
    max_iter: int,
    ftol: float,
    xtol: float,
    chunk: int,
) -> np.ndarray:
    """Fit one dask block ``(..., m)`` -> ``(..., n_out)``."""
    lead = block.shape[:-1]
    flat = block.reshape(-1, block.shape[-1])
    out = _fit_array(x, flat, baseline=baseline, max_iter=max_iter, ftol=ftol, xtol=xtol, chunk=chunk)
    return out.reshape(*lead, _N_OUT)


def fit_lorentzians_dask(
    x,
    spectra: da.Array,
    *,
    baseline: Baseline = "linear",
    max_iter: int = 200,
    ftol: float = 1e-10,
    xtol: float = 1e-10,
    chunk: int = CHUNK_SPECTRA,
) -> da.Array:
    """:func:`fit_lorentzians` mapped over the chunks of a dask array.

    Parameters
    ----------
    x : array_like, shape (m,)
    spectra : dask.array.Array, shape (..., m)
        Spectra along the last axis (e.g. ``(t, particle, m)``); the last
        axis is made a single chunk, the leading axes keep theirs.

    Returns
    -------
    dask.array.Array, shape (..., len(FIT_COLUMNS)), float64
        Lazily; column ``j`` is ``FIT_COLUMNS[j]`` (``fit_ok`` as 0/1).
        :func:`fits_to_frame` turns a computed ``(n, n_out)`` array into
        the same table as :func:`fit_lorentzians`.
    """
    x = np.asarray(x, dtype=float)
    if spectra.shape[-1] != x.size:
        raise SpectrumFitError(
            f"spectra have {spectra.shape[-1]} samples along the last axis but x has {x.size}"
        )
    if baseline not in ("linear", "constant"):
        raise ValueError(f"baseline must be 'linear' or 'constant', got {baseline!r}")
    arr = spectra.rechunk({spectra.ndim - 1: -1})
    chunks = arr.chunks[:-1] + ((_N_OUT,),)
    return arr.map_blocks(
        _fit_block,
        x=x,
        baseline=baseline,
        max_iter=int(max_iter),
        ftol=ftol,
        xtol=xtol,
        chunk=int(chunk),
        dtype=np.float64,
        chunks=chunks,
        meta=np.empty((0,) * arr.ndim, np.float64),
    )


def fits_to_frame(arr: np.ndarray) -> pd.DataFrame:
    """Table of :data:`FIT_COLUMNS` from a computed ``(..., n_out)`` fit array."""
    return _to_frame(np.asarray(arr, dtype=float).reshape(-1, _N_OUT))


# --------------------------------------------------------------------------
# one spectrum
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class LorentzFit:
    """Result of one Lorentzian fit (x units: those of the data).

    ``ok`` says whether the peak may be used; failed fits are returned, not raised.
    """

    center: float
    fwhm: float
    amplitude: float
    offset: float
    slope: float
    center_err: float
    fwhm_err: float
    amplitude_err: float
    offset_err: float
    slope_err: float
    redchi: float
    n_iter: int
    ok: bool
    message: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def fit_lorentzian(x, y, *, baseline: Baseline = "linear", max_iter: int = 200) -> LorentzFit:
    """Fit one spectrum: :func:`fit_lorentzians` for a single row.

    Parameters
    ----------
    x, y : array_like, shape (m,)
    baseline : {"linear", "constant"}

    Returns
    -------
    LorentzFit
    """
    row = fit_lorentzians(x, np.asarray(y, dtype=float)[None, :], baseline=baseline, max_iter=max_iter).iloc[
        0
    ]
    ok = bool(row["fit_ok"])
    vals = {c: float(row[c]) for c in FIT_COLUMNS if c not in ("n_iter", "fit_ok")}
    msg = (
        ""
        if ok
        else ("no finite data" if not math.isfinite(vals["center"]) else "fit rejected (see fit_ok rules)")
    )
    return LorentzFit(**vals, n_iter=int(row["n_iter"]), ok=ok, message=msg)


def lmfit_lorentzian(x, y, *, baseline: Baseline = "linear", init: dict | None = None):
    """Reference fit of the same model with lmfit (slow; for tests and benchmarks).

    ``LorentzianModel + ConstantModel`` (or ``+ LinearModel``), the same
    least-squares problem as :func:`fit_lorentzians`,
    started from :func:`guess_lorentzians` unless ``init`` is given.

    Returns
    -------
    lmfit.model.ModelResult
        Its ``center`` / ``fwhm`` parameters are comparable with ours;
        lmfit's ``amplitude`` is the area (``pi * height * fwhm / 2``) and its
        baseline is ``intercept + slope * x``.
    """
    from lmfit.models import ConstantModel, LinearModel, LorentzianModel

    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    model = LorentzianModel() + (LinearModel() if baseline == "linear" else ConstantModel())
    if init is None:
        g = guess_lorentzians(x, y[None, :], baseline=baseline)[0]
        init = {
            "amplitude": g[0],
            "center": g[1],
            "fwhm": g[2],
            "offset": g[3],
            "slope": g[4] if baseline == "linear" else 0.0,
        }
    params = model.make_params()
    params["center"].set(value=init["center"])
    params["sigma"].set(value=init["fwhm"] / 2.0, min=0.0)
    params["amplitude"].set(value=init["amplitude"] * math.pi * init["fwhm"] / 2.0)
    if baseline == "linear":
        # lmfit's line is intercept + slope * x; ours is offset + slope * (x - mean(x))
        params["intercept"].set(value=init["offset"] - init["slope"] * x.mean())
        params["slope"].set(value=init["slope"])
    else:
        params["c"].set(value=init["offset"])
    return model.fit(y, params, x=x)
