"""Replace the curve-fit results of a population by whole-trace fits (state carried over).

:func:`refine_population` fits every particle's trace with
:func:`~plscope.kinetics.trace_fit.fit_trace` in two passes (weak shape
prior, then the hierarchical prior of the population,
:func:`~plscope.kinetics.trace_fit.population_shape`) and rewrites the
kinetics rows: time constants and their errors (``*_err_method =
'trace_fit'``), the settled switching efficiency, the settled fractions and
``not_settled``, ``fit_ok`` and the mobility; the report curves of those
rows draw the whole-trace fit (``fit_source = 'trace_fit'``,
:func:`~plscope.kinetics.model_curves.refit_curves`). Rows without enough
cycles keep their reason and curve fits; a particle whose trace cannot be
fitted keeps its curve fits (flag 'trace_fit_failed').
"""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from ._parallel import Mapper, chunked, map_particles
from .analysis import SETTLED_FRACTION, ParticleKinetics, exclusion_reason
from .fits import BAD_FIT_FLAGS
from .mobility import drift_velocity_nm_per_s, mobility_cm2_per_Vs
from .model_curves import refit_curves
from .trace_fit import (
    ShapeHyper,
    TraceFit,
    TraceGeometry,
    fit_population_traces,
    fit_trace,
    population_shape,
    trace_geometry,
)

__all__ = ["refine_population"]

_CURVE_VERDICTS = frozenset(
    {
        "too_few_cycles",
        "no_data",
        "pol:too_few_usable_cycles",
        "rec:too_few_usable_cycles",
        "pol:no_data",
        "rec:no_data",
        "pol:too_few_points",
        "rec:too_few_points",
    }
)
_MAX_REL_ERR = 0.5
_SE_SNR = 3.0


def _start_values(pk: ParticleKinetics) -> dict:
    t = pk.table  # only the columns used, as plain lists: the table is wide
    cols = [t[k].tolist() for k in ("level", "switching_efficiency_fit", "tau_pol_s", "tau_rec_s")]
    return {lev: {"se": se, "tau_pol_s": tp, "tau_rec_s": tr} for lev, se, tp, tr in zip(*cols, strict=True)}


def _fit_all(results: dict, hyper: ShapeHyper | None, mapper: Mapper = map) -> dict:
    items = [
        None
        if (ctx := pk._context) is None or ctx.time_s is None or len(ctx.cycles) == 0
        else (
            ctx.time_s,
            ctx.raw_intensity,
            ctx.cycles,
            ctx.exposure_s,
            ctx.settings.correct_bleaching,
            _start_values(pk),
        )
        for pk in results.values()
    ]
    return dict(
        zip(results, map_particles(mapper, functools.partial(_fit_one, hyper=hyper), items), strict=True)
    )


def _fit_one(item: tuple | None, *, hyper: ShapeHyper | None) -> tuple[TraceGeometry, TraceFit | None] | None:
    """Geometry and whole-trace fit of one particle (None: no trace to fit)."""
    if item is None:
        return None
    time_s, raw_intensity, cycles, exposure_s, fit_bleaching, start = item
    g = trace_geometry(time_s, raw_intensity, cycles, exposure_s, fit_bleaching=fit_bleaching)
    return None if g is None else (g, fit_trace(g, start=start, hyper=hyper))


def _refit_all(first: dict, results: dict, hyper: ShapeHyper, mapper: Mapper = map) -> dict:
    """:func:`_fit_all` of the particles ``results`` with the prior ``hyper``, on their geometries of
    the first pass ``first`` (the same arrays: :func:`trace_geometry` is not repeated)."""
    items = [
        None if (gf := first.get(pid)) is None else (gf[0], _start_values(pk)) for pid, pk in results.items()
    ]
    fits = map_particles(mapper, functools.partial(_fit_geometry, hyper=hyper), items)
    return dict(zip(results, fits, strict=True))


def _fit_geometry(item: tuple | None, *, hyper: ShapeHyper) -> tuple[TraceGeometry, TraceFit | None] | None:
    """Whole-trace fit of one particle's geometry ``(g, start)`` (None: no trace to fit)."""
    return None if item is None else (item[0], fit_trace(item[0], start=item[1], hyper=hyper))


