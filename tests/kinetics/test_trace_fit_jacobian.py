"""The whole-trace fit's compiled residuals equal the model's, its analytic Jacobians central differences."""

from __future__ import annotations

import numpy as np
import pytest
from validation.forward.kinetics import KineticsScenario, simulate_kinetics

from plscope.kinetics.trace_fit import (
    ShapeHyper,
    _covariance,
    _covariance_from_blocks,
    _prior_rows,
    _residuals,
    _start,
    n_params,
    predict,
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
        out = _residuals(x, g, np.arange(g.t.size), -1.0, True)  # weight -1: d model / dx
        jac, num = out[:, :-1], _numeric(lambda p, g=g: predict(p, g), x)
        np.testing.assert_allclose(out[:, -1], predict(x, g) - g.y, rtol=0, atol=1e-12 * np.max(np.abs(g.y)))
        assert jac.shape == (g.t.size, x.size)
        scale = np.max(np.abs(num), axis=0)
        assert np.all(np.max(np.abs(jac - num), axis=0) <= 1e-6 * scale)


def _data_block(theta, geoms, keeps, sig, offs, i: int) -> np.ndarray:
    """Particle ``i``'s data rows of the joint Jacobian, over its own parameters (dense)."""
    rows = np.flatnonzero(keeps[i]).astype(np.int64)
    return _residuals(theta[offs[i] : offs[i + 1]], geoms[i], rows, 1.0 / sig[i], True)[:, :-1]


def _joint_jacobian(theta, geoms, keeps, sig, offs, sdv) -> np.ndarray:
    """The joint fit's whole Jacobian, dense, from the blocks the package uses (small problems only)."""
    n_data = [int(k.sum()) for k in keeps]
    jac = np.zeros((sum(n_data), theta.size))
    r = 0
    for i in range(len(geoms)):
        jac[r : r + n_data[i], offs[i] : offs[i + 1]] = _data_block(theta, geoms, keeps, sig, offs, i)
        r += n_data[i]
    return np.vstack([jac, _prior_rows(offs, sdv)])


def _joint_problem(n: int, seed: int):
    rng = np.random.default_rng(seed)
    geoms = _geometries(n, seed=seed + 3)
    xs = [_perturbed_start(g, rng) for g in geoms]
    keeps = [np.arange(g.t.size) % (5 + i) != 0 for i, g in enumerate(geoms)]  # some frames masked
    sig, sdv = [2.0, 3.0, 1.5][:n], np.array([0.1, 0.2, 0.3])
    offs = np.cumsum([0, *[x.size for x in xs]])
    theta = np.concatenate([*xs, [0.5, 1.0, 1.2]])
    return geoms, keeps, sig, sdv, offs, theta


def test_joint_jacobian_has_the_blocks_and_prior_rows():
    geoms, keeps, sig, sdv, offs, theta = _joint_problem(2, seed=1)
    jac = _joint_jacobian(theta, geoms, keeps, sig, offs, sdv)

    def fn(th):
        out = [(g.y - predict(th[offs[i] : offs[i + 1]], g))[keeps[i]] / sig[i] for i, g in enumerate(geoms)]
        out += [(th[offs[i] + 1 : offs[i] + 4] - th[-3:]) / sdv for i in range(len(geoms))]
        return np.concatenate(out)

    num = _numeric(fn, theta)
    assert jac.shape == num.shape
    np.testing.assert_allclose(jac, num, rtol=0, atol=1e-6 * np.max(np.abs(num)))


def test_block_wise_covariance_equals_the_dense_one():
    # fit_population_traces takes the covariance from one particle's Jacobian block at a time (per-particle
    # pseudo-inverses and the Schur complement of the population mean): against the SVD of the whole
    # dense Jacobian, one parameter of particle 0 without data (a flat direction)
    geoms, keeps, sig, sdv, offs, theta = _joint_problem(3, seed=2)
    sizes = list(np.diff(offs))
    blocks = [_data_block(theta, geoms, keeps, sig, offs, i) for i in range(len(geoms))]
    blocks[0][:, 5] = 0.0
    dense = _joint_jacobian(theta, geoms, keeps, sig, offs, sdv)
    dense[: blocks[0].shape[0], 5] = 0.0
    ref = _covariance(dense, 1.0)
    new = _covariance_from_blocks(blocks, _prior_rows(offs, sdv), sizes)
    for i, cov in enumerate(new):
        block = ref[offs[i] : offs[i + 1], offs[i] : offs[i + 1]]
        finite = np.isfinite(block)
        np.testing.assert_array_equal(np.isfinite(cov), finite)
        scale = np.sqrt(np.abs(np.outer(np.diag(block), np.diag(block))))
        assert np.max(np.abs(cov - block)[finite] / scale[finite]) < 1e-10
    assert not np.isfinite(new[0][5, 5]) and np.isfinite(new[0][0, 0]) and np.isfinite(new[1]).all()
    # the joint fit hands over each particle's last fit's data rows: the reduced problem's R (and a zero row)
    from plscope.kinetics.trace_fit import _TraceProblem

    reduced = blocks[:1] + [
        _TraceProblem(geoms[i], keeps[i], sig[i], ShapeHyper()).jac(theta[offs[i] : offs[i + 1]])[:-3]
        for i in (1, 2)
    ]
    assert reduced[1].shape == (sizes[1] + 1, sizes[1])
    for cov, want in zip(_covariance_from_blocks(reduced, _prior_rows(offs, sdv), sizes), new, strict=True):
        finite = np.isfinite(want)
        np.testing.assert_array_equal(np.isfinite(cov), finite)
        scale = np.sqrt(np.abs(np.outer(np.diag(want), np.diag(want))))
        assert np.max(np.abs(cov - want)[finite] / scale[finite]) < 1e-10


def test_reduced_problem_has_the_cost_gradient_and_curvature_of_the_whole_one():
    # the ordinary-loss fits hand least_squares Q.T f and R of [J f] = Q R: every quantity the
    # trust-region solver uses must be the whole problem's
    from plscope.kinetics.trace_fit import _TraceProblem

    rng = np.random.default_rng(6)
    g = _geometries(1, seed=7)[0]
    x = _perturbed_start(g, rng)
    keep = np.arange(g.t.size) % 6 != 0
    hyper = ShapeHyper(prior={"a1": (0.4, 0.1), "rho_pol": (1.0, 0.3), "rho_rec": (1.5, 0.2)})
    whole, small = _TraceProblem(g, keep, 2.5, hyper, reduced=False), _TraceProblem(g, keep, 2.5, hyper)
    f, j = whole.fun(x), whole.jac(x)
    fr, jr = small.fun(x), small.jac(x)
    assert fr.size == x.size + 4 and jr.shape == (x.size + 4, x.size)
    assert fr @ fr == pytest.approx(f @ f, rel=1e-12)
    h = j.T @ j
    np.testing.assert_allclose(jr.T @ fr, j.T @ f, rtol=0, atol=1e-10 * np.max(np.abs(j.T @ f)))
    np.testing.assert_allclose(jr.T @ jr, h, rtol=0, atol=1e-12 * np.max(np.abs(h)))
    np.testing.assert_array_equal(small.data_residuals(x), f[:-3])


def test_triangular_factor_reproduces_the_gram_matrix_conditioned_or_not():
    from plscope.kinetics.trace_fit import _cholesky_factor, _qr_factor

    rng = np.random.default_rng(8)
    a = rng.normal(size=(500, 6)) * np.array([1e-3, 1.0, 10.0, 1e4, 1.0, 5.0])  # scales differ
    bad = a.copy()
    bad[:, 4] = bad[:, 1] + 1e-9 * rng.normal(size=500)  # two columns nearly equal: the QR path
    assert _cholesky_factor(a.T @ a) is not None and _cholesky_factor(bad.T @ bad) is None
    for m in (a, bad):
        r = _cholesky_factor(m.T @ m)
        r = _qr_factor(m) if r is None else r
        assert r.shape == (6, 6) and np.allclose(np.tril(r, -1), 0.0)
        scale = np.sqrt(np.outer(np.diag(m.T @ m), np.diag(m.T @ m)))
        np.testing.assert_allclose((r.T @ r) / scale, (m.T @ m) / scale, rtol=0, atol=1e-13)


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_streamed_gram_equals_the_gram_of_the_whole_rows(seed):
    # the reduced problem accumulates [J f].T [J f] frame by frame (plain or soft-L1 scaled rows) without
    # building the frames x (P + 1) matrix: against the matrix product of the rows _residuals writes
    from plscope.kinetics.trace_fit import _F_SCALE, _gram, _soft_l1_rows

    rng = np.random.default_rng(seed)
    g = _geometries(1, seed=seed)[0]
    x = _perturbed_start(g, rng)
    rows = np.flatnonzero(rng.random(g.t.size) > 0.2).astype(np.int64)  # some frames left out
    w = 1.0 / (0.5 * g.noise)  # residuals of several noise sigmas: the loss is far from quadratic
    a = _residuals(x, g, rows, w, True)
    for f_scale, ref, rho in ((0.0, a, 0.0), (_F_SCALE, *_soft_l1_rows(a))):
        gram, rho_sum = _gram(x, g, rows, w, f_scale)
        want = ref.T @ ref
        scale = np.sqrt(np.outer(np.diag(want), np.diag(want)))
        np.testing.assert_allclose(gram / scale, want / scale, rtol=0, atol=1e-13)
        np.testing.assert_array_equal(gram, gram.T)
        assert rho_sum == pytest.approx(float(np.sum(rho)), rel=1e-13, abs=0.0)


def test_reduced_robust_problem_has_the_loss_scaled_whole_one():
    # the robust (soft-L1) first fit: least_squares scales J and f by the loss at every point; the
    # reduced rows carry the scaled J.T J and J.T f, the last two entries the rest of the robust cost
    from scipy.optimize._lsq.common import scale_for_robust_loss_function
    from scipy.optimize._lsq.least_squares import construct_loss_function

    from plscope.kinetics.trace_fit import _F_SCALE, _TraceProblem

    rng = np.random.default_rng(9)
    g = _geometries(1, seed=10)[0]
    x = _perturbed_start(g, rng)
    keep = np.ones(g.t.size, bool)
    whole = _TraceProblem(g, keep, 0.7 * g.noise, ShapeHyper(), loss="soft_l1", reduced=False)
    small = _TraceProblem(g, keep, 0.7 * g.noise, ShapeHyper(), loss="soft_l1")
    f, j = whole.fun(x), whole.jac(x)
    loss = construct_loss_function(f.size, "soft_l1", _F_SCALE)
    cost = loss(f, cost_only=True)
    j_s, f_s = scale_for_robust_loss_function(j.copy(), f.copy(), loss(f))
    fr, jr = small.fun(x), small.jac(x)
    small_loss = construct_loss_function(fr.size, small.loss, _F_SCALE)
    assert small_loss(fr, cost_only=True) == pytest.approx(cost, rel=1e-12)
    rho = small_loss(fr)
    np.testing.assert_array_equal(rho[1], 1.0)  # no further scaling of the reduced rows
    np.testing.assert_array_equal(rho[2], 0.0)
    grad = j_s.T @ f_s
    np.testing.assert_allclose(jr.T @ fr, grad, rtol=0, atol=1e-10 * np.max(np.abs(grad)))
    h = j_s.T @ j_s
    np.testing.assert_allclose(jr.T @ jr, h, rtol=0, atol=1e-12 * np.max(np.abs(h)))
