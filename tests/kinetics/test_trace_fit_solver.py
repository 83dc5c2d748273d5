"""The whole-trace fits' compiled trust-region solve takes scipy's steps (issue 16).

:func:`plscope.kinetics.trace_fit._solve` runs the reduced problems through
:func:`~plscope.kinetics.trace_fit._trf_solve` (scipy's ``trf_bounds`` steps,
compiled) instead of ``scipy.optimize.least_squares``. Here both solve the
same problems -- traces of the independent forward model
``validation.forward.kinetics``, the robust and the ordinary loss, a weak
and a narrow shape prior -- and must take the same path: the same number of
evaluations, the same status, and end points that agree to rounding
(1e-9 of each parameter's standard error; measured 2e-13 on 800 solves of a
1000-particle run). The compiled residuals and Jacobian equal
:class:`~plscope.kinetics.trace_fit._TraceProblem`'s.
"""

from __future__ import annotations

import numpy as np
import pytest
from validation.forward.kinetics import KineticsScenario, simulate_kinetics

from plscope.kinetics import trace_fit as tf

SCENARIO = KineticsScenario(n_particles=3, fast_fraction=(0.4, 0.8), ratio=(2.0, 8.0), cycles_per_level=2)
NARROW = tf.ShapeHyper(prior={"a1": (0.6, 0.05), "rho_pol": (1.2, 0.1), "rho_rec": (1.5, 0.1)})


@pytest.fixture(scope="module")
def geometries():
    sim = simulate_kinetics(SCENARIO, seed=5)
    out = []
    for pid in range(SCENARIO.n_particles):
        y = sim.traces[sim.traces.particle_id == pid].sort_values("frame")["intensity"].to_numpy(float)
        out.append(tf.trace_geometry(sim.time_s, y, sim.cycles, sim.exposure_s))
    return out


def _problems(geometries):
    for g in geometries:
        keep = np.ones(g.t.size, bool)
        keep[::37] = False  # some frames masked, as blinks are
        for hyper in (tf.ShapeHyper(), NARROW):
            for loss in ("soft_l1", "linear"):
                yield g, tf._TraceProblem(g, keep, g.noise, hyper, loss=loss), tf._start(g, None, hyper)


def test_the_compiled_solve_takes_scipys_steps(geometries):
    for g, problem, x0 in _problems(geometries):
        bounds = tf._bounds(g)
        want = tf._scipy_solve(problem, x0, bounds)
        got = tf._solve(problem, x0, bounds)
        assert isinstance(got, tf._Solution)
        assert (got.nfev, got.njev, got.status, got.success) == (
            want.nfev,
            want.njev,
            want.status,
            want.success,
        )
        err = np.sqrt(np.diag(tf._covariance(want.jac, 1.0)))
        np.testing.assert_array_less(np.abs(got.x - want.x), 1e-9 * err)
        np.testing.assert_allclose(got.jac, want.jac, rtol=1e-9, atol=1e-9 * np.abs(want.jac).max())


def test_the_compiled_residuals_and_jacobian_are_the_problems(geometries):
    for _g, problem, x0 in _problems(geometries):
        f, jac = tf._reduced_problem(
            x0, problem._args, problem.rows, problem.w, problem.robust, problem.mu, problem.sd
        )
        want_f, want_jac = problem.fun(x0), problem.jac(x0)
        np.testing.assert_allclose(f, want_f, rtol=1e-10, atol=1e-10 * np.abs(want_f).max())
        np.testing.assert_allclose(jac, want_jac, rtol=1e-10, atol=1e-10 * np.abs(want_jac).max())


def test_the_factors_equal_numpys():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(40, 6))
    r = tf._qr_r(a.copy())
    want = np.linalg.qr(a, mode="r")
    np.testing.assert_allclose(np.abs(r), np.abs(want), atol=1e-12)  # rows equal up to their sign
    np.testing.assert_allclose(r.T @ r, a.T @ a, rtol=1e-12, atol=1e-12)
    gram = a.T @ a
    got, ok = tf._cholesky_factor_c(gram)
    assert ok
    np.testing.assert_allclose(got, tf._cholesky_factor(gram), rtol=1e-12, atol=1e-12)
    a[:, 2] = a[:, 1] * (1 + 1e-9)  # nearly collinear columns: left to the QR decomposition
    assert tf._cholesky_factor(a.T @ a) is None
    assert not tf._cholesky_factor_c(a.T @ a)[1]


def test_a_start_outside_the_bounds_goes_to_scipy(geometries):
    g, problem, x0 = next(_problems(geometries))
    lo, hi = tf._bounds(g)
    with pytest.raises(ValueError, match="infeasible|bounds"):
        tf._solve(problem, lo - 1.0, (lo, hi))
