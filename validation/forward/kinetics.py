"""Independent forward model of field-switched PL traces (kinetics ground truth).

Imports nothing from :mod:`plscope`: the physics is written here from the
paper's description (Chem. Sci. 2025, 16, 22417) and the issue's scenarios,
so that a bug shared with the analysis cannot hide.

Physics
-------
Each particle has two sub-populations ``i = 1, 2`` of quenching sites with
amplitudes ``a_i`` (``a1`` the fast fraction) and a quench state ``q_i(t)``
that relaxes exponentially, carried continuously from one half cycle to the
next (no reset at an edge)::

    dq_i/dt = (target - q_i) / tau_i,
    target = SE(E) while the field is ON, 0 while it is OFF,

with component times ``tau_i = c_i * tau`` where ``a1 c1 + a2 c2 = 1`` (the
amplitude-weighted time ``a1 tau1 + a2 tau2`` equals ``tau``), ``tau2/tau1 =
R``. ON: ``tau = tau_pol = L / (mu E)``; OFF: ``tau = tau_rec``. Each
particle may have its own ``a1`` and its own ``R`` per phase (the two
phases act on the same sub-populations, so ``a1`` is shared). The PL is

    PL(t) = photons * bleach(t) * blink(t) * (1 - sum_i a_i q_i(t)),

``bleach(t) = exp(-k t)``, ``blink(t)`` piecewise constant (factor
``depth`` during a blink). A frame integrates PL over its exposure
(midpoint rule on 24 sub-samples; frames straddling a switching edge are
never used by an analysis). Noise: Poisson on the photons plus Gaussian
background of variance ``background_variance``.

Truth recorded per particle and field: ``tau_pol_s``, ``tau_rec_s``
(amplitude-weighted), ``mobility_cm2_per_Vs``, ``velocity_nm_per_s``,
``se_settled`` (the settled quench depth ``SE(E)``) and ``se_window`` (the
depth reached at the end of the ON window, averaged over the cycles at that
field).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = ["KineticsScenario", "SimulatedKinetics", "simulate_kinetics"]

_NM_TO_CM = 1e-7
_KV_TO_V = 1e3
_SUBSAMPLES = 24


@dataclass(frozen=True)
class KineticsScenario:
    """Parameters of one simulated run (defaults: the demo of ``plscope simulate``).

    Shapes: ``fast_fraction`` and ``ratio`` (``tau2/tau1``) are ranges drawn
    per particle and phase (uniform in ``a1``, log-uniform in ``R``); a
    degenerate range gives every particle the same shape.
    """

    name: str = "default"
    n_particles: int = 16
    size_range_nm: tuple[float, float] = (400.0, 1300.0)
    mobility_cm2_per_Vs: float = 2.56e-10
    mobility_spread: float = 0.10
    tau_rec_s_per_um: float = 3.0
    tau_rec_spread: float = 0.10
    fields_kV_per_cm: tuple[float, ...] = (90.0, 110.0, 130.0)
    cycles_per_level: int = 3
    period_s: float = 40.0
    duty: float = 0.5
    lead_in_s: float = 10.0
    frame_interval_s: float = 0.2
    exposure_s: float = 0.15
    first_frame_s: float = 1.5
    fast_fraction: tuple[float, float] = (0.6, 0.6)
    ratio: tuple[float, float] = (1.6 / 0.6 * 1.0, 1.6 / 0.6 * 1.0)
    se_at_130: tuple[float, float] = (0.35, 0.55)
    photons_per_um2: float = 12000.0  # collected per frame at full PL (aperture included)
    signal_divisor: float = 1.0
    background_variance: float = 1000.0
    blink_rate_per_s: float = 1 / 60
    blink_duration_s: tuple[float, float] = (0.5, 2.0)
    blink_depth: tuple[float, float] = (0.3, 0.7)
    bleach_per_min: float = 0.03

    def replace(self, **kw) -> KineticsScenario:
        """Copy with some fields changed."""
        return dataclasses.replace(self, **kw)


@dataclass
class SimulatedKinetics:
    """Traces and truth of one simulated run."""

    traces: pd.DataFrame  # particle_id, frame, intensity
    time_s: np.ndarray  # mid-exposure time of every frame
    cycles: pd.DataFrame  # cycle, level, field_kV_per_cm, sign, on_start_s, on_end_s, off_end_s
    exposure_s: float
    particles: pd.DataFrame  # particle_id, size_nm, mobility, shapes
    truth: pd.DataFrame  # particle_id, field_kV_per_cm, tau_pol_s, tau_rec_s, se_settled, se_window, ...
    blinks: pd.DataFrame = field(default_factory=pd.DataFrame)


def _components(a1: float, ratio: float) -> tuple[np.ndarray, np.ndarray]:
    """Amplitudes ``(a1, a2)`` and ``c_i = tau_i / tau`` with ``sum a_i c_i = 1``, ``c2/c1 = ratio``."""
    a = np.array([a1, 1.0 - a1])
    c1 = 1.0 / (a1 + (1.0 - a1) * ratio)
    return a, np.array([c1, ratio * c1])


def _schedule(sc: KineticsScenario) -> pd.DataFrame:
    fields = np.repeat(np.asarray(sc.fields_kV_per_cm, float), sc.cycles_per_level)
    on = sc.first_frame_s + sc.lead_in_s + sc.period_s * np.arange(fields.size)
    level = np.repeat(np.arange(len(sc.fields_kV_per_cm)), sc.cycles_per_level)
    return pd.DataFrame(
        {
            "cycle": np.arange(fields.size),
            "level": level,
            "field_kV_per_cm": fields,
            "sign": 1,
            "on_start_s": on,
            "on_end_s": on + sc.period_s * sc.duty,
            "off_end_s": on + sc.period_s,
        }
    )


def _draw_particles(sc: KineticsScenario, rng: np.random.Generator) -> pd.DataFrame:
    n = sc.n_particles
    size = rng.uniform(*sc.size_range_nm, n)
    s = sc.mobility_spread
    mu = sc.mobility_cm2_per_Vs * rng.lognormal(-0.5 * math.log1p(s * s), math.sqrt(math.log1p(s * s)), n)
    rec = sc.tau_rec_s_per_um * size / 1000.0 * rng.lognormal(0.0, sc.tau_rec_spread, n)

    def shape():
        f = rng.uniform(*sc.fast_fraction, n)
        r = np.exp(rng.uniform(math.log(sc.ratio[0]), math.log(sc.ratio[1]), n))
        return f, r

    f, rp = shape()
    _, rr = shape()
    return pd.DataFrame(
        {
            "particle_id": np.arange(n),
            "size_nm": size,
            "mobility_cm2_per_Vs": mu,
            "tau_rec_s": rec,
            "fast_fraction": f,
            "pol_ratio": rp,
            "rec_ratio": rr,
            "se_at_130": rng.uniform(*sc.se_at_130, n),
            "photons": sc.photons_per_um2 * (size / 1000.0) ** 2 / sc.signal_divisor,
        }
    )


def _segments(sc: KineticsScenario, cycles: pd.DataFrame, t_end: float):
    """Piecewise-constant field: segment start times, ON flag, field."""
    starts, on, fields = [-np.inf], [False], [0.0]
    for r in cycles.itertuples(index=False):
        starts += [r.on_start_s, r.on_end_s]
        on += [True, False]
        fields += [r.field_kV_per_cm, 0.0]
    return np.array(starts), np.array(on), np.array(fields)


def _quench_state(p, sc, seg, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``sum_i a_i q_i`` at ``times`` and at every segment start (state carried across edges)."""
    starts, on, fields = seg
    # both phases act on the same two sub-populations (amplitudes a_i); each phase has its own R
    amps, c_p = _components(p.fast_fraction, p.pol_ratio)
    _, c_r = _components(p.fast_fraction, p.rec_ratio)
    n_seg = starts.size
    q0 = np.zeros((n_seg, 2))
    taus = np.zeros((n_seg, 2))
    target = np.zeros(n_seg)
    for j in range(n_seg):
        if on[j]:
            tau = p.size_nm * _NM_TO_CM / (p.mobility_cm2_per_Vs * fields[j] * _KV_TO_V)
            taus[j] = c_p * tau
            target[j] = p.se_at_130 * fields[j] / 130.0
        else:
            taus[j] = c_r * p.tau_rec_s
        if j + 1 < n_seg and j > 0:
            dt = starts[j + 1] - starts[j]
            q0[j + 1] = target[j] + (q0[j] - target[j]) * np.exp(-dt / taus[j])
    idx = np.clip(np.searchsorted(starts, times, side="right") - 1, 0, n_seg - 1)
    dt = np.where(idx > 0, times - starts[idx], 0.0)
    q = target[idx, None] + (q0[idx] - target[idx, None]) * np.exp(-dt[:, None] / taus[idx])
    return q @ amps, q0 @ amps


