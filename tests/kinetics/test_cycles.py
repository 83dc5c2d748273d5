"""Cycle windows, bleaching correction, superposition and blink rejection."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from plscope.kinetics import (
    KineticsInputError,
    bleach_curve,
    cycle_windows,
    frames_in_window,
    robust_mean,
    superpose_cycles,
    switching_efficiency_per_cycle,
)

from .synth import simulate_trace

FAST = dict(tau_pol_s=(0.6, 2.4), tau_rec_s=(0.8, 3.2))  # relaxes fully within 20 s


def test_frames_straddling_an_edge_are_excluded():
    t = np.array([9.8, 9.95, 10.05, 10.1, 10.3])
    m = frames_in_window(t, 10.0, 20.0, exposure_s=0.15)
    # 9.95 and 10.05 straddle the edge at 10.0; 10.1 starts at 10.025
    assert m.tolist() == [False, False, False, True, True]


def test_robust_mean_ignores_a_blink():
    rng = np.random.default_rng(0)
    v = 1.0 + 0.01 * rng.standard_normal(15)
    v[4:9] *= 0.5
    assert robust_mean(v) == pytest.approx(1.0, abs=0.01)
    assert np.isnan(robust_mean([np.nan, np.nan]))


def test_cycle_windows_columns():
    sim = simulate_trace(fields_kV_per_cm=(130,), n_cycles=3, noise=False, **FAST)
    w = cycle_windows(sim.cycles, plateau_s=3.0, record_start_s=0.0)
    first = w.iloc[0]
    assert first.off_start_s == 0.0 and first.bright_start_s == pytest.approx(7.0)
    second = w.iloc[1]
    assert second.off_start_s == pytest.approx(30.0)
    assert second.bright_start_s == pytest.approx(47.0) and second.bright_end_s == pytest.approx(50.0)
    assert second.quenched_start_s == pytest.approx(67.0)
    assert (w.rec_end_s == w.off_end_s).all()


def test_bad_cycle_table_raises():
    with pytest.raises(KineticsInputError, match="missing column"):
        cycle_windows(pd.DataFrame({"cycle": [0]}))
    sim = simulate_trace(fields_kV_per_cm=(130,), n_cycles=2, noise=False, **FAST)
    with pytest.raises(KineticsInputError, match="per frame"):
        superpose_cycles(sim.time_s, sim.intensity[:-1], sim.cycles, phase="pol", exposure_s=0.15)
    with pytest.raises(KineticsInputError, match="phase"):
        superpose_cycles(sim.time_s, sim.intensity, sim.cycles, phase="on", exposure_s=0.15)


@pytest.mark.parametrize("noise", [False, True])
def test_bleach_rate_recovered(noise):
    sim = simulate_trace(
        fields_kV_per_cm=(90, 130),
        n_cycles=6,
        bleach_percent_per_min=3.0,
        noise=noise,
        rng=np.random.default_rng(1),
        **FAST,
    )
    model = bleach_curve(sim.time_s, sim.intensity, sim.cycles, exposure_s=sim.exposure_s)
    assert model.success
    tol = 0.02 if not noise else 0.3
    assert model.loss_percent_per_min == pytest.approx(3.0, abs=tol)
    assert model(sim.time_s[0]) == pytest.approx(1.0)
    corrected = model.correct(sim.time_s, sim.intensity)
    # bright plateaus at the start and the end agree after the correction
    start = corrected[sim.time_s < 9.5].mean()
    end = corrected[(sim.time_s > sim.cycles.off_end_s.iloc[-1] - 5)].mean()
    assert end == pytest.approx(start, rel=0.01)


def test_bleach_with_too_few_plateaus_is_identity():
    t = np.arange(0, 5, 0.2) + 0.075
    cycles = pd.DataFrame(
        {
            "cycle": [0],
            "level": [0],
            "field_kV_per_cm": [130.0],
            "sign": [1],
            "on_start_s": [100.0],
            "on_end_s": [120.0],
            "off_end_s": [140.0],
        }
    )
    model = bleach_curve(t, np.full(t.size, np.nan), cycles, exposure_s=0.15)
    assert not model.success and "too_few_plateaus" in model.flags
    assert np.all(model(t) == 1.0)


def test_superposed_noiseless_curves_match_the_model():
    sim = simulate_trace(fields_kV_per_cm=(130,), n_cycles=4, noise=False, se=0.3, **FAST)
    pol = superpose_cycles(sim.time_s, sim.intensity, sim.cycles, phase="pol", exposure_s=sim.exposure_s)
    rec = superpose_cycles(sim.time_s, sim.intensity, sim.cycles, phase="rec", exposure_s=sim.exposure_s)
    for sup in (pol, rec):
        assert sup.n_used == 4 and sup.n_spoiled == 0
        assert sup.time_s[0] >= sim.exposure_s / 2
        assert np.all(np.diff(sup.time_s) == pytest.approx(0.2001))
        assert sup.time_s[-1] > 19.5
        assert np.all(sup.n == 4)
    # polarization: from 1 towards 1 - SE; recovery: from 1 - SE back to 1
    assert pol.mean[0] > 0.85 and pol.mean[-1] == pytest.approx(0.7, abs=0.002)
    assert rec.mean[0] < 0.85 and rec.mean[-1] == pytest.approx(1.0, abs=0.002)
    # against the exact instantaneous model at the grid (mid-exposure; exposure factor ~1)
    w = np.array([0.5, 0.5])
    t = pol.time_s
    exact = 1 - 0.3 * (w[0] * (1 - np.exp(-t / 0.6)) + w[1] * (1 - np.exp(-t / 2.4)))
    np.testing.assert_allclose(pol.mean, exact, atol=0.006)


def test_long_blink_spoils_a_cycle_and_short_blinks_are_masked():
    blinks = [
        (10 + 40 * 2 + 6, 6.0, 0.5),  # 6 s blink inside cycle 2's ON window
        (10 + 40 * 4 + 27, 1.0, 0.4),  # 1 s blink in cycle 4's recovery
        (10 + 40 * 6 + 3, 1.0, 0.6),
    ]  # 1 s blink in cycle 6's polarization
    sim = simulate_trace(
        fields_kV_per_cm=(130,), n_cycles=8, blinks=blinks, rng=np.random.default_rng(4), **FAST
    )
    pol = superpose_cycles(sim.time_s, sim.intensity, sim.cycles, phase="pol", exposure_s=sim.exposure_s)
    rec = superpose_cycles(sim.time_s, sim.intensity, sim.cycles, phase="rec", exposure_s=sim.exposure_s)
    assert pol.spoiled.tolist() == [c == 2 for c in range(8)]
    assert pol.n_spoiled == 1 and pol.n_used == 7
    assert "spoiled_cycles_excluded" in pol.flags and "outlier_points_masked" in pol.flags
    assert 0 < pol.outlier_fraction[6] < 0.2
    assert rec.n_spoiled == 0 and 0 < rec.outlier_fraction[4] < 0.2
    clean = simulate_trace(fields_kV_per_cm=(130,), n_cycles=8, noise=False, **FAST)
    ref = superpose_cycles(
        clean.time_s, clean.intensity, clean.cycles, phase="pol", exposure_s=clean.exposure_s
    )
    n = min(ref.mean.size, pol.mean.size)
    # the blinks leave no trace in the mean beyond the noise (~1 %/sqrt(7))
    assert np.max(np.abs(pol.mean[:n] - ref.mean[:n])) < 0.02


def test_few_cycles_skip_outlier_detection():
    sim = simulate_trace(fields_kV_per_cm=(130,), n_cycles=2, noise=False, **FAST)
    sup = superpose_cycles(sim.time_s, sim.intensity, sim.cycles, phase="pol", exposure_s=0.15)
    assert "outlier_detection_skipped" in sup.flags and sup.n_used == 2


def test_no_data_gives_empty_superposition():
    sim = simulate_trace(fields_kV_per_cm=(130,), n_cycles=3, noise=False, **FAST)
    sup = superpose_cycles(
        sim.time_s, np.full(sim.time_s.size, np.nan), sim.cycles, phase="rec", exposure_s=0.15
    )
    assert sup.time_s.size == 0 and sup.n_used == 0 and "no_data" in sup.flags


def test_switching_efficiency_per_cycle_within_001():
    sim = simulate_trace(fields_kV_per_cm=(110,), n_cycles=5, se=0.35, rng=np.random.default_rng(2), **FAST)
    se = switching_efficiency_per_cycle(sim.time_s, sim.intensity, sim.cycles, exposure_s=0.15)
    assert list(se.columns) == [
        "cycle",
        "level",
        "field_kV_per_cm",
        "bright",
        "quenched",
        "switching_efficiency",
    ]
    assert se.switching_efficiency.mean() == pytest.approx(0.35, abs=0.01)
    assert np.all(np.abs(se.switching_efficiency - 0.35) < 0.02)


def test_compiled_plateau_levels_are_robust_means_bit_for_bit():
    """The plateaus' robust means (compiled, numpy's pairwise sums) equal robust_mean's exactly: short and
    long windows (one block of 8-sums, several, and the pairwise split above 128 values), NaN frames,
    blinks, ties and zero spread."""
    from plscope.kinetics.cycles import _robust_means, robust_mean

    rng = np.random.default_rng(16)
    for trial in range(400):
        n = int(rng.integers(0, 300)) if trial % 10 else int(rng.integers(300, 3000))
        y = rng.normal(1.0, rng.uniform(1e-4, 1.0), n) * rng.uniform(0.1, 1e4)
        if trial % 3 == 0 and n:
            y[rng.integers(0, n, size=max(1, n // 10))] = np.nan
        if trial % 5 == 0 and n:
            y[rng.integers(0, n, size=max(1, n // 8))] *= rng.uniform(0.2, 0.7)
        if trial % 7 == 0 and n > 3:
            y[: n // 2] = y[0]
        lo, hi = np.array([0, n // 3, 0, n // 2]), np.array([n, n, n // 2, n // 2])
        got = _robust_means(y, lo, hi, 3.0)
        for k in range(lo.size):
            np.testing.assert_array_equal(got[k], robust_mean(y[lo[k] : hi[k]]))


def test_compiled_interpolation_is_numpys_bit_for_bit():
    """A cycle's samples on the grid (compiled) equal np.interp at the points inside the samples and
    not across a gap, NaN elsewhere: grids offset from the samples and on them, gaps, ties in y,
    tiny and huge values."""
    from plscope.kinetics.cycles import _interp_cycle

    rng = np.random.default_rng(17)
    for trial in range(600):
        n, dt = int(rng.integers(2, 80)), 0.1
        tc = np.sort(rng.choice(np.arange(200), n, replace=False)) * dt + rng.uniform(0.0, 0.05) + 0.041
        yc = rng.normal(1.0, 0.1, n) * rng.choice([1.0, 1e-300, 1e300])
        if trial % 13 == 0:
            yc[rng.integers(0, n)] = yc[0]
        t0 = tc[0] + rng.uniform(-0.3, 0.05)
        grid = tc.copy() if trial % 4 == 0 else t0 + dt * np.arange(int((tc[-1] - t0) / dt + 3))
        max_gap = 1.5 * dt if trial % 5 else np.inf
        expect = np.full(grid.shape, np.nan)
        inside = (grid >= tc[0] - 1e-12) & (grid <= tc[-1] + 1e-12)
        idx = np.clip(np.searchsorted(tc, grid, side="right"), 1, n - 1)
        ok = inside & (tc[idx] - tc[idx - 1] <= max_gap)
        expect[ok] = np.interp(grid[ok], tc, yc)
        np.testing.assert_array_equal(_interp_cycle(tc, yc, grid, max_gap), expect)
