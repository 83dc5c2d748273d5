"""The whole-trace fit's analytic Jacobians agree with central differences of the model."""

from __future__ import annotations

import numpy as np
from validation.forward.kinetics import KineticsScenario, simulate_kinetics

from plscope.kinetics.trace_fit import (
    ShapeHyper,
    _joint_jacobian_fn,
    _start,
    n_params,
    predict,
    predict_jacobian,
    trace_geometry,
)


def _geometries(n: int, seed: int = 3):
    sim = simulate_kinetics(KineticsScenario(n_particles=n), seed=seed)
    out = []
    for pid in range(n):
        y = sim.traces[sim.traces.particle_id == pid].sort_values("frame")["intensity"].to_numpy(float)
        out.append(trace_geometry(sim.time_s, y, sim.cycles, sim.exposure_s))
    return out


def _numeric(fn, x: np.ndarray) -> np.ndarray:
    cols = []
    for k in range(x.size):
        h = 1e-6 * max(1.0, abs(x[k]))
        xp, xm = x.copy(), x.copy()
        xp[k] += h
        xm[k] -= h
        cols.append((fn(xp) - fn(xm)) / (2.0 * h))
    return np.column_stack(cols)


def _perturbed_start(g, rng) -> np.ndarray:
    x = _start(g, None, ShapeHyper()) + 0.05 * rng.normal(size=n_params(len(g.levels)))
    x[-1] = 0.01  # a bleaching rate, so that its derivative is exercised
    return x


def test_trace_jacobian_matches_central_differences():
    rng = np.random.default_rng(0)
    for g in _geometries(2):
        x = _perturbed_start(g, rng)
        jac, num = predict_jacobian(x, g), _numeric(lambda p, g=g: predict(p, g), x)
        assert jac.shape == (g.t.size, x.size)
        scale = np.max(np.abs(num), axis=0)
        assert np.all(np.max(np.abs(jac - num), axis=0) <= 1e-6 * scale)


def test_joint_jacobian_has_the_blocks_and_prior_rows():
    rng = np.random.default_rng(1)
    geoms = _geometries(2, seed=4)
    xs = [_perturbed_start(g, rng) for g in geoms]
    keeps = [np.arange(g.t.size) % 7 != 0 for g in geoms]  # some frames masked
    sig, sdv = [2.0, 3.0], np.array([0.1, 0.2, 0.3])
    offs = np.cumsum([0, *[x.size for x in xs]])
    theta = np.concatenate([*xs, [0.5, 1.0, 1.2]])
    jac = _joint_jacobian_fn(geoms, keeps, sig, offs, sdv)(theta).toarray()

    def fn(th):
        out = [(g.y - predict(th[offs[i] : offs[i + 1]], g))[keeps[i]] / sig[i] for i, g in enumerate(geoms)]
        out += [(th[offs[i] + 1 : offs[i] + 4] - th[-3:]) / sdv for i in range(len(geoms))]
        return np.concatenate(out)

    num = _numeric(fn, theta)
    assert jac.shape == num.shape
    np.testing.assert_allclose(jac, num, rtol=0, atol=1e-6 * np.max(np.abs(num)))
