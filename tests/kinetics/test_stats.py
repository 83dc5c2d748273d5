"""Cluster bootstrap, linear fits with bands, the field-dependence test."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from plscope.kinetics import KineticsInputError, bootstrap_mean, field_dependence, linear_fit
from plscope.kinetics.stats import cluster_bootstrap


def test_bootstrap_interval_of_a_mean_is_calibrated():
    """Normal data, 16 clusters: the interval covers the true mean ~95 % of the time."""
    rng = np.random.default_rng(1)
    covered, widths = 0, []
    n_rep = 300
    for i in range(n_rep):
        x = rng.normal(5.0, 1.0, 16)
        ci = bootstrap_mean(x, n_boot=1000, seed=i)
        covered += ci.contains(5.0)
        widths.append(ci.high - ci.low)
    # binomial sd of the coverage over 300 repeats is 1.3 %
    assert 0.91 <= covered / n_rep <= 0.99
    # close to the exact Student-t interval (2 t_15 / sqrt(16) = 1.07)
    assert np.median(widths) == pytest.approx(2 * stats.t.ppf(0.975, 15) / 4, rel=0.1)


def test_cluster_bootstrap_resamples_whole_particles():
    """Rows of one particle share its value: treating them as independent would shrink the interval."""
    rng = np.random.default_rng(2)
    per_particle = rng.normal(2.56, 0.25, 16)
    values = np.repeat(per_particle, 3) * (1 + 0.01 * rng.standard_normal(48))
    groups = np.repeat(np.arange(16), 3)
    clustered = bootstrap_mean(values, groups=groups, seed=0)
    naive = bootstrap_mean(values, seed=0)
    assert clustered.estimate == pytest.approx(values.mean())
    assert clustered.n_groups == 16 and naive.n_groups == 48
    # the honest error is that of 16 particles, not 48 rows
    assert clustered.std_error == pytest.approx(per_particle.std(ddof=1) / 4, rel=0.2)
    assert clustered.std_error > 1.5 * naive.std_error
    json.dumps(clustered.to_dict())


def test_bootstrap_degenerate_input():
    ci = bootstrap_mean([1.0, np.nan])
    assert ci.estimate == 1.0 and np.isnan(ci.low) and ci.n_groups == 1
    assert np.isnan(bootstrap_mean([]).estimate)
    with pytest.raises(KineticsInputError):
        bootstrap_mean([1.0, 2.0], groups=[0])
    with pytest.raises(KineticsInputError):
        bootstrap_mean([1.0, 2.0], confidence=95)


def test_cluster_bootstrap_of_a_slope():
    rng = np.random.default_rng(3)
    E = np.tile([90.0, 110.0, 130.0], 16)
    mu = np.repeat(rng.normal(1.0, 0.1, 16), 3)
    v = mu * E * (1 + 0.03 * rng.standard_normal(E.size))
    g = np.repeat(np.arange(16), 3)

    def slope(x, y):
        return np.polyfit(x, y, 1)[0]

    ci = cluster_bootstrap((E, v), g, slope, n_boot=500, seed=0)
    assert ci.low < 1.0 < ci.high and ci.n_groups == 16
    assert ci.estimate == pytest.approx(slope(E, v))


def test_linear_fit_and_band():
    rng = np.random.default_rng(4)
    x = np.linspace(400, 1300, 20)
    y = 0.1 + 0.003 * x + 0.1 * rng.standard_normal(x.size)
    fit = linear_fit(x, y)
    ref = stats.linregress(x, y)
    assert fit.success and fit.n == 20
    assert fit.slope == pytest.approx(ref.slope) and fit.intercept == pytest.approx(ref.intercept)
    assert fit.slope_err == pytest.approx(ref.stderr) and fit.intercept_err == pytest.approx(
        ref.intercept_stderr
    )
    assert fit.r2 == pytest.approx(ref.rvalue**2)
    lo, hi = fit.band(x)
    assert np.all(lo < fit.predict(x)) and np.all(fit.predict(x) < hi)
    # narrowest at the mean of x, where its half width is t * s / sqrt(n)
    half = (hi - lo) / 2
    assert np.argmin(half) in (9, 10)
    assert half.min() == pytest.approx(stats.t.ppf(0.975, 18) * fit.resid_sd / np.sqrt(20), rel=0.01)
    assert fit.slope_ci[0] < 0.003 < fit.slope_ci[1]
    json.dumps(fit.to_dict())
    bad = linear_fit([1.0, 1.0, 1.0], [1.0, 2.0, 3.0])
    assert not bad.success and np.isnan(bad.slope)


def _power_law_table(exponent, *, n=16, noise=0.03, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for pid in range(n):
        scale = rng.uniform(1.0, 4.0)  # size: removed by the within-particle centring
        for E in (90.0, 110.0, 130.0):
            rows.append(
                {
                    "particle_id": pid,
                    "field_kV_per_cm": E,
                    "tau_s": scale * (E / 110.0) ** exponent * (1 + noise * rng.standard_normal()),
                }
            )
    return pd.DataFrame(rows)


def test_field_dependence_finds_drift_and_independence():
    drift = field_dependence(_power_law_table(-1.0, seed=1), "tau_s")
    assert drift.success and drift.n_particles == 16 and drift.n_rows == 48
    assert drift.ci_low < -1.0 < drift.ci_high and not drift.independent and drift.p_value < 1e-6
    assert drift.change_percent == pytest.approx(100 * ((130 / 90) ** drift.exponent - 1))
    flat = field_dependence(_power_law_table(0.0, seed=2), "tau_s")
    assert flat.independent and flat.p_value > 0.05
    # the interval bounds the change over the field range to a few per cent
    assert -10 < flat.change_low_percent < 0 < flat.change_high_percent < 10
    json.dumps(flat.to_dict())


def test_field_dependence_is_calibrated_under_the_null():
    """With no field dependence the test rejects about 5 % of the time."""
    rejected = sum(
        not field_dependence(_power_law_table(0.0, seed=s), "tau_s").independent for s in range(100)
    )
    assert 1 <= rejected <= 12  # 5 % of 100 = 5; binomial 99.9 % bounds 0-13


def test_field_dependence_needs_three_particles_at_two_fields():
    t = _power_law_table(-1.0, n=2)
    dep = field_dependence(t, "tau_s")
    assert not dep.success and dep.n_particles == 2
    with pytest.raises(KineticsInputError):
        field_dependence(t, "tau_missing")


def _field_rows(seed, shared=(0.0, 0.0, 0.0), n=16):
    """Mobility-like rows: a particle effect, row noise larger at low field, an optional error
    shared by every particle at a field."""
    rng = np.random.default_rng(seed)
    pid = np.repeat(np.arange(n), 3)
    E = np.tile([90.0, 110.0, 130.0], n)
    x = np.repeat(rng.normal(1.0, 0.1, n), 3) + rng.normal(0.0, 0.03, 3 * n) * np.tile([1.5, 1.0, 0.8], n)
    return x + np.tile(shared, n), E, pid


def test_level_consistency_is_calibrated_under_the_null():
    """Independent particles, no shared field error: p < 0.05 in about 5 % of runs."""
    from plscope.kinetics.stats import level_consistency

    out = [level_consistency(*_field_rows(s), n_boot=400, seed=s) for s in range(200)]
    rejected = sum(c.p_value < 0.05 for c in out)
    assert 3 <= rejected <= 19  # 5 % of 200 = 10; binomial 99.9 % bounds 2-20
    assert np.mean([c.scale for c in out]) < 1.3


def test_level_consistency_sees_an_error_shared_at_one_field():
    from plscope.kinetics.stats import level_consistency

    # 6 % shared at 130 against ~1 % standard errors of the field means' differences
    c = level_consistency(*_field_rows(3, shared=(0.0, 0.0, 0.06)), n_boot=1000)
    assert c.p_value < 0.01 and c.scale > 2.0 and c.dof == 2 and c.n_groups == 16
    assert c.level_means[2] - c.level_means[0] == pytest.approx(0.06, abs=0.03)
    json.dumps(c.to_dict())
    # one level, or too few particles: undefined, no scaling
    x, E, pid = _field_rows(4)
    assert level_consistency(x, np.full(x.size, 90.0), pid).scale == 1.0
    assert level_consistency(x[:6], E[:6], pid[:6]).scale == 1.0
