"""The steps of ``scipy.optimize.least_squares``' trust-region reflective method, compiled.

Why
---
A particle's whole-trace fit (:mod:`.trace_fit`) hands the solver a reduced
problem of ``P + 4`` rows and ``P`` (8-14) parameters: per iteration the
residuals cost ~0.1 ms (the frames, compiled) and ``least_squares``' Python
around them (``VectorFunction``, a checked SVD, ~30 small numpy calls) about
three times that, thousands of times per run (issue 16). These are the same
steps as ``scipy.optimize._lsq.trf.trf_bounds`` with the exact trust-region
solver (``tr_solver='exact'``, ``x_scale='jac'``) and the helpers of
``scipy.optimize._lsq.common``, line by line, as numba functions, so that the
whole iteration runs compiled (:func:`.trace_fit._trf_solve` drives them).
They take the same decisions on the same numbers; the sums and products are
not the same machine code (BLAS dot products, the SVD's driver), so the path
agrees to rounding, and where a termination test is met within rounding the
end point may differ by one step below the tolerances.

numba's on-disk cache of :func:`.trace_fit._trf_solve` holds these functions compiled into it and is
keyed by ``trace_fit.py`` alone: after editing this module, touch ``trace_fit.py`` (or remove the
``__pycache__`` index files) so that the solve is compiled again.
"""

from __future__ import annotations

import math

import numba
import numpy as np

EPS = float(np.finfo(float).eps)

# Plain loops rather than numpy's array expressions and BLAS products below: the matrices are ~20 x 14,
# and every array expression costs compile time (~0.1-1 s each; the solver compiles once per install).


@numba.njit(cache=True, nogil=True)
def dot(a, b):  # pragma: no cover (numba)
    """``a @ b`` of two vectors."""
    acc = 0.0
    for i in range(a.size):
        acc += a[i] * b[i]
    return acc


@numba.njit(cache=True, nogil=True)
def matvec(a, x, transpose):  # pragma: no cover (numba)
    """``a @ x`` (``transpose``: ``a.T @ x``)."""
    m, n = a.shape
    out = np.zeros(n if transpose else m)
    for i in range(m):
        for j in range(n):
            if transpose:
                out[j] += a[i, j] * x[i]
            else:
                out[i] += a[i, j] * x[j]
    return out


@numba.njit(cache=True, nogil=True)
def scale_active(v, dv, scale_inv):  # pragma: no cover (numba)
    """``v`` with ``v[dv != 0] *= scale_inv[dv != 0]`` (a copy)."""
    out = v.copy()
    for i in range(v.size):
        if dv[i] != 0:
            out[i] *= scale_inv[i]
    return out


@numba.njit(cache=True, nogil=True)
def augment(ja, jac, d, diag_h):  # pragma: no cover (numba)
    """``ja[:m] = jac * d`` and ``ja[m:] = diag(diag_h ** 0.5)`` (the exact solver's augmented system)."""
    m, n = jac.shape
    ja[m:] = 0.0
    for i in range(m):
        for j in range(n):
            ja[i, j] = jac[i, j] * d[j]
    for j in range(n):
        ja[m + j, j] = diag_h[j] ** 0.5


@numba.njit(cache=True, nogil=True)
def cl_scaling_vector(x, g, lb, ub):  # pragma: no cover (numba)
    """Coleman-Li scaling vector ``v`` and its derivative ``dv`` (``common.CL_scaling_vector``)."""
    v, dv = np.ones_like(x), np.zeros_like(x)
    for i in range(x.size):
        if g[i] < 0 and np.isfinite(ub[i]):
            v[i], dv[i] = ub[i] - x[i], -1.0
        if g[i] > 0 and np.isfinite(lb[i]):
            v[i], dv[i] = x[i] - lb[i], 1.0
    return v, dv


@numba.njit(cache=True, nogil=True)
def jac_scale(jac, scale_inv_old, first):  # pragma: no cover (numba)
    """Column norms of ``jac`` (``common.compute_jac_scale``): ``(scale, scale_inv)``."""
    scale_inv = np.zeros(jac.shape[1])
    for k in range(jac.shape[0]):
        for i in range(scale_inv.size):
            scale_inv[i] += jac[k, i] ** 2
    for i in range(scale_inv.size):
        scale_inv[i] = math.sqrt(scale_inv[i])
        if first:
            if scale_inv[i] == 0:
                scale_inv[i] = 1.0
        else:
            scale_inv[i] = max(scale_inv[i], scale_inv_old[i])
    return 1.0 / scale_inv, scale_inv


