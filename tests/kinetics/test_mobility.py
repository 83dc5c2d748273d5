"""Drift velocity, mobility, Einstein relation and the population summary."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from plscope.kinetics import (
    add_mobility_columns,
    drift_velocity_nm_per_s,
    einstein_diffusion_cm2_per_s,
    mobility_cm2_per_Vs,
    mobility_from_velocity_slope,
    summarize_population,
)

MU_TRUE = 2.56e-10  # cm^2/Vs, the paper's value


def test_unit_conversions_worked_example():
    v = drift_velocity_nm_per_s(1000.0, 3.0)
    assert v == pytest.approx(333.333, rel=1e-5)
    mu = mobility_cm2_per_Vs(v, 130.0)
    assert mu == pytest.approx(2.564e-10, rel=1e-3)
    assert einstein_diffusion_cm2_per_s(2.56e-10, 296.0) == pytest.approx(6.53e-12, rel=1e-3)


def test_conversions_vectorized_and_nan_safe():
    v = drift_velocity_nm_per_s(np.array([1000.0, 500.0, 800.0]), np.array([2.0, 0.0, np.nan]))
    assert v[0] == 500.0 and np.isnan(v[1]) and np.isnan(v[2])
    mu = mobility_cm2_per_Vs(np.array([300.0, 300.0]), np.array([-100.0, 0.0]))
    assert mu[0] == pytest.approx(3e-10) and np.isnan(mu[1])  # field magnitude


def test_slope_fit_recovers_known_mobility():
    rng = np.random.default_rng(0)
    E = np.repeat([90.0, 110.0, 130.0], 20)
    v_true = MU_TRUE * E * 1e3 / 1e-7  # nm/s
    v = v_true * (1 + 0.1 * rng.standard_normal(E.size))
    fit = mobility_from_velocity_slope(E, v)
    assert fit.success and fit.n == 60
    assert abs(fit.slope_cm2_per_Vs - MU_TRUE) < 3 * fit.slope_err_cm2_per_Vs
    assert fit.slope_cm2_per_Vs == pytest.approx(MU_TRUE, rel=0.25)
    origin = mobility_from_velocity_slope(E, v, through_origin=True)
    assert origin.slope_cm2_per_Vs == pytest.approx(MU_TRUE, rel=0.03)
    assert origin.intercept_nm_per_s == 0.0
    exact = mobility_from_velocity_slope(E, v_true)
    assert exact.slope_cm2_per_Vs == pytest.approx(MU_TRUE, rel=1e-9)
    assert exact.r2 == pytest.approx(1.0)
    assert exact.intercept_nm_per_s == pytest.approx(0.0, abs=1e-6)


def test_slope_fit_degenerate_is_flagged():
    fit = mobility_from_velocity_slope([130.0, 130.0, 130.0], [300.0, 330.0, 310.0])
    assert not fit.success and "single_field" in fit.flags and np.isnan(fit.slope_cm2_per_Vs)
    fit = mobility_from_velocity_slope([130.0], [300.0])
    assert not fit.success and "too_few_points" in fit.flags
    json.dumps(fit.to_dict(), allow_nan=True)


def make_population(n_particles=12, *, seed=0, scatter=0.05):
    rng = np.random.default_rng(seed)
    sizes = rng.uniform(600, 1300, n_particles)
    particles = pd.DataFrame({"particle_id": np.arange(n_particles), "size_nm": sizes})
    rows = []
    for pid, L in enumerate(sizes):
        for E in (90.0, 110.0, 130.0):
            tau = L * 1e-7 / (MU_TRUE * E * 1e3) * (1 + scatter * rng.standard_normal())
            v = drift_velocity_nm_per_s(L, tau)
            rows.append(
                {
                    "particle_id": pid,
                    "field_kV_per_cm": E,
                    "tau_pol_s": tau,
                    "tau_rec_s": 3.0,
                    "switching_efficiency": 0.3,
                    "velocity_nm_per_s": v,
                    "mobility_cm2_per_Vs": mobility_cm2_per_Vs(v, E),
                    "fit_ok": True,
                }
            )
    return pd.DataFrame(rows), particles


def test_summarize_population_recovers_mobility():
    kin, particles = make_population()
    kin.loc[[0, 5], "fit_ok"] = False
    kin.loc[5, "mobility_cm2_per_Vs"] = 1e-6  # an excluded row must not count
    out = summarize_population(kin, particles, temperature_K=296.0)
    json.dumps(out)
    assert out["fields_kV_per_cm"] == [90.0, 110.0, 130.0]
    assert out["n_rows"] == 36 and out["n_rows_used"] == 34 and out["n_rows_excluded"] == 2
    assert out["n_particles"] == 12
    assert out["ion_mobility_cm2_per_Vs"] == pytest.approx(MU_TRUE, rel=0.03)
    assert out["ion_mobility_std_cm2_per_Vs"] == pytest.approx(0.05 * MU_TRUE, rel=0.5)
    assert out["ion_mobility_fit_cm2_per_Vs"] == pytest.approx(MU_TRUE, rel=0.25)
    assert out["ion_mobility_fit_err_cm2_per_Vs"] > 0
    D = einstein_diffusion_cm2_per_s(out["ion_mobility_cm2_per_Vs"], 296.0)
    assert out["diffusion_coefficient_cm2_per_s"] == pytest.approx(D)
    # tau = L / (mu E): slope 1 / (mu E_max) in s/nm at 130 kV/cm
    expected_slope = 1e-7 / (MU_TRUE * 130e3)
    assert out["tau_size_slope_s_per_nm"] == pytest.approx(expected_slope, rel=0.15)
    assert out["tau_size_field_kV_per_cm"] == 130.0 and out["tau_size_n"] == 11  # row 5 excluded
    assert out["warnings"] == []
    assert [p["field_kV_per_cm"] for p in out["per_field"]] == [90.0, 110.0, 130.0]


def test_summarize_population_computes_missing_velocity_and_mobility():
    kin, particles = make_population(seed=1, scatter=0.0)
    kin = kin.drop(columns=["velocity_nm_per_s", "mobility_cm2_per_Vs"])
    out = summarize_population(kin, particles, temperature_K=296.0)
    assert out["ion_mobility_cm2_per_Vs"] == pytest.approx(MU_TRUE, rel=1e-9)
    assert out["ion_mobility_fit_cm2_per_Vs"] == pytest.approx(MU_TRUE, rel=1e-6)


def test_summarize_population_reports_what_it_cannot_compute():
    kin, particles = make_population(n_particles=2)
    kin["fit_ok"] = False
    out = summarize_population(kin, particles, temperature_K=296.0)
    json.dumps(out)
    for key in (
        "ion_mobility_cm2_per_Vs",
        "ion_mobility_std_cm2_per_Vs",
        "ion_mobility_fit_cm2_per_Vs",
        "diffusion_coefficient_cm2_per_s",
        "tau_size_slope_s_per_nm",
    ):
        assert out[key] is None
        assert any(w.startswith(key) for w in out["warnings"]), key
    assert out["n_rows_used"] == 0 and out["fields_kV_per_cm"] == [90.0, 110.0, 130.0]
    # one field only: no slope, but a mean mobility
    kin, particles = make_population(n_particles=2)
    one = kin[kin.field_kV_per_cm == 130.0]
    out = summarize_population(one, particles, temperature_K=296.0)
    assert out["ion_mobility_cm2_per_Vs"] is not None and out["ion_mobility_fit_cm2_per_Vs"] is None
    assert out["tau_size_slope_s_per_nm"] is None  # 2 particles < 3


def test_sizes_come_from_particles_when_kinetics_has_nan_sizes():
    kin, particles = make_population(n_particles=4, scatter=0.0)
    kin["size_nm"] = np.nan  # analyze_particle without size_nm leaves the column NaN
    out = summarize_population(kin, particles, temperature_K=296.0)
    assert out["tau_size_slope_s_per_nm"] == pytest.approx(1e-7 / (MU_TRUE * 130e3), rel=1e-6)
    assert out["tau_size_n"] == 4


def test_fit_ok_read_from_csv_strings():
    kin, particles = make_population(n_particles=3)
    kin["fit_ok"] = kin["fit_ok"].map({True: "True", False: "False"})
    out = summarize_population(kin, particles, temperature_K=296.0)
    assert out["n_rows_used"] == 9


def test_add_mobility_columns():
    kin, particles = make_population(n_particles=3, scatter=0.0)
    kin = kin.drop(columns=["velocity_nm_per_s", "mobility_cm2_per_Vs"])
    out = add_mobility_columns(kin, particles)
    np.testing.assert_allclose(out["mobility_cm2_per_Vs"], MU_TRUE, rtol=1e-9)
    assert "size_nm" in out.columns and len(out) == len(kin)


def test_summary_uncertainties_size_fits_and_field_tests():
    kin, particles = make_population(n_particles=16, seed=3, scatter=0.03)
    out = summarize_population(kin, particles, temperature_K=296.0)
    json.dumps(out)
    lo, hi = out["ion_mobility_ci95_cm2_per_Vs"]
    assert lo < out["ion_mobility_cm2_per_Vs"] < hi and lo < MU_TRUE < hi
    assert out["ion_mobility_sem_cm2_per_Vs"] > 0
    # D carries the mobility's uncertainty through the Einstein relation
    kT_q = einstein_diffusion_cm2_per_s(1.0, 296.0)
    assert out["diffusion_coefficient_ci95_cm2_per_s"] == pytest.approx([lo * kT_q, hi * kT_q])
    assert out["diffusion_coefficient_err_cm2_per_s"] == pytest.approx(
        out["ion_mobility_sem_cm2_per_Vs"] * kT_q
    )
    f_lo, f_hi = out["ion_mobility_fit_ci95_cm2_per_Vs"]
    assert f_lo < out["ion_mobility_fit_cm2_per_Vs"] < f_hi
    assert out["ion_mobility_fit_err_ols_cm2_per_Vs"] > 0
    # tau_pol = L/(mu E): exponent -1 within particles; tau_rec = 3 s at every field: independent
    pol = out["tau_pol_field_dependence"]
    assert pol["ci_low"] < -1.0 < pol["ci_high"] and not pol["independent"]
    assert out["recovery_independent_of_field"] is True
    fit = out["tau_pol_size_fit"]
    assert fit["slope"] == pytest.approx(1e-7 / (MU_TRUE * 130e3), rel=0.1)
    assert fit["slope_ci"][0] < fit["slope"] < fit["slope_ci"][1] and fit["n"] == 16
    assert out["tau_rec_size_fit"]["slope"] == pytest.approx(0.0, abs=1e-12)  # tau_rec = 3 s for every size
    assert out["kinetics_excluded_particles"] == []
    assert all(p["mobility_sem_cm2_per_Vs"] > 0 for p in out["per_field"])


def test_rows_with_an_exclusion_reason_are_left_out_and_listed():
    kin, particles = make_population(n_particles=5, scatter=0.0)
    kin["exclusion_reason"] = ""
    kin.loc[kin.particle_id == 2, "exclusion_reason"] = "polarization: no significant switching"
    kin.loc[kin.particle_id == 3, ["fit_ok", "exclusion_reason"]] = [
        False,
        "only 1 cycle(s) at this field (need 2)",
    ]
    out = summarize_population(kin, particles, temperature_K=296.0)
    assert out["n_particles_used"] == 3 and out["n_rows_used"] == 9
    assert out["kinetics_excluded_particles"] == [
        {"particle_id": 2, "reason": "polarization: no significant switching"},
        {"particle_id": 3, "reason": "only 1 cycle(s) at this field (need 2)"},
    ]


def test_an_error_shared_at_one_field_widens_the_slope_interval():
    # every particle's tau_pol 4 % short at 130 kV/cm (a field-dependent model error, as with a slow
    # component unsettled at the lower fields): the slope mobility moves by ~ 4 % x 130 x 20 / 800 = 13 %;
    # the bootstrap over particles cannot see it, the field means' scale factor does
    kin, particles = make_population(n_particles=16, seed=3, scatter=0.03)
    clean = summarize_population(kin, particles, temperature_K=296.0)
    hi = kin["field_kV_per_cm"] == 130.0
    kin.loc[hi, "tau_pol_s"] *= 0.96
    kin.loc[hi, ["velocity_nm_per_s", "mobility_cm2_per_Vs"]] /= 0.96
    out = summarize_population(kin, particles, temperature_K=296.0)
    cons = out["bootstrap"]["field_consistency"]
    assert cons["p_value"] < 0.01 and cons["scale"] > 1.5
    assert clean["bootstrap"]["field_consistency"]["scale"] < cons["scale"]
    lo, hi_ = out["ion_mobility_fit_ci95_cm2_per_Vs"]
    assert lo < MU_TRUE < hi_
    assert abs(out["ion_mobility_fit_cm2_per_Vs"] - MU_TRUE) < 1.96 * out["ion_mobility_fit_err_cm2_per_Vs"]
    lo, hi_ = out["ion_mobility_ci95_cm2_per_Vs"]
    assert lo < MU_TRUE < hi_
    # D follows the widened mobility error
    kT_q = einstein_diffusion_cm2_per_s(1.0, 296.0)
    assert out["diffusion_coefficient_err_cm2_per_s"] == pytest.approx(
        out["ion_mobility_sem_cm2_per_Vs"] * kT_q
    )
