"""Photodetector figures of merit from electrometer logs (pyroelectric and X-ray detectors).

Pure science: arrays and tables in, numbers out; nothing printed, no files
written (:mod:`plscope.detector.reading` only reads). See
``docs/detector-folder.md`` for every definition.
"""

from .iv import dark_drift, hecht_current, mu_tau_hecht, open_circuit_voltage, resistivity, stability
from .pyro import PULSE_COLUMNS, pyro_pulses, responsivity
from .reading import Log, read_log
from .stimulus import segments_from_current, segments_from_shutter, segments_from_times
from .timing import exp_fit, rise_decay_10_90
from .xray import DOSE_COLUMNS, analyze_dose_rate, dose_rate_fits, time_constants

__all__ = [
    "DOSE_COLUMNS", "PULSE_COLUMNS", "Log", "analyze_dose_rate", "dark_drift", "dose_rate_fits", "exp_fit",
    "hecht_current", "mu_tau_hecht", "open_circuit_voltage", "pyro_pulses", "read_log", "resistivity",
    "responsivity", "rise_decay_10_90", "segments_from_current", "segments_from_shutter", "segments_from_times",
    "stability", "time_constants",
]  # fmt: skip
