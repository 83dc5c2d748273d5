"""The saved ``fit`` curve is the curve of the fit the row reports (whole-trace fit or curve fit).

Truth from outside: the particle's trace comes from the independent forward model of
:mod:`tests.kinetics.synth` (two sub-populations, state carried across edges, exact exposure
integration, Poisson counts). The expected curve is the whole-trace model evaluated without
:func:`~plscope.kinetics.model_curves.model_trace` (instantaneous :func:`predict` averaged over each
exposure by Gauss-Legendre quadrature), bleach-corrected and superposed by the public
:func:`superpose_cycles`. Its amplitude-weighted time constant, from a free biexponential fit of the
drawn curve, must be the reported ``tau``: with every half cycle settled (20 s half period, slowest
component 5 s: e^-4 of a state carried over) and the exposure factor of a 0.15 s exposure on a >= 0.5 s
component (< 0.2 %), the two agree to 2 %.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.optimize import curve_fit

from plscope.kinetics import analyze_particle, superpose_cycles
from plscope.kinetics.model_curves import refit_curves
from plscope.kinetics.refine import refine_population
from plscope.kinetics.trace_fit import fit_trace, predict, trace_geometry

from .synth import simulate_trace

_GL_X, _GL_W = np.polynomial.legendre.leggauss(8)
_TAU_REL_TOL = 0.02


@pytest.fixture(scope="module")
def sim():
    return simulate_trace(
        fields_kV_per_cm=(90.0, 130.0),
        n_cycles=4,
        bleach_percent_per_min=1.0,
        rng=np.random.default_rng(7),
    )


def _refined(sim, mark_level=None):
    pk = analyze_particle(sim.time_s, sim.intensity, sim.cycles, exposure_s=sim.exposure_s, particle_id=1)
    if mark_level is not None:  # a first-pass verdict on one row: refine must leave that row alone
        t = pk.table.copy()
        t.loc[t["level"] == mark_level, "flags"] += ";rec:too_few_usable_cycles"
        pk = dataclasses.replace(pk, table=t)
    out, _ = refine_population({1: pk}, {1: True})
    return pk, out[1]


def _exposure_averaged_model(x, g, t, exposure_s):
    """The model averaged over each frame's exposure (quadrature of the instantaneous model)."""
    half = exposure_s / 2
    nodes = t[:, None] + half * _GL_X[None, :]
    return (predict(x, g, times=nodes.ravel()).reshape(nodes.shape) * _GL_W).sum(axis=1) / 2


def _biexp(t, c, a1, t1, a2, t2):
    return c + a1 * np.exp(-t / t1) + a2 * np.exp(-t / t2)


def _weighted_tau(t, y, row, phase):
    p0 = [
        y[-1],
        (y[0] - y[-1]) / 2,
        row[f"tau_{phase}_fast_s"],
        (y[0] - y[-1]) / 2,
        row[f"tau_{phase}_slow_s"],
    ]
    p, _ = curve_fit(_biexp, t, y, p0=p0, maxfev=20000)
    return (p[1] * p[2] + p[3] * p[4]) / (p[1] + p[3])


