"""The typed population summary (plscope.results.PopulationSummary) and the summary.json keys it gives."""

from __future__ import annotations

import json

from plscope.kinetics import population_summary, summarize_population
from plscope.results import PopulationSummary

from .test_mobility import make_population

#: the population keys of summary.json, in order, as written before the typed summary existed
SUMMARY_KEYS = [
    "fields_kV_per_cm",
    "temperature_K",
    "n_particles",
    "n_particles_used",
    "n_rows",
    "n_rows_used",
    "n_rows_excluded",
    "confidence",
    "bootstrap",
    "kinetics_excluded_particles",
    "ion_mobility_cm2_per_Vs",
    "ion_mobility_median_cm2_per_Vs",
    "ion_mobility_std_cm2_per_Vs",
    "ion_mobility_sem_cm2_per_Vs",
    "ion_mobility_ci95_cm2_per_Vs",
    "ion_mobility_fit_cm2_per_Vs",
    "ion_mobility_fit_err_ols_cm2_per_Vs",
    "ion_mobility_fit_intercept_nm_per_s",
    "ion_mobility_fit_r2",
    "ion_mobility_fit_err_cm2_per_Vs",
    "ion_mobility_fit_ci95_cm2_per_Vs",
    "diffusion_coefficient_cm2_per_s",
    "diffusion_coefficient_std_cm2_per_s",
    "diffusion_coefficient_err_cm2_per_s",
    "diffusion_coefficient_ci95_cm2_per_s",
    "tau_size_slope_s_per_nm",
    "tau_size_slope_err_s_per_nm",
    "tau_size_intercept_s",
    "tau_size_field_kV_per_cm",
    "tau_size_n",
    "tau_pol_size_fit",
    "tau_rec_size_fit",
    "tau_pol_field_dependence",
    "tau_rec_field_dependence",
    "recovery_independent_of_field",
    "model_choice",
    "per_field",
    "warnings",
]


def test_population_summary_is_typed_and_gives_the_summary_json_keys_in_order():
    kin, particles = make_population()
    summary = population_summary(kin, particles, temperature_K=296.0)
    assert isinstance(summary, PopulationSummary)
    assert isinstance(summary.ion_mobility_cm2_per_Vs, float)
    out = summary.to_dict()
    assert list(out) == SUMMARY_KEYS
    assert out == summarize_population(kin, particles, temperature_K=296.0)
    json.dumps(out, allow_nan=False)
    assert out["ion_mobility_ci95_cm2_per_Vs"] == summary.ion_mobility_ci_cm2_per_Vs


def test_interval_keys_follow_the_confidence_level():
    kin, particles = make_population()
    out = population_summary(kin, particles, temperature_K=296.0, confidence=0.9).to_dict()
    assert "ion_mobility_ci90_cm2_per_Vs" in out and "diffusion_coefficient_ci90_cm2_per_s" in out
    assert not any("ci95" in key for key in out)
