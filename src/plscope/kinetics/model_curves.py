"""The drawn fit of a cycle average from the whole-trace fit it reports.

Where :mod:`.refine` replaces a level's time constants by those of the
whole-trace fit (:func:`~plscope.kinetics.trace_fit.fit_trace`), the curve
drawn over the level's cycle averages must be that fit too, not the
first-pass fit of the averaged curve. The whole-trace model is evaluated at
every frame of the particle (exposure-averaged,
:func:`~plscope.kinetics.trace_fit.predict`), bleach-corrected by the same
model as the data and superposed as the data were
(:func:`~plscope.kinetics.cycles.superpose_cycles`): the same windows and
frames of the same cycles, each divided by its own pre-ON plateau,
interpolated onto the data's grid, the data's blink-masked points left
out, averaged over the cycles the data's mean used. Which fit a curve draws
is ``curve.attrs['fit_source']`` ('trace_fit' here; 'curve_fit' the fit of
the averaged curve, '' none), the ``fit_source`` column of ``curves.parquet``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from .cycles import BleachModel, SuperposedCycles, _pre_on_plateaus
from .trace_fit import TraceGeometry, predict

__all__ = ["model_trace", "refit_curves", "superposed_model"]

#: ``fit_source`` of a curve drawn from the whole-trace fit / the fit of the averaged curve
TRACE_FIT, CURVE_FIT = "trace_fit", "curve_fit"


def model_trace(x: np.ndarray, g: TraceGeometry, time_s: np.ndarray) -> np.ndarray:
    """The whole-trace model at every frame ``time_s`` (mid-exposure, s), exposure-averaged.

    Parameters
    ----------
    x : ndarray
        Parameters of the fit (:attr:`~plscope.kinetics.trace_fit.TraceFit.x`).
    g : TraceGeometry
        The particle's geometry (its segments; its frames are replaced by ``time_s``).
    time_s : ndarray, shape (n,)
        Frame times, increasing.

    Returns
    -------
    ndarray, shape (n,)
        Model PL (raw, with the fitted bleaching). A frame straddling a field edge gets the value
        of its first segment; the superposition uses no such frame.
    """
    t = np.asarray(time_s, dtype=float)
    seg = np.searchsorted(g.seg_start, t - g.exposure_s / 2 + 1e-9, side="right") - 1
    return predict(x, dataclasses.replace(g, t=t, frame_seg=np.clip(seg, 0, None)))


def superposed_model(
    t: np.ndarray, y_model: np.ndarray, sup: SuperposedCycles, start_s: np.ndarray, plateau: np.ndarray
) -> np.ndarray:
    """The cycle average of the model trace as ``sup`` averaged the data.

    Parameters
    ----------
    t, y_model : ndarray, shape (n,)
        The frames with data: times (increasing) and the bleach-corrected model.
    sup : SuperposedCycles
        The data's superposition of the level and phase (grid, masked points, cycles used).
    start_s : ndarray, shape (n_cycles,)
        The cycles' edges (``pol_start_s`` or ``rec_start_s`` of their windows), the order of ``sup``.
    plateau : ndarray, shape (n_cycles,)
        The model's pre-ON plateau of each cycle.

    Returns
    -------
    ndarray
        The model's mean on ``sup.time_s`` (NaN where the data's mean has no cycle).

    Notes
    -----
    A grid point the data's curve has (finite) lies between two consecutive frames of the cycle's
    window with data, the frames the data were interpolated between
    (:func:`~plscope.kinetics.cycles._interp_cycle`); the model is interpolated between the same two,
    all cycles in one :func:`numpy.interp`, and the points the data lack or masked are left out.
    """
    used = sup.used
    grid = start_s[used, None] + sup.time_s[None, :]
    have = np.isfinite(sup.curves[used])
    n = have.sum(axis=0)
    mean = np.full(sup.time_s.size, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        curves = np.interp(grid.ravel(), t, y_model).reshape(grid.shape) / plateau[used, None]
        np.divide(np.where(have, curves, 0.0).sum(axis=0), n, out=mean, where=n > 0)  # as _stats' mean
    return mean


def refit_curves(pk, tf, g: TraceGeometry, table: pd.DataFrame) -> dict:
    """The report curves of a particle with the levels that took the whole-trace fit redrawn.

    Parameters
    ----------
    pk : ParticleKinetics
        The particle (first-pass curves, superpositions, context with the trace).
    tf : TraceFit
        Its whole-trace fit.
    g : TraceGeometry
        The geometry ``tf`` was fitted on.
    table : DataFrame
        Its refined table (rows with ``tau_pol_err_method == 'trace_fit'`` took the fit).

    Returns
    -------
    dict
        ``pk.curves`` with those levels' curves replaced: ``fit`` the superposed model
        (:func:`superposed_model`), ``attrs['fit_source'] = 'trace_fit'``.
    """
    ctx = pk._context
    methods = zip(table["level"].tolist(), table["tau_pol_err_method"].tolist(), strict=True)
    took = {level for level, method in methods if method == TRACE_FIT}
    last = {lv.field_kV_per_cm: lv for lv in ctx.levels}  # a repeated field's curve is its last level's
    redraw = [lv for lv in last.values() if lv.level in took]
    if not redraw or ctx.time_s is None or ctx.raw_intensity is None:
        return pk.curves
    have = np.isfinite(ctx.raw_intensity)
    t = ctx.time_s[have]
    y = model_trace(tf.x, g, t)
    bleach: BleachModel | None = pk.bleach
    if bleach is not None and bleach.success:  # the data's correction (analysis._correct_bleaching)
        y = bleach.correct(t, y)
    curves = dict(pk.curves)
    for lv in redraw:
        plateau = _pre_on_plateaus(t, y, lv.windows, ctx.exposure_s)  # both phases divide by it
        for phase in ("pol", "rec"):
            key, sup = (lv.field_kV_per_cm, phase), pk.superposed.get((lv.level, phase))
            if key in curves and sup is not None and sup.time_s.size:
                fit = superposed_model(t, y, sup, lv.windows[f"{phase}_start_s"], plateau)
                curves[key] = _with_fit(curves[key], fit, TRACE_FIT)
    return curves


def _with_fit(curve: pd.DataFrame, fit: np.ndarray, source: str) -> pd.DataFrame:
    """``curve`` (not modified) with the column ``fit`` replaced and ``attrs['fit_source']`` set."""
    new = curve.copy()  # one copy of the float block, written in place: faster than a new column
    new.iloc[:, new.columns.get_loc("fit")] = fit
    new.attrs = {**curve.attrs, "fit_source": source}
    return new