def test_trace_fitted_curve_is_the_superposed_whole_trace_model(sim):
    first, pk = _refined(sim)
    rows = pk.table.set_index("level")
    assert (rows["tau_pol_err_method"] == "trace_fit").all()
    g = trace_geometry(sim.time_s, sim.intensity, sim.cycles, sim.exposure_s)
    tf = fit_trace(g)  # a whole-trace fit of this particle: its curves drawn by refit_curves
    drawn = refit_curves(first, tf, g, pk.table)
    model = pk.bleach.correct(sim.time_s, _exposure_averaged_model(tf.x, g, sim.time_s, sim.exposure_s))
    s = pk._context.settings
    moved = []
    for level, field in zip(rows.index, rows["field_kV_per_cm"], strict=True):
        for phase in ("pol", "rec"):
            curve = drawn[(field, phase)]
            assert curve.attrs["fit_source"] == "trace_fit"
            exp = superpose_cycles(
                sim.time_s, model, sim.cycles[sim.cycles["level"] == level], phase=phase,
                exposure_s=sim.exposure_s, dt_s=s.dt_s, plateau_s=s.plateau_s, transient_s=s.transient_s,
            )  # fmt: skip
            assert np.array_equal(exp.time_s, curve["t_s"].to_numpy())
            assert np.isfinite(curve["fit"]).all()
            # quadrature exact to rounding; predict takes the bleaching at mid-exposure: an error of
            # k e^2 / 12 x the PL's slope (1 %/min, 0.15 s, slope < 1 /s: < 1e-6)
            np.testing.assert_allclose(curve["fit"], exp.mean, rtol=1e-6)
            # the refined particle: its drawn curve carries the reported time constant
            curve = pk.curves[(field, phase)]
            assert curve.attrs["fit_source"] == "trace_fit"
            fit = curve["fit"].to_numpy(float)
            tau = rows.loc[level, f"tau_{phase}_s"]
            tau_eq = _weighted_tau(curve["t_s"].to_numpy(), fit, rows.loc[level], phase)
            assert abs(tau_eq / tau - 1) < _TAU_REL_TOL
            assert abs(tau_eq - tau) < 2 * rows.loc[level, f"tau_{phase}_err_s"]

            old = first.curves[(field, phase)]
            assert old.attrs["fit_source"] == "curve_fit"
            moved.append(np.max(np.abs(old["fit"].to_numpy(float) - fit)))
    assert max(moved) > 0  # the drawn curve is no longer the first-pass curve fit


def test_rows_with_first_pass_verdicts_keep_their_curve_fit(sim):
    levels = sorted(set(sim.cycles["level"]))
    first, pk = _refined(sim, mark_level=levels[0])
    rows = pk.table.set_index("level")
    assert rows.loc[levels[0], "tau_pol_err_method"] != "trace_fit"
    assert rows.loc[levels[1], "tau_pol_err_method"] == "trace_fit"
    for level, source in ((levels[0], "curve_fit"), (levels[1], "trace_fit")):
        field = rows.loc[level, "field_kV_per_cm"]
        for phase in ("pol", "rec"):
            curve = pk.curves[(field, phase)]
            assert curve.attrs["fit_source"] == source
            same = np.array_equal(
                curve["fit"].to_numpy(float), first.curves[(field, phase)]["fit"].to_numpy(float)
            )
            assert same == (source == "curve_fit")
    table = pk.curve_table()
    assert set(table["fit_source"]) == {"curve_fit", "trace_fit"}


def test_saved_curves_name_the_fit_of_their_row(small_output):
    """``curves.parquet`` of ``plscope run``: ``fit_source`` is 'trace_fit' exactly where the row's time
    constants come from the whole-trace fit (the session's small run; no new simulation)."""
    import pandas as pd

    curves = pd.read_parquet(small_output / "curves.parquet")
    kin = pd.read_csv(small_output / "kinetics.csv")
    assert "fit_source" in curves.columns
    keys = curves.drop_duplicates(["particle_id", "field_kV_per_cm", "phase"])
    method = kin.set_index(["particle_id", "field_kV_per_cm"])
    n_trace = 0
    for pid, field, phase, source, fit_present in zip(
        keys["particle_id"], keys["field_kV_per_cm"], keys["phase"], keys["fit_source"],
        [np.isfinite(g["fit"]).any() for _, g in curves.groupby(["particle_id", "field_kV_per_cm", "phase"], sort=False)],
        strict=True,
    ):  # fmt: skip
        row = method.loc[(pid, field)]
        row = row.iloc[-1] if isinstance(row, pd.DataFrame) else row
        took = row[f"tau_{phase}_err_method"] == "trace_fit"
        assert source == ("trace_fit" if took else ("curve_fit" if fit_present else ""))
        n_trace += took
    assert n_trace > 0
