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


def test_block_wise_covariance_is_bit_identical_to_the_sparse_jacobians():
    # fit_population_traces takes the covariance from one particle's Jacobian block at a time (the
    # whole sparse matrix was 40 % of the peak memory of an 8000-frame run): the same bits
    from plscope.kinetics.trace_fit import (
        _covariance_from_blocks,
        _data_block,
        _joint_covariance_blocks,
        _prior_rows,
    )

    rng = np.random.default_rng(2)
    geoms = _geometries(3, seed=5)
    xs = [_perturbed_start(g, rng) for g in geoms]
    keeps = [np.arange(g.t.size) % 5 != 0 for g in geoms]
    sig, sdv = [2.0, 3.0, 1.5], np.array([0.1, 0.2, 0.3])
    offs = np.cumsum([0, *[x.size for x in xs]])
    theta = np.concatenate([*xs, [0.5, 1.0, 1.2]])
    sizes = [x.size for x in xs]
    jac = _joint_jacobian_fn(geoms, keeps, sig, offs, sdv)(theta)
    ref = _joint_covariance_blocks(jac, sizes, [int(k.sum()) for k in keeps])
    blocks = (_data_block(theta, geoms, keeps, sig, offs, i) + 0.0 for i in range(len(geoms)))
    new = _covariance_from_blocks(blocks, _prior_rows(offs, sdv), sizes)
    np.testing.assert_array_equal(_prior_rows(offs, sdv), jac[int(sum(k.sum() for k in keeps)) :].toarray())
    for a, b in zip(ref, new, strict=True):
        assert a.tobytes() == b.tobytes()
