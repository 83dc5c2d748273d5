"""Compiled assembly of the size model of :mod:`plscope.tracking.size` (numba).

The group model of the size fits (plane background plus ``k`` blurred
squares, see :class:`plscope.tracking.size._GroupModel`) is separable: each
square is the outer product of two 1-D pixel-integrated box profiles. The
profiles need ``exp`` and ``erf`` of the distance of every pixel boundary to
every square edge; those two stay numpy's ``exp`` and scipy's ``erf`` (one
call each for all squares and both axes of a group, each boundary once,
:func:`edge_terms`), so they are the very values numpy gave before (a
compiled ``exp`` may differ in the last bit). Everything else -- their
arguments (:func:`edge_arguments`), the profiles and their derivatives, the
outer products on the fitted pixels, the model and the Jacobian columns -- is
compiled and does the arithmetic of the numpy expressions in the same order,
so the model and Jacobian are bit for bit theirs (no fast-math: no
reassociation, no fused multiply-add; numpy's error model: a division by
zero gives inf or NaN as in numpy, it does not raise).
"""

from __future__ import annotations

import math

import numba
import numpy as np
from scipy.special import erf

_SQRT2 = math.sqrt(2.0)
_INV_SQRT2PI = 1.0 / math.sqrt(2.0 * math.pi)


def pixel_edges(pix: np.ndarray) -> np.ndarray:
    """The ``n + 1`` pixel boundaries of ``n`` consecutive integer pixel centres ``pix``.

    ``pix - 0.5`` and the last ``pix + 0.5``: boundary ``j + 1`` is exactly
    ``pix[j] + 0.5`` (half-integers are exact), so the terms of the lower and
    upper edge of each pixel are computed once for both neighbours.
    """
    return np.append(pix - 0.5, pix[-1] + 0.5)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def edge_arguments(edges_x, edges_y, squares, sigma):  # pragma: no cover - compiled
    """Distances ``u`` of the pixel boundaries to the edges of ``k`` squares and the arguments of exp, erf.

    Parameters
    ----------
    edges_x, edges_y : ndarray, shape (nx + 1,) and (ny + 1,)
        :func:`pixel_edges` of the columns and rows of the region of interest.
    squares : ndarray, shape (k, 4)
        ``x0, y0, side, total`` of each square (px, ADU).
    sigma : float
        Gaussian PSF sigma (px).

    Returns
    -------
    u, t, w : ndarray, shape (k, 2, nx + ny + 2)
        ``u`` = pixel boundary minus the square's lower (``[:, 0]``) and upper
        (``[:, 1]``) edge, the x boundaries first, then the y ones;
        ``t = -0.5 z z`` and ``w = z / sqrt(2)`` with ``z = u / sigma``: numpy's
        ``exp(t)`` and scipy's ``erf(w)`` then give the terms of
        ``size._profile_and_derivs`` (the same expressions, elementwise).
    """
    k = squares.shape[0]
    nxe = edges_x.size
    n = nxe + edges_y.size
    u = np.empty((k, 2, n))
    t = np.empty((k, 2, n))
    w = np.empty((k, 2, n))
    for i in range(k):
        half = 0.5 * squares[i, 2]
        for e in range(2):
            cx = squares[i, 0] - half if e == 0 else squares[i, 0] + half
            cy = squares[i, 1] - half if e == 0 else squares[i, 1] + half
            for j in range(n):
                uu = edges_x[j] - cx if j < nxe else edges_y[j - nxe] - cy
                z = uu / sigma
                u[i, e, j] = uu
                t[i, e, j] = -0.5 * z * z
                w[i, e, j] = z / _SQRT2
    return u, t, w


