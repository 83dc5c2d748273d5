"""Kinetics of field-switched PL: cycle averaging, decay fits, ion mobility, statistics.

Stages
------
- :mod:`plscope.kinetics.fits` -- mono/biexponential decay models (fitted
  with MINPACK; :mod:`plscope.kinetics.lmfit_models` has them as lmfit models),
  :class:`DecayFit` results with the amplitude-weighted time constant, and
  the pooled biexponential with a population prior on its shape;
- :mod:`plscope.kinetics.batched` -- :func:`fit_biexponentials`: many
  biexponential decays in one compiled Levenberg-Marquardt (throughput);
- :mod:`plscope.kinetics.cycles` -- bleaching correction, switching windows,
  superposition of cycles with blink rejection, switching efficiency;
- :mod:`plscope.kinetics.analysis` -- :func:`analyze_particle`: one row per
  field level for one particle trace;
- :mod:`plscope.kinetics.population` -- :func:`analyze_population`: every
  particle of a run, the biexponential shape pooled over the population;
- :mod:`plscope.kinetics.mobility` -- drift velocity, mobility, Einstein
  diffusion coefficient and the run-level summary;
- :mod:`plscope.kinetics.stats` -- cluster bootstrap, linear fits with
  confidence bands, the field-dependence test.
"""

from ._checks import CYCLE_COLUMNS, KineticsInputError
from .analysis import (
    CURVE_COLUMNS,
    CURVE_TABLE_COLUMNS,
    KINETICS_COLUMNS,
    SE_CYCLE_COLUMNS,
    KineticsSettings,
    ParticleKinetics,
    analyze_particle,
    exclusion_reason,
    refit_particle,
)
from .batched import BIEXP_FIT_COLUMNS, fit_biexponentials
from .cycles import (
    BleachModel,
    SuperposedCycles,
    bleach_curve,
    cycle_windows,
    frames_in_window,
    robust_mean,
    superpose_cycles,
    switching_efficiency_per_cycle,
)
from .fits import (
    BAD_FIT_FLAGS,
    DecayFit,
    ShapePrior,
    biexponential,
    biexponential_mean_tau,
    component_taus,
    exposure_factor,
    fit_biexponential,
    fit_biexponential_pooled,
    fit_decay,
    fit_models,
    fit_monoexponential,
    monoexponential,
)
from .mobility import (
    SlopeFit,
    add_mobility_columns,
    drift_velocity_nm_per_s,
    einstein_diffusion_cm2_per_s,
    mobility_cm2_per_Vs,
    mobility_from_velocity_slope,
    population_summary,
    summarize_population,
)
from .population import PopulationKinetics, analyze_population, estimate_shape_priors, shape_estimates
from .stats import BootstrapCI, FieldDependence, LinearFit, bootstrap_mean, field_dependence, linear_fit

__all__ = [
    "BAD_FIT_FLAGS",
    "BIEXP_FIT_COLUMNS",
    "CURVE_COLUMNS",
    "CURVE_TABLE_COLUMNS",
    "CYCLE_COLUMNS",
    "KINETICS_COLUMNS",
    "SE_CYCLE_COLUMNS",
    "BiExponentialModel",
    "BleachModel",
    "BootstrapCI",
    "DecayFit",
    "FieldDependence",
    "KineticsInputError",
    "KineticsSettings",
    "LinearFit",
    "MonoExponentialModel",
    "ParticleKinetics",
    "PopulationKinetics",
    "ShapePrior",
    "SlopeFit",
    "SuperposedCycles",
    "add_mobility_columns",
    "analyze_particle",
    "analyze_population",
    "biexponential",
    "biexponential_mean_tau",
    "bleach_curve",
    "bootstrap_mean",
    "component_taus",
    "cycle_windows",
    "drift_velocity_nm_per_s",
    "einstein_diffusion_cm2_per_s",
    "estimate_shape_priors",
    "exclusion_reason",
    "exposure_factor",
    "field_dependence",
    "fit_biexponential",
    "fit_biexponential_pooled",
    "fit_biexponentials",
    "fit_decay",
    "fit_models",
    "fit_monoexponential",
    "frames_in_window",
    "linear_fit",
    "mobility_cm2_per_Vs",
    "mobility_from_velocity_slope",
    "monoexponential",
    "refit_particle",
    "robust_mean",
    "shape_estimates",
    "population_summary",
    "summarize_population",
    "superpose_cycles",
    "switching_efficiency_per_cycle",
]


def __getattr__(name: str):
    # the lmfit models, imported on first use (lmfit with scipy.stats: ~1.5 s of CPU per process)
    if name in ("BiExponentialModel", "MonoExponentialModel"):
        from . import lmfit_models

        return getattr(lmfit_models, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
