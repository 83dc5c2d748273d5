"""The population fit of whole traces (issue 16: solved block-wise) reaches the joint optimum.

:func:`~plscope.kinetics.trace_fit.fit_population_traces` maximizes one joint
posterior over every particle's parameters and the population mean shape
``mu``. It is solved block-wise (particles given ``mu``; ``mu`` from the
particles); here the same posterior is written out directly and handed whole
to ``scipy.optimize.least_squares``, which must not find a better point.
Traces come from the independent forward model ``validation.forward.kinetics``.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from scipy.optimize import least_squares
from validation.forward.kinetics import KineticsScenario, simulate_kinetics

from plscope.kinetics.trace_fit import (
    _bounds,
    fit_population_traces,
    fit_trace,
    population_shape,
    predict,
    trace_geometry,
)

NAMES = ("a1", "rho_pol", "rho_rec")
#: particles with their own shapes (a1 0.4-0.8, tau2/tau1 2-8), two cycles per field: shapes poorly pinned
SCENARIO = KineticsScenario(
    n_particles=5, fast_fraction=(0.4, 0.8), ratio=(2.0, 8.0), cycles_per_level=2, blink_rate_per_s=0.0
)


@pytest.fixture(scope="module")
def problem():
    sim = simulate_kinetics(SCENARIO, seed=4)
    geoms = []
    for pid in range(SCENARIO.n_particles):
        y = sim.traces[sim.traces.particle_id == pid].sort_values("frame")["intensity"].to_numpy(float)
        geoms.append(trace_geometry(sim.time_s, y, sim.cycles, sim.exposure_s))
    starts = [fit_trace(g) for g in geoms]
    spread = population_shape(starts)
    sd = {k: v[1] for k, v in spread.prior.items()}
    return geoms, starts, [s.keep for s in starts], sd


def _joint_cost(geoms, starts, keeps, sd, xs, mu):
    """The joint posterior's cost (half the sum of squares), written out from its definition."""
    sdv = np.array([sd[n] for n in NAMES])
    cost = 0.0
    for g, s, k, x in zip(geoms, starts, keeps, xs, strict=True):
        sigma = g.noise * math.sqrt(max(s.redchi, 1.0))
        r = (g.y[k] - predict(x, g)[k]) / sigma
        cost += 0.5 * float(r @ r) + 0.5 * float(np.sum(((x[1:4] - mu) / sdv) ** 2))
    return cost


def _global_solve(geoms, starts, keeps, sd, xs, mu):
    """The whole joint problem in one trust-region solve (dense; fine at 5 particles)."""
    sizes = [x.size for x in xs]
    offs = np.cumsum([0, *sizes])
    sdv = np.array([sd[n] for n in NAMES])
    sig = [g.noise * math.sqrt(max(s.redchi, 1.0)) for g, s in zip(geoms, starts, strict=True)]

    def fn(theta):
        out = [
            (g.y[k] - predict(theta[offs[i] : offs[i + 1]], g)[k]) / sig[i]
            for i, (g, k) in enumerate(zip(geoms, keeps, strict=True))
        ]
        out += [(theta[offs[i] + 1 : offs[i] + 4] - theta[-3:]) / sdv for i in range(len(geoms))]
        return np.concatenate(out)

    lo = np.concatenate([_bounds(g)[0] for g in geoms] + [np.array([0.02, 0.0, 0.0])])
    hi = np.concatenate([_bounds(g)[1] for g in geoms] + [np.array([0.98, math.log(60.0), math.log(60.0)])])
    theta0 = np.clip(np.concatenate([*xs, mu]), lo + 1e-9, hi - 1e-9)
    res = least_squares(fn, theta0, bounds=(lo, hi), x_scale="jac", ftol=1e-10, xtol=1e-10, max_nfev=400)
    return [res.x[offs[i] : offs[i + 1]] for i in range(len(geoms))], res.x[-3:]


@pytest.mark.slow
def test_block_solution_is_the_joint_optimum(problem):
    geoms, starts, keeps, sd = problem
    fits, hyper = fit_population_traces(geoms, starts, keeps, sd)
    assert all(f.success for f in fits)
    mu = np.array([hyper.prior[n][0] for n in NAMES])
    block_cost = _joint_cost(geoms, starts, keeps, sd, [f.x for f in fits], mu)
    # the global solver, started from the block solution, finds nothing better than the block
    # solver's stopping rule (cost change below 1e-7 of the cost, scipy's ftol)
    xs, mu_g = _global_solve(geoms, starts, keeps, sd, [f.x for f in fits], mu)
    global_cost = _joint_cost(geoms, starts, keeps, sd, xs, mu_g)
    assert block_cost - global_cost <= 1e-6 * global_cost
    # and the time constants are the same to a hundredth of their standard errors
    for f, x in zip(fits, xs, strict=True):
        n = len(f.per_level)
        tau = np.exp(x[4 + n : 4 + 3 * n])
        mine = np.r_[f.per_level["tau_pol_s"], f.per_level["tau_rec_s"]]
        err = np.r_[f.per_level["tau_pol_err_s"], f.per_level["tau_rec_err_s"]]
        assert np.all(np.abs(mine - tau) <= 0.01 * err)


@pytest.mark.slow
def test_result_does_not_depend_on_the_mapper(problem):
    geoms, starts, keeps, sd = problem
    serial, hyper = fit_population_traces(geoms, starts, keeps, sd)
    with ThreadPoolExecutor(2) as pool:
        mapped, hyper_mapped = fit_population_traces(geoms, starts, keeps, sd, mapper=pool.map)
    assert hyper_mapped == hyper
    for a, b in zip(serial, mapped, strict=True):
        np.testing.assert_array_equal(a.x, b.x)
        assert a.per_level.equals(b.per_level)
