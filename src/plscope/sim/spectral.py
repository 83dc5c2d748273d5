"""Simulated spectral run folders with ground truth.

:func:`simulate_spectral_run` writes a spectra-only run folder as it comes off
a spectrograph rig (see ``shared/spec/run-folder.md``):

- ``spectra.tif`` -- frames ``(t, slit_row, wavelength_pixel)``, uint16: one
  or more particles imaged as stripes along the slit, each with a Lorentzian
  PL peak on a camera background;
- ``lamp.csv`` -- a neon lamp spectrum (``pixel,counts``) on the same
  detector columns, with known lines (one saturated, two blended);
- ``daq.csv`` -- ``time_s, camera_ttl, fg_voltage`` (1 kHz);
- ``experiment.toml`` -- ``[sample]``, ``[daq]``, ``[field]``,
  ``[spectra]`` (lamp + lines in view, or the dispersion coefficients);
- ``ground_truth.json``.

Physics (Chem. Sci. 2025, 16, 22417, Fig. 4): the dispersion is a cubic
``lambda(px)``; each particle's peak blue-shifts under the field by
``shift_slope_nm_per_kV_per_cm * E`` once polarized, following the same
biexponential polarization (``tau_pol = L / (mu E)``) and recovery kinetics
as the PL quenching of :mod:`plscope.sim.kinetics`; the PL is quenched by
``SE(E)`` with the same kinetics. Frames average the spectrum over the
exposure. Nuisances: shot and read noise, camera offset, a slow drift of the
peak, bleaching, a noisy voltage record, a DAQ that starts before the
camera, surplus TTL pulses.

Time conventions are those of :mod:`plscope.sim.imaging`: frame ``k`` is
exposed during ``[first_frame_time_s + k / frame_rate_hz, ... + exposure_s]``
on the DAQ clock and its camera TTL rises at the start of the exposure.
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
from ..config.simulation import SpectralSimFields
from ..errors import PlscopeError
from .kinetics import (
    SE_REFERENCE_FIELD_KV_PER_CM,
    bleach_factor,
    polarization_time_s,
    quench_state,
)
from .timing import (
    TTL_CHANNEL,
    VOLTAGE_CHANNEL,
    RunTimingMixin,
    daq_base_signals,
    size_limits,
)

logger = logging.getLogger(__name__)

__all__ = [
    "NEON_LINES_NM",
    "SPECTRAL_NUISANCES",
    "SpectralSimError",
    "SpectralSimParams",
    "lamp_spectrum",
    "pixel_of_wavelength",
    "simulate_spectral_run",
    "spectral_daq_signals",
    "spectral_experiment_toml",
    "stripe_profile",
]

#: Ne I lines (nm, air) and relative intensities, 470-600 nm, from the NIST Atomic Spectra Database
NEON_LINES_NM: tuple[tuple[float, float], ...] = (
    (470.4395, 150),
    (470.8859, 120),
    (471.0065, 100),
    (471.2063, 150),
    (471.5344, 150),
    (475.2732, 50),
    (478.8926, 100),
    (479.0220, 50),
    (482.7338, 100),
    (488.4917, 100),
    (500.5159, 50),
    (503.7751, 50),
    (514.4938, 50),
    (533.0778, 60),
    (534.1094, 100),
    (534.3283, 60),
    (540.0562, 200),
    (556.2766, 50),
    (565.6659, 50),
    (571.9225, 50),
    (574.8298, 50),
    (576.4419, 70),
    (580.4450, 50),
    (582.0156, 50),
    (585.2488, 200),
    (587.2828, 50),
    (588.1895, 100),
    (590.2462, 5),
    (590.6429, 5),
    (594.4834, 50),
    (596.5471, 50),
    (597.4627, 50),
    (597.5534, 60),
    (598.7907, 15),
)
#: boolean nuisance switches of :class:`SpectralSimParams`
SPECTRAL_NUISANCES = (
    "noise",
    "camera_offset",
    "drift",
    "bleaching",
    "voltage_noise",
    "daq_lead",
    "extra_ttl",
)
SPECTRA_FILE = "spectra.tif"
LAMP_FILE = "lamp.csv"
DAQ_FILE = "daq.csv"
EXPERIMENT_FILE = "experiment.toml"
GROUND_TRUTH_FILE = "ground_truth.json"
ADU_MAX = 65535
#: sub-samples per exposure when averaging the spectrum over it
N_SUB = 5
#: smallest gap (rows) between a stripe centre and the slit ends
_ROW_MARGIN = 6.0


class SpectralSimError(PlscopeError):
    """Invalid parameters of a simulated spectral run."""


@dataclass(frozen=True)
class SpectralSimParams(RunTimingMixin, SpectralSimFields):
    """Parameters of a simulated spectral run; every field has a default.

    The fields, with their types, ranges, units and docs, are declared once
    in :class:`plscope.config.simulation.SpectralSimFields` (and listed in
    ``docs/configuration.md``); they are validated (lists stored as tuples)
    on construction and by ``dataclasses.replace``. :meth:`clean` switches
    every nuisance off.
    """

    def __post_init__(self) -> None:
        check_fields(self, SpectralSimError, "spectral simulation parameters")
        for checks in (self._relations, self._detector_relations):
            problems = [msg for ok, msg in checks() if not ok]
            if problems:
                raise SpectralSimError("invalid spectral simulation parameters: " + "; ".join(problems))

    def _relations(self) -> list[tuple[bool, str]]:
        """Checks between fields (each field's own range is declared in plscope.config)."""
        out = [
            (lo <= hi, f"'{name}' must satisfy min <= max, got {(lo, hi)!r}")
            for name in ("peak_range_nm", "fwhm_range_nm", "size_range_nm", "se_at_130")
            for lo, hi in [getattr(self, name)]
        ]
        out.append(
            (
                self.fast_fraction * self.fast_ratio < 1,
                f"'fast_fraction'/'fast_ratio' must give 0 < a1 c1 < 1, got "
                f"{self.fast_fraction!r}, {self.fast_ratio!r}",
            )
        )
        out.append(
            (
                self.se_at_130[1] * max(self.fields_kV_per_cm) / SE_REFERENCE_FIELD_KV_PER_CM < 1,
                f"'se_at_130' max {self.se_at_130[1]!r} quenches the PL completely at "
                f"{max(self.fields_kV_per_cm):g} kV/cm",
            )
        )
        out.append(
            (
                self.n_rows >= 2 * _ROW_MARGIN + 10 * self.stripe_sigma_rows * (self.n_particles + 1),
                f"'n_rows' {self.n_rows!r} is too small for {self.n_particles!r} well separated stripes of "
                f"sigma {self.stripe_sigma_rows!r} rows (need {_ROW_MARGIN:g} rows at each end and "
                "10 sigma between stripes)",
            )
        )
        interval = 1.0 / self.frame_rate_hz
        out.append(
            (
                (interval - self.exposure_s) * self.daq_rate_hz >= 1
                and self.exposure_s * self.daq_rate_hz >= 1,
                f"'exposure_s' {self.exposure_s!r} must leave at least one DAQ sample high and low per frame",
            )
        )
        out.extend(size_limits(self, self.n_rows * self.n_pixels))
        return out

    def _detector_relations(self) -> list[tuple[bool, str]]:
        """The wavelength axis: increasing, with enough lamp lines in view."""
        px = np.arange(int(self.n_pixels), dtype=float)
        deriv = np.polynomial.polynomial.polyval(
            px, np.polynomial.polynomial.polyder(np.asarray(self.dispersion_nm))
        )
        if not np.all(deriv > 0):
            return [(False, "'dispersion_nm' must increase with pixel over the detector")]
        lo, hi = self.wavelength_range_nm
        return [
            (len(self.lamp_lines_in_view()) >= 3, f"fewer than 3 lamp lines fall in {lo:.1f}-{hi:.1f} nm")
        ]

    def clean(self) -> SpectralSimParams:
        """Copy with every nuisance switched off."""
        off: dict[str, Any] = {name: False for name in SPECTRAL_NUISANCES}
        return dataclasses.replace(self, **off)

    # ---- derived --------------------------------------------------------------
    @property
    def wavelength_nm(self) -> np.ndarray:
        """Wavelength of every detector column, shape (n_pixels,)."""
        return np.polynomial.polynomial.polyval(
            np.arange(int(self.n_pixels), dtype=float), np.asarray(self.dispersion_nm)
        )

    @property
    def wavelength_range_nm(self) -> tuple[float, float]:
        wl = self.wavelength_nm
        return float(wl[0]), float(wl[-1])

    def lamp_lines_in_view(self) -> np.ndarray:
        """``(n, 2)`` array of (wavelength_nm, relative intensity) on the detector (1.5 px margins)."""
        arr = np.asarray(NEON_LINES_NM, dtype=float)
        wl = self.wavelength_nm
        margin = 1.5 * float(np.mean(np.diff(wl)))
        keep = (arr[:, 0] > wl[0] + margin) & (arr[:, 0] < wl[-1] - margin)
        return arr[keep]


# --------------------------------------------------------------------------
# pure model pieces
# --------------------------------------------------------------------------


def pixel_of_wavelength(wavelength_nm, dispersion_nm, *, n_pixels: int) -> np.ndarray:
    """Inverse of a monotonic dispersion polynomial (Newton iterations), fractional pixels."""
    wl = np.atleast_1d(np.asarray(wavelength_nm, dtype=float))
    c = np.asarray(dispersion_nm, dtype=float)
    dc = np.polynomial.polynomial.polyder(c)
    grid = np.polynomial.polynomial.polyval(np.arange(n_pixels, dtype=float), c)
    px = np.interp(wl, grid, np.arange(n_pixels, dtype=float))
    for _ in range(20):
        px = px - (np.polynomial.polynomial.polyval(px, c) - wl) / np.polynomial.polynomial.polyval(px, dc)
    return px


def stripe_profile(n_rows: int, row: float, sigma_rows: float) -> np.ndarray:
    """Fraction of a particle's light in each slit row (Gaussian integrated over rows, sums to ~1)."""
    from scipy.special import erf

    edges = np.arange(n_rows + 1, dtype=float) - 0.5
    cdf = 0.5 * (1.0 + erf((edges - row) / (math.sqrt(2.0) * sigma_rows)))
    return np.diff(cdf)


def lamp_spectrum(params: SpectralSimParams, *, rng: np.random.Generator | None) -> tuple[np.ndarray, dict]:
    """Lamp counts per detector column, and what is in it.

    Gaussian lines (``lamp_fwhm_px``) at the pixels of the Ne lines in view,
    of height ``lamp_counts_per_unit * relative intensity``, on a dark level,
    with shot and read noise, clipped at the 16-bit limit (so the strongest
    line saturates with the defaults). No noise with ``rng=None`` or
    ``params.noise`` false.

    Returns
    -------
    counts : numpy.ndarray, shape (n_pixels,)
    info : dict
        ``lines_nm``, ``pixels``, ``saturated_nm``.
    """
    lines = params.lamp_lines_in_view()
    px = np.arange(int(params.n_pixels), dtype=float)
    centres = pixel_of_wavelength(lines[:, 0], params.dispersion_nm, n_pixels=int(params.n_pixels))
    sigma = params.lamp_fwhm_px / (2.0 * math.sqrt(2.0 * math.log(2.0)))
    heights = params.lamp_counts_per_unit * lines[:, 1]
    expected = params.lamp_dark_counts + np.sum(
        heights[:, None] * np.exp(-0.5 * ((px[None, :] - centres[:, None]) / sigma) ** 2), axis=0
    )
    if rng is not None and params.noise:
        counts = rng.poisson(expected).astype(float) + rng.normal(0.0, params.read_noise_adu, px.size)
    else:
        counts = expected
    counts = np.clip(np.rint(counts), 0, ADU_MAX)
    saturated = [float(w) for w, c in zip(lines[:, 0], centres) if counts[int(round(c))] >= ADU_MAX]
    return counts, {
        "lines_nm": lines[:, 0].tolist(),
        "relative_intensity": lines[:, 1].tolist(),
        "pixels": centres.tolist(),
        "saturated_nm": saturated,
    }


def _lorentz(x: np.ndarray, c: np.ndarray, w: float) -> np.ndarray:
    u = 2.0 * (x - c) / w
    return 1.0 / (1.0 + u * u)


@dataclass(frozen=True, eq=False)
class _Population:
    row: np.ndarray
    peak_nm: np.ndarray
    fwhm_nm: np.ndarray
    slope: np.ndarray
    size_nm: np.ndarray
    mobility: np.ndarray
    tau_rec_s: np.ndarray
    se_at_130: np.ndarray
    peak_photons: np.ndarray


def _streams(seed: int) -> dict[str, np.random.Generator]:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise SpectralSimError(f"seed must be a non-negative integer, got {seed!r}")
    names = ("particles", "camera", "lamp", "voltage")
    return {
        n: np.random.default_rng(s)
        for n, s in zip(names, np.random.SeedSequence(int(seed)).spawn(len(names)))
    }


def _draw_population(params: SpectralSimParams, rng: np.random.Generator) -> _Population:
    n = int(params.n_particles)
    lo, hi = _ROW_MARGIN, params.n_rows - 1 - _ROW_MARGIN
    base = np.linspace(lo, hi, n + 2)[1:-1] if n > 1 else np.array([(lo + hi) / 2])
    gap = (hi - lo) / (n + 1)
    rows = np.sort(base + rng.uniform(-0.1, 0.1, n) * gap)
    spread = params.shift_slope_spread
    size = rng.uniform(*params.size_range_nm, n)
    return _Population(
        row=rows,
        peak_nm=rng.uniform(*params.peak_range_nm, n),
        fwhm_nm=rng.uniform(*params.fwhm_range_nm, n),
        slope=params.shift_slope_nm_per_kV_per_cm * (1.0 + spread * rng.standard_normal(n)),
        size_nm=size,
        mobility=np.full(n, params.mobility_cm2_per_Vs),
        tau_rec_s=params.tau_rec_s_per_um * size * 1e-3,
        se_at_130=rng.uniform(*params.se_at_130, n),
        peak_photons=params.peak_photons * (1.0 + params.brightness_spread * rng.uniform(-1, 1, n)),
    )


def _polarization(t_s: np.ndarray, params: SpectralSimParams, pop: _Population) -> np.ndarray:
    """Polarization state ``E_eff / 130`` of each particle, shape (n_p, n_t)."""
    switch, fields = params.schedule()
    return quench_state(
        t_s,
        switch,
        fields,
        size_nm=pop.size_nm,
        mobility_cm2_per_Vs=pop.mobility,
        tau_rec_s=pop.tau_rec_s,
        se_at_130=np.ones_like(pop.size_nm),
        fast_fraction=params.fast_fraction,
        fast_ratio=params.fast_ratio,
    )


def _drift_nm(t_s: np.ndarray, params: SpectralSimParams) -> np.ndarray:
    if not params.drift or params.drift_nm == 0:
        return np.zeros_like(t_s)
    t0 = params.first_frame_time_s
    duration = params.n_frames / params.frame_rate_hz
    return params.drift_nm * np.clip((t_s - t0) / duration, 0.0, None)


def _frame_spectra(
    params: SpectralSimParams, pop: _Population, k0: int, k1: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Expected photons per stripe and pixel of frames k0:k1, exposure-averaged.

    Returns
    -------
    spectra : (n_p, k, n_pixels), peak_nm : (n_p, k) intensity-weighted centre,
    shift_nm : (n_p, k) field-induced part of it
    """
    starts = params.first_frame_time_s + np.arange(k0, k1) / params.frame_rate_hz
    offsets = (np.arange(N_SUB) + 0.5) / N_SUB * params.exposure_s
    t = (starts[:, None] + offsets[None, :]).ravel()
    pol = _polarization(t, params, pop)  # (n_p, k*N)
    e_eff = SE_REFERENCE_FIELD_KV_PER_CM * pol
    shift = pop.slope[:, None] * e_eff
    centre = pop.peak_nm[:, None] + _drift_nm(t, params)[None, :] + shift
    bleach = bleach_factor(
        t, bleach_per_min=params.bleach_per_min if params.bleaching else 0.0, t0_s=params.first_frame_time_s
    )
    intensity = pop.peak_photons[:, None] * (1.0 - pop.se_at_130[:, None] * pol) * bleach[None, :]
    wl = params.wavelength_nm
    n_p, k = pop.row.size, k1 - k0
    spectra = np.empty((n_p, k, wl.size))
    for p in range(n_p):
        lor = _lorentz(wl[None, :], centre[p][:, None], float(pop.fwhm_nm[p]))  # (k*N, px)
        spectra[p] = (intensity[p][:, None] * lor).reshape(k, N_SUB, wl.size).mean(axis=1)
    w = intensity.reshape(n_p, k, N_SUB)
    peak = np.sum(w * centre.reshape(n_p, k, N_SUB), axis=2) / np.sum(w, axis=2)
    shift_avg = np.sum(w * shift.reshape(n_p, k, N_SUB), axis=2) / np.sum(w, axis=2)
    return spectra, peak, shift_avg


def spectral_daq_signals(
    params: SpectralSimParams, *, rng_voltage: np.random.Generator | None = None
) -> dict[str, np.ndarray]:
    """DAQ channels from ``t = 0``: ``time_s``, ``camera_ttl``, ``fg_voltage``."""
    t, ttl, volts = daq_base_signals(params, rng_voltage=rng_voltage)
    return {"time_s": t, TTL_CHANNEL: ttl, VOLTAGE_CHANNEL: volts}


def _toml_float(v: float) -> str:
    s = repr(float(v))
    return s if any(ch in s for ch in ".eE") else s + ".0"


def spectral_experiment_toml(params: SpectralSimParams, *, seed: int) -> str:
    """Text of the simulated run's experiment.toml (no [movie]: a spectra-only run)."""
    name = json.dumps(f"simulated MAPbBr3 particle spectra (plscope.sim, seed {int(seed)})")
    if params.calibration == "lamp":
        lines = ", ".join(f"{w:.4f}" for w in params.lamp_lines_in_view()[:, 0])
        cal = f'lamp = "{LAMP_FILE}"\nlamp_lines_nm = [{lines}]\n'
    else:
        cal = "dispersion_nm = [" + ", ".join(repr(float(c)) for c in params.dispersion_nm) + "]\n"
    return (
        "schema = 1\n\n"
        "[sample]\n"
        f"name = {name}\n"
        f"temperature_K = {_toml_float(params.temperature_K)}\n\n"
        "[daq]\n"
        f'path = "{DAQ_FILE}"\n'
        f'camera_ttl = "{TTL_CHANNEL}"\n'
        f'voltage = "{VOLTAGE_CHANNEL}"\n\n'
        "[field]\n"
        f"amplifier_gain = {_toml_float(params.amplifier_gain)}\n"
        f"electrode_gap_um = {_toml_float(params.electrode_gap_um)}\n\n"
        "[spectra]\n"
        f'path = "{SPECTRA_FILE}"\n'
        f'camera_ttl = "{TTL_CHANNEL}"\n' + cal
    )


def simulate_spectral_run(
    out_dir: str | os.PathLike,
    params: SpectralSimParams | None = None,
    *,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, Any]:
    """Write a simulated spectral run folder and return its ground truth.

    Parameters
    ----------
    out_dir : path-like
        Folder to write (created; files of a previous simulation replaced).
    params : SpectralSimParams, optional
    seed : int
        Seed of every random draw; same seed, same files.
    progress : bool
        Show a progress bar over frame blocks.

    Returns
    -------
    dict
        The ground truth as written to ``ground_truth.json``: the dispersion
        and lamp lines, per particle its row, unshifted peak, FWHM, shift
        slope and kinetics, the steady-state ``spectral_shift_nm`` per field
        (mean over particles) and ``spectral_shift_slope_nm_per_kV_per_cm``,
        and per frame the true (exposure- and intensity-averaged) peak
        ``frame_peak_nm[particle][frame]`` and its field-induced part
        ``frame_shift_nm``.

    Raises
    ------
    SpectralSimError
        Invalid parameters or seed.
    """
    import tifffile

    from .. import __version__

    params = SpectralSimParams() if params is None else params
    t0 = time.perf_counter()
    rng = _streams(seed)
    pop = _draw_population(params, rng["particles"])
    n_frames, n_rows, n_px = params.n_frames, int(params.n_rows), int(params.n_pixels)
    profiles = np.stack([stripe_profile(n_rows, r, params.stripe_sigma_rows) for r in pop.row])  # (n_p, rows)
    offset = params.camera_offset_adu if params.camera_offset else 0.0
    background = np.full((n_rows, n_px), params.background_photons)
    lamp_counts, lamp_info = lamp_spectrum(params, rng=rng["lamp"] if params.noise else None)
    signals = spectral_daq_signals(params, rng_voltage=rng["voltage"])

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = [SPECTRA_FILE, DAQ_FILE, GROUND_TRUTH_FILE, EXPERIMENT_FILE] + (
        [LAMP_FILE] if params.calibration == "lamp" else []
    )
    targets = {name: out / name for name in names}
    peak_nm = np.empty((pop.row.size, n_frames))
    shift_nm = np.empty((pop.row.size, n_frames))
    block = 64
    bigtiff = n_frames * n_rows * n_px * 2 > 2**32 - 2**26
    with atomic_files(*targets.values()) as parts:
        part = dict(zip(targets, parts, strict=True))
        with tifffile.TiffWriter(part[SPECTRA_FILE], bigtiff=bigtiff) as tif:
            for k0 in progress_iter(
                range(0, n_frames, block), "simulating spectra", unit="block", enabled=progress
            ):
                k1 = min(n_frames, k0 + block)
                spectra, peak_nm[:, k0:k1], shift_nm[:, k0:k1] = _frame_spectra(params, pop, k0, k1)
                photons = background[None] + np.einsum("pr,pkc->krc", profiles, spectra)
                if params.noise:
                    adu = rng["camera"].poisson(photons).astype(float) * params.gain_adu_per_photon + offset
                    if params.read_noise_adu > 0:
                        adu += rng["camera"].normal(0.0, params.read_noise_adu, adu.shape)
                else:
                    adu = photons * params.gain_adu_per_photon + offset
                frames = np.clip(np.rint(adu), 0, ADU_MAX).astype(np.uint16)
                for frame in frames:
                    tif.write(frame, contiguous=True, photometric="minisblack", metadata={"axes": "TYX"})
        with open(part[DAQ_FILE], "w", encoding="ascii", newline="") as fh:
            fh.write(f"time_s,{TTL_CHANNEL},{VOLTAGE_CHANNEL}\n")
            cols = [
                signals["time_s"].tolist(),
                signals[TTL_CHANNEL].tolist(),
                signals[VOLTAGE_CHANNEL].tolist(),
            ]
            fh.write("".join(f"{a:.6f},{b:.1f},{c:.6g}\n" for a, b, c in zip(*cols)))
        if params.calibration == "lamp":
            with open(part[LAMP_FILE], "w", encoding="ascii", newline="") as fh:
                fh.write("pixel,counts\n")
                fh.write("".join(f"{i},{int(c)}\n" for i, c in enumerate(lamp_counts)))
        truth = _ground_truth(params, pop, lamp_info, peak_nm, shift_nm, seed=seed, version=__version__)
        with open(part[GROUND_TRUTH_FILE], "w", encoding="utf-8") as fh:
            json.dump(truth, fh, indent=1, allow_nan=False)
            fh.write("\n")
        part[EXPERIMENT_FILE].write_text(spectral_experiment_toml(params, seed=seed), encoding="utf-8")
    logger.info(
        "simulated spectral run %s: %d particles, %d frames of %dx%d in %.1f s",
        out,
        pop.row.size,
        n_frames,
        n_rows,
        n_px,
        time.perf_counter() - t0,
    )
    return truth


def _ground_truth(
    params: SpectralSimParams,
    pop: _Population,
    lamp_info: dict,
    peak_nm: np.ndarray,
    shift_nm: np.ndarray,
    *,
    seed: int,
    version: str,
) -> dict[str, Any]:
    switch, fields = params.schedule()
    levels = sorted(set(float(e) for e in params.fields_kV_per_cm))
    slope_mean = float(np.mean(pop.slope))
    particles = []
    for i in range(pop.row.size):
        particles.append(
            {
                "particle_id": i,
                "row": pop.row[i],
                "peak_nm": pop.peak_nm[i],
                "fwhm_nm": pop.fwhm_nm[i],
                "shift_slope_nm_per_kV_per_cm": pop.slope[i],
                "size_nm": pop.size_nm[i],
                "mobility_cm2_per_Vs": pop.mobility[i],
                "tau_rec_s": pop.tau_rec_s[i],
                "se_at_130": pop.se_at_130[i],
                "peak_photons": pop.peak_photons[i],
                "tau_pol_s": {
                    f"{e:g}": float(polarization_time_s(pop.size_nm[i], pop.mobility[i], e)) for e in levels
                },
                "spectral_shift_nm": [{"field_kV_per_cm": e, "shift_nm": pop.slope[i] * e} for e in levels],
            }
        )
    files = {"spectra": SPECTRA_FILE, "daq": DAQ_FILE, "experiment": EXPERIMENT_FILE}
    if params.calibration == "lamp":
        files["lamp"] = LAMP_FILE
    truth = {
        "schema": 1,
        "generator": "plscope.sim.simulate_spectral_run",
        "plscope_version": version,
        "seed": int(seed),
        "params": asdict(params),
        "files": files,
        "n_particles": int(pop.row.size),
        "n_frames": params.n_frames,
        "n_rows": int(params.n_rows),
        "n_pixels": int(params.n_pixels),
        "dispersion_nm": list(params.dispersion_nm),
        "wavelength_range_nm": list(params.wavelength_range_nm),
        "lamp": lamp_info,
        "temperature_K": params.temperature_K,
        "fields_kV_per_cm": levels,
        "field_sequence_kV_per_cm": list(params.fields_kV_per_cm),
        "frame_interval_s": 1.0 / params.frame_rate_hz,
        "exposure_s": params.exposure_s,
        "first_frame_time_s": params.first_frame_time_s,
        "n_ttl_pulses": params.n_ttl_pulses,
        "switch_times_s": switch,
        "switch_fields_kV_per_cm": fields,
        "fg_volts_per_kV_per_cm": params.volts_per_kV_per_cm,
        "drift_nm_total": params.drift_nm if params.drift else 0.0,
        "particles": particles,
        "spectral_shift_nm": [{"field_kV_per_cm": e, "shift_nm": slope_mean * e} for e in levels],
        "spectral_shift_slope_nm_per_kV_per_cm": slope_mean,
        "frame_peak_nm": peak_nm,
        "frame_shift_nm": shift_nm,
        "frame_time_convention": "frame k is exposed during [first_frame_time_s + k * frame_interval_s, "
        "+ exposure_s] on the DAQ clock; frame_peak_nm is the intensity-weighted "
        "mean peak over that exposure",
    }
    return jsonable(truth)
