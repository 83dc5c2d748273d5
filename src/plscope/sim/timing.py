"""Run timing shared by the imaging and the spectral simulators.

:class:`RunTimingMixin` derives, from the fields both parameter dataclasses
have (``daq_lead``, ``daq_lead_s``, ``daq_rate_hz``, ``lead_in_s``,
``fields_kV_per_cm``, ``cycles_per_level``, ``period_s``, ``duty``,
``frame_rate_hz``, ``exposure_s``, ``extra_ttl``, ``extra_ttl_pulses``,
``electrode_gap_um``, ``amplifier_gain``), the frame times, the field
schedule and the DAQ record length, on the DAQ clock.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from ..config.simulation import MAX_DAQ_SAMPLES, MAX_MOVIE_BYTES
from .kinetics import switch_schedule

#: DAQ record kept after the last TTL pulse, s
DAQ_TAIL_S = 0.5
#: DAQ channel names written by the simulators
TTL_CHANNEL = "camera_ttl"
VOLTAGE_CHANNEL = "fg_voltage"
#: camera TTL high level, V
TTL_HIGH_V = 5.0


class RunTimingMixin:
    """Derived timing of a simulated run (no fields of its own)."""

    if TYPE_CHECKING:  # the fields it reads, declared by the parameter dataclasses
        daq_lead: bool
        daq_lead_s: float
        daq_rate_hz: float
        lead_in_s: float
        fields_kV_per_cm: tuple[float, ...]
        cycles_per_level: int
        period_s: float
        duty: float
        frame_rate_hz: float
        exposure_s: float
        extra_ttl: bool
        extra_ttl_pulses: int
        electrode_gap_um: float
        amplifier_gain: float

    @property
    def first_frame_time_s(self) -> float:
        """Start of the first exposure on the DAQ clock.

        ``daq_lead_s`` with ``daq_lead``; otherwise one DAQ sample, so that
        the record still starts with the TTL low and every frame, the first
        included, has a rising edge.
        """
        return float(self.daq_lead_s) if self.daq_lead else 1.0 / self.daq_rate_hz

    @property
    def n_cycles(self) -> int:
        return len(self.fields_kV_per_cm) * int(self.cycles_per_level)

    @property
    def n_frames(self) -> int:
        """Frames from the first one to the end of the last OFF half-cycle."""
        duration_s = self.lead_in_s + self.n_cycles * self.period_s
        return max(int(math.ceil(duration_s * self.frame_rate_hz - 1e-9)), 1)

    @property
    def n_ttl_pulses(self) -> int:
        return self.n_frames + (int(self.extra_ttl_pulses) if self.extra_ttl else 0)

    @property
    def volts_per_kV_per_cm(self) -> float:
        """Recorded function-generator volts per kV/cm of field."""
        return 1e3 * self.electrode_gap_um * 1e-4 / self.amplifier_gain

    def frame_start_times_s(self) -> np.ndarray:
        """Exposure start of every saved frame, shape (n_frames,)."""
        return self.first_frame_time_s + np.arange(self.n_frames) / self.frame_rate_hz

    def schedule(self) -> tuple[np.ndarray, np.ndarray]:
        """``(switch_times_s (n_cycles, 2), cycle_fields_kV_per_cm (n_cycles,))``."""
        return switch_schedule(
            self.fields_kV_per_cm,
            cycles_per_level=int(self.cycles_per_level),
            period_s=self.period_s,
            duty=self.duty,
            first_on_s=self.first_frame_time_s + self.lead_in_s,
        )

    def daq_duration_s(self) -> float:
        """Time of the last DAQ sample (a little after the last TTL pulse)."""
        last_pulse_end = (
            self.first_frame_time_s + (self.n_ttl_pulses - 1) / self.frame_rate_hz + self.exposure_s
        )
        return last_pulse_end + DAQ_TAIL_S


def daq_base_signals(
    params, *, rng_voltage: np.random.Generator | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sampled DAQ record from ``t = 0``: time, camera TTL and function-generator voltage.

    Parameters
    ----------
    params : a parameter dataclass with :class:`RunTimingMixin`
        Also needs ``voltage_noise`` and ``voltage_noise_V``.
    rng_voltage : numpy.random.Generator, optional
        Noise on the voltage channel (when ``params.voltage_noise``).

    Returns
    -------
    time_s, camera_ttl, fg_voltage : ndarray, each shape (n_samples,)
        TTL at ``TTL_HIGH_V`` during each exposure (surplus pulses included);
        voltage ``E * gap / gain`` during each ON half-cycle.
    """
    rate = params.daq_rate_hz
    n = int(math.floor(params.daq_duration_s() * rate + 1e-9)) + 1
    t = np.arange(n) / rate

    def level(starts_s: np.ndarray, ends_s: np.ndarray, values: np.ndarray) -> np.ndarray:
        # samples i with start <= i / rate < end, robust to float rounding
        i0 = np.clip(np.ceil(starts_s * rate - 1e-6).astype(np.int64), 0, n)
        i1 = np.clip(np.ceil(ends_s * rate - 1e-6).astype(np.int64), 0, n)
        step = np.zeros(n + 1)
        np.add.at(step, i0, values)
        np.add.at(step, i1, -values)
        return np.cumsum(step)[:n]

    pulses = params.first_frame_time_s + np.arange(params.n_ttl_pulses) / params.frame_rate_hz
    ttl = level(pulses, pulses + params.exposure_s, np.full(pulses.size, TTL_HIGH_V))
    ttl = np.where(ttl > TTL_HIGH_V / 2, TTL_HIGH_V, 0.0)
    switch_times, cycle_fields = params.schedule()
    volts = level(switch_times[:, 0], switch_times[:, 1], cycle_fields * params.volts_per_kV_per_cm)
    volts = np.round(volts, 12)  # cumulative-sum residue
    if params.voltage_noise and params.voltage_noise_V > 0 and rng_voltage is not None:
        volts = volts + rng_voltage.normal(0.0, params.voltage_noise_V, size=n)
    return t, ttl, volts


def size_limits(params: Any, frame_px: int) -> list[tuple[bool, str]]:
    """Memory bounds of a simulated run: the movie and the DAQ log must fit."""
    if params.frame_rate_hz * (params.lead_in_s + params.n_cycles * params.period_s) > 1e8:
        return [
            (False, "the run would have more than 1e8 frames: fewer cycles, a shorter period or frame rate")
        ]
    movie_bytes = params.n_frames * frame_px * 2
    daq_samples = params.daq_duration_s() * params.daq_rate_hz
    return [
        (
            movie_bytes <= MAX_MOVIE_BYTES,
            f"the movie would be {movie_bytes / 2**30:.3g} GiB (> {MAX_MOVIE_BYTES / 2**30:g} GiB): "
            "fewer frames or a smaller image",
        ),
        (
            daq_samples <= MAX_DAQ_SAMPLES,
            f"the DAQ log would have {daq_samples:.3g} samples (> {MAX_DAQ_SAMPLES:.0e}): "
            "a lower daq_rate_hz or a shorter run",
        ),
    ]
