"""Compiled assembly of the size model of :mod:`plscope.tracking.size` (numba).

The group model of the size fits (plane background plus ``k`` blurred
squares, see :class:`plscope.tracking.size._GroupModel`) is separable: each
square is the outer product of two 1-D pixel-integrated box profiles. The
profiles need ``exp`` and ``erf`` of the distance of every pixel boundary to
every square edge; those stay in numpy (:func:`edge_terms`, one vectorized
call for all squares and both axes of a group, each boundary once), so they
are the very values numpy gave before. What
was a few dozen small numpy calls per square and per evaluation -- the
profiles and their derivatives from the edge terms, the outer products on the
fitted pixels, the model and the Jacobian columns -- is one compiled loop
(:func:`assemble`) that does the same arithmetic in the same order, so the
model and Jacobian are bit for bit those of the numpy expressions
(no fast-math: no reassociation, no fused multiply-add).
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


def edge_terms(
    edges_x: np.ndarray,
    edges_y: np.ndarray,
    squares: np.ndarray,
    sigma: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Antiderivative ``G``, ``Phi`` and ``phi`` terms of the blurred box profiles of ``k`` squares.

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
    g, cdf, phi : ndarray, shape (k, 2, nx + ny + 2)
        ``G(u) = u Phi(u/sigma) + sigma phi(u/sigma)``, ``Phi(u/sigma)`` and
        ``phi(u/sigma)`` for ``u`` = pixel boundary minus the square's lower
        (``[:, 0]``) and upper (``[:, 1]``) edge; the x boundaries first, then
        the y ones. Elementwise the expressions of ``size._profile_and_derivs``.
    """
    half = 0.5 * squares[:, 2]
    ex = np.stack([squares[:, 0] - half, squares[:, 0] + half], axis=1)
    ey = np.stack([squares[:, 1] - half, squares[:, 1] + half], axis=1)
    u = np.concatenate([edges_x - ex[:, :, None], edges_y - ey[:, :, None]], axis=2)
    z = u / sigma
    phi = np.exp(-0.5 * z * z) * _INV_SQRT2PI
    cdf = 0.5 * (1.0 + erf(z / _SQRT2))
    g = u * cdf + sigma * phi
    return g, cdf, phi


@numba.njit(cache=True, nogil=True)
def _profiles(g, cdf, phi, i, off, n):  # pragma: no cover - compiled
    """Profile, d/dcentre, d/dside and d/dsigma of square ``i`` on ``n`` pixels, shape (4, n).

    The pixels' boundaries are ``off .. off + n`` of the last axis of the edge terms.
    """
    out = np.empty((4, n))
    for j in range(n):
        lo = off + j
        hi = lo + 1
        out[0, j] = (g[i, 0, hi] - g[i, 0, lo]) - (g[i, 1, hi] - g[i, 1, lo])
        fa = cdf[i, 0, hi] - cdf[i, 0, lo]
        fb = cdf[i, 1, hi] - cdf[i, 1, lo]
        out[1, j] = fb - fa
        out[2, j] = 0.5 * (fa + fb)
        out[3, j] = (phi[i, 0, hi] - phi[i, 0, lo]) - (phi[i, 1, hi] - phi[i, 1, lo])
    return out


@numba.njit(cache=True, nogil=True)
def assemble(
    terms, nx, iy, ix, p, n_bg, dxx, dyy, free_sigma, want_jac, mdl, signal, jac
):  # pragma: no cover
    """Model, particle signal and Jacobian of a group on its fitted pixels (filled in place).

    ``terms``: the ``(g, cdf, phi)`` of :func:`edge_terms` (``nx + 1`` x
    boundaries, then the y ones); ``iy, ix``: row and column (in the region of
    interest) of each fitted pixel; ``p``: background (1 or 3 values), then ``x0, y0, side,
    total`` per square (and sigma when ``free_sigma``); ``dxx, dyy``: pixel
    offsets from the region's centre (plane background when ``n_bg == 3``).
    ``jac`` (pixels x parameters) is written only when ``want_jac``.
    """
    g, cdf, phi = terms
    k = g.shape[0]
    ny = g.shape[2] - nx - 2
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
        px = _profiles(g, cdf, phi, i, 0, nx)
        py = _profiles(g, cdf, phi, i, nx + 1, ny)
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


@numba.njit(cache=True, nogil=True)
def scale_jacobian(jac, col_scale, row_weight):  # pragma: no cover - compiled
    """``jac[r, c] = (jac[r, c] * col_scale[c]) * row_weight[r]`` in place.

    The order of ``J[:, logi] *= p[logi]; J * w[:, None]`` (a column scale of 1
    leaves a value unchanged bit for bit).
    """
    for r in range(jac.shape[0]):
        for c in range(jac.shape[1]):
            jac[r, c] = (jac[r, c] * col_scale[c]) * row_weight[r]
