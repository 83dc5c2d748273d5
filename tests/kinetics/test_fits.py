"""Decay fits: amplitude-weighted tau, model selection, degenerate data."""

from __future__ import annotations

import json

import numpy as np
import pytest

from plscope.kinetics import (
    BiExponentialModel,
    DecayFit,
    MonoExponentialModel,
    exposure_factor,
    fit_biexponential,
    fit_decay,
    fit_monoexponential,
)

EXPOSURE_S = 0.15
T_S = np.arange(0.175, 19.9, 0.2)  # 5 frames/s over a 20 s half period
NOISE_10_CYCLES = 0.01 / np.sqrt(10)  # 1 % per frame averaged over 10 cycles


def biexp_curve(tau1, tau2, frac=0.5, *, step=-0.3, i0=0.7, t=T_S, exposure_s=EXPOSURE_S):
    """Exposure-averaged response, computed by brute-force averaging (independent of the model code)."""
    sub = np.linspace(-0.5, 0.5, 401) * exposure_s
    tt = t[:, None] + sub[None, :]
    inst = i0 + step * (frac * np.exp(-tt / tau1) + (1 - frac) * np.exp(-tt / tau2))
    return np.trapezoid(inst, sub, axis=1) / exposure_s if exposure_s else inst[:, 0]


def mean_tau(tau1, tau2, frac=0.5):
    return frac * tau1 + (1 - frac) * tau2


def split(tau, ratio, frac=0.5):
    """(tau1, tau2) with tau2/tau1 = ratio and amplitude-weighted mean tau."""
    tau1 = tau / (frac + (1 - frac) * ratio)
    return tau1, ratio * tau1


def test_exposure_factor_matches_box_average():
    tau = 0.4
    sub = np.linspace(-0.5, 0.5, 2001) * EXPOSURE_S
    numeric = np.trapezoid(np.exp(-(1.0 + sub) / tau), sub) / EXPOSURE_S / np.exp(-1.0 / tau)
    assert exposure_factor(tau, EXPOSURE_S) == pytest.approx(numeric, rel=1e-6)
    assert exposure_factor(tau, 0.0) == 1.0


@pytest.mark.parametrize("tau", [1.0, 2.0, 3.0, 4.5, 6.0])
@pytest.mark.parametrize("ratio", [2.0, 4.0])
def test_noiseless_biexp_tau_within_half_percent(tau, ratio):
    tau1, tau2 = split(tau, ratio)
    fit = fit_biexponential(T_S, biexp_curve(tau1, tau2), exposure_s=EXPOSURE_S)
    assert fit.model == "biexp"
    assert fit.ok, fit.flags
    assert fit.tau_s == pytest.approx(tau, rel=0.005)
    assert (fit.tau1_s, fit.tau2_s) == pytest.approx((tau1, tau2), rel=0.005)
    assert np.sign(fit.i1) == np.sign(fit.i2) == -1


@pytest.mark.parametrize("tau", [1.0, 3.0, 6.0])
def test_noiseless_mono_is_reported_as_mono(tau):
    fit = fit_biexponential(T_S, biexp_curve(tau, tau), exposure_s=EXPOSURE_S)
    assert fit.model == "mono"
    assert "biexp_degenerate" in fit.flags
    assert fit.tau_s == pytest.approx(tau, rel=0.005)


@pytest.mark.parametrize(
    "tau, ratio, seed", [(1.0, 3.0, 1), (2.0, 3.0, 2), (3.0, 3.0, 3), (4.5, 1.0, 4), (6.0, 1.0, 5)]
)
def test_noisy_tau_within_3_percent(tau, ratio, seed):
    # 0.1 % per averaged point: a bright particle (1e5 counts/frame) over 10 cycles.
    # Biexponential slow components >~ 5 s cannot be pinned to 3 % in a 20 s window at
    # any realistic noise (offset/tail degeneracy), so tau = 4.5-6 s is tested mono.
    rng = np.random.default_rng(seed)
    tau1, tau2 = split(tau, ratio)
    y = biexp_curve(tau1, tau2) + 0.001 * rng.standard_normal(T_S.size)
    fit = fit_biexponential(T_S, y, exposure_s=EXPOSURE_S)
    assert fit.ok, fit.flags
    assert fit.tau_s == pytest.approx(tau, rel=0.03)
    assert abs(fit.tau_s - tau) < 4 * fit.tau_err_s


