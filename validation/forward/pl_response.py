"""A simple PL response to the field: single-exponential drop and recovery with known tau.

While the field ``E`` is on, the quenched fraction ``q`` relaxes towards
``SE`` with time constant ``tau_pol(E)``; while it is off, towards 0 with
``tau_rec``. ``PL = 1 - q``, averaged over each exposure. (Richer kinetics
belong to ``validation/forward/kinetics.py``.)
"""

from __future__ import annotations

import numpy as np


def quenched_fraction(
    t_s: np.ndarray,
    on_intervals: list[tuple[float, float, float]],
    *,
    se: float,
    tau_pol_s: dict[float, float],
    tau_rec_s: float,
) -> np.ndarray:
    """``q(t)`` for sorted ``on_intervals`` of ``(start_s, end_s, field_kV_per_cm)``; q = 0 before."""
    t = np.asarray(t_s, float)
    q = np.zeros_like(t)
    segments = []  # (start, end, target, tau): ON, then OFF until the next ON edge
    for k, (start, end, e) in enumerate(on_intervals):
        nxt = on_intervals[k + 1][0] if k + 1 < len(on_intervals) else np.inf
        segments.append((start, end, se, tau_pol_s[e]))
        segments.append((end, nxt, 0.0, tau_rec_s))
    q_now = 0.0
    for start, end, target, tau in segments:
        sel = (t >= start) & (t < end)
        q[sel] = target + (q_now - target) * np.exp(-(t[sel] - start) / tau)
        if np.isfinite(end):
            q_now = target + (q_now - target) * np.exp(-(end - start) / tau)
    return q


def exposure_pl(
    frame_start_s: np.ndarray,
    exposure_s: float,
    on_intervals: list[tuple[float, float, float]],
    *,
    se: float,
    tau_pol_s: dict[float, float],
    tau_rec_s: float,
    n_sub: int = 16,
) -> np.ndarray:
    """PL factor ``1 - q`` averaged over each exposure (``n_sub`` midpoint samples)."""
    offs = (np.arange(n_sub) + 0.5) / n_sub * exposure_s
    t = (np.asarray(frame_start_s, float)[:, None] + offs[None, :]).ravel()
    q = quenched_fraction(t, on_intervals, se=se, tau_pol_s=tau_pol_s, tau_rec_s=tau_rec_s)
    return 1.0 - q.reshape(-1, n_sub).mean(axis=1)
