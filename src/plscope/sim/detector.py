"""Simulated detector run folders (pyroelectric + X-ray detector), with ground truth.

An independent forward model (nothing of :mod:`plscope.detector` is used):

- a first-order thermal model of the crystal under the switched source,
  dT/dt = (dT_max * on(t) - T) / tau_th, solved in closed form per segment;
  the pyroelectric current is A p dT/dt;
- under X-rays a photovoltaic current S A (D - D0) (D0: the response
  threshold that puts the SNR line through the paper's two numbers) that
  rises and decays exponentially with its own time constants, plus the
  pyroelectric current of the X-ray heating (the pyro-photovoltaic spike);
- a dark current with a linear drift, white electrometer noise and the
  electrometer's bandwidth (a first-order low-pass, discrete);
- I-V sweeps: Ohm's law (dark), a line through V_oc (irradiated), the
  modified Hecht equation (photocurrent against bias);
- a constant-bias dark record (drift) and a continuous exposure (stability).

Defaults are the CY-I values of J. Mater. Chem. C 2025, 13, 12685.
:func:`simulate_detector_run` writes ``detector.toml``, the CSV logs and
``ground_truth.json`` (the summary's keys, and more).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.signal import lfilter

__all__ = ["DetectorSimParams", "ground_truth", "simulate_detector_run", "xray_current"]

LN9 = math.log(9.0)


@dataclass(frozen=True)
class DetectorSimParams:
    """Parameters of a simulated CY-I device (paper values by default)."""

    area_cm2: float = 0.0075
    spacing_cm: float = 0.3
    sample_interval_s: float = 0.004
    bandwidth_tau_s: float = 0.004
    # pyroelectric measurement (404 nm laser, zero bias)
    pyro_coefficient_uC_per_cm2_K: float = 35e-4
    delta_T_K: float = 0.5
    thermal_tau_s: float = 0.4
    pyro_on_s: float = 5.0
    pyro_off_s: float = 5.0
    pyro_pulses: int = 6
    power_density_mW_per_cm2: float = 100.0
    # X-ray on/off records
    sensitivity_uC_per_Gy_cm2: float = 88.0
    paper_snr: float = 10.4
    paper_snr_dose_nGy_per_s: float = 214.0
    paper_detection_limit_nGy_per_s: float = 137.0
    dose_rates_nGy_per_s: tuple[float, ...] = (214.0, 500.0, 1000.0, 2000.0, 4000.0)
    rise_10_90_s: float = 0.531
    decay_10_90_s: float = 0.516
    xray_on_s: float = 5.0
    xray_off_s: float = 5.0
    xray_cycles: int = 6
    xray_thermal_tau_s: float = 0.15
    contrast_percent: float = 158.5
    dark_A: float = 5e-14
    dark_drift_A_per_s: float = 1e-18
    # sweeps and constant-bias records
    resistivity_ohm_cm: float = 5.2e12
    open_circuit_voltage_V: float = 0.25
    short_circuit_current_A: float = 1e-12
    mu_tau_cm2_per_V: float = 1.3e-3
    s_over_mu_V_per_cm: float = 5.0
    hecht_i0_A: float = 5e-12
    hecht_relative_noise: float = 0.005
    iv_noise_A: float = 1e-15
    drift_nA_per_cm_s_V: float = 8.2e-7
    drift_bias_V: float = 10.0
    drift_duration_s: float = 1000.0
    drift_noise_A: float = 5e-15
    stability_duration_s: float = 600.0
    stability_change_percent_of_photo: float = -1.0

    @property
    def response_threshold_nGy_per_s(self) -> float:
        """D0 of the photovoltaic response S A (D - D0): the SNR line through the paper's two points."""
        slope = (self.paper_snr - 3.0) / (
            self.paper_snr_dose_nGy_per_s - self.paper_detection_limit_nGy_per_s
        )
        return self.paper_snr_dose_nGy_per_s - self.paper_snr / slope

    @property
    def noise_A(self) -> float:
        """Recorded rms noise current that gives the paper's SNR at its dose rate."""
        return self.photo_step_A(self.paper_snr_dose_nGy_per_s) / self.paper_snr

    def photo_step_A(self, dose_nGy_per_s: float) -> float:
        s = self.sensitivity_uC_per_Gy_cm2 * 1e-6 * self.area_cm2
        return s * (dose_nGy_per_s - self.response_threshold_nGy_per_s) * 1e-9


def _first_order_rate(t: np.ndarray, on: np.ndarray, off: np.ndarray, amp: float, tau: float) -> np.ndarray:
    """dT/dt of dT/dt = (amp*on(t) - T)/tau from T = 0, closed form per switching (superposition)."""
    rate = np.zeros_like(t)
    for a, b in zip(on, off):
        for edge, sign in ((a, 1.0), (b, -1.0)):
            after = t >= edge
            rate[after] += sign * amp / tau * np.exp(-(t[after] - edge) / tau)
    return rate