@numba.njit(cache=True, nogil=True)
def strictly_feasible(x, lb, ub, rstep):  # pragma: no cover (numba)
    """``common.make_strictly_feasible``: ``x`` moved off its bounds (``rstep=0``: by one ulp)."""
    out = x.copy()
    for i in range(x.size):
        if rstep == 0:
            low, up = x[i] <= lb[i], x[i] >= ub[i]
        else:
            lo_d, up_d = x[i] - lb[i], ub[i] - x[i]
            low = np.isfinite(lb[i]) and lo_d <= min(up_d, rstep * max(1.0, abs(lb[i])))
            up = np.isfinite(ub[i]) and up_d <= min(lo_d, rstep * max(1.0, abs(ub[i])))
        if up:
            out[i] = np.nextafter(ub[i], lb[i]) if rstep == 0 else ub[i] - rstep * max(1.0, abs(ub[i]))
        elif low:
            out[i] = np.nextafter(lb[i], ub[i]) if rstep == 0 else lb[i] + rstep * max(1.0, abs(lb[i]))
        if out[i] < lb[i] or out[i] > ub[i]:
            out[i] = 0.5 * (lb[i] + ub[i])
    return out


@numba.njit(cache=True, nogil=True)
def step_to_bound(x, s, lb, ub):  # pragma: no cover (numba)
    """``common.step_size_to_bound``: the step along ``s`` to the first bound, and which bounds it hits."""
    steps = np.full(x.size, np.inf)
    for i in range(x.size):
        if s[i] != 0:
            steps[i] = max((lb[i] - x[i]) / s[i], (ub[i] - x[i]) / s[i])
    t = np.min(steps)
    hits = np.zeros(x.size, np.int64)
    for i in range(x.size):
        if steps[i] == t:
            hits[i] = 1 if s[i] > 0 else (-1 if s[i] < 0 else 0)
    return t, hits


@numba.njit(cache=True, nogil=True)
def quadratic_1d(jh, g, s, diag, s0):  # pragma: no cover (numba)
    """``common.build_quadratic_1d`` with ``diag`` and ``s0`` (``s0`` empty: none): ``a, b, c``."""
    v = matvec(jh, s, False)
    a = 0.5 * (dot(v, v) + dot(s * diag, s))
    b = dot(g, s)
    c = 0.0
    if s0.size:
        u = matvec(jh, s0, False)
        b += dot(u, v)
        c = 0.5 * dot(u, u) + dot(g, s0)
        b += dot(s0 * diag, s)
        c += 0.5 * dot(s0 * diag, s0)
    return a, b, c


@numba.njit(cache=True, nogil=True)
def minimize_1d(a, b, lo, hi, c):  # pragma: no cover (numba)
    """``common.minimize_quadratic_1d``: ``(t, value)`` of the smallest of ``a t^2 + b t + c`` on [lo, hi]."""
    best_t, best_y = lo, lo * (a * lo + b) + c
    y = hi * (a * hi + b) + c
    if y < best_y:
        best_t, best_y = hi, y
    if a != 0:
        ext = -0.5 * b / a
        if lo < ext < hi:
            y = ext * (a * ext + b) + c
            if y < best_y:
                best_t, best_y = ext, y
    return best_t, best_y


@numba.njit(cache=True, nogil=True)
def quadratic_value(jh, g, s, diag):  # pragma: no cover (numba)
    """``common.evaluate_quadratic``: ``0.5 s.T (J.T J + diag) s + g.T s``."""
    js = matvec(jh, s, False)
    return 0.5 * (dot(js, js) + dot(s * diag, s)) + dot(s, g)


@numba.njit(cache=True, nogil=True)
def solve_trust_region(n, m, uf, s, v, delta, alpha):  # pragma: no cover (numba)
    """``common.solve_lsq_trust_region`` (More's method on one SVD): the step ``p`` and ``alpha``."""
    suf = s * uf
    full_rank = m >= n and s[-1] > EPS * m * s[0]
    if full_rank:
        p = -matvec(v, uf / s, False)
        if math.sqrt(dot(p, p)) <= delta:
            return p, 0.0
    upper = math.sqrt(dot(suf, suf)) / delta
    lower = 0.0
    if full_rank:
        phi, dphi = _phi(0.0, suf, s, delta)
        lower = -phi / dphi
    if not full_rank and alpha == 0:
        alpha = max(0.001 * upper, math.sqrt(lower * upper))
    for _ in range(10):
        if alpha < lower or alpha > upper:
            alpha = max(0.001 * upper, math.sqrt(lower * upper))
        phi, dphi = _phi(alpha, suf, s, delta)
        if phi < 0:
            upper = alpha
        ratio = phi / dphi
        lower = max(lower, alpha - ratio)
        alpha -= (phi + delta) * ratio / delta
        if abs(phi) < 0.01 * delta:
            break
    p = -matvec(v, suf / (s**2 + alpha), False)
    p *= delta / math.sqrt(dot(p, p))
    return p, alpha