def edge_terms(
    edges_x: np.ndarray, edges_y: np.ndarray, squares: np.ndarray, sigma: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(u, exp(-z**2 / 2), erf(z / sqrt 2))`` of :func:`edge_arguments` (numpy's exp, scipy's erf)."""
    u, t, w = edge_arguments(edges_x, edges_y, squares, float(sigma))
    return u, np.exp(t), erf(w)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _profiles(u, ex, ef, sigma, i, off, n):  # pragma: no cover - compiled
    """Profile, d/dcentre, d/dside and d/dsigma of square ``i`` on ``n`` pixels, shape (4, n).

    From the :func:`edge_terms` ``u, exp, erf`` of the pixels' boundaries
    ``off .. off + n``: ``phi = exp * 1/sqrt(2 pi)``, ``Phi = 0.5 (1 + erf)``
    and ``G = u Phi + sigma phi``; then the differences of
    ``size._profile_and_derivs``.
    """
    out = np.empty((4, n))
    g = np.empty((2, n + 1))
    cdf = np.empty((2, n + 1))
    phi = np.empty((2, n + 1))
    for e in range(2):
        for j in range(n + 1):
            ph = ex[i, e, off + j] * _INV_SQRT2PI
            c = 0.5 * (1.0 + ef[i, e, off + j])
            phi[e, j] = ph
            cdf[e, j] = c
            g[e, j] = u[i, e, off + j] * c + sigma * ph
    for j in range(n):
        out[0, j] = (g[0, j + 1] - g[0, j]) - (g[1, j + 1] - g[1, j])
        fa = cdf[0, j + 1] - cdf[0, j]
        fb = cdf[1, j + 1] - cdf[1, j]
        out[1, j] = fb - fa
        out[2, j] = 0.5 * (fa + fb)
        out[3, j] = (phi[0, j + 1] - phi[0, j]) - (phi[1, j + 1] - phi[1, j])
    return out


@numba.njit(cache=True, nogil=True, error_model="numpy")
def assemble(
    terms, sigma, nx, iy, ix, p, n_bg, dxx, dyy, free_sigma, want_jac, mdl, signal, jac
):  # pragma: no cover
    """Model, particle signal and Jacobian of a group on its fitted pixels (filled in place).

    ``terms``: the ``(u, exp, erf)`` of :func:`edge_terms` (``nx + 1`` x
    boundaries, then the y ones) at PSF ``sigma``; ``iy, ix``: row and column (in the region of
    interest) of each fitted pixel; ``p``: background (1 or 3 values), then ``x0, y0, side,
    total`` per square (and sigma when ``free_sigma``); ``dxx, dyy``: pixel
    offsets from the region's centre (plane background when ``n_bg == 3``).
    ``jac`` (pixels x parameters) is written only when ``want_jac``.
    """
    u, ex, ef = terms
    k = u.shape[0]
    ny = u.shape[2] - nx - 2
    npx = iy.size
    for r in range(npx):
        signal[r] = 0.0
    if want_jac:
        for r in range(npx):
            jac[r, 0] = 1.0
            if n_bg == 3:
                jac[r, 1] = dxx[r]
                jac[r, 2] = dyy[r]
            if free_sigma:
                jac[r, jac.shape[1] - 1] = 0.0
    for i in range(k):
        j0 = n_bg + 4 * i
        side = p[j0 + 2]
        total = p[j0 + 3]
        px = _profiles(u, ex, ef, sigma, i, 0, nx)
        py = _profiles(u, ex, ef, sigma, i, nx + 1, ny)
        amp = total / (side * side)
        for r in range(npx):
            a = iy[r]
            b = ix[r]
            img = py[0, a] * px[0, b]
            signal[r] += amp * img
            if want_jac:
                jac[r, j0] = amp * (py[0, a] * px[1, b])
                jac[r, j0 + 1] = amp * (py[1, a] * px[0, b])
                jac[r, j0 + 2] = amp * (py[2, a] * px[0, b] + py[0, a] * px[2, b]) - 2.0 * amp * img / side
                jac[r, j0 + 3] = img / (side * side)
                if free_sigma:
                    jac[r, jac.shape[1] - 1] += amp * (py[3, a] * px[0, b] + py[0, a] * px[3, b])
    for r in range(npx):
        bg = p[0] + (p[1] * dxx[r] + p[2] * dyy[r] if n_bg == 3 else 0.0)
        mdl[r] = bg + signal[r]


@numba.njit(cache=True, nogil=True, error_model="numpy")
def scale_jacobian(jac, col_scale, row_weight):  # pragma: no cover - compiled
    """``jac[r, c] = (jac[r, c] * col_scale[c]) * row_weight[r]`` in place.

    The order of ``J[:, logi] *= p[logi]; J * w[:, None]`` (a column scale of 1
    leaves a value unchanged bit for bit).
    """
    for r in range(jac.shape[0]):
        for c in range(jac.shape[1]):
            jac[r, c] = (jac[r, c] * col_scale[c]) * row_weight[r]
