"""The fast paths of the pooled-shape profile and of the superposition give the numbers of the plain
formulas they replaced (to floating-point rounding)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from plscope.kinetics import KineticsInputError, frames_in_window, superpose_cycles
from plscope.kinetics import cycles as cycles_mod
from plscope.kinetics import population as pop

from .synth import simulate_trace

FAST = dict(tau_pol_s=(0.6, 2.4), tau_rec_s=(0.8, 3.2))


def _packed(seed: int = 1) -> pop._PackedCurves:
    """Three biexponential curves: on a grid, on a grid with missing points, off any grid; padded."""
    rng = np.random.default_rng(seed)
    rows = []
    for kind in ("grid", "gaps", "irregular"):
        t = 0.05 + 0.1 * np.arange(60)
        if kind == "gaps":
            t = np.delete(t, [3, 4, 17, 40])
        elif kind == "irregular":
            t = np.sort(rng.uniform(0.05, 6.0, 50))
        y = 0.3 + 0.5 * (0.6 * np.exp(-t / 0.4) + 0.4 * np.exp(-t / 2.0)) + 0.01 * rng.standard_normal(t.size)
        rows.append((t, y, np.full(t.size, 1e4) * rng.uniform(0.5, 2.0, t.size)))
    n = max(r[0].size for r in rows)
    t, y, w = (np.zeros((3, n)) for _ in range(3))
    for k, (tt, yy, ww) in enumerate(rows):
        t[k, : tt.size], y[k, : tt.size], w[k, : tt.size] = tt, yy, ww
    return pop._PackedCurves(t=t, y=y, w=w, tau0=np.array([0.9, 1.1, 1.0]), exposure=np.full(3, 0.09))


def _reference_chi(t, y, w, tau1, ratio, frac, exposure):
    """Chi-square of one curve profiled over ``i0, A`` (two-pass weighted least squares, direct exp)."""
    ok = w > 0
    t, y, w = t[ok], y[ok], w[ok]
    tau2 = tau1 * ratio
    x1, x2 = exposure / (2 * tau1), exposure / (2 * tau2)
    b = frac * math.sinh(x1) / x1 * np.exp(-t / tau1) + (1 - frac) * math.sinh(x2) / x2 * np.exp(-t / tau2)
    yc = y - np.sum(w * y) / np.sum(w)
    bc = b - np.sum(w * b) / np.sum(w)
    return np.sum(w * yc**2) - np.sum(w * bc * yc) ** 2 / np.sum(w * bc**2)


@pytest.mark.parametrize(("frac", "log_ratio"), [(0.6, 1.6), (0.1, 0.2), (0.95, 3.5)])
def test_profile_grid_equals_the_two_pass_least_squares(frac, log_ratio):
    c = _packed()
    ratio = math.exp(log_ratio)
    c1 = 1.0 / (frac + (1 - frac) * ratio)
    step, idx = c.grid
    assert step[0] > 0 and step[1] > 0 and step[2] == 0  # the three paths of the kernel
    chi = pop._profile_grid(c.t, c.y, c.w, c.tau0, c.exposure, frac, c1, ratio, pop._TAU_PROFILE, step, idx)
    for k in range(3):
        ref = [
            _reference_chi(c.t[k], c.y[k], c.w[k], c1 * c.tau0[k] * g, ratio, frac, c.exposure[k])
            for g in pop._TAU_PROFILE
        ]
        # rounding of sums of ~60 terms of size ~1e4 (chi ~ 60): 1e-9 relative is ~1e5 ulp of slack
        np.testing.assert_allclose(chi[k], ref, rtol=1e-9)


def _reference_minima(chi):
    """The vectorized vertex rule the kernel replaced (per row: grid minimum or parabola vertex)."""
    chi = np.where(np.isfinite(chi), np.maximum(chi, 0.0), np.inf)
    g = chi.shape[1]
    j = np.argmin(chi, axis=1)
    k = np.arange(chi.shape[0])
    jj = np.clip(j, 1, g - 2)
    lo, mid, hi = chi[k, jj - 1], chi[k, jj], chi[k, jj + 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        curv = lo - 2.0 * mid + hi
        interior = (j == jj) & (curv > 0) & np.isfinite(curv)
        vertex = np.where(interior, mid - (hi - lo) ** 2 / (8.0 * np.where(interior, curv, 1.0)), mid)
    return np.maximum(np.minimum(chi[k, j], vertex), 0.0)


def test_grid_minima_equal_the_vectorized_rule():
    rng = np.random.default_rng(3)
    x = np.linspace(-1, 1, 21)
    chi = 50 + 40 * (x[None, :] - rng.uniform(-1.3, 1.3, (40, 1))) ** 2 + rng.normal(0, 0.5, (40, 21))
    chi[0, 5] = np.nan
    chi[1, :] = np.inf
    chi[2, 10] = -3.0  # negative (rounding): clipped at 0
    chi[3, :3] = np.nan
    chi[4, 11] = np.inf
    np.testing.assert_array_equal(pop._grid_minima(chi), _reference_minima(chi))


@pytest.mark.parametrize("n", [0, 1, 2, 3, 8, 15, 16, 401])
def test_median_equals_numpy(n):
    rng = np.random.default_rng(n)
    v = rng.normal(size=n)
    if n:
        assert cycles_mod._median(v) == float(np.median(v))
    assert math.isnan(cycles_mod._median(np.append(v, np.nan)))


def test_frame_ranges_equal_frames_in_window():
    rng = np.random.default_rng(5)
    t = np.cumsum(rng.uniform(0.09, 0.11, 300))
    edges = np.concatenate([rng.uniform(0, 32, 200), t[::7] - 0.04, t[::9] + 0.04, t[::11]])
    start = np.sort(rng.choice(edges, 150))
    end = start + rng.choice([0.0, 0.03, 0.5, 3.0, 50.0], start.size)
    lo, hi = cycles_mod._frame_ranges(t, start, end, 0.08)
    for a, b, i0, i1 in zip(start, end, lo, hi, strict=True):
        mask = np.zeros(t.size, bool)
        mask[i0:i1] = True
        np.testing.assert_array_equal(mask, frames_in_window(t, a, b, exposure_s=0.08))


def _equal(a, b) -> None:
    for f in ("phase", "time_s", "curves", "cycle", "plateau", "used", "spoiled", "outlier_fraction"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
    for f in ("mean", "sem", "n", "noise", "flags"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))


@pytest.mark.parametrize("phase", ["pol", "rec"])
def test_superposition_without_the_window_table_is_identical(phase, monkeypatch):
    sim = simulate_trace(
        fields_kV_per_cm=(130,), n_cycles=4, blinks=[(95.0, 1.0, 0.4)], rng=np.random.default_rng(2), **FAST
    )
    shuffled = sim.cycles.sample(frac=1.0, random_state=0)  # unsorted: sorted like check_cycles
    y = sim.intensity.copy()
    y[::37] = np.nan
    kw = dict(phase=phase, exposure_s=0.15, transient_s=0.05)
    fast = superpose_cycles(sim.time_s, y, shuffled, **kw)
    monkeypatch.setattr(cycles_mod, "_sorted_cycles", lambda cycles: None)  # the window table
    _equal(fast, superpose_cycles(sim.time_s, y, shuffled, **kw))


def test_superposition_of_a_bad_cycle_table_raises_as_before():
    sim = simulate_trace(fields_kV_per_cm=(130,), n_cycles=2, noise=False, **FAST)
    with pytest.raises(KineticsInputError, match="missing column"):
        superpose_cycles(
            sim.time_s, sim.intensity, sim.cycles.drop(columns="sign"), phase="pol", exposure_s=0
        )
    bad = sim.cycles.copy()
    bad.loc[1, "on_end_s"] = bad.loc[1, "off_end_s"] + 1.0
    with pytest.raises(KineticsInputError, match="on_start_s <= on_end_s <= off_end_s"):
        superpose_cycles(sim.time_s, sim.intensity, bad, phase="rec", exposure_s=0.15)
    with pytest.raises(KineticsInputError, match="DataFrame"):
        superpose_cycles(sim.time_s, sim.intensity, bad.to_dict(), phase="rec", exposure_s=0.15)
    strings = sim.cycles.astype({"on_start_s": str})
    assert cycles_mod._sorted_cycles(strings) is None  # left to check_cycles, as before
    assert isinstance(cycles_mod._sorted_cycles(pd.DataFrame(sim.cycles)), tuple)


def test_switching_efficiency_equals_the_window_table_loop():
    from plscope.kinetics import cycle_windows, robust_mean, switching_efficiency_per_cycle

    sim = simulate_trace(fields_kV_per_cm=(90, 130), n_cycles=3, rng=np.random.default_rng(4), **FAST)
    y = sim.intensity.copy()
    y[::23] = np.nan
    cycles = sim.cycles.sample(frac=1.0, random_state=1)
    got = switching_efficiency_per_cycle(sim.time_s, y, cycles, exposure_s=0.15, plateau_s=2.5)
    w = cycle_windows(cycles, plateau_s=2.5, record_start_s=sim.time_s[0] - 0.075)
    ok = np.isfinite(y)
    for name, (a, b) in {
        "bright": ("bright_start_s", "bright_end_s"),
        "quenched": ("quenched_start_s", "quenched_end_s"),
    }.items():
        ref = [
            robust_mean(y[frames_in_window(sim.time_s, s, e, exposure_s=0.15) & ok])
            for s, e in zip(w[a], w[b])
        ]
        np.testing.assert_array_equal(got[name].to_numpy(), ref)
    for col in ("cycle", "level", "field_kV_per_cm"):
        np.testing.assert_array_equal(got[col].to_numpy(), w[col].to_numpy())
