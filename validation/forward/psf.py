"""Point-spread functions sampled on a fine grid (normalized to unit sum)."""

from __future__ import annotations

import numpy as np
from scipy.special import j1

#: sigma of the best-fitting Gaussian of an Airy pattern, in units of lambda / NA
AIRY_GAUSS_SIGMA = 0.21


def airy_sigma_nm(wavelength_nm: float, na: float) -> float:
    """Standard deviation of the Gaussian that best matches the Airy pattern (Zhang et al. 2007)."""
    return AIRY_GAUSS_SIGMA * wavelength_nm / na


def psf_kernel(psf: dict, step_nm: float, *, sub: int = 3) -> np.ndarray:
    """PSF kernel on a fine grid of ``step_nm`` cells (cell-averaged by ``sub`` sub-samples).

    ``psf`` is ``{"kind": "gaussian", "sigma_nm": s}`` or
    ``{"kind": "airy", "wavelength_nm": w, "na": n}``. The kernel reaches
    5 sigma (Gaussian) or 6 Airy radii and sums to 1.
    """
    kind = psf["kind"]
    if kind == "gaussian":
        s = float(psf["sigma_nm"])
        reach = 5.0 * s
    elif kind == "airy":
        k = 2.0 * np.pi * float(psf["na"]) / float(psf["wavelength_nm"])
        reach = 6.0 * 0.61 * float(psf["wavelength_nm"]) / float(psf["na"])
    else:
        raise ValueError(f"unknown PSF kind {kind!r}")
    n = int(np.ceil(reach / step_nm))
    offs = (np.arange(sub) + 0.5) / sub - 0.5
    g = ((np.arange(-n, n + 1)[:, None] + offs[None, :]) * step_nm).ravel()
    yy, xx = np.meshgrid(g, g, indexing="ij")
    r2 = xx * xx + yy * yy
    if kind == "gaussian":
        val = np.exp(-0.5 * r2 / (s * s))
    else:
        v = k * np.sqrt(r2)
        with np.errstate(invalid="ignore", divide="ignore"):
            val = np.where(v > 1e-9, (2.0 * j1(v) / v) ** 2, 1.0)
    m = 2 * n + 1
    val = val.reshape(m, sub, m, sub).mean(axis=(1, 3))
    return val / val.sum()
