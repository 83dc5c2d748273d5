"""Figures of merit on synthetic records written here from closed forms (not from the analysis)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from plscope.detector import (
    analyze_dose_rate,
    dark_drift,
    dose_rate_fits,
    mu_tau_hecht,
    open_circuit_voltage,
    pyro_pulses,
    resistivity,
    segments_from_current,
    segments_from_shutter,
)
from plscope.errors import RunFolderError

AREA, SPACING = 0.0075, 0.3


def _pulses(on, off, t):
    return ((t[:, None] >= np.array(on)) & (t[:, None] < np.array(off))).any(axis=1)


def _pyro_record(drift_A_per_s=2e-15, tau=0.4, p=3.5e-9, dT=0.5):
    t = np.arange(0, 62, 0.002)  # fine sampling: the closed-form current jumps at turn-on
    on = np.arange(6, 60, 10.0)
    off = on + 5
    didt = np.zeros_like(t)  # dT/dt in closed form: heating towards dT, then cooling from the swing
    for a, b in zip(on, off):
        h = (t >= a) & (t < b)
        didt[h] += dT / tau * np.exp(-(t[h] - a) / tau)
        c = t >= b
        didt[c] -= dT * (1 - np.exp(-(b - a) / tau)) / tau * np.exp(-(t[c] - b) / tau)
    i = AREA * p * didt + 3e-14 + drift_A_per_s * t
    return t, i, on, off


def test_pyro_coefficient_with_drifting_baseline():
    t, i, on, off = _pyro_record()
    seg = pd.DataFrame({"on_s": on, "off_s": off})
    table = pyro_pulses(t, i, seg, area_cm2=AREA, delta_T_K=0.5)
    assert len(table) == len(on)
    swing = 1 - math.exp(-5 / 0.4)
    np.testing.assert_allclose(table.pyroelectric_coefficient_uC_per_cm2_K, 35e-4 * swing, rtol=0.005)


def test_shutter_segments_and_never_switching():
    t = np.arange(0, 20, 0.01)
    sh = 5.0 * _pulses([2, 8, 14], [5, 11, 17], t)
    seg = segments_from_shutter(t, sh, source="x.csv")
    np.testing.assert_allclose(seg.on_s, [2, 8, 14], atol=0.011)
    np.testing.assert_allclose(seg.off_s, [5, 11, 17], atol=0.011)
    with pytest.raises(RunFolderError, match="x.csv: shutter never switches"):
        segments_from_shutter(t, np.full_like(t, 5.0), source="x.csv")


def _step_record(tau_r, tau_d, photo, dark, on, off, t, rng=None, sigma=0.0):
    y = np.full_like(t, dark)
    for a, b in zip(on, off):
        r = (t >= a) & (t < b)
        y[r] += (photo - dark) * (1 - np.exp(-(t[r] - a) / tau_r))
        top = (photo - dark) * (1 - math.exp(-(b - a) / tau_r))
        d = t >= b
        y[d] += top * np.exp(-(t[d] - b) / tau_d)
    return y + (rng.normal(0, sigma, t.size) if rng is not None else 0)


def test_step_detector_and_rise_decay_10_90():
    t = np.arange(0, 100, 0.005)
    on, off = np.arange(5, 95, 20.0), np.arange(15, 100, 20.0)
    y = _step_record(0.2417, 0.2349, 2e-12, 1e-13, on, off, t)
    seg = segments_from_current(t, y)
    np.testing.assert_allclose(seg.on_s, on, atol=0.05)
    res = analyze_dose_rate(
        t, y, pd.DataFrame({"on_s": on, "off_s": off}), dose_rate_nGy_per_s=500, area_cm2=AREA
    )
    assert res.row["rise_time_s"] == pytest.approx(0.2417 * math.log(9), rel=0.01)
    assert res.row["decay_time_s"] == pytest.approx(0.2349 * math.log(9), rel=0.01)
    assert res.row["contrast_percent"] == pytest.approx(0.0, abs=0.5)


def test_sensitivity_and_detection_limit_exact_line():
    rng = np.random.default_rng(1)
    t = np.arange(0, 60, 0.01)
    on, off = np.arange(5, 55, 10.0), np.arange(10, 60, 10.0)
    seg = pd.DataFrame({"on_s": on, "off_s": off})
    rows = []
    sens = 88e-6 * AREA  # A per (Gy/s)
    for d in (214, 400, 800, 1600, 3200):
        y = _step_record(0.05, 0.05, sens * d * 1e-9, 0.0, on, off, t, rng, sigma=1.36e-14)
        rows.append(analyze_dose_rate(t, y, seg, dose_rate_nGy_per_s=d, area_cm2=AREA).row)
    fits = dose_rate_fits(pd.DataFrame(rows))
    assert fits["sensitivity_uC_per_Gy_cm2"] == pytest.approx(88, rel=0.03)
    lo, hi = fits["sensitivity_ci95_uC_per_Gy_cm2"]
    assert lo < 88 < hi
    # SNR = sens*D/sigma exactly proportional: limit = 3 sigma / sens
    assert fits["detection_limit_nGy_per_s"] == pytest.approx(3 * 1.36e-14 / sens * 1e9, rel=0.15)


def test_resistivity_voc_drift():
    v = np.linspace(-10, 10, 21)
    r = 5.2e12 * SPACING / AREA
    assert resistivity(v, v / r, area_cm2=AREA, spacing_cm=SPACING)["resistivity_ohm_cm"] == pytest.approx(
        5.2e12
    )
    vi = np.linspace(-1, 1, 41)
    assert open_circuit_voltage(vi, (vi - 0.25) / 1e12)["open_circuit_voltage_V"] == pytest.approx(0.25)
    assert open_circuit_voltage(vi, vi * 0 + 1e-12)["open_circuit_voltage_V"] is None
    tt = np.arange(0, 1000.0)
    slope = 8.2e-7 * 1e-9 * (10 / SPACING) * AREA
    dd = dark_drift(tt, 4e-14 + slope * tt, bias_V=10, area_cm2=AREA, spacing_cm=SPACING)
    assert dd["dark_current_drift_nA_per_cm_s_V"] == pytest.approx(8.2e-7)


def _hecht(v, i0, mt, s, L):
    x = mt * v / L**2
    return i0 * x * (1 - np.exp(-1 / x)) / (1 + (L / v) * s)


@pytest.mark.parametrize("i0", [1e-13, 1e-6])
def test_hecht_scaled_fit_same_at_any_current(i0):
    rng = np.random.default_rng(5)
    v = np.linspace(2, 200, 16)
    i = _hecht(v, i0, 1.3e-3, 5.0, SPACING) * (1 + rng.normal(0, 0.005, v.size))
    fit = mu_tau_hecht(v, i, spacing_cm=SPACING)
    assert fit["mu_tau_cm2_per_V"] == pytest.approx(1.3e-3, rel=0.05)


def test_sweep_with_two_points():
    with pytest.raises(ValueError, match="has 2 point"):
        resistivity(np.array([0, 1.0]), np.array([0, 1.0]), area_cm2=AREA, spacing_cm=SPACING)


def test_pyro_without_shutter_from_the_charge():
    """Step detector on the running charge: the pulses and their charge as with the true times."""
    t, i, on, off = _pyro_record()
    seg = segments_from_current(t, i, integrate=True)
    assert len(seg) == len(on)
    np.testing.assert_allclose(seg.on_s, on, atol=0.01)
    table = pyro_pulses(t, i, seg, area_cm2=AREA, delta_T_K=0.5)
    swing = 1 - math.exp(-5 / 0.4)
    np.testing.assert_allclose(table.pyroelectric_coefficient_uC_per_cm2_K, 35e-4 * swing, rtol=0.01)


def test_tdms_log_through_the_daq_reader(tmp_path):
    nptdms = pytest.importorskip("nptdms")
    from plscope.detector import read_log

    t = np.arange(0, 1, 0.01)
    path = tmp_path / "k.tdms"
    props = {"wf_increment": 0.01, "wf_start_offset": 0.0}
    with nptdms.TdmsWriter(path) as w:
        w.write_segment([nptdms.ChannelObject("smu", "current_A", 1e-12 * t, properties=props)])
    log = read_log(path)
    np.testing.assert_allclose(log.axis, t, atol=1e-12)
    np.testing.assert_allclose(log.column("current_A"), 1e-12 * t)
