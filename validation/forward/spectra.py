"""Independent forward model of a spectra-only run (field-induced peak shifts), as a run folder.

Imports nothing from :mod:`plscope`. The particles, their kinetics and the
field schedule are those of :mod:`validation.forward.kinetics` (state
carried across half cycles, two sub-populations with their own times); the
peak of each particle shifts in proportion to its quench state, so that the
settled shift at field ``E`` is ``slope * E``::

    centre(t) = peak_nm + slope * 130 / SE_130 * q(t),     q -> SE_130 E / 130 while ON,

and its PL is quenched by ``1 - q(t)`` (the same kinetics). Each particle is
one track of a multi-track read-out (at most 4 tracks, one spectrum per row
of ``spectra.tif``): ``photons * (1 - q) * bleach`` times a Lorentzian of
FWHM ``fwhm_nm`` on the wavelength axis ``lambda(px) = c0 + c1 px + c2 px^2``,
averaged over the exposure (8 sub-samples), plus a flat background, Poisson
noise, a camera offset and Gaussian read noise. The DAQ log
(:func:`validation.forward.daq.daq_table`) times the frames by the camera
TTL and records the field as the amplifier input voltage.

Truth: per particle ``slope_nm_per_kV_per_cm`` and the settled
``shift_nm`` at every field; per field the mean over the particles.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .daq import daq_table
from .kinetics import KineticsScenario, _draw_particles, _quench_state, _schedule, _segments

__all__ = ["SpectralScenario", "write_spectral_run"]

_SUB = 8
_DAQ_RATE_HZ = 1000.0
_GAIN = 20.0
_GAP_UM = 10.0


@dataclass(frozen=True)
class SpectralScenario:
    """Spectral parameters on top of a :class:`KineticsScenario` (its particles, kinetics, timing)."""

    kinetics: KineticsScenario
    n_tracks: int = 4
    n_pixels: int = 256
    dispersion_nm: tuple[float, ...] = (485.0, 0.40, -1.0e-4)
    peak_range_nm: tuple[float, float] = (528.0, 536.0)
    fwhm_range_nm: tuple[float, float] = (18.0, 24.0)
    slope_nm_per_kV_per_cm: float = -0.86 / 130.0
    slope_spread: float = 0.10
    peak_photons: float = 400.0  # per pixel at the peak, per frame, at full PL
    background_photons: float = 5.0
    camera_offset_adu: float = 100.0
    read_noise_adu: float = 2.0


def _wavelength(sc: SpectralScenario) -> np.ndarray:
    px = np.arange(sc.n_pixels, dtype=float)
    return sum(c * px**k for k, c in enumerate(sc.dispersion_nm))


def _frames(sc: SpectralScenario, rng: np.random.Generator):
    """Frame starts, cycles, particles and the expected spectra, shape (n_frames, n_tracks, n_pixels)."""
    ks = sc.kinetics.replace(n_particles=sc.n_tracks)
    cycles = _schedule(ks)
    t_end = float(cycles["off_end_s"].iloc[-1])
    n_frames = int(math.floor((t_end - ks.first_frame_s - ks.exposure_s) / ks.frame_interval_s)) + 1
    t_start = ks.first_frame_s + ks.frame_interval_s * np.arange(n_frames)
    sub = (np.arange(_SUB) + 0.5) / _SUB * ks.exposure_s
    t_fine = (t_start[:, None] + sub[None, :]).ravel()
    seg = _segments(ks, cycles, t_end)
    particles = _draw_particles(ks, rng)
    n = sc.n_tracks
    particles["peak_nm"] = rng.uniform(*sc.peak_range_nm, n)
    particles["fwhm_nm"] = rng.uniform(*sc.fwhm_range_nm, n)
    particles["slope_nm_per_kV_per_cm"] = sc.slope_nm_per_kV_per_cm * (
        1 + sc.slope_spread * rng.standard_normal(n)
    )
    particles["brightness"] = rng.uniform(0.8, 1.2, n)
    wl = _wavelength(sc)
    k_bleach = -math.log(1.0 - ks.bleach_per_min) / 60.0 if ks.bleach_per_min > 0 else 0.0
    bleach = np.exp(-k_bleach * (t_fine - t_start[0]))
    expected = np.empty((n_frames, n, sc.n_pixels))
    for i, p in enumerate(particles.itertuples(index=False)):
        q, _ = _quench_state(p, ks, seg, t_fine)
        centre = p.peak_nm + p.slope_nm_per_kV_per_cm * 130.0 / p.se_at_130 * q
        height = sc.peak_photons * p.brightness * (1.0 - q) * bleach
        u = 2.0 * (wl[None, :] - centre[:, None]) / p.fwhm_nm
        spec = height[:, None] / (1.0 + u * u)
        expected[:, i, :] = spec.reshape(n_frames, _SUB, sc.n_pixels).mean(axis=1)
    return t_start, cycles, particles, expected + sc.background_photons


def write_spectral_run(run_dir: Path, sc: SpectralScenario, seed: int) -> dict:
    """Render a spectra-only run folder (spectra.tif, daq.csv, experiment.toml, truth.json); return the truth."""
    import tifffile

    rng = np.random.default_rng([int(seed), 2512])
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    t_start, cycles, particles, expected = _frames(sc, rng)
    counts = rng.poisson(expected) + sc.camera_offset_adu + rng.normal(0.0, sc.read_noise_adu, expected.shape)
    tifffile.imwrite(run_dir / "spectra.tif", np.clip(np.rint(counts), 0, 65535).astype(np.uint16))
    on = [(r.on_start_s, r.on_end_s, r.field_kV_per_cm) for r in cycles.itertuples(index=False)]
    daq = daq_table(
        t_start,
        sc.kinetics.exposure_s,
        on,
        rate_hz=_DAQ_RATE_HZ,
        amplifier_gain=_GAIN,
        electrode_gap_um=_GAP_UM,
        voltage_noise_V=0.01,
        rng=rng,
    )
    cols = list(daq)
    np.savetxt(
        run_dir / "daq.csv",
        np.column_stack([daq[c] for c in cols]),
        delimiter=",",
        header=",".join(cols),
        comments="",
        fmt="%.6g",
    )
    disp = ", ".join(repr(float(c)) for c in sc.dispersion_nm)
    (run_dir / "experiment.toml").write_text(
        'schema = 1\n\n[sample]\nname = "validation spectra (independent forward model)"\n'
        "temperature_K = 296.15\n\n"
        '[daq]\npath = "daq.csv"\ncamera_ttl = "camera_ttl"\nvoltage = "fg_voltage"\n\n'
        f"[field]\namplifier_gain = {_GAIN}\nelectrode_gap_um = {_GAP_UM}\n\n"
        f'[spectra]\npath = "spectra.tif"\ncamera_ttl = "camera_ttl"\ndispersion_nm = [{disp}]\n'
    )
    fields = [float(f) for f in sc.kinetics.fields_kV_per_cm]
    slopes = particles["slope_nm_per_kV_per_cm"].to_numpy(float)
    truth = {
        "seed": int(seed),
        "fields_kV_per_cm": fields,
        "particles": [
            {
                "track": int(i),
                "slope_nm_per_kV_per_cm": float(slopes[i]),
                "peak_nm": float(particles["peak_nm"].iloc[i]),
                "fwhm_nm": float(particles["fwhm_nm"].iloc[i]),
                "size_nm": float(particles["size_nm"].iloc[i]),
                "mobility_cm2_per_Vs": float(particles["mobility_cm2_per_Vs"].iloc[i]),
                "tau_rec_s": float(particles["tau_rec_s"].iloc[i]),
            }
            for i in range(len(particles))
        ],
        "spectral_shift_nm": [{"field_kV_per_cm": e, "shift_nm": float(np.mean(slopes) * e)} for e in fields],
        "spectral_shift_slope_nm_per_kV_per_cm": float(np.mean(slopes)),
    }
    (run_dir / "truth.json").write_text(json.dumps(truth, indent=1))
    return truth
