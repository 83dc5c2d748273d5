"""Particle footprints on a fine grid, by point-in-shape tests on sub-samples.

A shape is a dict: ``{"kind": "square", "side_nm": L, "angle_deg": a}``,
``{"kind": "rectangle", "a_nm": .., "b_nm": .., "angle_deg": ..}``,
``{"kind": "rounded_square", "side_nm": .., "radius_nm": .., "angle_deg": ..}``,
``{"kind": "disc", "diameter_nm": ..}``. Coordinates are nm relative to the
shape centre; the mask value of a fine cell is the fraction of its
``sub x sub`` sub-samples inside the shape (anti-aliased area).
"""

from __future__ import annotations

import numpy as np


def _inside(kind: str, u: np.ndarray, v: np.ndarray, shape: dict) -> np.ndarray:
    if kind == "square":
        h = 0.5 * shape["side_nm"]
        return (np.abs(u) <= h) & (np.abs(v) <= h)
    if kind == "rectangle":
        return (np.abs(u) <= 0.5 * shape["a_nm"]) & (np.abs(v) <= 0.5 * shape["b_nm"])
    if kind == "rounded_square":
        h = 0.5 * shape["side_nm"]
        r = shape["radius_nm"]
        du = np.clip(np.abs(u) - (h - r), 0.0, None)
        dv = np.clip(np.abs(v) - (h - r), 0.0, None)
        return (np.abs(u) <= h) & (np.abs(v) <= h) & (du * du + dv * dv <= r * r)
    if kind == "disc":
        r = 0.5 * shape["diameter_nm"]
        return u * u + v * v <= r * r
    raise ValueError(f"unknown shape kind {kind!r}")


def extent_nm(shape: dict) -> float:
    """Radius (nm) of a circle that holds the shape."""
    kind = shape["kind"]
    if kind in ("square", "rounded_square"):
        return 0.5 * np.sqrt(2.0) * shape["side_nm"]
    if kind == "rectangle":
        return 0.5 * np.hypot(shape["a_nm"], shape["b_nm"])
    return 0.5 * shape["diameter_nm"]


def area_nm2(shape: dict, step_nm: float = 1.0) -> float:
    """Area of the shape (nm^2), from the same point test on a 1 nm grid (exact to < 0.5 %)."""
    r = extent_nm(shape) + step_nm
    g = np.arange(-r, r + step_nm, step_nm)
    m = shape_mask(shape, g, g, sub=1)
    return float(m.sum()) * step_nm * step_nm


def shape_mask(shape: dict, x_nm: np.ndarray, y_nm: np.ndarray, *, sub: int = 4) -> np.ndarray:
    """Covered fraction of each fine cell centred on ``(y_nm[i], x_nm[j])``.

    Parameters
    ----------
    shape : dict
        See the module docstring; ``angle_deg`` rotates the shape
        counter-clockwise (from +x towards +y).
    x_nm, y_nm : ndarray, 1-D, uniform spacing
        Cell centres relative to the shape centre (nm).
    sub : int
        Sub-samples per cell and axis.

    Returns
    -------
    ndarray, shape (len(y_nm), len(x_nm))
    """
    dx = float(x_nm[1] - x_nm[0]) if len(x_nm) > 1 else 1.0
    offs = (np.arange(sub) + 0.5) / sub - 0.5
    xs = (x_nm[:, None] + offs[None, :] * dx).ravel()
    ys = (y_nm[:, None] + offs[None, :] * dx).ravel()
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    a = np.deg2rad(shape.get("angle_deg", 0.0))
    u = xx * np.cos(a) + yy * np.sin(a)
    v = -xx * np.sin(a) + yy * np.cos(a)
    inside = _inside(shape["kind"], u, v, shape).astype(np.float64)
    ny, nx = len(y_nm), len(x_nm)
    return inside.reshape(ny, sub, nx, sub).mean(axis=(1, 3))