def refine_population(results: dict, informative: dict, *, mapper: Mapper = map) -> tuple[dict, ShapeHyper]:
    """Whole-trace fits of every particle, the shape pooled hierarchically.

    Parameters
    ----------
    results : dict
        ``particle_id -> ParticleKinetics`` (curve fits; start values).
    informative : dict
        ``particle_id -> bool``: may the particle inform the population shape.
    mapper : callable
        Map-like callable of the per-particle fits (default: the builtin
        :func:`map`, serial; see :func:`~plscope.kinetics.analyze_population`).

    Returns
    -------
    (dict, ShapeHyper)
        New ``particle_id -> ParticleKinetics`` and the shape prior used.
    """
    # many small least-squares problems: a multi-threaded BLAS only adds overhead (15x slower measured)
    with threadpool_limits(limits=1):
        return _refine(results, informative, mapper)


def _refine(results: dict, informative: dict, mapper: Mapper) -> tuple[dict, ShapeHyper]:
    first = _fit_all(results, None, mapper)
    spread = population_shape(
        fit for pid, gf in first.items() if gf is not None and informative.get(pid, True) for fit in gf[1:]
    )
    joint = [
        pid
        for pid, gf in first.items()
        if gf is not None and _determined(gf[1]) and informative.get(pid, True)
    ]
    second: dict = {}
    hyper = spread
    if len(joint) >= 3:
        fits, hyper = fit_population_traces(
            [first[p][0] for p in joint],
            [first[p][1] for p in joint],
            [first[p][1].keep for p in joint],
            {k: v[1] for k, v in spread.prior.items()},
            mapper=chunked(mapper),
        )
        second = {p: (first[p][0], f) for p, f in zip(joint, fits, strict=True)}
    rest = {pid: pk for pid, pk in results.items() if pid not in second}
    second.update(_refit_all(first, rest, hyper, mapper))
    fitted = [pid for pid in results if (gf := second.get(pid)) is not None and gf[1] is not None]
    tables = dict(zip(fitted, _apply_all([(results[p], *second[p][::-1]) for p in fitted]), strict=True))
    out = {}
    for pid, pk in results.items():
        if pid not in tables:
            table = pk.table.copy()
            table["flags"] = [_join(f, "trace_fit_failed") for f in table["flags"]]
            out[pid] = dataclasses.replace(pk, table=table)
            continue
        g, tf = second[pid]
        out[pid] = dataclasses.replace(pk, table=tables[pid], curves=refit_curves(pk, tf, g, tables[pid]))
    return out, hyper


def _determined(fit: TraceFit | None) -> bool:
    """A first-pass fit that may join the population fit: converged, every time constant with an error."""
    if fit is None or not fit.success:
        return False
    rows = fit.level_rows
    errs = [r[k] for r in rows for k in ("tau_pol_err_s", "tau_rec_err_s", "se_err")]
    return bool(np.isfinite(errs).all() and all(abs(r["se"]) > 3 * r["se_err"] for r in rows))


def _join(flags: str, *new: str) -> str:
    return ";".join(dict.fromkeys([f for f in str(flags or "").split(";") if f] + list(new)))


def _phase_problems(lv, phase: str, frame_s: float, min_frames: float, success: bool) -> list[str]:
    tau, err = lv[f"tau_{phase}_s"], lv[f"tau_{phase}_err_s"]
    out = []
    if not success:
        out.append("fit_failed")
    if not np.isfinite(err):
        out.append("no_covariance")
    elif err > _MAX_REL_ERR * tau:
        out.append("tau_poorly_determined")
    if lv[f"{phase}_at_bound"]:
        out.append("tau_at_bound")
    if np.isfinite(frame_s) and tau < min_frames * frame_s:
        out.append("tau_below_min_frames")
    if not (np.isfinite(lv["se_err"]) and abs(lv["se"]) >= _SE_SNR * lv["se_err"]):
        out.append("amplitude_too_small")
    return out


