"""Simulated imaging run folders with ground truth.

:func:`simulate_imaging_run` writes a run folder as it comes off the rig
(``movie.tif``, ``daq.csv``, ``experiment.toml``, see
``shared/spec/run-folder.md``) plus ``ground_truth.json``. The physics is that
of Chem. Sci. 2025, 16, 22417 (MAPbBr3 particles under a switched field), see
:mod:`plscope.sim.kinetics`; the nuisances of a real rig (camera offset, shot
and read noise, stage drift, blinking, bleaching, a DAQ that starts before the
camera, surplus TTL pulses, a noisy voltage record, an unrelated DAQ channel)
can each be switched off.

Time conventions (DAQ clock, seconds, ``t = 0`` at the first DAQ sample):

- frame ``k`` is exposed during
  ``[first_frame_time_s + k * frame_interval_s, ... + exposure_s]`` and its
  pixel values are the PL *averaged over that window*; the camera TTL rises at
  the start of the exposure;
- an ON interval ``[on_start, on_end)`` of ``switch_times_s`` has the field on.

Random draws come from independent streams spawned from one
``numpy.random.SeedSequence(seed)``, so switching a nuisance off leaves the
particles, their kinetics and every other draw unchanged.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._files import atomic_files
from .._json import jsonable
from .._progress import progress_iter
from ..config._base import check_fields
from ..config.simulation import ImagingSimFields
from ..errors import PlscopeError
from .kinetics import (
    SE_REFERENCE_FIELD_KV_PER_CM,
    biexponential_weights,
    bleach_factor,
    blink_factor,
    exposure_average,
    polarization_time_s,
    quench_state,
    switching_efficiency,
)
from .render import (
    BACKGROUND_GRADIENT,
    background_image,
    blink_events,
    camera_counts,
    drift_path,
    place_border_particles,
    place_particles,
    place_touching_partners,
    render_particles,
)
from .timing import (
    TTL_CHANNEL,
    VOLTAGE_CHANNEL,
    RunTimingMixin,
    daq_base_signals,
    size_limits,
)

logger = logging.getLogger(__name__)

#: names of the boolean nuisance switches of :class:`ImagingSimParams`
NUISANCES = (
    "camera_offset",
    "noise",
    "drift",
    "blinking",
    "bleaching",
    "daq_lead",
    "extra_ttl",
    "voltage_noise",
    "aux_channel",
)
#: file names inside a simulated run folder
MOVIE_FILE = "movie.tif"
DAQ_FILE = "daq.csv"
EXPERIMENT_FILE = "experiment.toml"
GROUND_TRUTH_FILE = "ground_truth.json"
#: DAQ channel names
AUX_CHANNEL = "aux_photodiode"
#: minimum edge-to-edge gap between particles and from the border, pixels
CLEARANCE_PX = 12.0
BORDER_PX = 14.0
#: relative spread (lognormal, mean preserved) of the recovery time per particle
TAU_REC_SPREAD = 0.10
#: DAQ samples recorded after the end of the last TTL pulse, seconds


class SimulationError(PlscopeError):
    """Invalid simulation parameters (or particles that cannot be placed)."""


@dataclass(frozen=True)
class ImagingSimParams(RunTimingMixin, ImagingSimFields):
    """Parameters of a simulated imaging run; every field has a default.

    The fields, with their types, ranges, units and docs, are declared once
    in :class:`plscope.config.simulation.ImagingSimFields` (and listed in
    ``docs/configuration.md``); they are validated (and lists turned into
    tuples) on construction and by ``dataclasses.replace``. Sizes are side
    lengths of axis-aligned square particles. The booleans switch the
    nuisances of a real rig on or off; :meth:`clean` switches all of them off.
    """

    def __post_init__(self) -> None:
        check_fields(self, SimulationError, "simulation parameters")
        problems = [msg for ok, msg in self._relations() if not ok]
        if problems:
            raise SimulationError("invalid simulation parameters: " + "; ".join(problems))

    def _relations(self) -> list[tuple[bool, str]]:
        """Checks between fields (each field's own range is declared in plscope.config)."""
        out = [
            (
                self.size_range_nm[0] <= self.size_range_nm[1],
                f"'size_range_nm' must satisfy min <= max, got {self.size_range_nm!r}",
            ),
            (
                self.se_at_130[0] <= self.se_at_130[1],
                f"'se_at_130' must satisfy min <= max, got {self.se_at_130!r}",
            ),
            (
                self.fast_fraction * self.fast_ratio < 1,
                f"'fast_ratio' must give fast_fraction * fast_ratio < 1, got {self.fast_ratio!r}",
            ),
            (
                self.touching_pairs <= self.n_particles,
                f"'touching_pairs' {self.touching_pairs!r} exceeds 'n_particles' {self.n_particles!r} "
                "(each pair needs one base particle)",
            ),
            (
                self.touching_gap_px[0] <= self.touching_gap_px[1],
                f"'touching_gap_px' must satisfy min <= max, got {self.touching_gap_px!r}",
            ),
            (
                self.blink_depth_range[0] <= self.blink_depth_range[1],
                f"'blink_depth_range' must satisfy min <= max, got {self.blink_depth_range!r}",
            ),
        ]
        se_max = self.se_at_130[1] * max(self.fields_kV_per_cm) / SE_REFERENCE_FIELD_KV_PER_CM
        out.append(
            (
                se_max < 1,
                f"'se_at_130' max {self.se_at_130[1]!r} gives a switching efficiency {se_max:.3g} >= 1 "
                f"at {max(self.fields_kV_per_cm):g} kV/cm",
            )
        )
        interval = 1.0 / self.frame_rate_hz
        out.append(
            (
                self.exposure_s * self.daq_rate_hz >= 1,
                f"'exposure_s' {self.exposure_s!r} is shorter than one DAQ sample at {self.daq_rate_hz!r} Hz",
            )
        )
        out.append(
            (
                (interval - self.exposure_s) * self.daq_rate_hz >= 1,
                f"'exposure_s' {self.exposure_s!r} leaves less than one DAQ sample of TTL low between frames "
                f"(frame interval {interval:g} s, DAQ {self.daq_rate_hz!r} Hz)",
            )
        )
        if self.daq_lead:
            out.append(
                (
                    self.daq_lead_s * self.daq_rate_hz >= 1,
                    f"'daq_lead_s' {self.daq_lead_s!r} is shorter than one DAQ sample: the first frame would "
                    "have no TTL rising edge (switch 'daq_lead' off instead)",
                )
            )
        out.extend(size_limits(self, self.image_shape[0] * self.image_shape[1]))
        return out

    def clean(self) -> ImagingSimParams:
        """Copy with every nuisance switched off."""
        off: dict[str, Any] = {name: False for name in NUISANCES}
        return dataclasses.replace(self, **off)

    # ---- derived quantities ------------------------------------------------
    @property
    def n_particles_total(self) -> int:
        """All particles: ``n_particles`` + touching partners + border particles."""
        return int(self.n_particles) + int(self.touching_pairs) + int(self.border_particles)

    @property
    def crowded(self) -> bool:
        """True when any crowded-field option differs from its default."""
        return bool(
            self.touching_pairs
            or self.border_particles
            or self.brightness_spread > 0
            or self.blinking_fraction < 1
        )


@dataclass(frozen=True, eq=False)
class SimulatedPopulation:
    """Everything drawn at random for one run (rows are particles, by id).

    Attributes
    ----------
    x_px, y_px : ndarray, shape (n,)
        Centres (column, row) in the first frame.
    size_nm, mobility_cm2_per_Vs, tau_rec_s, se_at_130 : ndarray, shape (n,)
    blinks : dict of ndarray
        ``particle_index, start_s, end_s, factor`` (empty without blinking).
    drift_px : ndarray, shape (n_frames, 2)
        ``(dx, dy)`` per frame (zeros without drift).
    background_angle_rad : float
        Direction of the background illumination gradient.
    brightness_factor : ndarray, shape (n,), optional
        Per-particle brightness factor (None: all 1).
    role : ndarray of int, shape (n,), optional
        0 for a freely placed particle, 1 for the partner of a touching
        pair, 2 for a particle cut by the border (None: all 0).
    partner : ndarray of int, shape (n,), optional
        Row of the other particle of a touching pair, -1 if none.
    blinking : ndarray of bool, shape (n,), optional
        Particles allowed to blink (None: all, when blinking is on).
    """

    x_px: np.ndarray
    y_px: np.ndarray
    size_nm: np.ndarray
    mobility_cm2_per_Vs: np.ndarray
    tau_rec_s: np.ndarray
    se_at_130: np.ndarray
    blinks: dict[str, np.ndarray]
    drift_px: np.ndarray
    background_angle_rad: float
    brightness_factor: np.ndarray | None = None
    role: np.ndarray | None = None
    partner: np.ndarray | None = None
    blinking: np.ndarray | None = None

    @property
    def n_particles(self) -> int:
        return int(self.size_nm.size)


# (a stream appended here leaves the others unchanged: SeedSequence children are keyed by index)
_STREAMS = ("layout", "particles", "blinks", "drift", "background", "camera", "voltage", "aux", "crowd")


def random_streams(seed: int) -> dict[str, np.random.Generator]:
    """Independent generators, one per kind of draw, from one seed."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise SimulationError(f"seed must be a non-negative integer, got {seed!r}")
    children = np.random.SeedSequence(int(seed)).spawn(len(_STREAMS))
    return {name: np.random.default_rng(ss) for name, ss in zip(_STREAMS, children)}


def _lognormal_factor(rng: np.random.Generator, spread: float, n: int) -> np.ndarray:
    """Factors with mean 1 and relative standard deviation ``spread``."""
    if spread <= 0:
        return np.ones(n)
    sigma = math.sqrt(math.log1p(spread**2))
    return np.exp(rng.normal(-(sigma**2) / 2, sigma, size=n))


def draw_population(params: ImagingSimParams, *, seed: int = 0) -> SimulatedPopulation:
    """Draw the particles and the random nuisances of a run.

    Particle ids are assigned in raster order (by row, then column, of the
    centre).

    Raises
    ------
    SimulationError
        If the particles cannot be placed.
    """
    rng = random_streams(seed)
    n = int(params.n_particles)
    size_nm = rng["layout"].uniform(*params.size_range_nm, size=n)
    side_px = size_nm / params.pixel_size_nm
    crowd = rng["crowd"]
    role = np.zeros(n, dtype=int)
    partner = np.full(n, -1)
    try:
        x, y = place_particles(
            side_px,
            params.image_shape,
            rng=rng["layout"],
            clearance_px=params.clearance_px,
            border_px=params.border_margin_px,
        )
        if params.touching_pairs:
            k = int(params.touching_pairs)
            s_nm = crowd.uniform(*params.size_range_nm, size=k)
            base, xp, yp = place_touching_partners(
                x,
                y,
                size_nm / params.pixel_size_nm,
                s_nm / params.pixel_size_nm,
                params.image_shape,
                rng=crowd,
                gap_range_px=params.touching_gap_px,
                clearance_px=params.clearance_px,
                border_px=params.border_margin_px,
            )
            partner[base] = n + np.arange(k)
            partner = np.concatenate([partner, base])
            x, y, size_nm = np.append(x, xp), np.append(y, yp), np.append(size_nm, s_nm)
            role = np.append(role, np.ones(k, dtype=int))
        if params.border_particles:
            k = int(params.border_particles)
            s_nm = crowd.uniform(*params.size_range_nm, size=k)
            xb, yb = place_border_particles(
                x,
                y,
                size_nm / params.pixel_size_nm,
                s_nm / params.pixel_size_nm,
                params.image_shape,
                rng=crowd,
                clearance_px=params.clearance_px,
            )
            x, y, size_nm = np.append(x, xb), np.append(y, yb), np.append(size_nm, s_nm)
            role = np.append(role, np.full(k, 2))
            partner = np.append(partner, np.full(k, -1))
    except ValueError as exc:
        raise SimulationError(str(exc)) from None
    order = np.lexsort((x, y))
    x, y, size_nm, role = x[order], y[order], size_nm[order], role[order]
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    partner = np.where(partner[order] >= 0, rank[np.clip(partner[order], 0, None)], -1)
    n = int(size_nm.size)

    r = rng["particles"]
    mobility = params.mobility_cm2_per_Vs * _lognormal_factor(r, params.mobility_spread, n)
    tau_rec = params.tau_rec_s_per_um * size_nm * 1e-3 * _lognormal_factor(r, TAU_REC_SPREAD, n)
    se = r.uniform(*params.se_at_130, size=n)

    if params.blinking:
        blinks = blink_events(
            n,
            params.first_frame_time_s,
            params.daq_duration_s(),
            rate_per_s=params.blink_rate_per_s,
            rng=rng["blinks"],
            factor_range=params.blink_depth_range,
        )
    else:
        blinks = blink_events(n, 0.0, 0.0, rate_per_s=0.0, rng=rng["blinks"])
    drift = (
        drift_path(params.n_frames, max_px=params.drift_px, rng=rng["drift"])
        if params.drift
        else np.zeros((params.n_frames, 2))
    )
    angle = float(rng["background"].uniform(0.0, 2 * np.pi))
    if not params.crowded:
        return SimulatedPopulation(
            x_px=x,
            y_px=y,
            size_nm=size_nm,
            mobility_cm2_per_Vs=mobility,
            tau_rec_s=tau_rec,
            se_at_130=se,
            blinks=blinks,
            drift_px=drift,
            background_angle_rad=angle,
        )
    factor = _lognormal_factor(crowd, params.brightness_spread, n)
    blinking = np.zeros(n, bool)
    blinking[crowd.permutation(n)[: int(round(params.blinking_fraction * n))]] = True
    if params.blinking:
        keep = blinking[blinks["particle_index"]]
        blinks = {k: v[keep] for k, v in blinks.items()}
    return SimulatedPopulation(
        x_px=x,
        y_px=y,
        size_nm=size_nm,
        mobility_cm2_per_Vs=mobility,
        tau_rec_s=tau_rec,
        se_at_130=se,
        blinks=blinks,
        drift_px=drift,
        background_angle_rad=angle,
        brightness_factor=factor,
        role=role,
        partner=partner,
        blinking=blinking & bool(params.blinking),
    )


def relative_pl(t_s, population: SimulatedPopulation, params: ImagingSimParams) -> np.ndarray:
    """PL relative to the unquenched, unbleached level: ``(1 - q) * bleach * blink``.

    Parameters
    ----------
    t_s : array_like, shape (n_times,)
        DAQ-clock times.

    Returns
    -------
    ndarray, shape (n_particles, n_times)
    """
    t = np.asarray(t_s, dtype=float).ravel()
    switch_times, cycle_fields = params.schedule()
    q = quench_state(
        t,
        switch_times,
        cycle_fields,
        size_nm=population.size_nm,
        mobility_cm2_per_Vs=population.mobility_cm2_per_Vs,
        tau_rec_s=population.tau_rec_s,
        se_at_130=population.se_at_130,
        fast_fraction=params.fast_fraction,
        fast_ratio=params.fast_ratio,
    )
    pl = 1.0 - q
    if params.bleaching:
        pl *= bleach_factor(t, bleach_per_min=params.bleach_per_min, t0_s=params.first_frame_time_s)[None, :]
    b = population.blinks
    if b["start_s"].size:
        pl *= blink_factor(
            t,
            population.n_particles,
            particle_index=b["particle_index"],
            start_s=b["start_s"],
            end_s=b["end_s"],
            factor=b["factor"],
        )
    return pl


def brightness_photons(size_nm, params: ImagingSimParams) -> np.ndarray:
    """Photons per exposure of each particle at full PL (``photons_per_um2 * L_um**2``)."""
    return params.photons_per_um2 * (np.asarray(size_nm, dtype=float) * 1e-3) ** 2


def exposure_subsamples(params: ImagingSimParams) -> int:
    """Samples per exposure used to average the PL (one per DAQ period, at least 8)."""
    return max(8, int(math.ceil(params.exposure_s * params.daq_rate_hz - 1e-9)))


def frame_photons(population: SimulatedPopulation, params: ImagingSimParams) -> np.ndarray:
    """Integrated photons of each particle in each frame (exposure average of the PL).

    Returns
    -------
    ndarray, shape (n_particles, n_frames)
    """
    avg = exposure_average(
        lambda t: relative_pl(t, population, params),
        params.frame_start_times_s(),
        exposure_s=params.exposure_s,
        n_sub=exposure_subsamples(params),
        chunk_samples=max(1 << 12, (1 << 20) // max(population.n_particles, 1)),
    )
    bright = brightness_photons(population.size_nm, params)
    if population.brightness_factor is not None:
        bright = bright * population.brightness_factor
    return bright[:, None] * avg


def expected_frame(
    k: int,
    population: SimulatedPopulation,
    params: ImagingSimParams,
    photons: np.ndarray,
    *,
    background: np.ndarray | None = None,
) -> np.ndarray:
    """Expected photons per pixel of frame ``k`` (background + drifted particles).

    Parameters
    ----------
    k : int
        Frame index.
    photons : ndarray, shape (n_particles, n_frames)
        From :func:`frame_photons`.
    background : ndarray, optional
        Precomputed :func:`background_image` (computed if omitted).

    Returns
    -------
    ndarray of float, shape ``params.image_shape``
    """
    if background is None:
        background = background_image(
            params.image_shape, params.background_photons, angle_rad=population.background_angle_rad
        )
    img = background.copy()
    dx, dy = population.drift_px[k]
    render_particles(
        params.image_shape,
        population.x_px + dx,
        population.y_px + dy,
        population.size_nm / params.pixel_size_nm,
        photons[:, k],
        sigma_px=params.psf_sigma_nm / params.pixel_size_nm,
        out=img,
    )
    return img


def daq_signals(
    params: ImagingSimParams,
    *,
    rng_voltage: np.random.Generator | None = None,
    rng_aux: np.random.Generator | None = None,
) -> dict[str, np.ndarray]:
    """DAQ channels sampled at ``daq_rate_hz`` from ``t = 0``.

    Returns
    -------
    dict of ndarray, each shape (n_samples,)
        ``time_s``, ``camera_ttl`` (5 V during each exposure), ``fg_voltage``
        (``E * gap / gain`` plus noise when ``voltage_noise``) and, when
        ``aux_channel``, ``aux_photodiode``.
    """
    t, ttl, volts = daq_base_signals(params, rng_voltage=rng_voltage)
    n = t.size

    out = {"time_s": t, TTL_CHANNEL: ttl, VOLTAGE_CHANNEL: volts}
    if params.aux_channel:
        r = rng_aux if rng_aux is not None else np.random.default_rng(0)
        period = r.uniform(30.0, 90.0)
        phase = r.uniform(0.0, 2 * np.pi)
        out[AUX_CHANNEL] = 1.0 + 0.1 * np.sin(2 * np.pi * t / period + phase) + r.normal(0.0, 0.005, size=n)
    return out


# --------------------------------------------------------------------------
# ground truth
# --------------------------------------------------------------------------


def _kb_over_q() -> float:
    from scipy.constants import e, k

    return k / e


def diffusion_coefficient_cm2_per_s(mobility_cm2_per_Vs: float, temperature_K: float) -> float:
    """Einstein relation ``D = mu k_B T / q``."""
    return float(mobility_cm2_per_Vs) * _kb_over_q() * float(temperature_K)


_jsonable = jsonable  # one implementation: plscope._json


def ground_truth(params: ImagingSimParams, population: SimulatedPopulation, *, seed: int) -> dict[str, Any]:
    """The ground-truth record of a simulated run (JSON-serializable).

    See the module docstring for the time conventions.
    """
    from .. import __version__

    switch_times, cycle_fields = params.schedule()
    levels = sorted(set(float(e) for e in params.fields_kV_per_cm))
    a, c = biexponential_weights(params.fast_fraction, params.fast_ratio)
    pop = population
    n = pop.n_particles
    ids = np.arange(n)
    mu_mean = float(np.mean(pop.mobility_cm2_per_Vs)) if n else float("nan")

    bright = brightness_photons(pop.size_nm, params)
    if pop.brightness_factor is not None:
        bright = bright * pop.brightness_factor
    particles = [
        {
            "particle_id": int(i),
            "x_px": pop.x_px[i],
            "y_px": pop.y_px[i],
            "size_nm": pop.size_nm[i],
            "size_px": pop.size_nm[i] / params.pixel_size_nm,
            "mobility_cm2_per_Vs": pop.mobility_cm2_per_Vs[i],
            "tau_rec_s": pop.tau_rec_s[i],
            "se_at_130": pop.se_at_130[i],
            "brightness_photons": bright[i],
        }
        for i in ids
    ]

    # noiseless PL change seen at the end of each ON half (not always settled)
    edges = switch_times.ravel()
    q_edges = quench_state(
        edges,
        switch_times,
        cycle_fields,
        size_nm=pop.size_nm,
        mobility_cm2_per_Vs=pop.mobility_cm2_per_Vs,
        tau_rec_s=pop.tau_rec_s,
        se_at_130=pop.se_at_130,
        fast_fraction=params.fast_fraction,
        fast_ratio=params.fast_ratio,
    ).reshape(n, switch_times.shape[0], 2)
    se_end = 1.0 - (1.0 - q_edges[:, :, 1]) / (1.0 - q_edges[:, :, 0])  # (n, n_cycles)

    kinetics = []
    for i in ids:
        for e in levels:
            tau_pol = float(polarization_time_s(pop.size_nm[i], pop.mobility_cm2_per_Vs[i], e))
            kinetics.append(
                {
                    "particle_id": int(i),
                    "field_kV_per_cm": e,
                    "tau_pol_s": tau_pol,
                    "tau_rec_s": pop.tau_rec_s[i],
                    "switching_efficiency": float(switching_efficiency(pop.se_at_130[i], e)),
                    "switching_efficiency_end_of_on": float(np.mean(se_end[i, cycle_fields == e])),
                    "velocity_nm_per_s": pop.size_nm[i] / tau_pol,
                    "mobility_cm2_per_Vs": pop.mobility_cm2_per_Vs[i],
                    "tau_pol_fast_s": c[0] * tau_pol,
                    "tau_pol_slow_s": c[1] * tau_pol,
                    "tau_rec_fast_s": c[0] * pop.tau_rec_s[i],
                    "tau_rec_slow_s": c[1] * pop.tau_rec_s[i],
                }
            )

    slope = None
    if n >= 2 and np.ptp(pop.size_nm) > 0:
        tau_hi = polarization_time_s(pop.size_nm, pop.mobility_cm2_per_Vs, max(levels))
        slope = float(np.polyfit(pop.size_nm, tau_hi, 1)[0])

    b = pop.blinks
    blinks = [
        {"particle_id": int(p), "start_s": s, "end_s": e, "factor": f}
        for p, s, e, f in zip(b["particle_index"], b["start_s"], b["end_s"], b["factor"])
    ]

    truth = {
        "schema": 1,
        "generator": "plscope.sim.simulate_imaging_run",
        "plscope_version": __version__,
        "seed": int(seed),
        "params": asdict(params),
        "files": {"movie": MOVIE_FILE, "daq": DAQ_FILE, "experiment": EXPERIMENT_FILE},
        "n_particles": n,
        "pixel_size_nm": params.pixel_size_nm,
        "psf_sigma_nm": params.psf_sigma_nm,
        "psf_sigma_px": params.psf_sigma_nm / params.pixel_size_nm,
        "temperature_K": params.temperature_K,
        "mobility_mean_cm2_per_Vs": mu_mean,
        "diffusion_coefficient_cm2_per_s": diffusion_coefficient_cm2_per_s(mu_mean, params.temperature_K),
        "ion_mobility_cm2_per_Vs": mu_mean,
        "ion_mobility_std_cm2_per_Vs": float(np.std(pop.mobility_cm2_per_Vs, ddof=1)) if n > 1 else None,
        "ion_mobility_fit_cm2_per_Vs": mu_mean,
        "tau_size_slope_s_per_nm": slope,
        "fields_kV_per_cm": levels,
        "field_sequence_kV_per_cm": list(params.fields_kV_per_cm),
        "n_frames": params.n_frames,
        "frame_interval_s": 1.0 / params.frame_rate_hz,
        "exposure_s": params.exposure_s,
        "first_frame_time_s": params.first_frame_time_s,
        "frame_time_convention": "frame k is the PL averaged over the exposure "
        "[first_frame_time_s + k * frame_interval_s, + exposure_s] on the DAQ clock; "
        "its camera TTL rises at the start of the exposure",
        "n_ttl_pulses": params.n_ttl_pulses,
        "extra_ttl_pulses": params.n_ttl_pulses - params.n_frames,
        "daq_rate_hz": params.daq_rate_hz,
        "daq_duration_s": params.daq_duration_s(),
        "fg_volts_per_kV_per_cm": params.volts_per_kV_per_cm,
        "switch_times_s": switch_times,
        "switch_fields_kV_per_cm": cycle_fields,
        "biexponential": {
            "fast_fraction": a[0],
            "slow_fraction": a[1],
            "fast_ratio": c[0],
            "slow_ratio": c[1],
        },
        "particles": particles,
        "kinetics": kinetics,
        "drift_px": pop.drift_px,
        "drift_max_px": float(np.hypot(*pop.drift_px.T).max()) if pop.drift_px.size else 0.0,
        "blinks": blinks,
        "bleach_rate_per_s": (-math.log1p(-params.bleach_per_min) / 60.0) if params.bleaching else 0.0,
        "background": {
            "mean_photons_per_px": params.background_photons,
            "gradient_fraction": BACKGROUND_GRADIENT,
            "gradient_angle_rad": pop.background_angle_rad,
        },
        "camera": {
            "offset_adu": params.camera_offset_adu if params.camera_offset else 0.0,
            "gain_adu_per_photon": params.gain_adu_per_photon,
            "read_noise_adu": params.read_noise_adu if params.noise else 0.0,
            "shot_noise": bool(params.noise),
        },
    }
    if pop.role is not None:
        assert pop.partner is not None and pop.blinking is not None  # drawn together with role
        pairs = sorted({tuple(sorted((int(i), int(j)))) for i, j in enumerate(pop.partner) if j >= 0})
        truth["crowding"] = {
            "touching_pairs": [list(p) for p in pairs],
            "touching_gap_px": [_edge_gap_px(pop, params, i, j) for i, j in pairs],
            "border_particle_ids": np.flatnonzero(pop.role == 2),
            "inside_fraction": _inside_fraction(pop, params),
            "blinking_particle_ids": np.flatnonzero(pop.blinking),
            "brightness_factor": pop.brightness_factor,
        }
    return _jsonable(truth)


def _edge_gap_px(pop: SimulatedPopulation, params: ImagingSimParams, i: int, j: int) -> float:
    """Edge-to-edge gap of two square particles (largest of the per-axis gaps)."""
    s = pop.size_nm / params.pixel_size_nm
    half = (s[i] + s[j]) / 2
    return float(max(abs(pop.x_px[i] - pop.x_px[j]) - half, abs(pop.y_px[i] - pop.y_px[j]) - half))


def _inside_fraction(pop: SimulatedPopulation, params: ImagingSimParams) -> np.ndarray:
    """Fraction of each particle's area inside the image (first frame)."""
    s = pop.size_nm / params.pixel_size_nm
    rows, cols = params.image_shape

    def overlap(c, lo, hi):
        return np.clip(np.minimum(c + s / 2, hi) - np.maximum(c - s / 2, lo), 0, None) / s

    return overlap(pop.x_px, -0.5, cols - 0.5) * overlap(pop.y_px, -0.5, rows - 0.5)


# --------------------------------------------------------------------------
# writers
# --------------------------------------------------------------------------


def _write_movie(
    path: Path,
    params: ImagingSimParams,
    population: SimulatedPopulation,
    photons: np.ndarray,
    rng: np.random.Generator,
    *,
    progress: bool,
) -> None:
    import tifffile

    rows, cols = params.image_shape
    n_frames = params.n_frames
    background = background_image(
        params.image_shape, params.background_photons, angle_rad=population.background_angle_rad
    )
    offset = params.camera_offset_adu if params.camera_offset else 0.0
    px_per_cm = 1e7 / params.pixel_size_nm
    bigtiff = n_frames * rows * cols * 2 > 2**32 - 2**26
    with tifffile.TiffWriter(path, bigtiff=bigtiff) as tif:
        for k in progress_iter(range(n_frames), "simulating frames", unit="frame", enabled=progress):
            img = expected_frame(k, population, params, photons, background=background)
            frame = camera_counts(
                img,
                gain_adu_per_photon=params.gain_adu_per_photon,
                offset_adu=offset,
                read_noise_adu=params.read_noise_adu,
                rng=rng if params.noise else None,
            )
            tif.write(
                frame,
                contiguous=True,
                photometric="minisblack",
                metadata={"axes": "TYX"},
                resolution=(px_per_cm, px_per_cm),
                resolutionunit="CENTIMETER",
            )


def _write_daq_csv(
    path: Path, signals: dict[str, np.ndarray], *, daq_rate_hz: float, chunk_rows: int = 1 << 16
) -> None:
    decimals = max(3, int(math.ceil(math.log10(daq_rate_hz))) + 3)
    formats = {"time_s": f"%.{decimals}f", TTL_CHANNEL: "%.1f"}
    names = list(signals)
    fmt = ",".join(formats.get(name, "%.6g") for name in names) + "\n"
    n = len(signals["time_s"])
    with open(path, "w", encoding="ascii", newline="") as fh:
        fh.write(",".join(names) + "\n")
        for i in range(0, n, chunk_rows):
            cols = [signals[name][i : i + chunk_rows].tolist() for name in names]
            fh.write("".join(map(fmt.__mod__, zip(*cols))))


def _toml_float(v: float) -> str:
    s = repr(float(v))
    return s if any(ch in s for ch in ".eE") else s + ".0"


def experiment_toml(params: ImagingSimParams, *, seed: int) -> str:
    """Text of the run folder's experiment.toml (schema 1)."""
    name = json.dumps(f"simulated MAPbBr3 particles (plscope.sim, seed {int(seed)})")
    return (
        "schema = 1\n\n"
        "[sample]\n"
        f"name = {name}\n"
        f"temperature_K = {_toml_float(params.temperature_K)}\n\n"
        "[movie]\n"
        f'path = "{MOVIE_FILE}"\n'
        f"pixel_size_nm = {_toml_float(params.pixel_size_nm)}\n"
        f"frame_rate_hz = {_toml_float(params.frame_rate_hz)}\n\n"
        "[daq]\n"
        f'path = "{DAQ_FILE}"\n'
        f'camera_ttl = "{TTL_CHANNEL}"\n'
        f'voltage = "{VOLTAGE_CHANNEL}"\n\n'
        "[field]\n"
        f"amplifier_gain = {_toml_float(params.amplifier_gain)}\n"
        f"electrode_gap_um = {_toml_float(params.electrode_gap_um)}\n"
    )


def simulate_imaging_run(
    out_dir: str | os.PathLike,
    params: ImagingSimParams | None = None,
    *,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, Any]:
    """Write a simulated run folder and return its ground truth.

    Writes ``movie.tif`` (uint16 TIFF stack, axes TYX, written frame by
    frame), ``daq.csv`` (``time_s, camera_ttl, fg_voltage`` and, with
    ``aux_channel``, ``aux_photodiode``), ``experiment.toml`` (schema 1) and
    ``ground_truth.json``. Each file is written under a temporary name and
    renamed when complete; ``experiment.toml`` comes last.

    Parameters
    ----------
    out_dir : path-like
        Run folder to write (created if missing; files of a previous
        simulation there are replaced).
    params : ImagingSimParams, optional
        Defaults to ``ImagingSimParams()``.
    seed : int
        Seed of every random draw (non-negative); same seed, same files.
    progress : bool
        Show a progress bar over frames.

    Returns
    -------
    dict
        The ground truth, as written to ``ground_truth.json``.

    Raises
    ------
    SimulationError
        If the parameters are invalid or the particles cannot be placed.
    """
    params = ImagingSimParams() if params is None else params
    t0 = time.perf_counter()
    rng = random_streams(seed)
    population = draw_population(params, seed=seed)
    truth = ground_truth(params, population, seed=seed)
    photons = frame_photons(population, params)
    signals = daq_signals(params, rng_voltage=rng["voltage"], rng_aux=rng["aux"])

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    targets = {name: out / name for name in (MOVIE_FILE, DAQ_FILE, GROUND_TRUTH_FILE, EXPERIMENT_FILE)}
    with atomic_files(*targets.values()) as parts:
        part = dict(zip(targets, parts, strict=True))
        _write_movie(part[MOVIE_FILE], params, population, photons, rng["camera"], progress=progress)
        _write_daq_csv(part[DAQ_FILE], signals, daq_rate_hz=params.daq_rate_hz)
        with open(part[GROUND_TRUTH_FILE], "w", encoding="utf-8") as fh:
            json.dump(truth, fh, indent=1, allow_nan=False)
            fh.write("\n")
        part[EXPERIMENT_FILE].write_text(experiment_toml(params, seed=seed), encoding="utf-8")
    logger.info(
        "simulated run %s: %d particles, %d frames, %d DAQ samples in %.1f s",
        out,
        population.n_particles,
        params.n_frames,
        signals["time_s"].size,
        time.perf_counter() - t0,
    )
    return truth