def _blinks(sc: KineticsScenario, t0: float, t1: float, rng) -> list[tuple[float, float, float]]:
    out, t = [], t0
    if sc.blink_rate_per_s <= 0:
        return out
    while True:
        t += rng.exponential(1.0 / sc.blink_rate_per_s)
        if t >= t1:
            return out
        out.append((t, rng.uniform(*sc.blink_duration_s), rng.uniform(*sc.blink_depth)))


def simulate_kinetics(scenario: KineticsScenario, seed: int, *, noise: bool = True) -> SimulatedKinetics:
    """Simulate every particle's trace of one run.

    Parameters
    ----------
    scenario : KineticsScenario
    seed : int
        Seed of every random draw (population, blinks, noise).
    noise : bool
        Poisson + background noise (False: the exact expectation).

    Returns
    -------
    SimulatedKinetics
    """
    sc = scenario
    rng = np.random.default_rng([int(seed), 1207])
    cycles = _schedule(sc)
    t_end = float(cycles["off_end_s"].iloc[-1])
    n_frames = int(math.floor((t_end - sc.first_frame_s - sc.exposure_s) / sc.frame_interval_s)) + 1
    t_start = sc.first_frame_s + sc.frame_interval_s * np.arange(n_frames)
    t_mid = t_start + sc.exposure_s / 2
    sub = (np.arange(_SUBSAMPLES) + 0.5) / _SUBSAMPLES * sc.exposure_s
    t_fine = (t_start[:, None] + sub[None, :]).ravel()
    seg = _segments(sc, cycles, t_end)
    particles = _draw_particles(sc, rng)
    k_bleach = -math.log(1.0 - sc.bleach_per_min) / 60.0 if sc.bleach_per_min > 0 else 0.0
    ys, truth, blink_rows = [], [], []
    for p in particles.itertuples(index=False):
        qf, q_edges = _quench_state(p, sc, seg, t_fine)
        blink = np.ones_like(t_fine)
        for b0, dur, depth in _blinks(sc, t_start[0], t_end, rng):
            blink[(t_fine >= b0) & (t_fine < b0 + dur)] = depth
            blink_rows.append(
                {"particle_id": p.particle_id, "start_s": b0, "duration_s": dur, "depth": depth}
            )
        pl = p.photons * np.exp(-k_bleach * (t_fine - t_start[0])) * blink * (1.0 - qf)
        expect = pl.reshape(n_frames, _SUBSAMPLES).mean(axis=1)
        if noise:
            y = rng.poisson(expect).astype(float) + rng.normal(
                0.0, math.sqrt(sc.background_variance), n_frames
            )
        else:
            y = expect
        ys.append(y)
        truth += _truth_rows(p, sc, cycles, q_edges)
    traces = pd.DataFrame(
        {
            "particle_id": np.repeat(particles["particle_id"].to_numpy(), n_frames),
            "frame": np.tile(np.arange(n_frames), len(particles)),
            "intensity": np.concatenate(ys) if ys else np.empty(0),
        }
    )
    return SimulatedKinetics(
        traces=traces,
        time_s=t_mid,
        cycles=cycles,
        exposure_s=sc.exposure_s,
        particles=particles,
        truth=pd.DataFrame(truth),
        blinks=pd.DataFrame(blink_rows, columns=["particle_id", "start_s", "duration_s", "depth"]),
    )


def _truth_rows(p, sc: KineticsScenario, cycles: pd.DataFrame, q_edges: np.ndarray) -> list[dict]:
    rows = []
    # q_edges[j] is the state at segment start j; segment 0 is the lead-in, ON k starts segment 2k+1
    for f in sc.fields_kV_per_cm:
        idx = np.flatnonzero(cycles["field_kV_per_cm"].to_numpy() == f)
        tau_pol = p.size_nm * _NM_TO_CM / (p.mobility_cm2_per_Vs * f * _KV_TO_V)
        v = p.size_nm / tau_pol
        rows.append(
            {
                "particle_id": p.particle_id,
                "field_kV_per_cm": float(f),
                "size_nm": p.size_nm,
                "tau_pol_s": tau_pol,
                "tau_rec_s": p.tau_rec_s,
                "velocity_nm_per_s": v,
                "mobility_cm2_per_Vs": p.mobility_cm2_per_Vs,
                "se_settled": p.se_at_130 * f / 130.0,
                "se_window": float(np.mean(q_edges[2 * idx + 2])),
                "fast_fraction": p.fast_fraction,
                "pol_ratio": p.pol_ratio,
                "rec_ratio": p.rec_ratio,
            }
        )
    return rows