@numba.njit(cache=True, nogil=True)
def _phi(alpha, suf, s, delta):  # pragma: no cover (numba)
    denom = s**2 + alpha
    q = suf / denom
    p_norm = math.sqrt(dot(q, q))
    return p_norm - delta, -np.sum(suf**2 / denom**3) / p_norm


@numba.njit(cache=True, nogil=True)
def select_step(x, jh, diag_h, g_h, p, p_h, d, delta, lb, ub, theta):  # pragma: no cover (numba)
    """``trf.select_step``: the best of the trust-region step (pulled inside the bounds), its
    reflection at the first bound hit, and the scaled gradient direction: ``(step, step_h,
    predicted reduction)``."""
    inside = True
    for i in range(x.size):
        inside = inside and lb[i] <= x[i] + p[i] <= ub[i]
    if inside:
        return p, p_h, -quadratic_value(jh, g_h, p_h, diag_h)
    p_stride, hits = step_to_bound(x, p, lb, ub)
    r_h = p_h.copy()
    for i in range(r_h.size):
        if hits[i] != 0:
            r_h[i] = -r_h[i]
    r = d * r_h
    p, p_h = p * p_stride, p_h * p_stride
    to_tr = _to_trust_region(p_h, r_h, delta)
    to_bound = step_to_bound(x + p, r, lb, ub)[0]
    r_stride = min(to_bound, to_tr)
    r_lo, r_hi = 0.0, -1.0
    if r_stride > 0:
        r_lo = (1 - theta) * p_stride / r_stride
        r_hi = theta * to_bound if r_stride == to_bound else to_tr
    r_value = np.inf
    if r_lo <= r_hi:
        a, b, c = quadratic_1d(jh, g_h, r_h, diag_h, p_h)
        r_stride, r_value = minimize_1d(a, b, r_lo, r_hi, c)
        r_h = r_h * r_stride + p_h
        r = r_h * d
    p, p_h = p * theta, p_h * theta
    p_value = quadratic_value(jh, g_h, p_h, diag_h)
    ag_h = -g_h
    ag = d * ag_h
    to_tr = delta / math.sqrt(dot(ag_h, ag_h))
    to_bound = step_to_bound(x, ag, lb, ub)[0]
    ag_stride = theta * to_bound if to_bound < to_tr else to_tr
    a, b, _ = quadratic_1d(jh, g_h, ag_h, diag_h, np.empty(0))
    ag_stride, ag_value = minimize_1d(a, b, 0.0, ag_stride, 0.0)
    if p_value < r_value and p_value < ag_value:
        return p, p_h, -p_value
    if r_value < p_value and r_value < ag_value:
        return r, r_h, -r_value
    return ag * ag_stride, ag_h * ag_stride, -ag_value


@numba.njit(cache=True, nogil=True)
def _to_trust_region(x, s, delta):  # pragma: no cover (numba)
    """The positive root of ``|x + s t| = delta`` (``common.intersect_trust_region``)."""
    a, b, c = dot(s, s), dot(x, s), dot(x, x) - delta**2
    d = math.sqrt(b * b - a * c)
    q = -(b + math.copysign(d, b))
    t1, t2 = q / a, c / q
    return max(t1, t2)


@numba.njit(cache=True, nogil=True)
def update_radius(delta, actual, predicted, step_norm, bound_hit):  # pragma: no cover (numba)
    """``common.update_tr_radius``: the new radius and the ratio of actual to predicted reduction."""
    if predicted > 0:
        ratio = actual / predicted
    elif predicted == actual == 0:
        ratio = 1.0
    else:
        ratio = 0.0
    if ratio < 0.25:
        delta = 0.25 * step_norm
    elif ratio > 0.75 and bound_hit:
        delta *= 2.0
    return delta, ratio


@numba.njit(cache=True, nogil=True)
def termination(d_cost, cost, dx_norm, x_norm, ratio, ftol, xtol):  # pragma: no cover (numba)
    """``common.check_termination``: 2 ftol, 3 xtol, 4 both, 0 neither."""
    f_ok = d_cost < ftol * cost and ratio > 0.25
    x_ok = dx_norm < xtol * (xtol + x_norm)
    if f_ok and x_ok:
        return 4
    if f_ok:
        return 2
    if x_ok:
        return 3
    return 0
