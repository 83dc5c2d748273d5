"""A blurred rectangle at any in-plane angle, fitted in Fourier space.

The image of a uniform ``a x b`` rectangle rotated by ``theta``, blurred by a
Gaussian PSF of standard deviation ``sigma`` and integrated over square
pixels has the exact Fourier transform::

    F(k) = total * sinc(a k_u) sinc(b k_v) * exp(-2 pi^2 sigma^2 |k|^2)
           * sinc(k_x) sinc(k_y) * exp(-2 pi i k . r0)

(``k_u, k_v`` the frequency in the rectangle's axes; ``sinc(x) =
sin(pi x) / (pi x)``). The model is evaluated by an inverse FFT on a grid of
half pixels twice the size of the region (so neither the wrap-around nor the
aliasing above the pixel Nyquist frequency matters at the 1e-6 level for
sigma >= 0.7 px) and is smooth in every parameter.

The axis-aligned square model of :mod:`plscope.tracking.size` cannot follow a
rotated particle and makes up for it with a wider PSF; fitted with free
sides and angle, the PSF sigma no longer depends on the particle's shape or
orientation. This is how :func:`~plscope.tracking.measure_sizes` estimates
sigma.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares


def rectangle_image(
    shape: tuple[int, int],
    x0: float,
    y0: float,
    a: float,
    b: float,
    theta_rad: float,
    sigma: float,
    total: float,
) -> np.ndarray:
    """Pixel values of a blurred rectangle on a ``shape`` grid (pixel centres at integers)."""
    ny, nx = shape
    m = 2 * int(2 ** math.ceil(math.log2(max(ny, nx) * 2)))  # half-pixel samples, padded 2x
    k = np.fft.fftfreq(m, d=0.5)  # cycles per pixel, up to 1
    ky, kx = np.meshgrid(k, k, indexing="ij")
    c, s = math.cos(theta_rad), math.sin(theta_rad)
    ku = kx * c + ky * s
    kv = -kx * s + ky * c
    f = (
        np.sinc(a * ku)
        * np.sinc(b * kv)
        * np.exp(-2.0 * math.pi**2 * sigma**2 * (kx * kx + ky * ky))
        * np.sinc(kx)
        * np.sinc(ky)
        * np.exp(-2j * math.pi * (kx * x0 + ky * y0))
    )
    img = np.fft.ifft2(f).real * (total * 4.0)  # 4 half-pixel samples per pixel area
    return img[: 2 * ny : 2, : 2 * nx : 2]


@dataclass(frozen=True)
class RectFit:
    """Result of :func:`fit_rectangle` (lengths in pixels, angle in degrees 0-180)."""

    x0: float
    y0: float
    a: float
    b: float
    angle_deg: float
    sigma: float
    sigma_err: float
    total: float
    chi2_red: float
    success: bool


def fit_rectangle(
    roi: np.ndarray,
    mask: np.ndarray,
    weights: np.ndarray,
    *,
    x0: float,
    y0: float,
    side: float,
    sigma0: float,
    total0: float,
    bg0: float,
    angles_deg: tuple[float, ...] = (0.0, 45.0),
) -> RectFit:
    """Plane background + one blurred rectangle with free sides, angle and PSF sigma.

    Parameters
    ----------
    roi : ndarray, shape (ny, nx)
        Pixels (ADU); coordinates relative to the ROI's first pixel.
    mask, weights : ndarray, shape (ny, nx)
        Pixels to fit; ``1 / sqrt(variance)`` of each.
    x0, y0, side, sigma0, total0, bg0 : float
        Starting values (ROI coordinates, pixels, ADU).
    angles_deg : tuple of float
        Starting angles; the best of the fits is kept.
    """
    ny, nx = roi.shape
    yy, xx = np.mgrid[0:ny, 0:nx].astype(np.float64)
    xc, yc = 0.5 * (nx - 1), 0.5 * (ny - 1)
    data = roi[mask]
    w = weights[mask]
    dx, dy = (xx - xc)[mask], (yy - yc)[mask]

    def ex(v):  # log-parameters stay finite whatever the optimizer tries
        return math.exp(min(max(float(v), -30.0), 30.0))

    def model(q):
        bg = q[0] + q[1] * dx + q[2] * dy
        img = rectangle_image((ny, nx), q[3], q[4], ex(q[5]), ex(q[6]), q[7], ex(q[9]), ex(q[8]))
        return bg + img[mask]

    def fun(q):
        return (model(q) - data) * w

    best = None
    for ang in angles_deg:
        q0 = np.array(
            [
                bg0,
                0.0,
                0.0,
                x0,
                y0,
                math.log(max(side, 0.5)),
                math.log(max(side, 0.5)),
                math.radians(ang),
                math.log(max(total0, 1e-9)),
                math.log(max(sigma0, 0.3)),
            ]
        )
        try:
            res = least_squares(fun, q0, method="lm", x_scale="jac", max_nfev=400)
        except (ValueError, OverflowError, FloatingPointError, np.linalg.LinAlgError):
            continue
        if best is None or res.cost < best.cost:
            best = res
    if best is None:
        nan = float("nan")
        return RectFit(nan, nan, nan, nan, nan, nan, nan, nan, nan, False)
    q = best.x
    dof = max(data.size - q.size, 1)
    chi2 = float(2.0 * best.cost / dof)
    sigma = ex(q[9])
    sigma_err = float("nan")
    J = best.jac
    if np.all(np.isfinite(J)):
        try:
            cov = np.linalg.pinv(J.T @ J) * chi2
            sigma_err = float(sigma * math.sqrt(max(cov[9, 9], 0.0)))
        except np.linalg.LinAlgError:  # pragma: no cover - defensive
            pass
    a, b = ex(q[5]), ex(q[6])
    ang = math.degrees(q[7])
    if b > a:
        a, b, ang = b, a, ang + 90.0
    ok = bool(best.status > 0 and np.all(np.isfinite(q)) and 0.2 < sigma < 0.5 * max(nx, ny))
    return RectFit(float(q[3]), float(q[4]), a, b, ang % 180.0, sigma, sigma_err, ex(q[8]), chi2, ok)
