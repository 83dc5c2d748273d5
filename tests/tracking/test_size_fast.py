"""The compiled size model and the direct MINPACK call equal the numpy model and ``least_squares``.

``size._GroupModel.evaluate`` assembles the model and Jacobian in numba
(:mod:`plscope.tracking._size_kernels`) and ``size._solve_log`` calls
MINPACK through ``scipy.optimize.leastsq`` instead of
``least_squares(method="lm")``. Both replace code whose arithmetic they keep:
the references below are the previous implementation, written out in numpy
and scipy, and the results must be equal bit for bit.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import least_squares

from plscope.tracking import size
from plscope.tracking.size import _profile_and_derivs


def reference_evaluate(model: size._GroupModel, p: np.ndarray):
    """The previous ``_GroupModel.evaluate``: outer products of the 1-D profiles, square by square."""
    m = model.mask
    sigma = model.sigma(p)
    bg = p[0] + (p[1] * model.dxx + p[2] * model.dyy if model.plane else 0.0)
    signal = np.zeros(model.dxx.size)
    J = np.zeros((model.dxx.size, model.n_params))
    J[:, 0] = 1.0
    if model.plane:
        J[:, 1] = model.dxx
        J[:, 2] = model.dyy
    for i in range(model.k):
        j0 = model.n_bg + 4 * i
        x0, y0, side, total = p[j0 : j0 + 4]
        px, dpx_c, dpx_s, dpx_g = _profile_and_derivs(model.x, x0, side, sigma)
        py, dpy_c, dpy_s, dpy_g = _profile_and_derivs(model.y, y0, side, sigma)
        amp = total / (side * side)
        img = np.outer(py, px)[m]
        signal += amp * img
        J[:, j0] = amp * np.outer(py, dpx_c)[m]
        J[:, j0 + 1] = amp * np.outer(dpy_c, px)[m]
        J[:, j0 + 2] = amp * (np.outer(dpy_s, px)[m] + np.outer(py, dpx_s)[m]) - 2.0 * amp * img / side
        J[:, j0 + 3] = img / (side * side)
        if model.fixed_sigma is None:
            J[:, -1] += amp * (np.outer(dpy_g, px)[m] + np.outer(py, dpx_g)[m])
    return bg + signal, signal, J


def random_group(rng: np.random.Generator, k: int, free_sigma: bool, background: str):
    """A region of interest with a random mask and ``k`` squares in it (parameters ``p``)."""
    ny, nx = (int(v) for v in rng.integers(6, 30, 2))
    r0, c0 = (int(v) for v in rng.integers(0, 400, 2))
    mask = rng.random((ny, nx)) > 0.25
    sigma = None if free_sigma else float(rng.uniform(0.7, 2.5))
    model = size._GroupModel(slice(r0, r0 + ny), slice(c0, c0 + nx), mask, k, sigma, background)
    p = [rng.normal(100.0, 10.0)] + (list(rng.normal(0.0, 1.0, 2)) if background == "plane" else [])
    for _ in range(k):
        p += [rng.uniform(c0 - 2, c0 + nx + 2), rng.uniform(r0 - 2, r0 + ny + 2)]
        p += [rng.choice([1e-3, rng.uniform(0.01, 1.0), rng.uniform(1.0, 15.0)]), rng.uniform(1.0, 5e4)]
    if free_sigma:
        p.append(rng.uniform(0.7, 2.5))
    return model, np.asarray(p)


@pytest.mark.parametrize("background", ["plane", "constant"])
@pytest.mark.parametrize("free_sigma", [False, True])
def test_group_model_equals_the_numpy_outer_products_bit_for_bit(background, free_sigma):
    rng = np.random.default_rng(17)
    for k in (1, 2, 3, 4, 4, 1):
        model, p = random_group(rng, k, free_sigma, background)
        mdl, signal, J = model.evaluate(p, jac=True)
        ref = reference_evaluate(model, p)
        np.testing.assert_array_equal(mdl, ref[0])
        np.testing.assert_array_equal(signal, ref[1])
        np.testing.assert_array_equal(J, ref[2])
        mdl2, signal2, no_jac = model.evaluate(p, jac=False)
        assert no_jac is None
        np.testing.assert_array_equal(mdl2, ref[0])
        np.testing.assert_array_equal(signal2, ref[1])


def reference_solve_log(model, data, w, p0, logi):
    """The previous ``_solve_log``: ``least_squares(method="lm", x_scale="jac")``."""

    def to_p(q):
        p = q.copy()
        p[logi] = np.exp(np.clip(q[logi], -50.0, 50.0))
        return p

    def fun(q):
        return (reference_evaluate(model, to_p(q))[0] - data) * w

    def jac(q):
        p = to_p(q)
        J = reference_evaluate(model, p)[2]
        J[:, logi] *= p[logi]
        return J * w[:, None]

    q0 = p0.copy()
    q0[logi] = np.log(p0[logi])
    with np.errstate(over="ignore", invalid="ignore"):
        res = least_squares(fun, q0, jac=jac, method="lm", x_scale="jac", max_nfev=100 * model.n_params)
    return to_p(res.x), res


def two_squares(rng: np.random.Generator, free_sigma: bool):
    """Two touching squares (independent render: a 10x supersampled square blurred by a Gaussian)."""
    from scipy import ndimage

    ny, nx, up = 24, 30, 10
    fine = np.zeros((ny * up, nx * up))
    for x0, y0, side, level in ((11.3, 12.2, 6.5, 400.0), (19.6, 11.4, 3.2, 250.0)):
        yy, xx = np.mgrid[0 : ny * up, 0 : nx * up]
        xs, ys = (xx + 0.5) / up - 0.5, (yy + 0.5) / up - 0.5
        fine += level * ((np.abs(xs - x0) <= side / 2) & (np.abs(ys - y0) <= side / 2))
    fine = ndimage.gaussian_filter(fine, 1.3 * up, mode="constant")
    img = fine.reshape(ny, up, nx, up).mean(axis=(1, 3)) + 120.0 + 0.05 * np.arange(nx)[None, :]
    img = rng.poisson(img).astype(float)
    mask = np.ones((ny, nx), bool)
    mask[:3, :4] = False
    model = size._GroupModel(slice(0, ny), slice(0, nx), mask, 2, None if free_sigma else 1.3, "plane")
    p0 = np.array([115.0, 0.0, 0.0, 11.0, 12.0, 5.0, 15000.0, 20.0, 11.0, 4.0, 2000.0])
    if free_sigma:
        p0 = np.append(p0, 1.1)
    w = 1.0 / np.sqrt(np.full(int(mask.sum()), 120.0))
    return model, img[mask], w, p0


@pytest.mark.parametrize("free_sigma", [False, True])
def test_solve_log_takes_the_steps_of_least_squares_lm(free_sigma):
    model, data, w, p0 = two_squares(np.random.default_rng(5), free_sigma)
    logi = size._log_indices(model)
    p, res = size._solve_log(model, data, w, p0, logi)
    p_ref, res_ref = reference_solve_log(model, data, w, p0, logi)
    np.testing.assert_array_equal(p, p_ref)
    assert res.status == res_ref.status > 0
    assert res.message == res_ref.message


def test_solve_log_refuses_a_non_finite_start_as_least_squares_does():
    model, data, w, p0 = two_squares(np.random.default_rng(6), False)
    logi = size._log_indices(model)
    data = data.copy()
    data[3] = np.nan
    with pytest.raises(ValueError) as ours:
        size._solve_log(model, data, w, p0, logi)
    with pytest.raises(ValueError) as theirs:
        reference_solve_log(model, data, w, p0, logi)
    assert str(ours.value) == str(theirs.value)


def test_member_images_equal_box_profile_outer_products_bit_for_bit():
    from plscope.tracking.models import box_profile

    rng = np.random.default_rng(23)
    for k in (1, 3, 4):
        model, p = random_group(rng, k, False, "plane")
        p[model.n_bg + 2] = -1.0 if k == 3 else p[model.n_bg + 2]  # an absurd side: no image
        images = size._member_images(model, p, 1.37)
        for j, member in enumerate(images):
            x0, y0, side, total = p[model.n_bg + 4 * j : model.n_bg + 4 * j + 4]
            if side <= 0:
                assert member is None
                continue
            ref = np.outer(box_profile(model.y, y0, side, 1.37), box_profile(model.x, x0, side, 1.37))
            assert member[:2] == (x0, y0)
            np.testing.assert_array_equal(member[2], ref * (total / (side * side)))


def test_group_model_with_a_zero_side_gives_numpys_inf_and_nan():
    model, p = random_group(np.random.default_rng(29), 2, True, "plane")
    p[model.n_bg + 2] = 0.0
    with np.errstate(all="ignore"):
        ref = reference_evaluate(model, p)
        got = model.evaluate(p, jac=True)
    for a, b in zip(got, ref):
        np.testing.assert_array_equal(a, b)
    assert not np.all(np.isfinite(got[2]))