def test_tau_error_is_calibrated_at_realistic_noise():
    """Over noise realizations the reported tau_err_s matches the actual scatter."""
    rng = np.random.default_rng(11)
    tau = 2.0
    tau1, tau2 = split(tau, 4.0)
    clean = biexp_curve(tau1, tau2)
    taus, errs = [], []
    for _ in range(16):
        fit = fit_biexponential(
            T_S, clean + NOISE_10_CYCLES * rng.standard_normal(T_S.size), exposure_s=EXPOSURE_S
        )
        assert fit.ok, fit.flags
        taus.append(fit.tau_s)
        errs.append(fit.tau_err_s)
    taus = np.array(taus)
    assert np.mean(taus) == pytest.approx(tau, rel=0.02)  # unbiased
    ratio = np.std(taus, ddof=1) / np.median(errs)
    assert 0.5 < ratio < 1.8


@pytest.mark.parametrize("seed", range(5))
def test_bic_selects_mono_for_mono_data(seed):
    rng = np.random.default_rng(100 + seed)
    y = biexp_curve(2.5, 2.5) + NOISE_10_CYCLES * rng.standard_normal(T_S.size)
    fit = fit_biexponential(T_S, y, exposure_s=EXPOSURE_S)
    assert fit.model == "mono"
    assert fit.ok
    assert fit.tau_s == pytest.approx(2.5, rel=0.05)
    assert np.isnan(fit.delta_bic) or fit.delta_bic > 0 or "biexp_degenerate" in fit.flags


def test_rising_recovery_curve():
    rng = np.random.default_rng(7)
    tau1, tau2 = split(2.0, 4.0)
    y = biexp_curve(tau1, tau2, step=-0.3, i0=1.0) + 0.001 * rng.standard_normal(T_S.size)
    # recovery: from ~0.7 back to 1 -> a rise, both amplitudes negative
    fit = fit_biexponential(T_S, y, exposure_s=EXPOSURE_S)
    assert fit.model == "biexp" and fit.ok
    assert fit.i1 < 0 and fit.i2 < 0
    assert fit.i0 == pytest.approx(1.0, abs=0.003)
    assert fit.tau_s == pytest.approx(2.0, rel=0.03)


def test_decay_with_positive_amplitudes():
    y = biexp_curve(0.8, 3.2, step=0.3, i0=0.7)
    fit = fit_biexponential(T_S, y, exposure_s=EXPOSURE_S)
    assert fit.i1 > 0 and fit.i2 > 0
    assert fit.tau_s == pytest.approx(2.0, rel=0.005)


def test_monoexponential_fit_and_curve():
    y = biexp_curve(1.7, 1.7)
    fit = fit_monoexponential(T_S, y, exposure_s=EXPOSURE_S)
    assert fit.model == "mono" and fit.ok
    assert fit.tau_s == pytest.approx(1.7, rel=1e-4)
    np.testing.assert_allclose(fit.curve(T_S), y, atol=1e-6)
    assert np.isnan(fit.tau2_s) and fit.i2 == 0.0


def test_fit_decay_dispatch_and_forced_biexp():
    y = biexp_curve(3.0, 3.0)
    assert fit_decay(T_S, y, model="mono", exposure_s=EXPOSURE_S).model == "mono"
    forced = fit_decay(T_S, y, model="biexp", exposure_s=EXPOSURE_S)
    assert forced.model == "biexp"
    assert "biexp_degenerate" in forced.flags
    with pytest.raises(ValueError):
        fit_decay(T_S, y, model="triexp")


def test_weighted_fit_with_sigma():
    rng = np.random.default_rng(3)
    sigma = np.full(T_S.size, 0.002)
    y = biexp_curve(1.0, 4.0) + sigma * rng.standard_normal(T_S.size)
    fit = fit_biexponential(T_S, y, sigma=sigma, exposure_s=EXPOSURE_S)
    assert fit.ok
    assert fit.redchi == pytest.approx(1.0, abs=0.4)
    assert fit.tau_s == pytest.approx(2.5, rel=0.06)


def test_flat_trace_is_flagged_not_raised():
    fit = fit_biexponential(T_S, np.full(T_S.size, 0.8))
    assert not fit.ok
    assert "amplitude_too_small" in fit.flags


def test_pure_noise_is_flagged_not_raised():
    rng = np.random.default_rng(5)
    for _ in range(3):
        fit = fit_biexponential(T_S, 1.0 + 0.01 * rng.standard_normal(T_S.size), exposure_s=EXPOSURE_S)
        assert not fit.ok
        assert set(fit.flags) & DecayFit.BAD_FLAGS