def _exp_response(t: np.ndarray, on: np.ndarray, off: np.ndarray, tau_r: float, tau_d: float) -> np.ndarray:
    """Fraction (0..1) of the steady photovoltaic current: exponential rise, exponential decay."""
    y = np.zeros_like(t)
    for a, b in zip(on, off):
        r = (t >= a) & (t < b)
        y[r] += 1 - np.exp(-(t[r] - a) / tau_r)
        top = 1 - math.exp(-(b - a) / tau_r)
        d = t >= b
        y[d] += top * np.exp(-(t[d] - b) / tau_d)
    return y


def _electrometer(p: DetectorSimParams, current: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
    """First-order bandwidth, then (if rng) white noise scaled to the recorded rms p.noise_A."""
    alpha = 1 - math.exp(-p.sample_interval_s / p.bandwidth_tau_s)
    out = lfilter([alpha], [1, alpha - 1], current, zi=[(1 - alpha) * current[0]])[0]
    if rng is not None:
        white = rng.normal(0.0, p.noise_A * math.sqrt((2 - alpha) / alpha), current.size)
        out = out + lfilter([alpha], [1, alpha - 1], white)
    return out


def _schedule(lead: float, on_s: float, off_s: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    on = lead + np.arange(n) * (on_s + off_s)
    return on, on + on_s


def _time(p: DetectorSimParams, end: float) -> np.ndarray:
    return np.arange(0.0, end, p.sample_interval_s)


def _shutter(t, on, off, rng):
    gate = ((t[:, None] >= on) & (t[:, None] < off)).any(axis=1)
    return 5.0 * gate + rng.normal(0, 0.01, t.size)


def xray_current(p: DetectorSimParams, dose: float, t: np.ndarray, on, off, heat_K_per_nGy: float):
    """Noise-free X-ray current (before the electrometer): dark + photovoltaic + pyroelectric.

    The heat deposited follows the photo-generated carriers (their
    thermalization and recombination), i.e. the photovoltaic response
    f(t); the crystal temperature follows that power with the first-order
    thermal time constant, dT/dt = (h D f(t) - T) / tau_x, so the
    pyroelectric spike grows from zero after turn-on and reverses after
    turn-off.
    """
    tr, td = p.rise_10_90_s / LN9, p.decay_10_90_s / LN9
    f = _exp_response(t, on, off, tr, td)
    drive = heat_K_per_nGy * dose * f
    e = math.exp(-p.sample_interval_s / p.xray_thermal_tau_s)
    temp = lfilter([1 - e], [1, -e], drive)
    rate = (drive - temp) / p.xray_thermal_tau_s
    pe = p.pyro_coefficient_uC_per_cm2_K * 1e-6
    return p.dark_A + p.dark_drift_A_per_s * t + p.photo_step_A(dose) * f + p.area_cm2 * pe * rate


def _cycle_truth(p: DetectorSimParams, dose: float, heat: float, *, refine: int = 20) -> dict:
    """Rise/decay (10-90 %, first crossings) and contrast of the noise-free recorded cycle.

    Computed on a grid ``refine`` times finer than the record's (the
    continuous-time values); ``refine=1`` gives the recorded samples.
    """
    p = dataclasses.replace(p, sample_interval_s=p.sample_interval_s / refine)
    period = p.xray_on_s + p.xray_off_s
    t = _time(p, 4 * period)
    on, off = _schedule(period + 0.5 * p.sample_interval_s * refine, p.xray_on_s, p.xray_off_s, 2)
    y = _electrometer(p, xray_current(p, dose, t, on, off, heat), None) - p.dark_drift_A_per_s * t
    step = p.photo_step_A(dose)
    z = (y - p.dark_A) / step
    a, b = on[1], off[1]  # the second cycle: its dark segment holds the tail of the first, as in a record

    def first(level, start, rising):
        k = np.flatnonzero((t >= start) & ((z >= level) if rising else (z <= level)))[0]
        return t[k - 1] + (level - z[k - 1]) / (z[k] - z[k - 1]) * p.sample_interval_s

    inside = (t >= a) & (t < b)
    dark = z[(t >= a - 0.5 * p.xray_off_s) & (t < a)].mean()
    photo = z[inside & (t >= 0.5 * (a + b))].mean()
    return {
        "delta_A": (photo - dark) * step,
        "rise_time_s": first(0.9, a, True) - first(0.1, a, True),
        "decay_time_s": first(0.1, b, False) - first(0.9, b, False),
        "contrast_percent": (z[inside].max() - z[inside & (t >= 0.5 * (a + b))].mean()) * 100.0,
    }


@functools.lru_cache(maxsize=16)
def _heat_for_contrast(p: DetectorSimParams) -> float:
    """X-ray heating per dose rate (K per nGy/s) giving the paper's contrast at the highest dose rate."""
    from scipy.optimize import brentq

    d = max(p.dose_rates_nGy_per_s)
    return brentq(
        lambda h: _cycle_truth(p, d, h)["contrast_percent"] - p.contrast_percent, 0.0, 1e-2, xtol=1e-15
    )


def _write_csv(path: Path, header: list[str], columns: list[np.ndarray]) -> None:
    data = np.column_stack(columns)
    np.savetxt(path, data, delimiter=",", header=",".join(header), comments="", fmt="%.9g")


def _pyro(p: DetectorSimParams, out: Path, rng) -> dict:
    period = p.pyro_on_s + p.pyro_off_s
    t = _time(p, p.pyro_off_s + p.pyro_pulses * period)
    on, off = _schedule(p.pyro_off_s + 0.5 * p.sample_interval_s, p.pyro_on_s, p.pyro_off_s, p.pyro_pulses)
    amp = p.delta_T_K / (1 - math.exp(-p.pyro_on_s / p.thermal_tau_s))  # swing of a pulse = delta_T_K
    pe = p.pyro_coefficient_uC_per_cm2_K * 1e-6
    i = p.area_cm2 * pe * _first_order_rate(t, on, off, amp, p.thermal_tau_s) + 2e-14 + 1e-17 * t
    _write_csv(out / "pyro_404nm.csv", ["time_s", "current_A", "shutter_V"],
               [t, _electrometer(p, i, rng), _shutter(t, on, off, rng)])  # fmt: skip
    return {"pyro_on_s": on.tolist(), "pyro_charge_C": p.area_cm2 * pe * p.delta_T_K}


def _xray(p: DetectorSimParams, out: Path, rng, heat: float) -> list[str]:
    period = p.xray_on_s + p.xray_off_s
    names = []
    for d in p.dose_rates_nGy_per_s:
        t = _time(p, p.xray_off_s + p.xray_cycles * period)
        on, off = _schedule(
            p.xray_off_s + 0.5 * p.sample_interval_s, p.xray_on_s, p.xray_off_s, p.xray_cycles
        )
        i = _electrometer(p, xray_current(p, d, t, on, off, heat), rng)
        name = f"xray_{d:g}nGy.csv"
        _write_csv(out / name, ["time_s", "current_A", "shutter_V"], [t, i, _shutter(t, on, off, rng)])
        names.append(name)
    return names


def _sweeps(p: DetectorSimParams, out: Path, rng) -> None:
    r = p.resistivity_ohm_cm * p.spacing_cm / p.area_cm2
    v = np.linspace(-10, 10, 21)
    _write_csv(
        out / "iv_dark.csv", ["voltage_V", "current_A"], [v, v / r + rng.normal(0, p.iv_noise_A, v.size)]
    )
    v = np.linspace(-1, 1, 41)
    i = (v - p.open_circuit_voltage_V) * p.short_circuit_current_A / p.open_circuit_voltage_V
    _write_csv(out / "iv_xray.csv", ["voltage_V", "current_A"], [v, i + rng.normal(0, p.iv_noise_A, v.size)])
    v = np.linspace(5, 200, 16)
    x = p.mu_tau_cm2_per_V * v / p.spacing_cm**2
    i = p.hecht_i0_A * x * (1 - np.exp(-1 / x)) / (1 + p.spacing_cm / v * p.s_over_mu_V_per_cm)
    _write_csv(
        out / "hecht.csv",
        ["voltage_V", "current_A"],
        [v, i * (1 + rng.normal(0, p.hecht_relative_noise, v.size))],
    )
    t = np.arange(0, p.drift_duration_s, 1.0)
    slope = p.drift_nA_per_cm_s_V * 1e-9 * (p.drift_bias_V / p.spacing_cm) * p.area_cm2
    i = p.drift_bias_V / r + slope * t + rng.normal(0, p.drift_noise_A, t.size)
    _write_csv(out / "dark_10V.csv", ["time_s", "current_A"], [t, i])


def _stability(p: DetectorSimParams, out: Path, rng) -> float:
    t = np.arange(0, p.stability_duration_s, 0.1)
    step = p.photo_step_A(max(p.dose_rates_nGy_per_s))
    frac = p.stability_change_percent_of_photo / 100.0
    i = p.dark_A + step * (1 + frac * t / t[-1])
    _write_csv(out / "stability.csv", ["time_s", "current_A"], [t, i + rng.normal(0, p.noise_A, t.size)])
    return step * frac / (p.dark_A + step) * 100.0


def _toml(p: DetectorSimParams, xray_files: list[str]) -> str:
    lines = ["schema = 1", "", "[sample]", 'name = "simulated CY-I single crystal"', "temperature_K = 296.15", "",
             "[device]", f"electrode_area_cm2 = {p.area_cm2!r}", f"electrode_spacing_cm = {p.spacing_cm!r}", "",
             "[[pyro]]", 'path = "pyro_404nm.csv"', 'current = "current_A"', 'shutter = "shutter_V"',
             f"delta_T_K = {p.delta_T_K!r}", "wavelength_nm = 404",
             f"power_density_mW_per_cm2 = {p.power_density_mW_per_cm2!r}", ""]  # fmt: skip
    for name, d in zip(xray_files, p.dose_rates_nGy_per_s):
        lines += ["[[xray]]", f'path = "{name}"', 'current = "current_A"', 'shutter = "shutter_V"',
                  f"dose_rate_nGy_per_s = {float(d)!r}", "bias_V = 0.0", ""]  # fmt: skip
    lines += ["[iv]", 'dark = "iv_dark.csv"', 'irradiated = "iv_xray.csv"', 'hecht = "hecht.csv"', "",
              "[drift]", 'path = "dark_10V.csv"', f"bias_V = {p.drift_bias_V!r}", "",
              "[stability]", 'path = "stability.csv"', f"dose_rate_nGy_per_s = {max(p.dose_rates_nGy_per_s)!r}", ""]  # fmt: skip
    return "\n".join(lines)


def ground_truth(p: DetectorSimParams, heat: float | None = None) -> dict:
    """The true figures of merit of a device (the summary's keys), without writing anything."""
    heat = _heat_for_contrast(p) if heat is None else heat
    d_max = max(p.dose_rates_nGy_per_s)
    cyc = _cycle_truth(p, d_max, heat)
    # the spec's definitions on the noise-free record: steady-state means over the last half
    # of the segments (they hold a trace of the thermal transient: the truth includes it)
    d = np.asarray(p.dose_rates_nGy_per_s, float)
    delta = np.array([_cycle_truth(p, x, heat, refine=1)["delta_A"] for x in d])
    slope, icpt = np.polyfit(d, delta, 1)  # exactly linear in the dose rate
    limit = (3.0 * p.noise_A - icpt) / slope
    return {
        "pyroelectric_coefficient_uC_per_cm2_K": p.pyro_coefficient_uC_per_cm2_K,
        "sensitivity_uC_per_Gy_cm2": slope / p.area_cm2 * 1e6 * 1e9,
        "sensitivity_model_uC_per_Gy_cm2": p.sensitivity_uC_per_Gy_cm2,
        "detection_limit_model_nGy_per_s": p.response_threshold_nGy_per_s
        + 3.0 * p.noise_A / (p.sensitivity_uC_per_Gy_cm2 * 1e-6 * p.area_cm2) * 1e9,
        "detection_limit_nGy_per_s": limit,
        "snr_by_dose_rate": [{"dose_rate_nGy_per_s": float(x), "snr": float(y / p.noise_A)} for x, y in zip(d, delta)],
        "rise_time_s": cyc["rise_time_s"],
        "decay_time_s": cyc["decay_time_s"],
        "contrast_percent": cyc["contrast_percent"],
        "resistivity_ohm_cm": p.resistivity_ohm_cm,
        "open_circuit_voltage_V": p.open_circuit_voltage_V,
        "mu_tau_cm2_per_V": p.mu_tau_cm2_per_V,
        "dark_current_drift_nA_per_cm_s_V": p.drift_nA_per_cm_s_V,
        "noise_A": p.noise_A,
        "response_threshold_nGy_per_s": p.response_threshold_nGy_per_s,
        "xray_heating_K_per_nGy_per_s": heat,
    }  # fmt: skip


def simulate_detector_run(
    out_dir: str | os.PathLike, params: DetectorSimParams | None = None, *, seed: int = 0
) -> dict:
    """Write a simulated detector run folder and ``ground_truth.json``; return the truth.

    Parameters
    ----------
    out_dir : path-like
        Folder to write (created; must not hold a detector.toml already).
    params : DetectorSimParams, optional
    seed : int
        Seed of the random generator (noise).
    """
    p = params or DetectorSimParams()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    heat = _heat_for_contrast(p)
    truth = ground_truth(p, heat)
    truth.update(_pyro(p, out, rng))
    xray_files = _xray(p, out, rng, heat)
    _sweeps(p, out, rng)
    truth["stability_change_percent"] = _stability(p, out, rng)
    (out / "detector.toml").write_text(_toml(p, xray_files))
    truth["seed"] = seed
    truth["params"] = dataclasses.asdict(p)
    (out / "ground_truth.json").write_text(json.dumps(truth, indent=2))
    return truth
