"""Kinetics of field-switched PL: cycle averaging, decay fits, ion mobility.

Stages
------
- :mod:`plscope.kinetics.fits` -- mono/biexponential decay models (lmfit) and
  :class:`DecayFit` results with the amplitude-weighted time constant;
- :mod:`plscope.kinetics.cycles` -- bleaching correction, switching windows,
  superposition of cycles with blink rejection, switching efficiency;
- :mod:`plscope.kinetics.analysis` -- :func:`analyze_particle`: one row per
  field level for one particle trace;
- :mod:`plscope.kinetics.mobility` -- drift velocity, mobility, Einstein
  diffusion coefficient and the run-level summary.
"""

from ._checks import CYCLE_COLUMNS, KineticsInputError
from .analysis import CURVE_COLUMNS, CURVE_TABLE_COLUMNS, KINETICS_COLUMNS, KineticsSettings, ParticleKinetics, analyze_particle
from .cycles import (BleachModel, SuperposedCycles, bleach_curve, cycle_windows, frames_in_window,
                     robust_mean, superpose_cycles, switching_efficiency_per_cycle)
from .fits import (BAD_FIT_FLAGS, BiExponentialModel, DecayFit, MonoExponentialModel, biexponential,
                   exposure_factor, fit_biexponential, fit_decay, fit_monoexponential, monoexponential)
from .mobility import (SlopeFit, add_mobility_columns, drift_velocity_nm_per_s,
                       einstein_diffusion_cm2_per_s, mobility_cm2_per_Vs,
                       mobility_from_velocity_slope, summarize_population)

__all__ = [
    "BAD_FIT_FLAGS", "CURVE_COLUMNS", "CURVE_TABLE_COLUMNS", "CYCLE_COLUMNS", "KINETICS_COLUMNS",
    "BiExponentialModel", "BleachModel", "DecayFit", "KineticsInputError", "KineticsSettings",
    "MonoExponentialModel", "ParticleKinetics", "SlopeFit", "SuperposedCycles",
    "add_mobility_columns", "analyze_particle", "biexponential", "bleach_curve", "cycle_windows",
    "drift_velocity_nm_per_s", "einstein_diffusion_cm2_per_s", "exposure_factor",
    "fit_biexponential", "fit_decay", "fit_monoexponential", "frames_in_window",
    "mobility_cm2_per_Vs", "mobility_from_velocity_slope", "monoexponential", "robust_mean",
    "summarize_population", "superpose_cycles", "switching_efficiency_per_cycle",
]
