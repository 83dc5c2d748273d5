"""One experiment -> a run folder (movie.tif, daq.csv, experiment.toml, truth.json).

The folder follows docs/run-folder.md. ``truth.json`` holds what the
analysis should find, in the analysis's units (schema below, shared by all
validation scenarios):

- ``particles``: list of ``{"id", "x_px", "y_px" (frame 0), "size_nm",
  "shape", "mobility_cm2_per_Vs", "switching_efficiency", "tau_rec_s",
  "tau_pol_s": {field: tau}}``; ``size_nm`` is the side of the square of the
  same area (the side for a square; ``sqrt(a b)`` for an a x b rectangle),
  the length used in ``v = L / tau_pol``;
- ``fields_kV_per_cm``, ``mobility_mean_cm2_per_Vs`` (mean over the
  particles), ``psf_sigma_nm`` (Gaussian sigma, or the best-fitting
  Gaussian's for an Airy PSF), ``psf_sigma_given``;
- ``n_ttl_pulses``, ``n_frames`` (in the movie), ``lost_frames`` (TTL pulse
  indices whose frames are missing from the movie).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .daq import daq_table
from .imaging import MovieSpec, ParticleSpec, render_movie
from .pl_response import exposure_pl
from .psf import airy_sigma_nm
from .shapes import area_nm2

_NM_PER_CM = 1e7


@dataclass
class Experiment:
    """Everything one run folder needs besides the random seed."""

    movie: MovieSpec
    particles: list[ParticleSpec]
    mobility_cm2_per_Vs: np.ndarray  # per particle
    switching_efficiency: np.ndarray  # per particle
    tau_rec_s: np.ndarray  # per particle
    fields_kV_per_cm: tuple[float, ...] = (90.0, 110.0, 130.0)
    cycles_per_level: int = 2
    period_s: float = 30.0
    duty: float = 0.5
    lead_in_s: float = 8.0
    frame_rate_hz: float = 5.0
    exposure_s: float = 0.15
    daq_rate_hz: float = 1000.0
    daq_lead_s: float = 1.0
    amplifier_gain: float = 20.0
    electrode_gap_um: float = 10.0
    voltage_noise_V: float = 0.01
    lost_frames: tuple[int, ...] = ()
    give_psf_sigma: bool = False
    extra: dict = field(default_factory=dict)  # scenario notes copied into truth.json
    #: other PL physics: ``pl_model(i, frame_start_s, exposure_s, on) -> (pl_factor, truth_update)``
    #: replaces the single-exponential :func:`exposure_pl` of particle ``i`` (truth_update is merged
    #: into its truth entry, e.g. ``switching_efficiency_by_field``)
    pl_model: Callable[[int, np.ndarray, float, list], tuple[np.ndarray, dict]] | None = None


def size_nm(shape: dict) -> float:
    """Side of the square of the same area (the L of v = L / tau_pol)."""
    if shape["kind"] == "square":
        return float(shape["side_nm"])
    if shape["kind"] == "rectangle":
        return float(np.sqrt(shape["a_nm"] * shape["b_nm"]))
    return float(np.sqrt(area_nm2(shape)))


def psf_sigma_nm(psf: dict) -> float:
    if psf["kind"] == "gaussian":
        return float(psf["sigma_nm"])
    return airy_sigma_nm(psf["wavelength_nm"], psf["na"])


def schedule(exp: Experiment) -> list[tuple[float, float, float]]:
    """ON intervals ``(start_s, end_s, field)`` on the DAQ clock."""
    out = []
    t = exp.daq_lead_s + exp.lead_in_s
    for e in exp.fields_kV_per_cm:
        for _ in range(exp.cycles_per_level):
            out.append((t, t + exp.period_s * exp.duty, float(e)))
            t += exp.period_s
    return out


def write_run_folder(run_dir: Path, exp: Experiment, seed: int) -> dict:
    """Render ``exp`` with ``seed`` into ``run_dir``; return the truth (also in truth.json)."""
    import tifffile

    rng = np.random.default_rng(seed)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    on = schedule(exp)
    t_last = on[-1][1] + exp.period_s * (1 - exp.duty)
    n_pulses = int(np.floor((t_last - exp.daq_lead_s) * exp.frame_rate_hz))
    pulses = exp.daq_lead_s + np.arange(n_pulses) / exp.frame_rate_hz
    sizes = np.array([size_nm(p.shape) for p in exp.particles])
    truth_particles = []
    pl = np.empty((len(exp.particles), n_pulses))
    for i, p in enumerate(exp.particles):
        mu = float(exp.mobility_cm2_per_Vs[i])
        tau_pol = {e: sizes[i] / (mu * e * 1e3 * _NM_PER_CM) for e in {f for _, _, f in on}}
        update: dict = {}
        if exp.pl_model is not None:
            pl[i], update = exp.pl_model(i, pulses, exp.exposure_s, on)
        else:
            pl[i] = exposure_pl(
                pulses,
                exp.exposure_s,
                on,
                se=float(exp.switching_efficiency[i]),
                tau_pol_s=tau_pol,
                tau_rec_s=float(exp.tau_rec_s[i]),
            )
        truth_particles.append(
            {
                "id": i,
                "x_px": p.x_px,
                "y_px": p.y_px,
                "size_nm": sizes[i],
                "shape": p.shape,
                "photons": p.photons,
                "mobility_cm2_per_Vs": mu,
                "switching_efficiency": float(exp.switching_efficiency[i]),
                "tau_rec_s": float(exp.tau_rec_s[i]),
                "tau_pol_s": {str(e): v for e, v in sorted(tau_pol.items())},
                **update,
            }
        )
    movie, _positions = render_movie(exp.movie, exp.particles, pl, rng)
    keep = np.setdiff1d(np.arange(n_pulses), np.asarray(exp.lost_frames, int))
    tifffile.imwrite(run_dir / "movie.tif", movie[keep])
    daq = daq_table(
        pulses,
        exp.exposure_s,
        on,
        rate_hz=exp.daq_rate_hz,
        amplifier_gain=exp.amplifier_gain,
        electrode_gap_um=exp.electrode_gap_um,
        voltage_noise_V=exp.voltage_noise_V,
        rng=rng,
    )
    cols = list(daq)
    table = np.column_stack([daq[c] for c in cols])
    np.savetxt(run_dir / "daq.csv", table, delimiter=",", header=",".join(cols), comments="", fmt="%.6g")
    sigma_nm = psf_sigma_nm(exp.movie.psf)
    psf_line = f"psf_sigma_nm = {sigma_nm:.3f}\n" if exp.give_psf_sigma else ""
    (run_dir / "experiment.toml").write_text(
        'schema = 1\n\n[sample]\nname = "validation (independent forward model)"\n'
        "temperature_K = 296.15\n\n"
        f'[movie]\npath = "movie.tif"\npixel_size_nm = {exp.movie.pixel_size_nm}\n{psf_line}\n'
        '[daq]\npath = "daq.csv"\ncamera_ttl = "camera_ttl"\nvoltage = "fg_voltage"\n\n'
        f"[field]\namplifier_gain = {exp.amplifier_gain}\nelectrode_gap_um = {exp.electrode_gap_um}\n"
    )
    truth = {
        "seed": seed,
        "particles": truth_particles,
        "fields_kV_per_cm": sorted({f for _, _, f in on}),
        "mobility_mean_cm2_per_Vs": float(np.mean(exp.mobility_cm2_per_Vs)),
        "psf_sigma_nm": sigma_nm,
        "psf_sigma_given": exp.give_psf_sigma,
        "pixel_size_nm": exp.movie.pixel_size_nm,
        "n_ttl_pulses": int(n_pulses),
        "n_frames": int(keep.size),
        "lost_frames": [int(k) for k in exp.lost_frames],
        "extra": exp.extra,
    }
    (run_dir / "truth.json").write_text(json.dumps(truth, indent=1))
    return truth
