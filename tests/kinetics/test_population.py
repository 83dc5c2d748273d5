"""Population analysis on simulated runs: accuracy, calibrated uncertainties, flagged particles.

The runs are the simulator's default (16 particles of 400-1300 nm, 90/110/130
kV/cm x 3 cycles of 20 s on / 20 s off, biexponential kinetics with
``tau1 = 0.6 tau``, ``tau2 = 1.6 tau``, 60 % fast, blinking, 3 %/min
bleaching), traces taken from the kinetic model with the noise of the
pipeline's traces (:mod:`.simruns`). Truths: ``tau_pol = L / (mu E)`` and the
drawn ``tau_rec`` of each particle (amplitude-weighted), the mean mobility of
the particles drawn.

Tolerances (from the issue, justified by what the data allow): with 3
cycles the per-curve noise limits ``tau`` to ~2-4 %; the slow component
(1.6 tau, up to 9 s) does not settle in a 20 s half period for the largest
particles at 90 kV/cm, so the apparent amplitudes differ from the intrinsic
ones by 1-3 % (a physical bias, kept). Measured over 20 other seeds
(100-119): median |error| tau_pol 1.2-4.1 % (mean 2.1 %), tau_rec 1.5-4.1 %
(mean 2.3 %), mean mobility -0.4 to +3.1 % (mean +1.1 %), the 95 % interval
of the mean mobility covering the particles' mean in 20/20 and the
population mean (2.56e-10) in 18/20, the recovery found independent of the
field in 19/20.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from plscope.kinetics import (
    KINETICS_COLUMNS,
    KineticsSettings,
    analyze_population,
    estimate_shape_priors,
    summarize_population,
)
from plscope.sim import ImagingSimParams

from .simruns import simulated_traces, with_truth

SEEDS = tuple(range(11, 21))
TRUE_FRAC, TRUE_LOG_RATIO = 0.6, float(np.log(1.6 / 0.6))  # simulator defaults


def _analyze(run, settings=None):
    pop = analyze_population(
        run.traces,
        run.time_s,
        run.cycles,
        exposure_s=run.exposure_s,
        particles=run.particles,
        settings=settings,
    )
    summary = summarize_population(
        pop.table, run.particles, temperature_K=run.truth["temperature_K"], population=pop
    )
    return pop, summary


@pytest.fixture(scope="module")
def runs():
    out = []
    for seed in SEEDS:
        run = simulated_traces(seed)
        pop, summary = _analyze(run)
        out.append((run, pop, summary, with_truth(pop.table, run.truth)))
    return out


@pytest.mark.slow
def test_tau_accuracy_over_seeds(runs):
    pol, rec, allm = [], [], []
    for _run, _pop, _summary, m in runs:
        ok = m["fit_ok"].astype(bool)
        assert ok.mean() >= 0.95
        pol.append(np.median(np.abs(m.loc[ok, "err_pol"])))
        rec.append(np.median(np.abs(m.loc[ok, "err_rec"])))
        allm.append(m[ok])
    print("median |error| per seed: tau_pol", np.round(pol, 4), "tau_rec", np.round(rec, 4))
    assert max(pol) <= 0.05
    assert max(rec) <= 0.06
    m = pd.concat(allm)
    # over all 480 rows: no systematic bias beyond the physical one (unsettled slow component)
    assert abs(np.median(m["err_pol"])) < 0.015 and abs(np.median(m["err_rec"])) < 0.015
    assert np.median(np.abs(m["err_pol"])) < 0.03 and np.median(np.abs(m["err_rec"])) < 0.03


@pytest.mark.slow
def test_mean_mobility_and_diffusion(runs):
    errs = []
    for run, _pop, summary, _m in runs:
        truth = run.truth["mobility_mean_cm2_per_Vs"]
        errs.append(summary["ion_mobility_cm2_per_Vs"] / truth - 1)
        D_ci = summary["diffusion_coefficient_ci95_cm2_per_s"]
        mu_ci = summary["ion_mobility_ci95_cm2_per_Vs"]
        kT_q = summary["diffusion_coefficient_cm2_per_s"] / summary["ion_mobility_cm2_per_Vs"]
        np.testing.assert_allclose(D_ci, np.array(mu_ci) * kT_q, rtol=1e-12)
        assert summary["diffusion_coefficient_err_cm2_per_s"] == pytest.approx(
            summary["ion_mobility_sem_cm2_per_Vs"] * kT_q
        )
    print("mean mobility error per seed", np.round(errs, 4))
    assert np.max(np.abs(errs)) <= 0.05


@pytest.mark.slow
def test_mobility_interval_is_calibrated(runs):
    """The 95 % interval of the mean mobility covers the truth in >= 9 of 10 repeats."""
    sample, population, widths = 0, 0, []
    for run, _pop, summary, _m in runs:
        lo, hi = summary["ion_mobility_ci95_cm2_per_Vs"]
        truth = run.truth["mobility_mean_cm2_per_Vs"]
        sample += lo <= truth <= hi
        population += lo <= ImagingSimParams().mobility_cm2_per_Vs <= hi
        widths.append((hi - lo) / truth)
    print(
        f"coverage: particles' mean {sample}/10, population mean {population}/10, "
        f"relative widths {np.round(widths, 3)}"
    )
    assert sample >= 9
    # the interval is for the population mean (particles resampled), which it should cover too
    assert population >= 8
    # and it is not vacuous: 10 % spread of mobility over 16 particles gives ~ +-5 %
    assert np.median(widths) < 0.15


@pytest.mark.slow
def test_tau_errors_are_calibrated(runs):
    m = pd.concat([r[3][r[3]["fit_ok"].astype(bool)] for r in runs])
    for phase in ("pol", "rec"):
        z = m[f"z_{phase}"].to_numpy(float)
        assert np.isfinite(z).all()
        within = np.mean(np.abs(z) <= 1.96)
        print(f"{phase}: median |z| {np.median(np.abs(z)):.3f}, within 1.96 sigma {within:.3f}")
        # a Gaussian has median |z| 0.674 and 95 % within 1.96: errors are honest, not tight
        assert 0.4 <= np.median(np.abs(z)) <= 0.8
        assert 0.9 <= within <= 0.995


@pytest.mark.slow
def test_shape_prior_recovers_the_simulated_shape(runs):
    for _run, pop, summary, _m in runs:
        for phase in ("pol", "rec"):
            prior = pop.shape_priors[phase]
            assert prior.frac_mean == pytest.approx(TRUE_FRAC, abs=0.08)
            assert prior.log_ratio_mean == pytest.approx(TRUE_LOG_RATIO, abs=0.12)
            assert prior.n_curves >= 45  # curves with a usable free fit
        assert summary["model_choice"]["pol"]["pooled"] == 48  # every curve refitted
        json.dumps(summary)


@pytest.mark.slow
def test_field_dependence_and_size_slope(runs):
    pol_ok = rec_indep = 0
    for run, _pop, summary, _m in runs:
        dep = summary["tau_pol_field_dependence"]
        pol_ok += dep["ci_low"] <= -1.0 <= dep["ci_high"]  # drift: tau_pol ~ 1/E
        rec_indep += summary["recovery_independent_of_field"]
        fit = summary["tau_pol_size_fit"]
        truth = run.truth["tau_size_slope_s_per_nm"]
        assert abs(fit["slope"] - truth) < 3 * fit["slope_err"] + 0.03 * truth
    print(f"tau_pol exponent interval contains -1: {pol_ok}/10; recovery independent: {rec_indep}/10")
    assert pol_ok >= 8 and rec_indep >= 8


def test_bleaching_correction_removes_the_bias():
    """3 %/min bleaching (1 % over a 20 s half period) biases uncorrected tau by ~ +-7 %."""
    params = ImagingSimParams(n_particles=8, blinking=False)  # bleaching on by default
    run = simulated_traces(5, params, noise=False)
    corrected, _ = _analyze(run)
    raw, _ = _analyze(run, settings={"correct_bleaching": False})
    mc, mr = with_truth(corrected.table, run.truth), with_truth(raw.table, run.truth)
    assert np.median(np.abs(mc["err_pol"])) < 0.005 and np.median(np.abs(mc["err_rec"])) < 0.005
    assert 0.05 < np.median(mr["err_pol"]) < 0.09  # the decline inside a window looks like a slower quench
    assert -0.10 < np.median(mr["err_rec"]) < -0.05  # ... and a faster recovery
    # from the field-off plateaus: a not quite recovered plateau of a large particle reads up to 4 % high
    assert mc["bleach_percent_per_min"].to_numpy() == pytest.approx(3.0, rel=0.05)


def _with_bad_particles(run):
    """Add a flat particle (99), pure noise (98) and one with data in a single cycle (97)."""
    rng = np.random.default_rng(0)
    n = run.time_s.size
    one_cycle = np.full(n, np.nan)
    c = run.cycles.iloc[0]
    inside = (run.time_s > c.on_start_s - 5) & (run.time_s < c.off_end_s)
    one_cycle[inside] = run.traces.loc[run.traces.particle_id == 0, "intensity"].to_numpy()[inside]
    extra = {99: np.full(n, 5000.0), 98: rng.poisson(5000.0, n).astype(float), 97: one_cycle}
    frames = [run.traces] + [
        pd.DataFrame({"particle_id": pid, "frame": np.arange(n), "intensity": y}) for pid, y in extra.items()
    ]
    parts = pd.concat(
        [run.particles, pd.DataFrame({"particle_id": list(extra), "size_nm": 700.0})], ignore_index=True
    )
    return dataclasses.replace(run, traces=pd.concat(frames, ignore_index=True), particles=parts)


def test_undeterminable_particles_are_flagged_and_left_out():
    run = _with_bad_particles(simulated_traces(3, ImagingSimParams(n_particles=6)))
    pop, summary = _analyze(run)
    t = pop.table
    assert list(t.columns) == list(KINETICS_COLUMNS)
    assert sorted(t["particle_id"].unique()) == [0, 1, 2, 3, 4, 5, 97, 98, 99]
    good = t[t["particle_id"] < 90]
    assert (good["exclusion_reason"] == "").all() and good["fit_ok"].all()
    reasons = {pid: set(g["exclusion_reason"]) for pid, g in t[t["particle_id"] > 90].groupby("particle_id")}
    for pid in (98, 99):  # flat and pure noise: no significant switching
        assert all("no significant switching" in r for r in reasons[pid]), reasons[pid]
    assert all(reasons[97]) and any("only 1 usable cycle(s)" in r for r in reasons[97]), reasons[97]
    assert any("no data in the cycles at this field" in r for r in reasons[97]), reasons[97]
    assert not t.loc[t["particle_id"] > 90, "fit_ok"].any()
    # the summary leaves them out, says why, and its numbers are those of the good particles
    excluded = {e["particle_id"]: e["reason"] for e in summary["kinetics_excluded_particles"]}
    assert set(excluded) == {97, 98, 99}
    assert "no significant switching" in excluded[99] and "only 1 usable cycle(s)" in excluded[97]
    assert summary["n_particles_used"] == 6 and summary["n_rows_used"] == 18
    assert summary["ion_mobility_cm2_per_Vs"] == pytest.approx(good["mobility_cm2_per_Vs"].mean(), rel=1e-12)
    # and they did not inform the shape prior (3 fields x 6 good particles)
    assert pop.shape_priors["pol"].n_curves == 18
    json.dumps(summary)
    assert pop.excluded()["particle_id"].tolist() == [97, 98, 99]


def test_monoexponential_population_is_not_pooled():
    # fast_ratio = 1: both components share tau, the kinetics are monoexponential
    run = simulated_traces(4, ImagingSimParams(n_particles=6, fast_ratio=1.0))
    pop, summary = _analyze(run)
    assert pop.shape_priors == {} and set(pop.flags) == {"pol:not_pooled", "rec:not_pooled"}
    m = with_truth(pop.table, run.truth)
    assert m["fit_ok"].all()
    assert np.median(np.abs(m["err_pol"])) < 0.05 and np.median(np.abs(m["err_rec"])) < 0.05
    assert summary["model_choice"]["pol"]["mono_by_bic"] > summary["model_choice"]["pol"]["biexp_by_bic"]


def test_few_curves_are_not_pooled_and_excluded_particles_do_not_inform_the_prior():
    run = simulated_traces(6, ImagingSimParams(n_particles=4, fields_kV_per_cm=(130.0,)))
    pop = analyze_population(
        run.traces, run.time_s, run.cycles, exposure_s=run.exposure_s, particles=run.particles
    )
    assert pop.shape_priors == {} and "pol:not_pooled" in pop.flags  # 4 curves < min_pooled_curves
    assert not pop.table["flags"].str.contains("shape_prior").any()
    pop = analyze_population(
        run.traces,
        run.time_s,
        run.cycles,
        exposure_s=run.exposure_s,
        particles=run.particles,
        settings=KineticsSettings(min_pooled_curves=3),
    )
    assert pop.shape_priors["pol"].n_curves == 4
    parts = run.particles.assign(excluded=["", "touches the border", "", ""])
    pop = analyze_population(
        run.traces,
        run.time_s,
        run.cycles,
        exposure_s=run.exposure_s,
        particles=parts,
        settings={"min_pooled_curves": 3},
    )
    assert pop.shape_priors["pol"].n_curves == 3
    assert pop.table["flags"].str.contains("pol:shape_prior").all()  # every particle is still refitted
    assert set(pop.curves) == {(pid, 130.0, ph) for pid in range(4) for ph in ("pol", "rec")}


def test_estimate_shape_priors_needs_first_pass_results():
    assert estimate_shape_priors([]) == {}
