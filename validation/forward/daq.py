"""The DAQ log: camera TTL (one pulse per exposure) and the function-generator voltage."""

from __future__ import annotations

import numpy as np

TTL_HIGH_V = 5.0


def volts_for_field(field_kV_per_cm: float, *, amplifier_gain: float, electrode_gap_um: float) -> float:
    """Recorded voltage giving ``field``: E[kV/cm] = |V| x gain / gap, gap in cm, /1000."""
    return field_kV_per_cm * 1e3 * (electrode_gap_um * 1e-4) / amplifier_gain


def daq_table(
    pulse_start_s: np.ndarray,
    exposure_s: float,
    on_intervals: list[tuple[float, float, float]],
    *,
    rate_hz: float,
    amplifier_gain: float,
    electrode_gap_um: float,
    voltage_noise_V: float,
    rng: np.random.Generator,
    tail_s: float = 0.5,
) -> dict[str, np.ndarray]:
    """Sampled columns ``time_s, camera_ttl, fg_voltage`` from t = 0 to after the last pulse."""
    t_end = float(np.max(pulse_start_s)) + exposure_s + tail_s
    n = int(np.ceil(t_end * rate_hz)) + 1
    t = np.arange(n) / rate_hz
    starts = np.sort(np.asarray(pulse_start_s, float))
    last = np.searchsorted(starts, t, side="right") - 1  # the latest pulse started at or before t
    high = (last >= 0) & (t < starts[np.clip(last, 0, None)] + exposure_s)
    ttl = np.where(high, TTL_HIGH_V, 0.0)
    volts = np.zeros(n)
    for start, end, e in on_intervals:  # unipolar (bipolar fields are other scenarios)
        v = volts_for_field(e, amplifier_gain=amplifier_gain, electrode_gap_um=electrode_gap_um)
        volts[(t >= start) & (t < end)] = v
    volts = volts + rng.normal(0.0, voltage_noise_V, n)
    return {"time_s": t, "camera_ttl": ttl, "fg_voltage": volts}
