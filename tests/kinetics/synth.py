"""Exact synthetic PL traces of one particle under a switched field (test ground truth).

Model: two sub-populations ``i`` with polarized fractions ``s_i(t)`` relax
exponentially towards 1 while the field is ON (time constants
``tau_pol_s(E)``) and towards 0 while it is OFF (``tau_rec_s``); each
half-cycle starts from whatever state the previous one left. The
instantaneous PL is

    PL(t) = bright * bleach(t) * blink(t) * (1 - se * sum_i w_i s_i(t)),

``bleach(t) = exp(-k t)`` and ``blink(t)`` piecewise constant. Each frame
integrates PL over its exposure exactly (Gauss-Legendre on the pieces
between switching/blink edges, exact to rounding for these smooth pieces);
counts are Poisson with mean ``PL`` (``bright = 1e4`` gives 1 % noise).

The expected amplitude-weighted time constant of the cycle-averaged,
pre-ON-normalized response is computed from the actual state at every edge
(``expected_tau_s``), so incomplete relaxation is accounted for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

_GL_X, _GL_W = np.polynomial.legendre.leggauss(8)


@dataclass
class SimTrace:
    time_s: np.ndarray
    intensity: np.ndarray
    cycles: pd.DataFrame
    exposure_s: float
    se: float
    expected: dict = field(default_factory=dict)  # (level, phase) -> expected tau_s
    state_at_edges: list = field(default_factory=list)


def _pair(v):
    v = tuple(float(x) for x in np.atleast_1d(v))
    return v if len(v) == 2 else (v[0], v[0])


def simulate_trace(
    *,
    fields_kV_per_cm=(90.0, 110.0, 130.0),
    n_cycles=10,
    half_period_s=20.0,
    lead_in_s=10.0,
    frame_interval_s=0.2001,
    exposure_s=0.15,
    frame_offset_s=0.0731,
    bright=1e4,
    se=0.3,
    weight_fast=0.5,
    tau_pol_s=(1.0, 4.0),
    tau_rec_s=(1.5, 5.0),
    bleach_percent_per_min=0.0,
    blinks=(),
    noise=True,
    rng=None,
) -> SimTrace:
    """Simulate one particle.

    ``tau_pol_s`` is a pair (fast, slow) or a callable ``field -> pair``;
    ``blinks`` is a sequence of ``(start_s, duration_s, factor)``.
    """
    fields = [float(f) for f in fields_kV_per_cm]
    w = np.array([weight_fast, 1.0 - weight_fast])
    k_bleach = -math.log(1.0 - bleach_percent_per_min / 100.0) / 60.0
    rows, edges = [], []  # edges: (time, target u, taus)
    t_on = lead_in_s
    cyc = 0
    for lev, f in enumerate(fields):
        taus_pol = _pair(tau_pol_s(f) if callable(tau_pol_s) else tau_pol_s)
        for _ in range(n_cycles):
            rows.append((cyc, lev, f, 1, t_on, t_on + half_period_s, t_on + 2 * half_period_s))
            edges.append((t_on, 1.0, taus_pol))
            edges.append((t_on + half_period_s, 0.0, _pair(tau_rec_s)))
            t_on += 2 * half_period_s
            cyc += 1
    t_end = t_on
    cycles = pd.DataFrame(
        rows, columns=["cycle", "level", "field_kV_per_cm", "sign", "on_start_s", "on_end_s", "off_end_s"]
    )
    edge_t = np.array([e[0] for e in edges])
    edge_u = np.array([e[1] for e in edges])
    edge_tau = np.array([e[2] for e in edges])  # (n_edges, 2)
    s_start = np.zeros((len(edges), 2))  # state at each edge
    s = np.zeros(2)
    for j in range(len(edges)):
        if j:
            dt = edge_t[j] - edge_t[j - 1]
            s = edge_u[j - 1] + (s - edge_u[j - 1]) * np.exp(-dt / edge_tau[j - 1])
        s_start[j] = s

    blink_arr = np.array(blinks, dtype=float).reshape(-1, 3)

    def pl(t):
        t = np.asarray(t, dtype=float)
        j = np.searchsorted(edge_t, t, side="right") - 1
        jj = np.clip(j, 0, len(edges) - 1)
        u = edge_u[jj][..., None]
        s0 = s_start[jj]
        tau = edge_tau[jj]
        st = u + (s0 - u) * np.exp(-(t - edge_t[jj])[..., None] / tau)
        st = np.where((j < 0)[..., None], 0.0, st)
        val = 1.0 - se * (st * w).sum(axis=-1)
        val = val * np.exp(-k_bleach * t)
        for b0, bd, bf in blink_arr:
            val = np.where((t >= b0) & (t < b0 + bd), val * bf, val)
        return bright * val

    n_frames = int(math.floor((t_end - frame_offset_s - exposure_s) / frame_interval_s)) + 1
    starts = frame_offset_s + frame_interval_s * np.arange(n_frames)
    mids = starts + exposure_s / 2
    breaks = np.sort(np.concatenate([edge_t, blink_arr[:, 0], blink_arr[:, 0] + blink_arr[:, 1]]))
    mean = np.empty(n_frames)
    lo_idx = np.searchsorted(breaks, starts, side="right")
    hi_idx = np.searchsorted(breaks, starts + exposure_s, side="left")
    plain = lo_idx >= hi_idx
    nodes = starts[plain, None] + exposure_s * (_GL_X + 1) / 2
    mean[plain] = (pl(nodes) * _GL_W).sum(axis=1) / 2
    for k in np.flatnonzero(~plain):
        pts = np.concatenate([[starts[k]], breaks[lo_idx[k] : hi_idx[k]], [starts[k] + exposure_s]])
        tot = 0.0
        for a, b in zip(pts[:-1], pts[1:]):
            if b > a:
                tot += (pl(a + (b - a) * (_GL_X + 1) / 2) * _GL_W).sum() * (b - a) / 2
        mean[k] = tot / exposure_s
    if noise:
        rng = np.random.default_rng(0) if rng is None else rng
        intensity = rng.poisson(mean).astype(float)
    else:
        intensity = mean

    expected = {}
    for lev in range(len(fields)):
        idx = np.flatnonzero(cycles["level"].to_numpy() == lev)
        for phase, off in (("pol", 0), ("rec", 1)):
            amps = []
            for c in idx:
                j = 2 * c + off
                s_on = s_start[2 * c]
                plateau = 1.0 - se * float((s_on * w).sum())
                if phase == "pol":
                    amps.append(se * w * (1.0 - s_start[j]) / plateau)
                else:
                    amps.append(-se * w * s_start[j] / plateau)
            a = np.mean(amps, axis=0)
            expected[(lev, phase)] = float((a * edge_tau[2 * idx[0] + off]).sum() / a.sum())
    return SimTrace(
        time_s=mids,
        intensity=intensity,
        cycles=cycles,
        exposure_s=exposure_s,
        se=se,
        expected=expected,
        state_at_edges=s_start,
    )
