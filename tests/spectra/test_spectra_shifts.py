"""Frame labels, per-cycle baselines with drift, histogram normal fits and the shift slope."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from plscope.spectra.shifts import (
    add_shifts,
    cycle_baselines,
    frame_fields,
    frame_phases,
    normal_fit,
    shift_slope,
    shift_statistics,
)
from plscope.sync import cycles_from_segments

#: two ON segments: 10-20 s at 100 kV/cm (level 0), 30-40 s at 130 kV/cm (level 1)
SEGMENTS = pd.DataFrame(
    {
        "segment": [0, 1],
        "start_s": [10.0, 30.0],
        "end_s": [20.0, 40.0],
        "field_kV_per_cm": [100.0, 130.0],
        "sign": [1, 1],
        "level": [0, 1],
        "level_kV_per_cm": [100.0, 130.0],
    }
)


def test_frames_are_labelled_by_the_field_during_their_exposure():
    start = np.array([5.0, 9.9, 12.0, 19.95, 25.0, 35.0])
    ff = frame_fields(start, 0.2, SEGMENTS)
    assert ff["state"].tolist() == ["off", "switching", "on", "switching", "off", "on"]
    np.testing.assert_allclose(ff["field_kV_per_cm"], [0, 50.0, 100.0, 25.0, 0, 130.0], atol=1e-9)
    assert ff["level"].tolist() == [-1, 0, 0, 0, -1, 1]
    np.testing.assert_allclose(ff["on_fraction"], [0, 0.5, 1, 0.25, 0, 1], atol=1e-9)


def test_phases_and_settled_frames():
    cycles = cycles_from_segments(SEGMENTS, record_end_s=50.0)
    tm = np.array([1.0, 6.0, 12.0, 17.0, 22.0, 27.0, 45.0])
    ph = frame_phases(tm, cycles, first_frame_s=0.0, settle_fraction=0.5)
    assert ph["phase"].tolist() == ["lead_in", "lead_in", "on", "on", "off", "off", "off"]
    assert ph["cycle"].tolist() == [0, 0, 0, 0, 0, 0, 1]
    assert ph["settled"].tolist() == [False, True, False, True, False, True, True]


def _drifting_table(rng, *, drift_nm_per_s=0.004, noise_nm=0.05):
    """Frames at 5 Hz over 0-50 s with the segments above, a linear drift and a settled shift -0.007 E."""
    t = np.arange(0, 50, 0.2)
    start = t - 0.05
    ff = frame_fields(start, 0.1, SEGMENTS)
    cycles = cycles_from_segments(SEGMENTS, record_end_s=50.0)
    ph = frame_phases(t, cycles, first_frame_s=0.0, settle_fraction=0.5)
    shift_true = np.where(ff["state"] == "on", -0.007 * ff["field_kV_per_cm"], 0.0)
    peak = 530.0 + drift_nm_per_s * t + shift_true + rng.normal(0, noise_nm, t.size)
    return pd.DataFrame(
        {
            "particle_id": 0,
            "frame": np.arange(t.size),
            "time_s": t,
            "peak_nm": peak,
            "fit_ok": True,
            **{c: ff[c] for c in ("state", "field_kV_per_cm", "level")},
            **{c: ph[c] for c in ("cycle", "phase", "settled")},
        }
    ), shift_true


def test_baselines_follow_a_linear_drift():
    rng = np.random.default_rng(0)
    table, shift_true = _drifting_table(rng)
    base = cycle_baselines(table)
    assert base["cycle"].tolist() == [0, 1]
    assert (base[["n_before", "n_after"]] > 10).all().all()
    out = add_shifts(table)
    err = out["shift_nm"] - shift_true
    # a 0.2 nm drift over the run cancels: residuals are the 0.05 nm frame noise plus a baseline
    # error of 0.05 / sqrt(~25 frames) ~ 0.01 nm
    assert abs(err.mean()) < 0.01
    assert err.std() < 0.06
    on = out[(out["state"] == "on") & out["settled"]]
    assert on.groupby("level")["shift_nm"].mean().to_numpy() == pytest.approx([-0.7, -0.91], abs=0.02)


def test_failed_fits_have_no_shift():
    rng = np.random.default_rng(1)
    table, _ = _drifting_table(rng)
    table.loc[5, "fit_ok"] = False
    table.loc[5, "peak_nm"] = np.nan
    out = add_shifts(table)
    assert np.isnan(out.loc[5, "shift_nm"])
    assert np.isfinite(out.drop(index=5)["shift_nm"]).all()


def test_normal_fit_of_a_histogram():
    rng = np.random.default_rng(2)
    v = rng.normal(-0.86, 0.2, 400)
    fit = normal_fit(v)
    assert fit.method == "histogram" and fit.n == 400
    se = 0.2 / math.sqrt(400)
    assert fit.center == pytest.approx(-0.86, abs=4 * se)
    assert fit.center_err == pytest.approx(se, rel=0.3)
    assert fit.sigma == pytest.approx(0.2, rel=0.15)
    few = normal_fit([1.0, 1.2, 0.9, np.nan])
    assert few.method == "median" and few.n == 3 and few.center == pytest.approx(1.0)
    assert math.isnan(normal_fit([]).center)


def test_shift_statistics_pool_and_per_particle():
    rng = np.random.default_rng(3)
    a, _ = _drifting_table(rng)
    b, _ = _drifting_table(rng)
    b["particle_id"] = 1
    out = add_shifts(pd.concat([a, b], ignore_index=True))
    pooled = shift_statistics(out)
    assert pooled["particle_id"].tolist() == [-1, -1, -1]
    assert pooled["field_kV_per_cm"].tolist() == [0.0, 100.0, 130.0]
    np.testing.assert_allclose(pooled["shift_nm"], [0.0, -0.7, -0.91], atol=0.02)
    per = shift_statistics(out, per_particle=True)
    assert per["particle_id"].tolist() == [0, 0, 0, 1, 1, 1]
    assert (per["n_frames"] * 2 == np.tile(pooled["n_frames"], 2)).all()


def test_shift_slope():
    e = np.array([0.0, 70.0, 100.0, 130.0])
    exact = shift_slope(e, -0.0066 * e, np.full(4, 0.01))
    assert exact.slope_nm_per_kV_per_cm == pytest.approx(-0.0066, rel=1e-9)
    assert exact.intercept_nm == pytest.approx(0.0, abs=1e-9)
    # errors from the weights when the points scatter less than them
    x = np.column_stack([np.ones(4), e])
    want = math.sqrt(np.linalg.inv(x.T @ x / 0.01**2)[1, 1])
    assert exact.slope_err_nm_per_kV_per_cm == pytest.approx(want, rel=1e-9)
    # ... and from the scatter when it exceeds them
    noisy = shift_slope(e, -0.0066 * e + np.array([0.05, -0.05, 0.05, -0.05]), np.full(4, 0.01))
    assert noisy.redchi > 1 and noisy.slope_err_nm_per_kV_per_cm > want
    assert math.isnan(shift_slope([100.0], [-0.7], [0.01]).slope_nm_per_kV_per_cm)
