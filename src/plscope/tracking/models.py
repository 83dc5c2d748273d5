"""Image models of particles shared by the size fit and the simulator.

A square particle of side ``L`` (axis-aligned) with uniform emission, blurred
by a Gaussian PSF of standard deviation ``sigma`` and integrated over square
pixels, is separable: the image is the outer product of two 1-D profiles.
Each 1-D profile has a closed form, so the fit model and the simulator use
exactly the same, exact expression (no sampling error).

Coordinates: pixel ``i`` covers ``[i - 0.5, i + 0.5]``; its centre is at
``i`` (the scikit-image / trackpy convention). ``x`` is the column axis,
``y`` the row axis.
"""

from __future__ import annotations

import numpy as np
from scipy.special import erf

_SQRT2 = np.sqrt(2.0)
_SQRT2PI = np.sqrt(2.0 * np.pi)


def _G(u: np.ndarray, sigma: float) -> np.ndarray:
    """Antiderivative of the Gaussian CDF: int Phi(u/sigma) du."""
    z = u / sigma
    phi = np.exp(-0.5 * z * z) / _SQRT2PI
    cdf = 0.5 * (1.0 + erf(z / _SQRT2))
    return u * cdf + sigma * phi


def box_profile(pixels: np.ndarray, center: float, side: float, sigma: float) -> np.ndarray:
    """Pixel-integrated profile of a unit-height box blurred by a Gaussian.

    Parameters
    ----------
    pixels : ndarray
        Pixel indices (centres), any shape.
    center : float
        Centre of the box in pixel units.
    side : float
        Width of the box in pixels (>= 0).
    sigma : float
        Standard deviation of the Gaussian PSF in pixels (> 0).

    Returns
    -------
    ndarray
        For each pixel, the integral over the pixel of ``box * gaussian``;
        summed over all pixels it equals ``side``.
    """
    side = max(float(side), 1e-9)
    sigma = max(float(sigma), 1e-6)
    a = center - side / 2.0
    b = center + side / 2.0
    p = np.asarray(pixels, dtype=float)
    hi = p + 0.5
    lo = p - 0.5
    return (_G(hi - a, sigma) - _G(lo - a, sigma)) - (_G(hi - b, sigma) - _G(lo - b, sigma))


def blurred_square(
    shape: tuple[int, int], x0: float, y0: float, side_px: float, sigma_px: float, *, total: float = 1.0
) -> np.ndarray:
    """Image of a blurred, pixel-integrated square particle.

    Parameters
    ----------
    shape : (rows, cols)
        Output image shape.
    x0, y0 : float
        Centre (column, row) in pixel coordinates.
    side_px : float
        Side length in pixels.
    sigma_px : float
        Gaussian PSF standard deviation in pixels.
    total : float
        Integrated intensity of the particle (over the infinite plane).

    Returns
    -------
    ndarray of float, shape ``shape``
    """
    rows, cols = shape
    px = box_profile(np.arange(cols), x0, side_px, sigma_px)
    py = box_profile(np.arange(rows), y0, side_px, sigma_px)
    side = max(float(side_px), 1e-9)
    return np.outer(py, px) * (total / (side * side))


def render_squares(
    shape: tuple[int, int],
    x_px,
    y_px,
    side_px,
    total,
    sigma_px: float,
    *,
    window_sigmas: float = 6.0,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Sum of blurred, pixel-integrated squares (the fit model of many particles).

    Each square is evaluated with :func:`box_profile` in a window of
    ``side / 2 + window_sigmas * sigma_px`` around its centre.

    Parameters
    ----------
    shape : (rows, cols)
    x_px, y_px, side_px, total : array_like, shape (n,)
        Centres (column, row), sides (pixels) and integrated intensities.
        Rows with a non-finite value are skipped.
    sigma_px : float
        Gaussian PSF standard deviation in pixels.
    window_sigmas : float
        Half-width of the evaluation window beyond the square, in PSF sigmas.
    out : ndarray of float, shape ``shape``, optional
        Image to add to (in place); a new zero image if omitted.

    Returns
    -------
    ndarray of float64, shape ``shape``
    """
    rows, cols = shape
    img = np.zeros(shape) if out is None else out
    x, y, s, t = (np.atleast_1d(np.asarray(v, dtype=float)) for v in (x_px, y_px, side_px, total))
    keep = np.isfinite(x) & np.isfinite(y) & np.isfinite(s) & np.isfinite(t) & (s > 0) & (t != 0)
    x, y, s, t = x[keep], y[keep], s[keep], t[keep]
    half = s / 2 + window_sigmas * sigma_px
    c0 = np.maximum(np.floor(x - half).astype(np.int64), 0)
    c1 = np.minimum(np.ceil(x + half).astype(np.int64) + 1, cols)
    r0 = np.maximum(np.floor(y - half).astype(np.int64), 0)
    r1 = np.minimum(np.ceil(y + half).astype(np.int64) + 1, rows)
    inside = (c0 < c1) & (r0 < r1)
    if not inside.any():
        return img
    x, y, s, t, c0, c1, r0, r1 = (v[inside] for v in (x, y, s, t, c0, c1, r0, r1))
    # every window's profiles at once (element by element the same arithmetic as box_profile);
    # the windows are then added one by one, in the particles' order
    sigma = np.full(x.size, float(sigma_px))
    px = box_profiles(c0[:, None] + np.arange(int(np.max(c1 - c0))), x, s, sigma)
    py = box_profiles(r0[:, None] + np.arange(int(np.max(r1 - r0))), y, s, sigma)
    scale = t / (s * s)
    for i in range(x.size):
        w, h = c1[i] - c0[i], r1[i] - r0[i]
        img[r0[i] : r1[i], c0[i] : c1[i]] += np.outer(py[i, :h], px[i, :w]) * scale[i]
    return img


def box_profiles(pixels: np.ndarray, center, side, sigma) -> np.ndarray:
    """:func:`box_profile` of many boxes at once.

    Parameters
    ----------
    pixels : ndarray, shape (n, m)
        Pixel indices (centres), one row per box.
    center, side, sigma : array_like, shape (n,)
        Centre and width of each box and its Gaussian sigma, in pixels.

    Returns
    -------
    ndarray, shape (n, m)
        Row ``i`` equals ``box_profile(pixels[i], center[i], side[i], sigma[i])``.
    """
    p = np.asarray(pixels, dtype=float)
    c = np.asarray(center, dtype=float)[:, None]
    s = np.maximum(np.asarray(side, dtype=float), 1e-9)[:, None]
    g = np.maximum(np.asarray(sigma, dtype=float), 1e-6)[:, None]
    a = c - s / 2.0
    b = c + s / 2.0
    hi = p + 0.5
    lo = p - 0.5
    return (_G(hi - a, g) - _G(lo - a, g)) - (_G(hi - b, g) - _G(lo - b, g))
