"""Straight-line fits with standard errors and t intervals (weighted or not)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats as _st

__all__ = ["LineFit", "fit_line", "t_interval"]


@dataclass(frozen=True)
class LineFit:
    """y = intercept + slope * x, with the (scaled) covariance of the two.

    Attributes
    ----------
    slope, intercept : float
    cov : numpy.ndarray, shape (2, 2)
        Covariance of (intercept, slope), scaled by the reduced chi-square
        (the scatter about the line sets the errors, not only the weights).
    dof : int
        Degrees of freedom (points - 2).
    """

    slope: float
    intercept: float
    cov: np.ndarray
    dof: int

    @property
    def slope_se(self) -> float:
        return float(np.sqrt(self.cov[1, 1]))

    @property
    def intercept_se(self) -> float:
        return float(np.sqrt(self.cov[0, 0]))

    def x_at(self, y: float) -> tuple[float, float]:
        """Abscissa where the line reaches ``y``, and its standard error (delta method)."""
        x = (y - self.intercept) / self.slope
        grad = np.array([-1.0 / self.slope, -x / self.slope])
        return float(x), float(np.sqrt(max(grad @ self.cov @ grad, 0.0)))

    def __call__(self, x):
        return self.intercept + self.slope * np.asarray(x, float)


def t_interval(value: float, se: float, dof: int, level: float = 0.95) -> tuple[float, float]:
    """Two-sided Student-t interval ``value +- t * se``."""
    t = float(_st.t.ppf(0.5 + level / 2, max(dof, 1)))
    return value - t * se, value + t * se


def fit_line(x, y, sigma=None) -> LineFit:
    """Least-squares line through (x, y), weighted by ``1/sigma**2`` when given.

    Raises
    ------
    ValueError
        Fewer than 3 points, or all x equal.
    """
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    if x.size < 3:
        raise ValueError(f"a straight-line fit needs at least 3 points, got {x.size}")
    w = np.ones_like(x) if sigma is None else 1.0 / np.asarray(sigma, float) ** 2
    if not np.all(np.isfinite(w)) or np.any(w <= 0):
        w = np.ones_like(x)
    design = np.column_stack([np.ones_like(x), x])
    normal = design.T @ (design * w[:, None])
    if np.linalg.cond(normal) > 1e14:
        raise ValueError("all x values are equal: no line can be fitted")
    cov0 = np.linalg.inv(normal)
    beta = cov0 @ (design.T @ (w * y))
    resid = y - design @ beta
    dof = x.size - 2
    chi2_red = float(np.sum(w * resid**2) / dof)
    return LineFit(slope=float(beta[1]), intercept=float(beta[0]), cov=cov0 * chi2_red, dof=dof)
