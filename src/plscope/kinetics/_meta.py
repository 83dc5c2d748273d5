"""Random-effects pooling of per-particle estimates (shared by the curve and the whole-trace fits)."""

from __future__ import annotations

import math

import numpy as np


def random_effects(x: np.ndarray, se: np.ndarray) -> tuple[float, float]:
    """DerSimonian-Laird random-effects mean and between-study standard deviation."""
    w = 1.0 / se**2
    m_fixed = float(np.sum(w * x) / np.sum(w))
    q = float(np.sum(w * (x - m_fixed) ** 2))
    k = x.size
    denom = float(np.sum(w) - np.sum(w**2) / np.sum(w))
    tau2 = max(0.0, (q - (k - 1)) / denom) if denom > 0 else 0.0
    w2 = 1.0 / (se**2 + tau2)
    return float(np.sum(w2 * x) / np.sum(w2)), math.sqrt(tau2)