def test_too_few_points_and_nan():
    fit = fit_biexponential(T_S[:4], biexp_curve(1, 2)[:4])
    assert fit.model == "none" and not fit.ok and "too_few_points" in fit.flags
    fit = fit_biexponential(T_S, np.full(T_S.size, np.nan))
    assert fit.model == "none" and "too_few_points" in fit.flags
    assert np.all(np.isnan(fit.curve(T_S)))
    y = biexp_curve(1.0, 4.0)
    y[[3, 10, 50]] = np.nan
    fit = fit_biexponential(T_S, y, exposure_s=EXPOSURE_S)
    assert fit.ok and "points_dropped_nonfinite" in fit.flags
    assert fit.tau_s == pytest.approx(2.5, rel=0.005)
    # 6 points: too few for the biexponential, enough for the mono fit
    fit = fit_biexponential(T_S[:6], biexp_curve(1.0, 1.0)[:6])
    assert fit.model == "mono" and "too_few_points_for_biexp" in fit.flags


def test_tau_at_bound_flagged():
    fit = fit_monoexponential(T_S, biexp_curve(3.0, 3.0), tau_bounds_s=(0.1, 1.0))
    assert "tau_at_bound" in fit.flags and not fit.ok


def test_to_dict_is_json_ready():
    fit = fit_biexponential(T_S, biexp_curve(1.0, 4.0), exposure_s=EXPOSURE_S)
    d = fit.to_dict()
    json.dumps(d)
    assert d["model"] == "biexp" and d["ok"] is True and isinstance(d["flags"], str)
    for key in (
        "tau_s",
        "tau_err_s",
        "tau1_s",
        "tau2_s",
        "i0",
        "i1",
        "i2",
        "redchi",
        "aic",
        "bic",
        "success",
        "message",
    ):
        assert key in d


def test_lmfit_models_guess_with_bounds():
    y = biexp_curve(1.0, 4.0)
    pars = BiExponentialModel().guess(y, T_S)
    assert pars["frac"].min == 0 and pars["frac"].max == 1
    assert pars["tau1"].min == pytest.approx(0.3 * 0.2)
    assert pars["dtau"].min == 0
    assert pars["amplitude"].value < 0
    mono = MonoExponentialModel()
    mp = mono.guess(y, T_S)
    res = mono.fit(y, mp, t=T_S, exposure_s=EXPOSURE_S)
    assert 1.0 < res.params["tau"].value < 4.0


# --------------------------------------------------------------------------
# pooled biexponential (population shape prior)
# --------------------------------------------------------------------------

from plscope.kinetics import (
    ShapePrior,
    biexponential_mean_tau,
    component_taus,
    fit_biexponential_pooled,
    fit_models,
)
from plscope.kinetics.fits import robust_noise

SIM_SHAPE = ShapePrior(frac_mean=0.6, frac_sd=0.1, log_ratio_mean=float(np.log(1.6 / 0.6)), log_ratio_sd=0.1)


def sim_curve(tau, *, step=-0.3, i0=0.7):
    """The simulator's response: 60 % at 0.6 tau, 40 % at 1.6 tau (mean tau)."""
    return biexp_curve(0.6 * tau, 1.6 * tau, frac=0.6, step=step, i0=i0)


def test_mean_tau_parameterization():
    tau1, tau2 = component_taus(2.0, 0.6, np.log(1.6 / 0.6))
    assert (tau1, tau2) == pytest.approx((1.2, 3.2))
    assert 0.6 * tau1 + 0.4 * tau2 == pytest.approx(2.0)
    y = biexponential_mean_tau(T_S, 0.7, -0.3, 2.0, 0.6, np.log(1.6 / 0.6), exposure_s=EXPOSURE_S)
    np.testing.assert_allclose(y, sim_curve(2.0), atol=1e-6)


@pytest.mark.parametrize("tau", [1.2, 3.0, 5.6])
def test_pooled_fit_noiseless(tau):
    fit = fit_biexponential_pooled(T_S, sim_curve(tau), prior=SIM_SHAPE, sigma=1e-3, exposure_s=EXPOSURE_S)
    assert fit.ok and "shape_prior" in fit.flags and fit.model == "biexp"
    assert fit.tau_s == pytest.approx(tau, rel=0.002)
    assert fit.frac == pytest.approx(0.6, abs=0.01) and fit.tau_err_method == "covariance"
    np.testing.assert_allclose(fit.curve(T_S), sim_curve(tau), atol=1e-5)


