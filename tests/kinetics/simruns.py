"""Particle traces of a simulated run straight from the simulator's kinetic model (no images).

:func:`plscope.sim.frame_photons` gives each particle's exposure-averaged
photons per frame with the simulator's biexponential kinetics, blinking and
bleaching (the exact expectation of what the movie shows). The pipeline's
tight apertures collect a fraction of that light and add the background and
read noise of the aperture; measured on simulated movies (seeds 1-6, all
nuisances on) the trace noise is 1.3-1.7 x the particle's own shot noise,
which Poisson noise on 60 % of the light plus Gaussian noise of variance
1000 photons^2 reproduces over the size range (400-1300 nm).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

APERTURE_FRACTION = 0.6
BACKGROUND_VARIANCE = 1000.0


@dataclass
class SimRun:
    traces: pd.DataFrame  # particle_id, frame, intensity
    time_s: np.ndarray  # mid-exposure time of every frame
    cycles: pd.DataFrame
    exposure_s: float
    particles: pd.DataFrame  # particle_id, size_nm (true sizes)
    truth: dict


def simulated_traces(seed: int, params=None, *, noise: bool = True) -> SimRun:
    """Traces of every particle of a simulated run (ground truth included)."""
    from plscope.sim import ImagingSimParams, draw_population, frame_photons, ground_truth

    p = params or ImagingSimParams()
    pop = draw_population(p, seed=seed)
    truth = ground_truth(p, pop, seed=seed)
    photons = frame_photons(pop, p) * APERTURE_FRACTION
    if noise:
        rng = np.random.default_rng([seed, 5])
        y = rng.poisson(photons).astype(float) + rng.normal(0.0, np.sqrt(BACKGROUND_VARIANCE), photons.shape)
    else:
        y = photons
    t = p.frame_start_times_s() + p.exposure_s / 2
    switch, fields = p.schedule()
    off_end = np.r_[switch[1:, 0], switch[-1, 1] + p.period_s * (1 - p.duty)]
    levels = {f: i for i, f in enumerate(dict.fromkeys(fields.tolist()))}
    cycles = pd.DataFrame(
        {
            "cycle": np.arange(fields.size),
            "level": [levels[f] for f in fields],
            "field_kV_per_cm": fields,
            "sign": 1,
            "on_start_s": switch[:, 0],
            "on_end_s": switch[:, 1],
            "off_end_s": off_end,
        }
    )
    n, m = y.shape
    traces = pd.DataFrame(
        {"particle_id": np.repeat(np.arange(n), m), "frame": np.tile(np.arange(m), n), "intensity": y.ravel()}
    )
    particles = pd.DataFrame({"particle_id": np.arange(n), "size_nm": pop.size_nm})
    return SimRun(
        traces=traces, time_s=t, cycles=cycles, exposure_s=p.exposure_s, particles=particles, truth=truth
    )


def with_truth(table: pd.DataFrame, truth: dict) -> pd.DataFrame:
    """Kinetics rows merged with the true values (suffix ``_true``) and relative errors."""
    tk = pd.DataFrame(truth["kinetics"])
    m = tk.merge(table, on=["particle_id", "field_kV_per_cm"], suffixes=("_true", ""))
    m["err_pol"] = m["tau_pol_s"] / m["tau_pol_s_true"] - 1
    m["err_rec"] = m["tau_rec_s"] / m["tau_rec_s_true"] - 1
    m["z_pol"] = (m["tau_pol_s"] - m["tau_pol_s_true"]) / m["tau_pol_err_s"]
    m["z_rec"] = (m["tau_rec_s"] - m["tau_rec_s_true"]) / m["tau_rec_err_s"]
    return m