def _apply_all(items: list[tuple]) -> list[pd.DataFrame]:
    """Every particle's table with its whole-trace fit written in (:func:`_apply_rows`), as
    ``_table_like(pk.table, rows)`` of each would give it.

    ``items``: ``(ParticleKinetics, TraceFit, TraceGeometry)`` per particle. The tables of the same
    columns and dtypes are read into records and rebuilt in one frame each (a frame's records and
    construction cost per call, ~2 ms per particle: 3 s of the main process at 1000 particles), then
    split by rows; a group whose rebuilt dtypes differ falls back to one table at a time.
    """
    groups: dict = {}
    for k, (pk, _, _) in enumerate(items):
        t = pk.table
        groups.setdefault((tuple(t.columns), tuple(t.dtypes)), []).append(k)
    out: list = [None] * len(items)
    for (_, dtypes), idx in groups.items():
        big = pd.concat([items[k][0].table for k in idx])
        records = big.to_dict("records")
        bounds = np.cumsum([0] + [len(items[k][0].table) for k in idx])
        rows = [records[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        for k, r in zip(idx, rows, strict=True):
            pk, tf, g = items[k]
            _apply_rows(pk, tf, g.frame_interval_s, r)
        new = pd.DataFrame.from_records(records, index=big.index, columns=big.columns)
        same = tuple(big.dtypes) == dtypes and new.dtypes.equals(big.dtypes)
        for k, r, a, b in zip(idx, rows, bounds[:-1], bounds[1:], strict=True):
            out[k] = new.iloc[a:b] if same else _table_like(items[k][0].table, r)
    return out


def _apply_rows(pk: ParticleKinetics, tf: TraceFit, frame_s: float, rows: list[dict]) -> None:
    """Write the whole-trace fit ``tf`` into the records ``rows`` of ``pk.table`` (in place)."""
    ctx = pk._context
    assert ctx is not None  # kinetics from analyze_particle carry their context
    s = ctx.settings
    per = {lv["level"]: lv for lv in tf.level_rows}
    for row in rows:
        flags = [f for f in str(row["flags"] or "").split(";") if f]
        if row["level"] not in per or set(flags) & _CURVE_VERDICTS:
            continue  # too few (usable) cycles: the verdict of the cycle analysis stands
        lv = per[row["level"]]
        flags = [
            f for f in flags if not (f.split(":")[-1] in BAD_FIT_FLAGS or f.endswith("tau_below_min_frames"))
        ]
        for phase in ("pol", "rec"):
            problems = _phase_problems(lv, phase, frame_s, s.min_tau_frames, tf.success)
            flags += [f"{phase}:{p}" for p in problems]
            row[f"{phase}_fit_ok"] = not problems
            row[f"{phase}_model"] = "biexp"
            row[f"{phase}_frac"] = tf.frac
            row[f"{phase}_settled_fraction"] = lv[f"{phase}_settled_fraction"]
            for key in ("s", "err_s", "fast_s", "slow_s"):
                row[f"tau_{phase}_{key}"] = lv[f"tau_{phase}_{key}"]
            row[f"tau_{phase}_err_method"] = "trace_fit"
        row["switching_efficiency_fit"] = lv["se"]
        row["switching_efficiency"] = lv["se"] if row["pol_fit_ok"] else row["switching_efficiency_window"]
        reached = [row[f"{ph}_settled_fraction"] for ph in ("pol", "rec") if row[f"{ph}_fit_ok"]]
        row["not_settled"] = bool(any(r < SETTLED_FRACTION for r in reached))
        row["fit_ok"] = bool(row["pol_fit_ok"] and row["rec_fit_ok"])
        _mobility(row, ctx)
        row["flags"] = _join(";".join(flags), "trace_fit", *(["blinks_masked"] if tf.n_masked else []))
        row["exclusion_reason"] = exclusion_reason(row, min_cycles=s.min_cycles)


def _table_like(table: pd.DataFrame, rows: list[dict]) -> pd.DataFrame:
    """``table`` with its rows replaced by ``rows`` (same index, columns and dtypes).

    One frame built from the records (a per-cell ``table.at`` write-back of ~44 columns x 600 rows cost
    ~2.7 s of the main process); where a column's inferred dtype is not the table's, the cells are
    written into a copy of ``table`` as before, so the dtypes are exactly those of writing them there.
    """
    new = pd.DataFrame.from_records(rows, index=table.index, columns=table.columns)
    if new.dtypes.equals(table.dtypes):
        return new
    out = table.copy()
    for i, row in zip(table.index, rows, strict=True):
        for k, v in row.items():
            out.at[i, k] = v
    return out


def _mobility(row: dict, ctx) -> None:
    nan = float("nan")
    row.update(velocity_nm_per_s=nan, mobility_cm2_per_Vs=nan, velocity_err_nm_per_s=nan)
    row["mobility_err_cm2_per_Vs"] = nan
    if not (np.isfinite(ctx.size_nm) and row["pol_fit_ok"]):
        return
    tau, tau_err = row["tau_pol_s"], row["tau_pol_err_s"]
    v = float(drift_velocity_nm_per_s(ctx.size_nm, tau))
    mu = float(mobility_cm2_per_Vs(v, row["field_kV_per_cm"]))
    size_rel = ctx.size_err_nm / ctx.size_nm if np.isfinite(ctx.size_err_nm) else 0.0
    rel = math.hypot(tau_err / tau, size_rel)
    row.update(velocity_nm_per_s=v, mobility_cm2_per_Vs=mu, velocity_err_nm_per_s=v * rel)
    row["mobility_err_cm2_per_Vs"] = mu * rel