def test_pooled_fit_errors_are_calibrated_at_three_cycle_noise():
    """1.5 % per frame over 3 cycles: the posterior error matches the scatter; no mono bias."""
    rng = np.random.default_rng(12)
    sigma = 0.015 / np.sqrt(3)
    clean = sim_curve(3.0)
    taus, errs, mono = [], [], []
    for _ in range(20):
        y = clean + sigma * rng.standard_normal(T_S.size)
        fit = fit_biexponential_pooled(T_S, y, prior=SIM_SHAPE, sigma=sigma, exposure_s=EXPOSURE_S)
        assert fit.ok
        taus.append(fit.tau_s)
        errs.append(fit.tau_err_s)
        mono.append(fit_monoexponential(T_S, y, sigma=sigma, exposure_s=EXPOSURE_S).tau_s)
    taus = np.array(taus)
    assert np.mean(taus) == pytest.approx(3.0, rel=0.01)
    assert 0.6 < np.std(taus, ddof=1) / np.median(errs) < 1.6
    # the monoexponential of the same data is biased low by several per cent
    assert np.mean(mono) < 0.96 * 3.0


def test_pooled_fit_a_wrong_prior_is_overridden_by_strong_data():
    wrong = ShapePrior(frac_mean=0.3, frac_sd=0.2, log_ratio_mean=2.0, log_ratio_sd=0.5)
    rng = np.random.default_rng(3)
    y = sim_curve(2.0) + 2e-4 * rng.standard_normal(T_S.size)
    fit = fit_biexponential_pooled(T_S, y, prior=wrong, sigma=2e-4, exposure_s=EXPOSURE_S)
    assert fit.tau_s == pytest.approx(2.0, rel=0.01)
    assert fit.frac == pytest.approx(0.6, abs=0.05)


def test_pooled_fit_flags_flat_and_short_data():
    rng = np.random.default_rng(2)
    for _ in range(3):  # flat plus noise, the noise estimated from the data (no sigma)
        fit = fit_biexponential_pooled(
            T_S, 0.8 + 0.002 * rng.standard_normal(T_S.size), prior=SIM_SHAPE, exposure_s=EXPOSURE_S
        )
        assert not fit.ok and "amplitude_too_small" in fit.flags
    short = fit_biexponential_pooled(T_S[:5], sim_curve(2.0)[:5], prior=SIM_SHAPE)
    assert short.model == "none" and "too_few_points" in short.flags
    # fit_decay dispatches to the pooled fit when a prior is given
    assert (
        "shape_prior"
        in fit_decay(T_S, sim_curve(2.0), shape_prior=SIM_SHAPE, sigma=1e-3, exposure_s=EXPOSURE_S).flags
    )


def test_shape_prior_validation_and_dict():
    with pytest.raises(ValueError):
        ShapePrior(frac_mean=1.2, frac_sd=0.1, log_ratio_mean=1.0, log_ratio_sd=0.1)
    with pytest.raises(ValueError):
        ShapePrior(frac_mean=0.5, frac_sd=0.0, log_ratio_mean=1.0, log_ratio_sd=0.1)
    d = SIM_SHAPE.to_dict()
    json.dumps(d)
    assert d["ratio"] == pytest.approx(1.6 / 0.6)


def test_fit_models_keeps_the_free_biexponential_when_mono_is_reported():
    rng = np.random.default_rng(8)
    y = sim_curve(3.0) + 0.01 * rng.standard_normal(T_S.size)
    out = fit_models(T_S, y, sigma=0.01, exposure_s=EXPOSURE_S)
    assert set(out) == {"auto", "biexp", "mono"}
    assert out["auto"].model in ("biexp", "mono") and out["mono"].model == "mono"
    assert out["biexp"].model == "biexp" and np.isfinite(out["biexp"].delta_bic)
    assert out["biexp"].delta_bic == pytest.approx(out["biexp"].bic - out["mono"].bic)
    # the shape of a free biexponential comes with its errors (used for the population prior)
    bi = fit_biexponential(T_S, sim_curve(3.0), exposure_s=EXPOSURE_S)
    assert bi.frac == pytest.approx(0.6, abs=0.01) and bi.log_ratio == pytest.approx(
        np.log(1.6 / 0.6), abs=0.01
    )
    assert np.isfinite(bi.frac_err) and np.isfinite(bi.log_ratio_err)


def test_robust_noise_of_a_smooth_curve():
    rng = np.random.default_rng(0)
    assert robust_noise(0.01 * rng.standard_normal(5000)) == pytest.approx(0.01, rel=0.05)
    # the curvature of a decay barely matters (99 points: ~10 % statistical error)
    est = [robust_noise(sim_curve(2.0) + 0.01 * rng.standard_normal(T_S.size)) for _ in range(20)]
    assert np.mean(est) == pytest.approx(0.01, rel=0.1)
    assert np.isnan(robust_noise([1.0, 2.0]))
